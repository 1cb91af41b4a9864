"""confused-pairs: per-class accuracy and the most confused classes, at the end of training."""

from __future__ import annotations

import numpy as np

from trainkit import hookimpl


class ConfusionMatrix:
    """Report per-class accuracy and the most confused class pairs when training ends.

    Args:
        top: how many of the most confused (true, predicted) pairs to print.
        csv: also write the matrix to confusion.csv in the run folder.
    """

    def __init__(self, top: int = 3, csv: bool = True) -> None:
        self.top, self.csv = top, csv
        self.matrix: np.ndarray | None = None

    def compute(self, trainer) -> np.ndarray:
        loader = trainer.val_loader or trainer.train_loader
        classes = int(loader.labels.max()) + 1
        matrix = np.zeros((classes, classes), dtype=np.int64)
        for x, y in loader.batches(np.arange(len(loader.labels))):
            predicted = trainer.model.forward(x).argmax(axis=1)
            np.add.at(matrix, (y, predicted), 1)
        return matrix

    @hookimpl
    def on_fit_end(self, trainer, reason):
        if reason in ("failed", "interrupted") or not trainer.context.is_main_process:
            return
        matrix = self.matrix = self.compute(trainer)
        per_class = matrix.diagonal() / np.maximum(matrix.sum(axis=1), 1)
        print("confused-pairs: per-class accuracy: "
              + " ".join(f"{k}:{acc:.3f}" for k, acc in enumerate(per_class)))
        off = matrix.copy()
        np.fill_diagonal(off, 0)
        pairs = np.dstack(np.unravel_index(np.argsort(off, axis=None)[::-1], off.shape))[0]
        worst = [f"{t}->{p} ({off[t, p]})" for t, p in pairs[: self.top] if off[t, p] > 0]
        print(f"confused-pairs: most confused: {', '.join(worst) or 'none'}")
        if self.csv and trainer.context.run_dir is not None:
            np.savetxt(trainer.context.run_dir / "confusion.csv", matrix, fmt="%d", delimiter=",")


@hookimpl
def register_run_plugins(register):
    register("confused-pairs", ConfusionMatrix)
