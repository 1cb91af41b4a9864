"""Metrics, exact over an epoch (see ``trainkit.loop.metrics``): accuracy, top-k accuracy, precision,
recall, F1 and the confusion matrix; for regression MAE, RMSE and R2; for a binary task ROC AUC.

A metric's ``name`` is the key it logs under: ``f1`` for training, ``val_f1`` for validation.
Every state is a count, summed in float64 (exact up to 2**53 samples).
"""

from __future__ import annotations

from typing import Literal

from trainkit import hookimpl
from trainkit.lazy import lazy_import
from trainkit.loop.metrics import (
    AVERAGES,
    ConfusionMatrix,
    Metric,
    averaged,
    class_scores,
    predicted_classes,
)

np = lazy_import("numpy")

class Accuracy(Metric):
    """The share of samples whose highest output is the true class (one output, a binary
    task's logit: class 1 where it is above 0)."""

    tasks = ("classification", "binary")

    name = "acc"

    def update(self, state, outputs, targets) -> None:
        state[0] += np.count_nonzero(predicted_classes(outputs) == targets)

    def compute(self, state, samples) -> float:
        return float(state[0] / samples)


class TopKAccuracy(Metric):
    """The share of samples whose true class is among the ``k`` highest outputs.

    Args:
        k: how many of the highest outputs count as a hit.
    """

    tasks = ("classification",)

    def __init__(self, k: int = 5) -> None:
        from trainkit.errors import ConfigError

        if k < 1:
            raise ConfigError(f"k must be at least 1, got {k}", option="k")
        self.k = k
        self.name = f"top{k}_acc"

    def update(self, state, outputs, targets) -> None:
        k = min(self.k, outputs.shape[1])
        top = np.argpartition(outputs, -k, axis=1)[:, -k:]
        state[0] += np.count_nonzero(top == targets[:, None])

    def compute(self, state, samples) -> float:
        return float(state[0] / samples)


class ClassCounts(ConfusionMatrix):
    """The confusion matrix as state, from which ``name``'s per-class score follows under any
    averaging (``trainkit.loop.metrics.averaged``): macro (the mean over the classes that occur in
    targets or predictions, as scikit-learn), micro (over all samples: with one label per
    sample, the accuracy) or weighted (by each class's support)."""

    tasks = ("classification", "binary")

    logged = True

    def __init__(self, average: Literal["macro", "micro", "weighted"] = "macro") -> None:
        from trainkit.errors import ConfigError

        if average not in AVERAGES:
            raise ConfigError(f"average must be one of {', '.join(AVERAGES)}, got {average!r}",
                              "average")
        self.average = average

    def compute(self, state, samples) -> float:
        k = int(round(len(state) ** 0.5))
        return averaged(class_scores(state.reshape(k, k)), self.name, self.average)


class Precision(ClassCounts):
    """Of the samples predicted as a class, the share that are of it; averaged over classes.

    Args:
        average: macro (the classes' mean), micro (over all samples) or weighted (by support).
    """

    name = "precision"


class Recall(ClassCounts):
    """Of the samples of a class, the share predicted as it; averaged over classes.

    Args:
        average: macro (the classes' mean), micro (over all samples) or weighted (by support).
    """

    name = "recall"


class F1(ClassCounts):
    """The harmonic mean of precision and recall per class; averaged over classes.

    Args:
        average: macro (the classes' mean), micro (over all samples) or weighted (by support).
    """

    name = "f1"


def errors(outputs, targets):
    """A regression batch's errors ``outputs - targets``, float64, ``(N, outputs)``."""
    return outputs.astype(np.float64) - np.reshape(targets, outputs.shape)


class MeanAbsoluteError(Metric):
    """The mean of ``|output - target|`` over every sample and output (scikit-learn's
    ``mean_absolute_error``, averaged uniformly over outputs)."""

    tasks = ("regression",)

    name = "mae"

    def update(self, state, outputs, targets) -> None:
        e = errors(outputs, targets)
        state[0] += np.abs(e).sum() / e.shape[1]

    def compute(self, state, samples) -> float:
        return float(state[0] / samples)


class RootMeanSquaredError(Metric):
    """The square root of the mean of ``(output - target)**2`` (scikit-learn's
    ``root_mean_squared_error`` for one output; over several, the root of the mean)."""

    tasks = ("regression",)

    name = "rmse"

    def update(self, state, outputs, targets) -> None:
        e = errors(outputs, targets)
        state[0] += np.square(e).sum() / e.shape[1]

    def compute(self, state, samples) -> float:
        return float(np.sqrt(state[0] / samples))


class R2(Metric):
    """The coefficient of determination ``1 - SSE / SST`` per output, then their mean
    (scikit-learn's ``r2_score``). The state sums the targets, their squares and the squared
    errors, per output."""

    tasks = ("regression",)

    name = "r2"

    def state_size(self, num_classes: int) -> int:
        return 3 * num_classes

    def update(self, state, outputs, targets) -> None:
        t = np.reshape(targets, outputs.shape).astype(np.float64)
        k = outputs.shape[1]
        state[:k] += t.sum(axis=0)
        state[k:2 * k] += np.square(t).sum(axis=0)
        state[2 * k:] += np.square(outputs - t).sum(axis=0)

    def compute(self, state, samples) -> float:
        k = len(state) // 3
        total = state[k:2 * k] - np.square(state[:k]) / samples
        scores = np.where(total > 0, 1 - state[2 * k:] / np.where(total > 0, total, 1),
                          np.where(state[2 * k:] == 0, 1.0, 0.0))  # constant targets: as sklearn
        return float(scores.mean())


class AUC(Metric):
    """Area under the ROC curve of a binary task's logit, over every sample of the pass, ties
    counted half (scikit-learn's ``roc_auc_score``). It needs every score, not a sum, so it is
    gathered, and computed for validation, test and ``evaluate`` only (torchmetrics' AUROC
    keeps its scores the same way)."""

    tasks = ("binary",)

    name = "auc"
    gathered = True

    def rows(self, outputs, targets):
        """What to keep of a batch: the logit and the class, per sample."""
        return np.column_stack([outputs[:, 0].astype(np.float64), targets])

    def compute_gathered(self, rows) -> float:
        from scipy.stats import rankdata

        scores, labels = rows[:, 0], rows[:, 1] > 0.5
        positives = int(labels.sum())
        negatives = len(labels) - positives
        if not positives or not negatives:
            return float("nan")  # undefined with one class, as scikit-learn refuses it
        ranks = rankdata(scores)  # ties get their mean rank: counted half
        return float((ranks[labels].sum() - positives * (positives + 1) / 2) /
                     (positives * negatives))


class TaskMetrics:
    """The metrics the dataset's task calls for: accuracy for classes, accuracy and ROC AUC
    for a yes or no, MAE, RMSE and R2 for real values (the default)."""

    name = "auto"
    CHOICE = {"classification": ["accuracy"], "binary": ["accuracy", "auc"],
              "regression": ["mae", "rmse", "r2"]}

    def choose(self, task: str) -> list[str]:
        return self.CHOICE[task]


@hookimpl
def register_metrics(register):
    register("auto", TaskMetrics)
    register("accuracy", Accuracy)
    register("top-k-accuracy", TopKAccuracy)
    register("precision", Precision)
    register("recall", Recall)
    register("f1", F1)
    register("confusion-matrix", ConfusionMatrix)
    register("mae", MeanAbsoluteError)
    register("rmse", RootMeanSquaredError)
    register("r2", R2)
    register("auc", AUC)
