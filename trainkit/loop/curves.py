"""The loss and metric curves of a run as a matplotlib figure: train against validation, one
panel per logged quantity, and the test score as a star at the last epoch.

Used by the plot plugin (a PNG in the run folder) and by ``EpochLog.plot()`` (inline in a
notebook). matplotlib is optional (``pip install 'trainkit[plot]'``) and drawn on the Agg canvas
directly: no pyplot state, no display needed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from trainkit.errors import TrainkitError

PLOT_EXTRA = "pip install 'trainkit[plot]'"


def curves_figure(rows: Sequence[dict[str, float]], *, width: float = 5.0, height: float = 4.0,
                  dpi: int = 100, names: Sequence[str] | None = None) -> Any:
    """A ``matplotlib.figure.Figure`` of ``rows`` (one dict of logs per epoch); ``names``
    chooses the panels (default: every logged quantity but lr and the val_/test_ twins)."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        raise TrainkitError(f"plotting needs matplotlib: {PLOT_EXTRA}") from None

    if names is None:
        names = [k for k in dict.fromkeys(k for row in rows for k in row)
                 if not k.startswith(("val_", "test_")) and k != "lr"]
    figure = Figure(figsize=(width * max(len(names), 1), height), dpi=dpi)
    FigureCanvasAgg(figure)
    epochs = list(range(1, len(rows) + 1))
    for i, name in enumerate(names):
        axes = figure.add_subplot(1, len(names), i + 1)
        for key, label in ((name, "train"), (f"val_{name}", "validation")):
            values = [row.get(key, float("nan")) for row in rows]
            if any(key in row for row in rows):
                axes.plot(epochs, values, marker="o", label=label)
        if rows and f"test_{name}" in rows[-1]:  # scored once, with the final model
            axes.plot([len(rows)], [rows[-1][f"test_{name}"]], marker="*", markersize=12,
                      linestyle="", color="tab:green", label="test")
        axes.set_title(name)
        axes.set_xlabel("epoch")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.legend()
    figure.tight_layout()
    # a notebook shows a figure inline through this, with or without pyplot's inline backend
    figure._repr_png_ = lambda: png_bytes(figure)  # type: ignore[attr-defined]
    return figure


def png_bytes(figure: Any) -> bytes:
    import io

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=figure.dpi)
    return buffer.getvalue()
