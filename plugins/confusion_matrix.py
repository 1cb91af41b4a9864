"""confusion-matrix: the validation confusion matrix as CSV and as a PNG heat map in the run folder.

    trainkit run --plugin confusion-matrix

After every validation pass it writes ``confusion_matrix.csv`` (rows: the true class, columns:
the predicted class, labelled with the dataset's class names), replacing the previous epoch's,
and ``confusion_matrix.png``, a heat map of it: drawn at most every ``interval`` seconds and
always for the last epoch, because drawing takes longer than a small model's epoch (as the plot
plugin does). After the test split is scored: ``test_confusion_matrix.csv`` and ``.png``. The
matrix is the ``confusion-matrix`` metric's state, summed over the whole split (and
over every process under ``ddp``), whether or not ``--metric confusion-matrix`` is chosen.

The PNG needs matplotlib (``pip install 'trainkit[plot]'``); the CSV does not.
"""

from __future__ import annotations

import csv
import importlib.util
import io

from trainkit import hookimpl
from trainkit.errors import ConfigError
from trainkit.persist.atomic import atomic_write


class ConfusionMatrixFiles:
    """Write the validation (and test) confusion matrix as CSV and PNG to the run folder.

    Args:
        png: also draw the PNG heat map (needs matplotlib).
        interval: seconds between two drawings of the validation PNG during training (0: after
            every epoch); the last epoch's is always drawn.
    """

    def __init__(self, png: bool = True, interval: float = 30.0) -> None:
        if png and importlib.util.find_spec("matplotlib") is None:
            raise ConfigError("plugin 'confusion-matrix' needs matplotlib for its PNG: pip install "
                              "'trainkit[plot]' (or --no-confusion-matrix-png for the CSV alone)",
                              "plugin")
        if interval < 0:
            raise ConfigError(f"interval must be 0 or more, got {interval}", "interval")
        self.png, self.interval = png, interval
        self.name = "confusion-matrix"
        self._next_drawing = 0.0
        self._undrawn: tuple | None = None  # the newest validation matrix not drawn yet

    @hookimpl
    def on_fit_start(self, trainer):
        from trainkit.loop.metrics import ConfusionMatrix

        trainer.add_evaluation_metric(ConfusionMatrix())

    @hookimpl
    def on_validation_end(self, trainer, context, epoch):
        import time

        drawn = self.write(trainer, context, "val_", "confusion_matrix",
                           f"validation, epoch {epoch}", draw=time.monotonic() >= self._next_drawing)
        if drawn:
            self._next_drawing = time.monotonic() + self.interval

    @hookimpl
    def on_train_end(self, context):
        self.draw_pending(context)

    @hookimpl
    def on_test_end(self, trainer, context):
        self.write(trainer, context, "test_", "test_confusion_matrix", "test")

    @hookimpl
    def on_fit_end(self, context):
        self.draw_pending(context)

    def write(self, trainer, context, prefix: str, stem: str, title: str,
              draw: bool = True) -> bool:
        """Write the CSV, and the PNG when ``draw`` (else keep it for later); True if drawn."""
        matrix = trainer.results.get(f"{prefix}confusion")
        if matrix is None or not context.is_main_process or context.run_dir is None:
            return False
        names = list(context.class_names or range(len(matrix)))
        atomic_write(context.run_dir / f"{stem}.csv", matrix_csv(matrix, names))
        self._undrawn = (matrix.copy(), names, title, stem) if self.png else None
        if draw:
            self.draw_pending(context)
        return draw

    def draw_pending(self, context) -> None:
        if self._undrawn is None or context.run_dir is None:
            return
        from trainkit.loop.curves import png_bytes

        matrix, names, title, stem = self._undrawn
        atomic_write(context.run_dir / f"{stem}.png", png_bytes(matrix_figure(matrix, names,
                                                                             title)))
        self._undrawn = None


def matrix_csv(matrix, names) -> str:
    """The matrix with a header row of predicted classes and a first column of true ones."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["true \\ predicted", *names])
    for name, row in zip(names, matrix):
        writer.writerow([name, *(int(v) for v in row)])
    return out.getvalue()


def matrix_figure(matrix, names, title: str):
    """A heat map of ``matrix`` with its counts written in the cells."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = len(names)
    size = max(4.5, 0.55 * k + 2.5)
    figure = Figure(figsize=(size + 1.0, size), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.add_subplot()
    image = axes.imshow(matrix, cmap="Blues", vmin=0)
    figure.colorbar(image, ax=axes, shrink=0.8, label="samples")
    axes.set_xticks(range(k), [str(n) for n in names], rotation=45 if max(
        len(str(n)) for n in names) > 2 else 0, ha="right" if max(len(str(n)) for n in names) > 2
        else "center")
    axes.set_yticks(range(k), [str(n) for n in names])
    axes.set_xlabel("predicted class")
    axes.set_ylabel("true class")
    total = int(matrix.sum())
    hits = int(matrix.trace())
    accuracy = hits / total if total else 0.0
    axes.set_title(f"confusion matrix, {title}\n{total:,} samples, accuracy {accuracy:.4f}")
    threshold = matrix.max() / 2 if matrix.size else 0
    font = 9 if k <= 10 else 7
    for i in range(k):
        for j in range(k):
            value = int(matrix[i, j])
            if value:
                axes.text(j, i, str(value), ha="center", va="center", fontsize=font,
                          color="white" if value > threshold else "black")
    return figure


@hookimpl
def register_run_plugins(register):
    register("confusion-matrix", ConfusionMatrixFiles)
