"""lr-schedule: change the learning rate every epoch, or every optimizer step.

Per epoch: ``step``, ``exponential`` and ``cosine`` (with linear warm-up) set the lr at the start
of each epoch from the epoch number alone; ``reduce-on-plateau`` lowers it at the end of an epoch
when a monitored metric stalls, and keeps its counters in checkpoints.

Per optimizer step: ``warmup-cosine`` (a linear warm-up, then a cosine down to ``min_lr`` over
the remaining steps) and ``one-cycle`` (the lr of PyTorch's ``OneCycleLR``: from lr/25 up to the
lr over the first ``pct_start`` of the steps, then down to lr/25e4, both on a cosine). They set
the lr before every step from the number of steps done, so a resume, mid-epoch too, continues the
same sequence.

Each schedule is checked against PyTorch's (and reduce-on-plateau against Keras' too) in
tests/test_schedule_references.py; where trainkit differs on purpose, docs/plugins.md's table
says where and why, and so does the option's help. ``min_lr`` is a floor, never a lift: a
``min_lr`` above the base lr leaves the lr where it is (as PyTorch's and Keras' plateau
schedulers do), with a warning.

The base lr (the optimizer's) is kept in checkpoints. The lr the epoch ended with is logged
(``lr`` in the history).
"""

from __future__ import annotations

import math
from typing import Literal

from trainkit import hookimpl
from trainkit.errors import ConfigError
from trainkit.loop.monitor import Monitor
from trainkit.plugin.contract import state_key

PER_STEP = ("warmup-cosine", "one-cycle")
PLATEAU = ("reduce-on-plateau",)
#: The schedules that read each option: one set for another schedule is a mistake, not ignored.
USED_BY = {
    "gamma": ("step", "exponential", *PLATEAU), "step_size": ("step",),
    "warmup": ("cosine", "warmup-cosine"), "warmup_steps": ("warmup-cosine",),
    "pct_start": ("one-cycle",), "cycle": ("cosine",),
    "min_lr": ("step", "exponential", "cosine", "warmup-cosine", *PLATEAU),
    **{option: PLATEAU for option in ("monitor", "mode", "patience", "threshold",
                                      "threshold_mode", "cooldown")},
}
#: OneCycleLR's defaults: it starts at lr / 25 and ends at lr / 25 / 1e4.
ONE_CYCLE_DIV, ONE_CYCLE_FINAL_DIV = 25.0, 1e4


