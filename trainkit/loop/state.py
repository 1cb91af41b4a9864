"""The records of a run's progress: ``TrainState`` (where the run is, consistent after every
optimizer step, as checkpoints save it) and ``EpochLog`` (every epoch's logs, what ``fit``
returns)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from trainkit.errors import TrainkitError

__all__ = ["EpochLog", "TrainState"]


@dataclass
class TrainState:
    """Where the run is. Consistent after every completed optimizer step.

    ``epoch`` is the last completed epoch (0 before training); ``step_in_epoch`` counts the steps
    completed in the epoch under way; ``sums`` is that epoch's metric state so far, ``[samples,
    loss * samples, each metric's state...]`` (``trainkit.loop.metrics.MetricSet``), so that a resumed
    epoch logs exactly what an uninterrupted one would.
    """

    epoch: int = 0
    global_step: int = 0
    step_in_epoch: int = 0
    epoch_rng_state: dict[str, Any] | None = None
    sums: Any = field(default_factory=list)  # a float64 array during an epoch

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "step_in_epoch": self.step_in_epoch,
            "epoch_rng_state": self.epoch_rng_state,
            "sums": [float(x) for x in self.sums],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainState:
        return cls(int(data["epoch"]), int(data["global_step"]), int(data["step_in_epoch"]),
                   data.get("epoch_rng_state"), [float(x) for x in data.get("sums", [])])


class EpochLog:
    """Every epoch's logs, in order: ``log.rows[-1]["val_acc"]`` or ``log["loss"]``. What
    ``fit`` returns and ``trainer.history`` holds (the ``history`` plugin writes it to files)."""

    def __init__(self, rows: Iterable[dict[str, float]] = ()) -> None:
        self.rows: list[dict[str, float]] = [dict(r) for r in rows]

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(row)

    def __getitem__(self, key: str) -> list[float]:
        return [row[key] for row in self.rows if key in row]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"EpochLog({len(self.rows)} epochs)"

    def plot(self, metrics: Sequence[str] | None = None, *, width: float = 5.0,
             height: float = 4.0):
        """The curves as a matplotlib figure, train against validation (and the test score):
        shown inline when a notebook cell ends with it. Needs ``trainkit[plot]``."""
        from trainkit.loop.curves import curves_figure

        return curves_figure(self.rows, width=width, height=height, names=metrics)

    def to_pandas(self):
        """The epochs as a ``pandas.DataFrame``, one row per epoch (index from 1)."""
        try:
            import pandas
        except ImportError:
            raise TrainkitError("EpochLog.to_pandas needs pandas: pip install pandas") from None
        frame = pandas.DataFrame(self.rows)
        frame.index = pandas.RangeIndex(1, len(self.rows) + 1, name="epoch")
        return frame


def __getattr__(name: str) -> Any:
    if name == "History":  # the epoch log's name until the history plugin's class took it
        import warnings

        warnings.warn("trainkit.loop.trainer.History is now EpochLog", DeprecationWarning,
                      stacklevel=2)
        return EpochLog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
