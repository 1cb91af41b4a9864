"""checkpoint: save the run so it survives a crash and resumes exactly. On by default.

In the run folder it keeps ``last.npz`` (always, after every epoch), ``epoch-NNN.npz`` every
``every`` epochs (the newest ``keep`` of them), ``best.npz`` by the monitored metric, ``final.npz``
when training ends normally (the model the run hands over: after early stopping's restore-best,
with the test scores in its history), and on Ctrl+C or any exception ``emergency.npz``, written
from the last consistent state (the end of the last completed optimizer step). Every write is
atomic (see ``trainkit.persist.checkpoint_io``). ``--no-plugin checkpoint`` turns it off.
"""

from __future__ import annotations

from typing import Literal

from trainkit import hookimpl
from trainkit.errors import CheckpointError, ConfigError, PluginError
from trainkit.loop.monitor import Monitor
from trainkit.plugin.contract import state_key

#: ``on_fit_end`` reasons after which there is no final model to save.
NOT_FINISHED = ("interrupted", "failed", "nan")


class Checkpoint:
    """Save checkpoints: every N epochs, the last K, the best, and always last.npz.

    Args:
        every: save epoch-NNN.npz every this many epochs (0: never).
        keep: how many epoch-NNN.npz files to keep (0: all of them).
        monitor: the logged metric that picks best.npz ('' for no best.npz).
        mode: min, max, or auto (known from the name: accuracy, F1, AUC... max; losses min).
        on_error: when a save fails (disk full, read-only): stop the run, or warn and go on.
    """

    def __init__(
        self,
        every: int = 1,
        keep: int = 3,
        monitor: str = "val_loss",
        mode: Literal["auto", "min", "max"] = "auto",
        on_error: Literal["stop", "warn"] = "stop",
    ) -> None:
        if every < 0:
            raise ConfigError(f"every must be 0 or more, got {every}", "every")
        if keep < 0:
            raise ConfigError(f"keep must be 0 or more, got {keep}", "keep")
        self.every, self.keep, self.on_error = every, keep, on_error
        self.monitor = Monitor(monitor, mode) if monitor else None
        self.kept: list[str] = []
        self.name = "checkpoint"

    def save(self, trainer, filenames: list[str], leave_out: tuple[str, ...] = ()) -> bool:
        """Write one snapshot of the trainer to each of ``filenames`` in the run folder; False
        when one could not be written."""
        from trainkit.session.snapshot import capture

        if not trainer.context.is_main_process or trainer.context.run_dir is None:
            return False
        arrays, manifest = capture(trainer, leave_out)
        written = [self.write(trainer, trainer.context.run_dir / name, arrays, manifest)
                   for name in filenames]
        return all(written)

    def write(self, trainer, path, arrays, manifest) -> bool:
        """Save atomically; on a disk error stop the run or warn, as ``on_error`` says."""
        from trainkit.persist.checkpoint_io import save_checkpoint

        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            save_checkpoint(path, arrays, manifest)
        except OSError as e:
            message = (f"{path}: cannot save checkpoint ({e.strerror or e}); "
                       f"the previous checkpoint is intact")
            if self.on_error == "stop":
                raise CheckpointError(message) from None
            trainer.say(f"trainkit: warning: {message}", "warning")
            return False
        return True

    @hookimpl
    def on_fit_start(self, trainer):
        """Remove temporary files left by a save that was killed half way."""
        run_dir = trainer.context.run_dir
        if trainer.context.is_main_process and run_dir is not None and run_dir.is_dir():
            for stale in run_dir.glob(".*.npz.*.tmp"):
                stale.unlink(missing_ok=True)

    @hookimpl(trylast=True)  # after every other plugin has updated the state it saves
    def on_epoch_end(self, trainer, epoch, logs):
        filenames = []
        if self.monitor is not None and self.monitor.update(logs):
            filenames.append("best.npz")
        dropped = []
        if self.every and epoch % self.every == 0:
            filenames.append(f"epoch-{epoch:03d}.npz")
            if filenames[-1] not in self.kept:
                self.kept.append(filenames[-1])
            while self.keep and len(self.kept) > self.keep:
                dropped.append(self.kept.pop(0))
        filenames.append("last.npz")
        self.save(trainer, filenames)  # one snapshot, with this plugin's state already updated
        if trainer.context.is_main_process and trainer.context.run_dir is not None:
            for name in dropped:
                (trainer.context.run_dir / name).unlink(missing_ok=True)

    @hookimpl
    def on_fit_end(self, trainer, reason):
        if reason == "max-time":  # stopped at a batch by the clock: resumable from there
            self.save(trainer, ["last.npz"])
        elif reason not in NOT_FINISHED:
            self.save(trainer, ["final.npz"])

    @hookimpl
    def on_exception(self, trainer, exception):
        if trainer.interrupt_forced:  # stopped mid-step: nothing consistent to save
            return
        left_out = ""
        try:
            saved = self.save(trainer, ["emergency.npz"])
        except PluginError as e:  # a plugin's state cannot be saved: keep the training's
            if e.hook != "on_save_checkpoint":
                raise
            saved = self.save(trainer, ["emergency.npz"], leave_out=(e.plugin,))
            left_out = f" without the state of plugin {e.plugin!r} (a resume starts it afresh)"
        if saved:
            trainer.say(f"trainkit: emergency checkpoint written to "
                        f"{trainer.context.run_dir / 'emergency.npz'}{left_out}", "warning")

    @hookimpl
    def on_save_checkpoint(self, state):
        state[state_key(self)] = {
            "kept": list(self.kept),
            "monitor": self.monitor.state_dict() if self.monitor else None,
        }

    @hookimpl
    def on_load_checkpoint(self, state):
        mine = state.get(state_key(self)) or {}
        self.kept = list(mine.get("kept") or [])
        if self.monitor is not None and mine.get("monitor"):
            self.monitor.load_state_dict(mine["monitor"])


@hookimpl
def register_run_plugins(register):
    register("checkpoint", Checkpoint, default=True)
