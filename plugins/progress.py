"""progress: a tqdm bar per epoch with the running loss and metrics, on a terminal only.

Off a terminal (a log file, CI) it shows nothing: the console plugin's line per epoch is the record.
The bar's text is refreshed at most every ``refresh`` seconds, so it costs next to nothing per batch.
"""

from __future__ import annotations

import sys
import time

from trainkit import hookimpl


class Progress:
    """A tqdm progress bar per epoch, shown only on a terminal.

    Args:
        refresh: seconds between updates of the running loss and metrics.
        force: show the bar even when the output is not a terminal.
    """

    def __init__(self, refresh: float = 0.2, force: bool = False) -> None:
        self.refresh, self.force = refresh, force
        self.bar = None
        self._next = 0.0

    @hookimpl
    def on_epoch_start(self, trainer, epoch):
        if not trainer.is_main_process or not (self.force or sys.stderr.isatty()):
            return
        from tqdm import tqdm

        self.bar = tqdm(total=len(trainer.train_loader), initial=trainer.state.step_in_epoch,
                        desc=f"epoch {epoch}/{trainer.epochs}", leave=False, unit="batch",
                        file=sys.stderr, dynamic_ncols=True, mininterval=self.refresh)
        self._next = 0.0

    @hookimpl
    def on_batch_end(self, trainer, logs):
        bar = self.bar
        if bar is None:
            return
        bar.update(1)
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.refresh
            sums = trainer.state.sums
            n = sums[0]
            parts = [f"loss={sums[1] / n:.4f}"]
            parts += [f"{m.name}={sums[2 + i] / n:.4f}" for i, m in enumerate(trainer.metrics)]
            bar.set_postfix_str(" ".join(parts), refresh=False)

    @hookimpl
    def on_epoch_end(self):
        self.close()

    @hookimpl(tryfirst=True)  # before other plugins print what went wrong
    def on_exception(self):
        self.close()

    @hookimpl
    def on_fit_end(self):
        self.close()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


@hookimpl
def register_plugins(register):
    register("progress", Progress, default=True)