class LRSchedule:
    """Change the learning rate every epoch (step, exponential, cosine, reduce-on-plateau) or
    every optimizer step (warmup-cosine, one-cycle).

    Args:
        schedule: step, exponential, cosine (with warm-up) or reduce-on-plateau, every epoch;
            warmup-cosine or one-cycle, every optimizer step.
        gamma: decay factor: per step_size epochs (step), per epoch (exponential), per plateau.
        step_size: epochs between two decays (step).
        warmup: epochs of linear warm-up up to the base lr (cosine, warmup-cosine).
        warmup_steps: optimizer steps of linear warm-up (warmup-cosine; 0: ``warmup`` epochs).
        pct_start: share of the steps spent rising to the lr (one-cycle).
        pct_start: share of the steps spent rising to the lr (one-cycle, which cycles the lr
            only: momentum and Adam's beta1 stay as set, as OneCycleLR with
            cycle_momentum=False).
        cycle: epochs of the cosine after the warm-up (cosine; 0: the remaining epochs), as
            PyTorch's CosineAnnealingLR T_max: the lr reaches min_lr just after the last one,
            and stays there (PyTorch's climbs back up).
        min_lr: the floor of step, exponential, cosine, warmup-cosine and reduce-on-plateau
            (never above the base lr); one-cycle ends at lr/25e4 as OneCycleLR.
        monitor: the metric reduce-on-plateau watches.
        mode: whether the monitored metric is better min or max (auto: known from its name).
        patience: epochs without improvement before reduce-on-plateau decays (as Keras';
            PyTorch's patience=N is N+1 here).
        threshold: the smallest change that counts as an improvement (reduce-on-plateau;
            PyTorch's default is 1e-4, rel).
        threshold_mode: threshold in the metric's units (abs) or as a share of the best (rel).
        cooldown: epochs after a decay whose stalls are not counted (reduce-on-plateau, as
            PyTorch's cooldown).
    """

    def __init__(
        self,
        schedule: Literal["step", "exponential", "cosine", "reduce-on-plateau", "warmup-cosine",
                          "one-cycle"] = "cosine",
        gamma: float = 0.1,
        step_size: int = 10,
        warmup: int = 0,
        warmup_steps: int = 0,
        pct_start: float = 0.3,
        cycle: int = 0,
        min_lr: float = 0.0,
        monitor: str = "val_loss",
        mode: Literal["auto", "min", "max"] = "auto",
        patience: int = 2,
        threshold: float = 0.0,
        threshold_mode: Literal["abs", "rel"] = "abs",
        cooldown: int = 0,
    ) -> None:
        if not 0 < gamma <= 1:
            raise ConfigError(f"gamma must be in (0, 1], got {gamma}", "gamma")
        if not 0 < pct_start < 1:
            raise ConfigError(f"pct_start must be between 0 and 1, got {pct_start}", "pct_start")
        for option, value, low in (("step_size", step_size, 1), ("warmup", warmup, 0),
                                   ("warmup_steps", warmup_steps, 0),
                                   ("cycle", cycle, 0), ("patience", patience, 1),
                                   ("cooldown", cooldown, 0)):
            if value < low:
                raise ConfigError(f"{option} must be at least {low}, got {value}", option)
        for option, value in (("min_lr", min_lr), ("threshold", threshold)):
            if value < 0:
                raise ConfigError(f"{option} must be 0 or more, got {value}", option)
        given = {k: v for k, v in locals().items() if k in USED_BY}
        refuse_options_it_does_not_use(schedule, given)
        self.schedule, self.gamma, self.step_size = schedule, gamma, step_size
        self.warmup, self.cycle, self.min_lr, self.patience = warmup, cycle, min_lr, patience
        self.warmup_steps, self.pct_start = warmup_steps, pct_start
        self.monitor = (Monitor(monitor, mode, threshold, threshold_mode=threshold_mode)
                        if schedule == "reduce-on-plateau" else None)
        self.cooldown = cooldown
        self.base_lr: float | None = None
        self.wait = self.cooling = 0
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
            lr = cosine_between(base, self.floor(), progress)
        return max(lr, self.floor())

    def floor(self) -> float:
        """``min_lr``, but never above the base lr: a floor never lifts the lr."""
        return min(self.min_lr, self.base_lr)

    def lr_at_step(self, step: int, total_steps: int, steps_per_epoch: int) -> float:
        """The lr of optimizer step ``step`` (from 0) of ``total_steps``, for the per-step
        schedules."""
        base, last = self.base_lr, max(total_steps - 1, 1)
        if self.schedule == "one-cycle":  # torch.optim.lr_scheduler.OneCycleLR, two phases
            start = base / ONE_CYCLE_DIV
            peak_step = self.pct_start * total_steps - 1
            if step <= peak_step:
                return cosine_between(start, base, step / peak_step if peak_step > 0 else 1.0)
            end = start / ONE_CYCLE_FINAL_DIV
            return cosine_between(base, end, min((step - peak_step) / (last - peak_step), 1.0))
        warmup = self.warmup_steps or self.warmup * steps_per_epoch
        if step < warmup:
            return base * (step + 1) / warmup
        span = max(total_steps - warmup, 1)
        return cosine_between(base, self.floor(), min((step - warmup) / span, 1.0))

    @hookimpl
    def on_batch_start(self, trainer):
        if self.schedule in PER_STEP:  # optimizer steps, which accumulation makes fewer
            steps_per_epoch = trainer.optimizer_steps_per_epoch(trainer.train_loader)
            trainer.optimizer.lr = self.lr_at_step(
                trainer.optimizer_step, trainer.epochs * steps_per_epoch, steps_per_epoch)

    @hookimpl
    def on_fit_start(self, trainer):
        if self.base_lr is None:
            self.base_lr = trainer.optimizer.lr
        if self.min_lr > self.base_lr and self.schedule != "one-cycle":
            trainer.say(f"trainkit: lr-schedule: warning: min_lr {self.min_lr:g} is above the lr "
                        f"{self.base_lr:g}: the {self.schedule} schedule never goes below "
                        f"{self.base_lr:g}, and never above it either", "warning")

    @hookimpl
    def on_epoch_start(self, trainer, epoch):
        if self.monitor is None and self.schedule not in PER_STEP:
            trainer.optimizer.lr = self.lr_at(epoch, trainer.epochs)

    @hookimpl
    def on_epoch_end(self, trainer, logs):
        if self.monitor is None:
            return
        # PyTorch's ReduceLROnPlateau.step, with patience counted as Keras counts it
        self.wait = 0 if self.monitor.update(logs) else self.wait + 1
        if self.cooling:
            self.cooling -= 1
            self.wait = 0
        if self.wait >= self.patience:
            lr = trainer.optimizer.lr
            lowered = max(lr * self.gamma, self.min_lr)
            if lowered < lr:  # a min_lr above the lr never raises it
                trainer.optimizer.lr = lowered
            self.cooling, self.wait = self.cooldown, 0

    @hookimpl
    def on_save_checkpoint(self, trainer, state):
        state[state_key(self)] = {"base_lr": self.base_lr, "wait": self.wait,
                                "cooling": self.cooling,
                                "configured_lr": trainer.context.config.get("lr"),
                                "monitor": self.monitor.state_dict() if self.monitor else None}

    @hookimpl
    def on_load_checkpoint(self, trainer, state):
        mine = state.get(state_key(self))
        if mine:
            self.base_lr, self.wait = mine["base_lr"], int(mine["wait"])
            self.cooling = int(mine.get("cooling", 0))
            configured = trainer.context.config.get("lr")
            if mine.get("configured_lr") not in (None, configured):
                self.base_lr = configured  # resumed with another --lr: the schedule follows it
            if self.monitor is not None and mine.get("monitor"):
                self.monitor.load_state_dict(mine["monitor"])


def refuse_options_it_does_not_use(schedule: str, values: dict[str, object]) -> None:
    """A ``ConfigError`` for an option set away from its default that ``schedule`` never reads
    (``--lr-schedule step --lr-schedule-warmup 3`` would train with no warm-up)."""
    import inspect

    defaults = inspect.signature(LRSchedule.__init__).parameters
    for option, value in values.items():
        if schedule not in USED_BY[option] and value != defaults[option].default:
            raise ConfigError(f"{option} does not apply to the {schedule} schedule (it applies "
                              f"to {', '.join(USED_BY[option])})", option)


def cosine_between(start: float, end: float, progress: float) -> float:
    """From ``start`` (progress 0) to ``end`` (progress 1) along half a cosine."""
    return end + (start - end) * (1 + math.cos(math.pi * progress)) / 2


@hookimpl
def register_run_plugins(register):
    register("lr-schedule", LRSchedule)
