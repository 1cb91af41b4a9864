"""early-stopping: stop when a monitored metric stops improving, optionally keeping the best weights.

Its counters, the best value and the best weights are saved in checkpoints, so patience survives a
resume.
"""

from __future__ import annotations

from typing import Literal

from trainkit import hookimpl
from trainkit.contract import state_key
from trainkit.errors import ConfigError
from trainkit.monitor import Monitor


class EarlyStopping:
    """Stop training when a monitored metric has stopped improving.

    Args:
        monitor: the logged metric to watch, such as val_loss or val_acc.
        mode: min, max, or auto (known from the name: accuracy, F1, AUC... max; losses min).
        patience: epochs without improvement before stopping.
        min_delta: the smallest change that counts as an improvement.
        baseline: a value the metric must beat before anything counts as an improvement.
        restore_best: put the best epoch's weights back when training ends.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        mode: Literal["auto", "min", "max"] = "auto",
        patience: int = 3,
        min_delta: float = 0.0,
        baseline: float | None = None,
        restore_best: bool = False,
    ) -> None:
        if patience < 1:
            raise ConfigError(f"patience must be at least 1, got {patience}", "patience")
        self.monitor = Monitor(monitor, mode, min_delta, baseline)
        self.patience, self.restore_best = patience, restore_best
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights = None
        self.best_states = None  # batch norm's running statistics that go with them
        self.name = "early-stopping"

    @hookimpl
    def on_epoch_end(self, trainer, epoch, logs):
        if self.monitor.update(logs, epoch):
            self.wait = 0
            if self.restore_best:
                self.best_weights = trainer.model.params.copy()
                states = getattr(trainer.model, "states", None)
                self.best_states = states.copy() if states is not None and states.size else None
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            epochs = "epoch" if self.wait == 1 else "epochs"
            trainer.stop("early-stopping", f"{self.monitor.metric} has not improved for "
                         f"{self.wait} {epochs}; best {self.monitor.best:.4g} at epoch "
                         f"{self.monitor.best_epoch}")

    @hookimpl
    def on_train_end(self, trainer, reason):
        """Put the best weights back before the test split is scored and final.npz is saved."""
        if not (self.restore_best and self.best_weights is not None
                and reason in ("completed", "early-stopping")):
            return
        trainer.model.params[...] = self.best_weights
        if self.best_states is not None:
            trainer.model.states[...] = self.best_states
        kept = ("final.npz holds them" if "checkpoint" in trainer.plugins
                else "no file holds them (the checkpoint plugin is off)")
        trainer.say(f"trainkit: early-stopping: restored the weights of epoch "
                    f"{self.monitor.best_epoch} (best {self.monitor.metric} "
                    f"{self.monitor.best:.4g}); {kept}")

    @hookimpl
    def on_save_checkpoint(self, state):
        state[state_key(self)] = {"wait": self.wait, "stopped_epoch": self.stopped_epoch,
                                   "monitor": self.monitor.state_dict(),
                                   "best_weights": self.best_weights,
                                   "best_states": self.best_states}

    @hookimpl
    def on_load_checkpoint(self, state):
        mine = state.get(state_key(self))
        if mine:
            self.wait = int(mine["wait"])
            self.stopped_epoch = mine.get("stopped_epoch")
            self.monitor.load_state_dict(mine["monitor"])
            self.best_weights = mine.get("best_weights")
            self.best_states = mine.get("best_states")


@hookimpl
def register_run_plugins(register):
    register("early-stopping", EarlyStopping)
