"""max-time: a wall-clock limit on training (``--max-time 00:10:00``), as Lightning's
``max_time``: at the first batch boundary past it, the run stops cleanly, saves ``last.npz``
where it stopped (``--resume`` continues from that batch), scores the test split and says why it
stopped. The time counts from the start of training in this process.
"""

from __future__ import annotations

import time

from trainkit import hookimpl


def parse_duration(text: str) -> float:
    """``"01:30:00"``, ``"90:00"`` or ``"5400"`` as seconds."""
    from trainkit.errors import ConfigError

    try:
        parts = [float(p) for p in str(text).strip().split(":")]
    except ValueError:
        parts = []
    if not 1 <= len(parts) <= 3 or any(p < 0 for p in parts) or not sum(parts) > 0:
        raise ConfigError(f"max_time must be HH:MM:SS, MM:SS or seconds, got {text!r}",
                          "max_time")
    seconds = 0.0
    for part in parts:
        seconds = seconds * 60 + part
    return seconds


class MaxTime:
    """Stop training cleanly once it has run for max_time, keeping a checkpoint to resume.

    Args:
        max_time: the wall-clock limit: HH:MM:SS, MM:SS or seconds.
    """

    def __init__(self, max_time: str = "01:00:00") -> None:
        self.name, self.text, self.limit = "max-time", str(max_time), parse_duration(max_time)
        self.started = time.monotonic()

    @hookimpl
    def on_fit_start(self):
        self.started = time.monotonic()

    @hookimpl
    def on_batch_end(self, trainer):
        elapsed = time.monotonic() - self.started
        if elapsed >= self.limit and trainer.stop_reason is None:
            trainer.stop("max-time", f"the wall-clock limit --max-time {self.text} was reached "
                                     f"at epoch {trainer.state.epoch + 1}, step "
                                     f"{trainer.state.step_in_epoch}; --resume continues there")


@hookimpl
def register_run_plugins(register):
    register("max-time", MaxTime)
