"""Metrics that are exact over an epoch: a state that adds up, and a value computed from it.

A metric accumulates a small **state** over the batches of an epoch (for F1: per-class counts of
true positives, predictions and targets) and computes its value once, from the whole state. States
add up across batches and across data-parallel processes, so the value over an epoch never
depends on the batch size or on how many processes shared the work. Keras
(``update_state``/``result``) and torchmetrics (``update``/``compute`` with summed states) work
the same way.

The protocol (subclass :class:`Metric`, or write a class with the same members)::

    name: str                                   # the key it logs under: f1, val_f1, test_f1
    state_size(num_classes) -> int              # how many numbers its state holds
    update(state, outputs, targets) -> None     # add one batch into state (float64, in place)
    compute(state, samples) -> float | ndarray  # its value; samples = how many were added

A float is logged. A metric whose value is an array (a confusion matrix) sets ``logged = False``:
its value is kept in ``trainer.results``, not logged.

The simple path stays simple: an object with a ``name`` that is called as
``metric(outputs, targets) -> float`` (the batch mean) is wrapped in :class:`BatchMean`. That is
exact for metrics that are means over samples (accuracy), and wrong for the others (F1).

:class:`MetricSet` keeps one flat float64 vector for a run's metrics,
``[samples, loss * samples, metric 1's state, metric 2's state, ...]``: the Trainer adds every
batch into it, checkpoints write it (a resumed epoch logs what an uninterrupted one would), and
``ddp`` sums it across processes in the same collective as the gradients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from trainkit.lazy import lazy_import

if TYPE_CHECKING:
    import numpy as np
else:  # plugin modules import this module at start-up, before numpy is needed
    np = lazy_import("numpy")

__all__ = ["BatchLogs", "BatchMean", "ConfusionMatrix", "Metric", "MetricSet", "as_metric",
           "averaged", "batch_mean", "class_report", "class_scores"]


class Metric:
    """Base class of a metric that is exact over an epoch (see the module's docstring)."""

    name: str = "metric"
    #: False for a metric whose value is an array (not logged, kept in ``trainer.results``)
    logged: bool = True

    def state_size(self, num_classes: int) -> int:
        """How many numbers the state holds, for a model with ``num_classes`` outputs."""
        return 1

    def update(self, state: np.ndarray, outputs: np.ndarray, targets: np.ndarray) -> None:
        """Add one batch into ``state`` (a float64 view of the run's state vector), in place."""
        raise NotImplementedError

    def compute(self, state: np.ndarray, samples: float) -> float | np.ndarray:
        """The value of ``state``, which holds ``samples`` samples (more than 0)."""
        raise NotImplementedError


class BatchMean(Metric):
    """A metric given as a batch mean, ``function(outputs, targets) -> float``, made exact over an
    epoch by weighting each batch by its size: right for any mean over samples (accuracy), wrong
    for metrics that are not (precision, F1; write those as a :class:`Metric`)."""

    def __init__(self, function: Callable[[np.ndarray, np.ndarray], float],
                 name: str | None = None) -> None:
        self.function = function
        # a metric's name, not a plugin's (trainkit.plugin.contract): the key it logs under
        self.name = name or (function.name if hasattr(function, "name") else function.__name__)

    def update(self, state: np.ndarray, outputs: np.ndarray, targets: np.ndarray) -> None:
        state[0] += float(self.function(outputs, targets)) * len(targets)

    def compute(self, state: np.ndarray, samples: float) -> float:
        return float(state[0] / samples)


def batch_mean(name: str) -> Callable[[Callable[[np.ndarray, np.ndarray], float]], type]:
    """Make a metric factory from a batch-mean function; one line per metric::

        @batch_mean("acc")
        def accuracy(outputs, targets):
            return (outputs.argmax(axis=1) == targets).mean()

        register("accuracy", accuracy)
    """
    def wrap(function: Callable[[np.ndarray, np.ndarray], float]) -> type:
        def __init__(self) -> None:
            BatchMean.__init__(self, function, name)

        return type(function.__name__, (BatchMean,),
                    {"__init__": __init__, "__doc__": function.__doc__,
                     "__module__": function.__module__})

    return wrap


def as_metric(metric: Any) -> Metric:
    """``metric`` itself when it follows the protocol, else the batch-mean callable wrapped."""
    if all(callable(getattr(metric, m, None)) for m in ("update", "compute", "state_size")):
        return metric
    if callable(metric):
        return BatchMean(metric)
    raise TypeError(f"{metric!r} is not a metric: it needs update/compute/state_size, or to be "
                    f"called as metric(outputs, targets) -> float")


class MetricSet:
    """Where each metric's state sits in one flat float64 vector:
    ``[samples, loss * samples, metric 1's state, ...]``. ``bind(num_classes)`` fixes the layout."""

    def __init__(self, metrics: Sequence[Any]) -> None:
        self.metrics: list[Metric] = [as_metric(m) for m in metrics]
        self.slices: list[slice] = []  # set by bind
        self.size = 0
        self.num_classes: int | None = None

    @property
    def bound(self) -> bool:
        return self.num_classes is not None

    def bind(self, num_classes: int) -> None:
        """Lay the states out for a model with ``num_classes`` outputs."""
        offset, self.slices = 2, []
        for metric in self.metrics:
            size = int(metric.state_size(num_classes))
            self.slices.append(slice(offset, offset + size))
            offset += size
        self.size, self.num_classes = offset, num_classes

    def new_state(self) -> np.ndarray:
        return np.zeros(self.size, dtype=np.float64)

    def update(self, state: np.ndarray, outputs: np.ndarray, targets: np.ndarray,
               loss: float) -> None:
        """Add one batch (its outputs, targets and mean loss) into ``state``."""
        n = len(targets)
        state[0] += n
        state[1] += loss * n
        for metric, part in zip(self.metrics, self.slices):
            metric.update(state[part], outputs, targets)

    def logs(self, state: np.ndarray, prefix: str = "") -> dict[str, float]:
        """``loss`` and every logged metric's value, from ``state`` (with ``prefix``)."""
        samples = state[0]
        logs = {f"{prefix}loss": float(state[1] / samples)}
        for metric, part in zip(self.metrics, self.slices):
            if logged(metric):
                logs[f"{prefix}{metric.name}"] = float(metric.compute(state[part], samples))
        return logs

    def batch_logs(self, state: np.ndarray) -> BatchLogs:
        """The logs of one batch's ``state``, each value computed only when read: a training
        step pays for no metric value nobody looks at."""
        return BatchLogs(self, state)

    def results(self, state: np.ndarray, prefix: str = "") -> dict[str, Any]:
        """Every metric's value, arrays (a confusion matrix) included, with ``prefix``."""
        samples = state[0]
        return {f"{prefix}{metric.name}": metric.compute(state[part], samples)
                for metric, part in zip(self.metrics, self.slices)}

    def summary(self, state: np.ndarray, prefix: str = "") -> tuple[dict[str, float],
                                                                   dict[str, Any]]:
        """``(logs, results)`` of ``state``, each metric computed once."""
        results = self.results(state, prefix)
        logs = {f"{prefix}loss": float(state[1] / state[0])}
        logs.update({key: float(value) for (key, value), metric in
                     zip(results.items(), self.metrics) if logged(metric)})
        return logs, results

    def check(self, state: Sequence[float], source: str) -> None:
        """A saved state vector must fit this layout (same metrics, same number of classes)."""
        if len(state) != self.size:
            from trainkit.errors import CheckpointError

            raise CheckpointError(f"{source}: its epoch state holds {len(state)} numbers; the "
                                  f"metrics {[m.name for m in self.metrics]} need {self.size}")


def logged(metric: Metric) -> bool:
    """Whether ``metric``'s value is a number to log (``logged``, default True)."""
    return metric.logged if hasattr(metric, "logged") else True


class BatchLogs(Mapping):
    """One training batch's ``loss`` and logged metrics, as a read-only mapping whose values are
    computed from the batch's state on first read (``on_batch_end``'s ``logs``)."""

    __slots__ = ("_metric_set", "_state", "_values")

    def __init__(self, metric_set: MetricSet, state: np.ndarray) -> None:
        self._metric_set, self._state = metric_set, state
        self._values: dict[str, float] = {}

    def __getitem__(self, key: str) -> float:
        values = self._values
        if key not in values:
            state = self._state
            if key == "loss":
                values[key] = float(state[1] / state[0])
            else:
                for metric, part in zip(self._metric_set.metrics, self._metric_set.slices):
                    if metric.name == key and logged(metric):
                        values[key] = float(metric.compute(state[part], state[0]))
                        break
                else:
                    raise KeyError(key)
        return values[key]

    def __iter__(self) -> Iterator[str]:
        yield "loss"
        yield from (m.name for m in self._metric_set.metrics if logged(m))

    def __len__(self) -> int:
        return 1 + sum(logged(m) for m in self._metric_set.metrics)

    def __repr__(self) -> str:
        return f"BatchLogs({dict(self)!r})"


def safe_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` in float64, 0 where the denominator is 0 (scikit-learn's
    ``zero_division`` default)."""
    return np.divide(numerator, denominator, out=np.zeros(np.shape(numerator), np.float64),
                     where=np.asarray(denominator) > 0)


def predicted_classes(outputs: np.ndarray) -> np.ndarray:
    """Each sample's predicted class: the largest output, or for one output (a binary task's
    logit) 1 where it is above 0."""
    if outputs.shape[1] == 1:
        return (outputs[:, 0] > 0).astype(np.intp)
    return outputs.argmax(axis=1)


def classes_of(outputs: int) -> int:
    """How many classes a model of ``outputs`` outputs tells apart (one output: two)."""
    return 2 if outputs == 1 else outputs


class ConfusionMatrix(Metric):
    """Counts of (true class, predicted class): row i, column j counts the samples of class i
    predicted as j. Rows sum to the class supports; the trace is the number of hits. Its value is
    the matrix (int64), which is not logged: the ``confusion-matrix`` run plugin writes it."""

    name = "confusion"
    logged = False  # its value is an array

    def state_size(self, num_classes: int) -> int:
        return classes_of(num_classes) ** 2

    def update(self, state, outputs, targets) -> None:
        k = classes_of(outputs.shape[1])  # one bincount of (true, predicted) pairs
        state += np.bincount(targets * k + predicted_classes(outputs), minlength=k * k)

    def compute(self, state, samples):
        k = int(round(len(state) ** 0.5))
        return state.reshape(k, k).astype(np.int64)


def class_scores(confusion) -> dict[str, np.ndarray]:
    """Per class, from a confusion matrix (rows: true class): ``precision``, ``recall``, ``f1``,
    ``support`` (row sums) and ``predicted`` (column sums), float64."""
    confusion = np.asarray(confusion, dtype=np.float64)
    hits = confusion.diagonal()
    predicted, support = confusion.sum(axis=0), confusion.sum(axis=1)
    return {"precision": safe_ratio(hits, predicted), "recall": safe_ratio(hits, support),
            "f1": safe_ratio(2 * hits, predicted + support), "support": support,
            "predicted": predicted, "hits": hits}


AVERAGES = ("macro", "micro", "weighted")


def averaged(scores: dict[str, np.ndarray], score: str, average: str) -> float:
    """``scores[score]`` averaged over the classes as scikit-learn does: ``macro`` over the
    classes that occur in targets or predictions, ``weighted`` by support, ``micro`` over all
    samples (with one label per sample, the accuracy, whatever the score)."""
    support = scores["support"]
    if average == "micro":
        total = support.sum()
        return float(scores["hits"].sum() / total) if total else 0.0
    if average == "weighted":
        weights = support
    elif average == "macro":
        weights = ((support > 0) | (scores["predicted"] > 0)).astype(np.float64)
    else:
        raise ValueError(f"average must be one of {', '.join(AVERAGES)}, got {average!r}")
    total = weights.sum()
    return float((scores[score] * weights).sum() / total) if total else 0.0


def class_report(confusion) -> dict[str, dict[str, float]]:
    """Per class precision, recall, F1 and support from a confusion matrix, plus the macro and
    weighted averages: what scikit-learn's ``classification_report`` gives."""
    scores = class_scores(confusion)
    names = ("precision", "recall", "f1")
    rows = {str(i): {**{name: float(scores[name][i]) for name in names},
                     "support": int(scores["support"][i])}
            for i in range(len(scores["support"]))}
    for average in ("macro", "weighted"):
        rows[f"{average} avg"] = {**{name: averaged(scores, name, average) for name in names},
                                  "support": int(scores["support"].sum())}
    return rows
