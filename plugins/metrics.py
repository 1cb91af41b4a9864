"""Metrics: accuracy and top-k accuracy, each the mean over a batch.

A metric's ``name`` is the key it logs under: ``acc`` for training, ``val_acc`` for validation.
"""

from __future__ import annotations

from trainkit import hookimpl
from trainkit.lazy import lazy_import

np = lazy_import("numpy")


class Accuracy:
    """The share of samples whose highest output is the true class."""

    name = "acc"

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        return float(np.count_nonzero(outputs.argmax(axis=1) == targets)) / len(targets)


class TopKAccuracy:
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

    def __call__(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        k = min(self.k, outputs.shape[1])
        top = np.argpartition(outputs, -k, axis=1)[:, -k:]
        return float(np.count_nonzero(top == targets[:, None])) / len(targets)


@hookimpl
def register_metrics(register):
    register("accuracy", Accuracy)
    register("top-k-accuracy", TopKAccuracy)
