"""plot: a PNG of the loss and metric curves, train against validation, redrawn every epoch.

matplotlib is optional: ``pip install 'trainkit[plot]'``. It is imported only when the plugin is
turned on, and drawn with the Agg canvas directly (no pyplot, no display needed).
"""

from __future__ import annotations

import importlib.util
import io

from trainkit import hookimpl
from trainkit.atomic import atomic_write
from trainkit.errors import ConfigError


class Plot:
    """Draw loss and metric curves, train against validation, to a PNG after every epoch.

    Args:
        filename: the PNG's name in the run folder.
        width: width of each panel in inches (at 100 dpi).
        height: height of the figure in inches (at 100 dpi).
    """

    dpi = 100

    def __init__(self, filename: str = "curves.png", width: float = 5.0, height: float = 4.0) -> None:
        if importlib.util.find_spec("matplotlib") is None:
            raise ConfigError("plugin 'plot' needs matplotlib: pip install 'trainkit[plot]'", "plugin")
        if width <= 0 or height <= 0:
            raise ConfigError("width and height must be positive", "width")
        self.filename, self.width, self.height = filename, width, height
        self.name = "plot"

    @hookimpl
    def on_epoch_end(self, trainer):
        if trainer.is_main_process and trainer.run_dir is not None:
            self.draw(trainer.history.rows, trainer.run_dir / self.filename)

    def draw(self, rows, path) -> None:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator

        names = [k for k in dict.fromkeys(k for row in rows for k in row)
                 if not k.startswith("val_") and k != "lr"]
        figure = Figure(figsize=(self.width * len(names), self.height), dpi=self.dpi)
        FigureCanvasAgg(figure)
        epochs = list(range(1, len(rows) + 1))
        for i, name in enumerate(names):
            axes = figure.add_subplot(1, len(names), i + 1)
            for key, label in ((name, "train"), (f"val_{name}", "validation")):
                values = [row.get(key, float("nan")) for row in rows]
                if any(key in row for row in rows):
                    axes.plot(epochs, values, marker="o", label=label)
            axes.set_title(name)
            axes.set_xlabel("epoch")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.legend()
        figure.tight_layout()
        png = io.BytesIO()
        figure.savefig(png, format="png", dpi=self.dpi)
        atomic_write(path, png.getvalue())


@hookimpl
def register_plugins(register):
    register("plot", Plot)
