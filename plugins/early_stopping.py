"""early-stopping: stop when a monitored metric stops improving, optionally keeping the best weights.

Keras' ``EarlyStopping``, with the differences that docs/plugins.md's table lists: patience counts
from 1 (Keras' 0 and 1 both stop after the first epoch without improvement), a change of exactly
``min_delta`` always counts, an epoch that improves on the best but not on the baseline counts
towards patience, and a run with no finite value keeps its last weights.

Its counters, the best value and the best weights are saved in checkpoints, so patience survives a
resume.
"""

from __future__ import annotations

from typing import Literal

from trainkit import hookimpl
from trainkit.errors import ConfigError
from trainkit.loop.monitor import Monitor
from trainkit.plugin.contract import state_key


class EarlyStopping:
    """Stop training when a monitored metric has stopped improving.

    Args:
        monitor: the logged metric to watch, such as val_loss or val_acc.
        mode: min, max, or auto (known from the name: accuracy, F1, AUC... max; losses min).
        patience: epochs in a row without improvement before stopping (1: stop after the first
            one; Keras' patience=0 and patience=1 both mean 1).
        min_delta: the smallest change that counts as an improvement (a change of exactly
            min_delta counts).
        baseline: a value the metric must beat (by min_delta) before an epoch resets the
            patience; the best epoch is still the best seen, baseline or not.
        restore_best: put the best epoch's weights back when training ends (the best seen,
            even if it never beat the baseline; none when no epoch had a finite value).
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
            raise ConfigError(f"patience must be at least 1 (the epochs without improvement "
                              f"before stopping; Keras' patience=0 is 1 here), got {patience}",
                              "patience")
        self.monitor = Monitor(monitor, mode, min_delta, baseline)
        self.patience, self.restore_best = patience, restore_best
        self.wait = 0
        self.stopped_epoch: int | None = None
        self.best_weights = None
        self.best_states = None  # batch norm's running statistics that go with them
        self.name = "early-stopping"

    @hookimpl
    def on_fit_start(self, trainer):
        if self.monitor.against_its_name():
            trainer.say(f"trainkit: early-stopping: warning: mode {self.monitor.mode} for "
                        f"{self.monitor.metric}, which is usually better "
                        f"{'lower' if self.monitor.natural == 'min' else 'higher'}", "warning")

    @hookimpl
    def on_epoch_end(self, trainer, epoch, logs):
        improved = self.monitor.update(logs, epoch)
        if improved and self.restore_best:
            self.best_weights = trainer.model.params.copy()
            states = getattr(trainer.model, "states", None)
            self.best_states = states.copy() if states is not None and states.size else None
        if improved and self.monitor.beats_baseline(self.monitor.best):
            self.wait = 0
            return
        self.wait += 1
        if self.wait >= self.patience:
            self.stopped_epoch = epoch
            epochs = "epoch" if self.wait == 1 else "epochs"
            trainer.stop("early-stopping", f"{self.monitor.metric} has not improved for "
                         f"{self.wait} {epochs}; {self.monitor.describe_best()}")

    @hookimpl
    def on_train_end(self, trainer, reason):
        """Put the best weights back before the test split is scored and final.npz is saved."""
        if not (self.restore_best and reason in ("completed", "early-stopping")):
            return
        if self.best_weights is None:
            trainer.say(f"trainkit: early-stopping: {self.monitor.describe_best()}: the last "
                        f"weights are kept", "warning")
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
