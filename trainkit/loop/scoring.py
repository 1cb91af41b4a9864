"""A run's metrics, and scoring a model on a split.

``Scoring`` holds the training steps' ``MetricSet``, the metrics plugins add for evaluation
passes only (``add``: a confusion matrix, whatever ``--metric`` chose), the names every epoch's
logs will hold (known before the first batch, for the monitors' check), and the evaluation pass:
loss and metrics over a split, each computed once from its state summed over every batch, in
evaluation mode.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np

from trainkit.loop.metrics import MetricSet, as_metric, logged


def gathered(metric: Any) -> bool:
    """Whether ``metric`` needs every score of a pass (``gathered = True``: ``rows`` and
    ``compute_gathered``) instead of a state that adds up."""
    return bool(getattr(metric, "gathered", False))


def set_mode(model: Any, training: bool) -> None:
    """Training or evaluation mode, for models that have modes (every ``trainkit.nn.Module``)."""
    switch = getattr(model, "train", None)
    if switch is not None:
        switch(training)


@contextlib.contextmanager
def mode(model: Any, training: bool) -> Iterator[None]:
    """``model`` in training or evaluation mode, and back as it was."""
    before = getattr(model, "training", True)
    set_mode(model, training)
    try:
        yield
    finally:
        set_mode(model, before)


class Scoring:
    """The metrics of one Trainer (see the module's docstring)."""

    def __init__(self, metrics: Sequence[Any]) -> None:
        metrics = [as_metric(m) for m in metrics]
        #: the training steps' state layout; ``metrics`` are its metrics (batch means wrapped)
        self.metric_set = MetricSet([m for m in metrics if not gathered(m)])
        #: metrics that need every score of a pass, not a sum (ROC AUC): evaluation passes only
        self.gathered = [m for m in metrics if gathered(m)]
        self.extra: list[Any] = []  # added for evaluation passes only
        self._evaluation_set: MetricSet | None = None

    @property
    def metrics(self) -> list[Any]:
        return self.metric_set.metrics

    def logged_names(self, validation: bool = True) -> list[str]:
        """``loss`` and each logged metric, the same with ``val_`` when there is a validation
        split, and ``lr``."""
        train = ["loss", *(m.name for m in self.metrics if logged(m))]
        names = list(train)
        if validation:
            names += [f"val_{name}" for name in (*train, *(m.name for m in self.extra
                                                           if logged(m)),
                                                 *(m.name for m in self.gathered))]
        return [*names, "lr"]

    def add(self, metric: Any) -> None:
        """Also compute ``metric`` in evaluation passes; one of the same name is kept instead."""
        metric = as_metric(metric)
        if metric.name not in {m.name for m in (*self.metrics, *self.extra)}:
            self.extra.append(metric)
            self._evaluation_set = None

    def bind(self, model: Any, make_batch: Callable[[Any], tuple[Any, Any]]) -> None:
        """Lay the metric states out for the model's number of outputs, read from a forward pass
        of one sample in evaluation mode (no random draw, no statistics updated)."""
        if self.metric_set.bound:
            return
        with mode(model, False):
            x, _ = make_batch(np.zeros(1, dtype=np.intp))
            outputs = model.forward(x)
        self.metric_set.bind(int(outputs.shape[1]))

    def evaluation_set(self) -> MetricSet:
        """The run's metrics plus those added for evaluation passes."""
        if not self.extra:
            return self.metric_set
        if self._evaluation_set is None:
            classes = self.metric_set.num_classes
            if classes is None:
                raise RuntimeError("the metrics are laid out by bind() before an evaluation")
            self._evaluation_set = MetricSet([*self.metrics, *self.extra])
            self._evaluation_set.bind(classes)
        return self._evaluation_set

    def evaluate(self, model: Any, loss: Any, data: Any, prefix: str,
                 summed: Callable[[np.ndarray], None]) -> tuple[dict[str, float], dict[str, Any]]:
        """``(logs, results)`` of ``model`` on ``data`` in evaluation mode, with ``prefix``;
        ``summed(state)`` is called with the pass's state before its values are computed (where
        a data-parallel plugin adds the processes' states up)."""
        self.bind(model, data.make_batch)
        metric_set = self.evaluation_set()
        state = metric_set.new_state()
        if self.gathered and getattr(data, "world", 1) > 1:
            from trainkit.errors import ConfigError

            raise ConfigError(f"metric {self.gathered[0].name} needs every score in one "
                              f"process; it cannot be computed under ddp yet", "metric")
        rows: list[list[np.ndarray]] = [[] for _ in self.gathered]
        with mode(model, False):
            for x, y in data.batches(np.arange(len(data.labels))):
                outputs = model.forward(x)
                metric_set.update(state, outputs, y, loss.forward(outputs, y))
                for kept, metric in zip(rows, self.gathered):
                    kept.append(metric.rows(outputs, y))
        summed(state)
        logs, results = metric_set.summary(state, prefix)
        for kept, metric in zip(rows, self.gathered):
            value = metric.compute_gathered(np.concatenate(kept))
            logs[f"{prefix}{metric.name}"] = results[f"{prefix}{metric.name}"] = value
        return logs, results
