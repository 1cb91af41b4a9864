"""lr-schedule: change the learning rate every epoch.

``step``, ``exponential`` and ``cosine`` (with linear warm-up) set the lr at the start of each epoch
from the epoch number alone, so a resumed run gets the same lr; ``reduce-on-plateau`` lowers it at
the end of an epoch when a monitored metric stalls, and keeps its counters in checkpoints. The lr of
every epoch is logged (``lr`` in the history).
"""

from __future__ import annotations

import math
from typing import Literal

from trainkit import hookimpl
from trainkit.errors import ConfigError
from trainkit.monitor import Monitor


class LRSchedule:
    """Change the learning rate every epoch: step, exponential, cosine or reduce-on-plateau.

    Args:
        schedule: step, exponential, cosine (with warm-up) or reduce-on-plateau.
        gamma: decay factor: per step_size epochs (step), per epoch (exponential), per plateau.
        step_size: epochs between two decays (step).
        warmup: epochs of linear warm-up up to the base lr (cosine).
        cycle: epochs of the cosine after the warm-up (cosine; 0: the remaining epochs), as
            PyTorch's CosineAnnealingLR T_max: the lr reaches min_lr just after the last one.
        min_lr: the lowest learning rate any schedule goes to.
        monitor: the metric reduce-on-plateau watches.
        patience: epochs without improvement before reduce-on-plateau decays.
    """

    def __init__(
        self,
        schedule: Literal["step", "exponential", "cosine", "reduce-on-plateau"] = "cosine",
        gamma: float = 0.1,
        step_size: int = 10,
        warmup: int = 0,
        cycle: int = 0,
        min_lr: float = 0.0,
        monitor: str = "val_loss",
        patience: int = 2,
    ) -> None:
        if not 0 < gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {gamma}", "gamma")
        for option, value, low in (("step_size", step_size, 1), ("warmup", warmup, 0),
                                   ("cycle", cycle, 0), ("patience", patience, 1)):
            if value < low:
                raise ConfigError(f"{option} must be at least {low}, got {value}", option)
        if min_lr < 0:
            raise ConfigError(f"min_lr must be 0 or more, got {min_lr}", "min_lr")
        self.schedule, self.gamma, self.step_size = schedule, gamma, step_size
        self.warmup, self.cycle, self.min_lr, self.patience = warmup, cycle, min_lr, patience
        self.monitor = Monitor(monitor) if schedule == "reduce-on-plateau" else None
        self.base_lr: float | None = None
        self.wait = 0
        self.name = "lr-schedule"

    def lr_at(self, epoch: int, total_epochs: int) -> float:
        """The lr of ``epoch`` (from 1) for the epoch-driven schedules."""
        base = self.base_lr
        if self.schedule == "step":
            lr = base * self.gamma ** ((epoch - 1) // self.step_size)
        elif self.schedule == "exponential":
            lr = base * self.gamma ** (epoch - 1)
        else:  # cosine
            if epoch <= self.warmup:
                return base * epoch / self.warmup
            # PyTorch's CosineAnnealingLR with T_max = span: the first epoch after the warm-up
            # trains at the base lr and no epoch of the span trains at min_lr
            span = self.cycle or max(total_epochs - self.warmup, 1)
            progress = min((epoch - self.warmup - 1) / span, 1.0)
            lr = self.min_lr + (base - self.min_lr) * (1 + math.cos(math.pi * progress)) / 2
        return max(lr, self.min_lr)

    @hookimpl
    def on_fit_start(self, trainer):
        if self.base_lr is None:
            self.base_lr = trainer.optimizer.lr

    @hookimpl
    def on_epoch_start(self, trainer, epoch):
        if self.monitor is None:
            trainer.optimizer.lr = self.lr_at(epoch, trainer.epochs)

    @hookimpl
    def on_epoch_end(self, trainer, logs):
        if self.monitor is None:
            return
        if self.monitor.update(logs):
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            trainer.optimizer.lr = max(trainer.optimizer.lr * self.gamma, self.min_lr)
            self.wait = 0

    @hookimpl
    def on_save_checkpoint(self, trainer, state):
        state["lr-schedule"] = {"base_lr": self.base_lr, "wait": self.wait,
                                "configured_lr": trainer.config.get("lr"),
                                "monitor": self.monitor.state_dict() if self.monitor else None}

    @hookimpl
    def on_load_checkpoint(self, trainer, state):
        mine = state.get("lr-schedule")
        if mine:
            self.base_lr, self.wait = mine["base_lr"], int(mine["wait"])
            configured = trainer.config.get("lr")
            if mine.get("configured_lr") not in (None, configured):
                self.base_lr = configured  # resumed with another --lr: the schedule follows it
            if self.monitor is not None and mine.get("monitor"):
                self.monitor.load_state_dict(mine["monitor"])


@hookimpl
def register_plugins(register):
    register("lr-schedule", LRSchedule)
