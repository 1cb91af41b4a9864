"""plot: a PNG of the loss and metric curves, train against validation, and the test score.

Drawing takes a few hundred milliseconds, as long as a whole epoch of a small model, so the PNG is
drawn after an epoch only when ``interval`` seconds have passed since the start or the last
drawing, and always when the run ends: the plugin never costs more than a few percent of the
training time.

matplotlib is optional: ``pip install 'trainkit[plot]'``. It is imported only when the plugin is
turned on, and drawn with the Agg canvas directly (no pyplot, no display needed).
"""

from __future__ import annotations

import importlib.util
import time

from trainkit import hookimpl
from trainkit.errors import ConfigError
from trainkit.persist.atomic import atomic_write


class Plot:
    """Draw loss and metric curves, train against validation, to a PNG in the run folder.

    Args:
        filename: the PNG's name in the run folder.
        width: width of each panel in inches (at 100 dpi).
        height: height of the figure in inches (at 100 dpi).
        interval: seconds between two redrawings during training (0: after every epoch); the
            PNG is always drawn when the run ends.
    """

    dpi = 100

    def __init__(self, filename: str = "curves.png", width: float = 5.0, height: float = 4.0,
                 interval: float = 30.0) -> None:
        if importlib.util.find_spec("matplotlib") is None:
            raise ConfigError("plugin 'plot' needs matplotlib: pip install 'trainkit[plot]'", "plugin")
        if width <= 0 or height <= 0:
            raise ConfigError("width and height must be positive", "width")
        if interval < 0:
            raise ConfigError(f"interval must be 0 or more, got {interval}", "interval")
        self.filename, self.width, self.height = filename, width, height
        self.interval = interval
        self.name = "plot"
        self._next_drawing = 0.0

    @hookimpl
    def on_fit_start(self):
        self._next_drawing = time.monotonic() + self.interval

    @hookimpl(trylast=True)  # after plugins that add to the logs: they are reported too
    def on_epoch_end(self, trainer):
        if time.monotonic() >= self._next_drawing:
            self.redraw(trainer)

    @hookimpl
    def on_fit_end(self, trainer):
        if trainer.history.rows:
            self.redraw(trainer)

    def redraw(self, trainer) -> None:
        if trainer.context.is_main_process and trainer.context.run_dir is not None:
            self.draw(trainer.history.rows, trainer.context.run_dir / self.filename)
            self._next_drawing = time.monotonic() + self.interval

    def draw(self, rows, path) -> None:
        from trainkit.loop.curves import curves_figure, png_bytes

        figure = curves_figure(rows, width=self.width, height=self.height, dpi=self.dpi)
        atomic_write(path, png_bytes(figure))


@hookimpl
def register_run_plugins(register):
    register("plot", Plot)
