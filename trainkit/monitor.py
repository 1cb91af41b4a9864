"""One shared helper for watching a metric: used by early stopping, checkpointing and LR schedules.

``mode="auto"`` maximises metrics whose name says accuracy (``acc``, ``accuracy``, ``top5_acc``)
and minimises everything else, as Keras does.
"""

from __future__ import annotations

import math
from typing import Any

from trainkit.errors import ConfigError


class Monitor:
    """Tracks the best value of ``metric`` and says whether a new value improves on it."""

    def __init__(self, metric: str, mode: str = "auto", min_delta: float = 0.0,
                 baseline: float | None = None) -> None:
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"mode must be auto, min or max, got {mode!r}", "mode")
        if mode == "auto":
            mode = "max" if "acc" in metric else "min"
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
