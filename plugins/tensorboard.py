"""tensorboard: the run in TensorBoard, through tensorboardX's maintained writer.

Every epoch: each logged metric (``loss``, ``acc``, ``val_loss``, ...), ``lr`` and the epoch's
time; optionally the training loss of every optimizer step, and weight and gradient histograms
every few epochs; the test scores once scored; and at the end the run's config as hparams, so
runs compare in TensorBoard's HParams tab. Every point is at the optimizer step it was reached
(``global_step``), so a resumed run continues the same curves: the writer starts with
``purge_step`` at the step the run resumes from, and TensorBoard drops whatever an interrupted
run had written beyond it. Only the main process writes under ddp.

``pip install 'trainkit[tensorboard]'``; tensorboardX is imported only when the plugin runs.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

from trainkit import hookimpl
from trainkit.errors import ConfigError


class TensorBoard:
    """Write metrics, lr, epoch times, optional step losses and histograms, and the config as
    hparams to TensorBoard event files.

    Args:
        dir: where the event files go (default: the run folder's ``tensorboard`` folder).
        step_loss: also write the training loss of every optimizer step.
        histograms: write weight and gradient histograms every this many epochs (0: never).
    """

    def __init__(self, dir: Path | None = None, step_loss: bool = False,
                 histograms: int = 0) -> None:
        if importlib.util.find_spec("tensorboardX") is None:
            raise ConfigError("plugin 'tensorboard' needs tensorboardX: "
                              "pip install 'trainkit[tensorboard]'", "plugin")
        if histograms < 0:
            raise ConfigError(f"histograms must be 0 or more, got {histograms}", "histograms")
        self.dir, self.step_loss, self.histograms = dir, step_loss, histograms
        self.name = "tensorboard"
        self.writer = None
        self._epoch_started = 0.0

    @hookimpl
    def on_fit_start(self, trainer, context):
        if not context.is_main_process or (self.dir is None and context.run_dir is None):
            return
        from tensorboardX import SummaryWriter

        folder = Path(self.dir) if self.dir is not None else context.run_dir / "tensorboard"
        step = trainer.state.global_step
        # a resumed run: drop what an interrupted run wrote after the step it resumes from
        # event files are named by the second they start in: a resume within the same second
        # would overwrite the first run's file without a suffix of its own
        self.writer = SummaryWriter(str(folder), purge_step=step + 1 if step else None,
                                    filename_suffix=f".{os.getpid()}.{time.time_ns()}")

    @hookimpl
    def on_epoch_start(self):
        self._epoch_started = time.perf_counter()

    @hookimpl
    def on_batch_end(self, trainer, logs):
        if self.writer is not None and self.step_loss:
            self.writer.add_scalar("step_loss", float(logs["loss"]), trainer.state.global_step)

    @hookimpl(trylast=True)  # after plugins that add to the logs: they are written too
    def on_epoch_end(self, trainer, epoch, logs):
        if self.writer is None:
            return
        step = trainer.state.global_step
        for key, value in logs.items():
            self.writer.add_scalar(key, float(value), step)
        self.writer.add_scalar("epoch", epoch, step)
        self.writer.add_scalar("epoch_seconds", time.perf_counter() - self._epoch_started, step)
        if self.histograms and epoch % self.histograms == 0:
            named = getattr(trainer.model, "named_parameters", None)
            for name, parameter in (named() if named else []):
                self.writer.add_histogram(f"weights/{name}", parameter.data, step)
                self.writer.add_histogram(f"gradients/{name}", parameter.grad, step)
        self.writer.flush()

    @hookimpl
    def on_test_end(self, trainer, logs):
        if self.writer is not None:
            for key, value in logs.items():
                self.writer.add_scalar(key, float(value), trainer.state.global_step)

    @hookimpl
    def on_fit_end(self, trainer, context, reason):
        if self.writer is None:
            return
        if reason not in ("interrupted", "failed") and trainer.history.rows:
            final = {key: float(value) for key, value in trainer.history.rows[-1].items()}
            self.writer.add_hparams(hparams(context.config), {f"hparam/{k}": v
                                                              for k, v in final.items()})
        self.close()

    @hookimpl
    def on_exception(self):
        self.close()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def hparams(config: dict) -> dict[str, float | int | str | bool]:
    """The config flattened to TensorBoard's hparam values: plugin tables as ``name.option``,
    lists and tuples as text."""
    flat: dict[str, float | int | str | bool] = {}
    for key, value in config.items():
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for option, item in items:
            name = key if option is None else f"{key}.{option}"
            if item is None:
                continue
            flat[name] = item if isinstance(item, (bool, int, float, str)) else \
                ",".join(map(str, item)) if isinstance(item, (list, tuple)) else str(item)
    return flat


@hookimpl
def register_run_plugins(register):
    register("tensorboard", TensorBoard)
