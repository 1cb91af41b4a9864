"""One shared helper for watching a metric: used by early stopping, checkpointing and LR schedules.

``mode="auto"`` knows which way the usual metrics go: accuracy (``acc``, ``top5_acc``),
precision, recall, F1, AUC and the like are maximised, losses and errors minimised, with or
without a ``val_``/``test_`` prefix. Any other name needs ``mode="min"`` or ``"max"``: guessing
would silently minimise a score (Keras refuses to guess too).
"""

from __future__ import annotations

import math
import re
from typing import Any

from trainkit.errors import ConfigError

#: Name patterns (after any val_/test_ prefix) of metrics that improve upwards or downwards.
MAXIMISED = re.compile(r"(top\d+_)?acc(uracy)?|(balanced_)?accuracy|precision|recall|f1|f\d+|"
                       r"(roc_|pr_)?auc|ap|map|iou|miou|dice|r2|kappa|mcc|specificity|"
                       r"sensitivity|(macro|micro|weighted)_\w+")
MINIMISED = re.compile(r"(\w+_)?loss|(\w+_)?error|err|mae|mse|rmse|msle|nll|perplexity|ce|"
                       r"bce|(\w+_)?entropy|lr")


def direction(metric: str) -> str | None:
    """``"max"`` or ``"min"`` for a metric whose name says which way is better, else ``None``."""
    name = re.sub(r"^(val|test|train)_", "", metric)
    if MAXIMISED.fullmatch(name):
        return "max"
    if MINIMISED.fullmatch(name):
        return "min"
    return None


class Monitor:
    """Tracks the best value of ``metric`` and says whether a new value improves on it."""

    def __init__(self, metric: str, mode: str = "auto", min_delta: float = 0.0,
                 baseline: float | None = None) -> None:
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"mode must be auto, min or max, got {mode!r}", "mode")
        if mode == "auto":
            mode = direction(metric)
            if mode is None:
                raise ConfigError(f"cannot tell whether {metric!r} is better higher or lower: set "
                                  f"mode to max or min", "mode")
        self.metric, self.mode, self.min_delta = metric, mode, abs(min_delta)
        self.best: float | None = baseline
        self.best_epoch: int | None = None

    def value(self, logs: dict[str, float]) -> float:
        if self.metric not in logs:
            raise ConfigError(
                f"monitored metric {self.metric!r} is not logged; logged: {', '.join(logs)}",
                "monitor",
            )
        return float(logs[self.metric])

    def is_improvement(self, value: float) -> bool:
        if math.isnan(value):
            return False
        if self.best is None:
            return True
        if self.mode == "min":
            return value < self.best - self.min_delta
        return value > self.best + self.min_delta

    def update(self, logs: dict[str, float], epoch: int | None = None) -> bool:
        """Record ``logs``; True when the monitored value improved (and is now the best)."""
        value = self.value(logs)
        if self.is_improvement(value):
            self.best, self.best_epoch = value, epoch
            return True
        return False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
