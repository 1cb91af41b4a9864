"""progress: a tqdm bar per epoch with the running loss and metrics, on a terminal or in a
Jupyter notebook (tqdm's notebook widget, through ``tqdm.auto``).

Elsewhere (a log file, CI) it shows nothing: the console plugin's line per epoch is the record.
The bar's text is refreshed at most every ``refresh`` seconds, so it costs next to nothing per batch.

What matters comes first: ``epoch 3/10 loss=0.1234 acc=0.9612  45%|####| 380/844 [00:02<00:03]``.
tqdm gives the bar whatever width is left and cuts the line at the terminal's width from the end,
so on a narrow terminal the bar shrinks, then the times go, and the running loss and the first
metric stay whole.
"""

from __future__ import annotations

import sys
import time

from trainkit import hookimpl

BAR_FORMAT = "{desc} {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_fmt}]"


def in_notebook() -> bool:
    """True inside a Jupyter kernel, where stderr is no terminal but a bar can be drawn."""
    if "IPython" not in sys.modules:  # a notebook has imported it long before any run
        return False
    try:
        from IPython import get_ipython

        shell = get_ipython()
        return shell is not None and "IPKernelApp" in shell.config
    except Exception:  # noqa: BLE001 (an odd IPython: no widget, no harm)
        return False


class Progress:
    """A tqdm progress bar per epoch, shown on a terminal and in a notebook.

    Args:
        refresh: seconds between updates of the running loss and metrics.
        force: show the bar even when the output is not a terminal.
    """

    def __init__(self, refresh: float = 0.2, force: bool = False) -> None:
        self.refresh, self.force = refresh, force
        self.bar = None
        self.epoch_text = ""
        self._next = 0.0

    @hookimpl
    def on_epoch_start(self, trainer, epoch):
        notebook = in_notebook()
        if not trainer.context.is_main_process or not (self.force or notebook or sys.stderr.isatty()):
            return
        from tqdm.auto import tqdm  # a notebook widget in Jupyter, the terminal bar elsewhere

        self.epoch_text = f"epoch {epoch}/{trainer.epochs}"
        self.bar = self.make_bar(tqdm, len(trainer.train_loader), trainer.state.step_in_epoch,
                                 file=sys.stderr, dynamic_ncols=True)
        self._next = 0.0

    def make_bar(self, tqdm, total: int, initial: int, **kwargs):
        return tqdm(total=total, initial=initial, desc=self.epoch_text, leave=False, unit="batch",
                    mininterval=self.refresh, bar_format=BAR_FORMAT, **kwargs)

    def show(self, bar, running: dict[str, float], refresh: bool = False) -> None:
        """Put the running loss and metrics in front of the bar."""
        stats = " ".join(f"{name}={value:.4f}" for name, value in running.items())
        bar.set_description_str(f"{self.epoch_text} {stats}", refresh=refresh)

    @hookimpl
    def on_batch_end(self, trainer, logs):
        bar = self.bar
        if bar is None:
            return
        bar.update(1)
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.refresh
            # the epoch's values so far, exact (each metric computed from its running state)
            self.show(bar, trainer.metric_set.logs(trainer.state.sums))

    @hookimpl(trylast=True)  # after plugins that add to the logs: they are reported too
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
def register_run_plugins(register):
    register("progress", Progress, default=True)
