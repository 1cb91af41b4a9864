"""Metrics, exact over an epoch (see ``trainkit.loop.metrics``): accuracy, top-k accuracy, precision,
recall, F1 and the confusion matrix.

A metric's ``name`` is the key it logs under: ``f1`` for training, ``val_f1`` for validation.
Every state is a count, summed in float64 (exact up to 2**53 samples).
"""

from __future__ import annotations

from typing import Literal

from trainkit import hookimpl
from trainkit.lazy import lazy_import
from trainkit.loop.metrics import AVERAGES, ConfusionMatrix, Metric, averaged, class_scores

np = lazy_import("numpy")

class Accuracy(Metric):
    """The share of samples whose highest output is the true class."""

    name = "acc"

    def update(self, state, outputs, targets) -> None:
        state[0] += np.count_nonzero(outputs.argmax(axis=1) == targets)

    def compute(self, state, samples) -> float:
        return float(state[0] / samples)


class TopKAccuracy(Metric):
    """The share of samples whose true class is among the ``k`` highest outputs.

    Args:
        k: how many of the highest outputs count as a hit.
    """

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


@hookimpl
def register_metrics(register):
    register("accuracy", Accuracy)
    register("top-k-accuracy", TopKAccuracy)
    register("precision", Precision)
    register("recall", Recall)
    register("f1", F1)
    register("confusion-matrix", ConfusionMatrix)
