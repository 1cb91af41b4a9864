"""nan-guard (on by default): stop at the first non-finite loss, naming the epoch and the step.

It stops the run with the reason ``nan`` instead of raising, so no emergency checkpoint replaces the
last good one with broken weights.
"""

from __future__ import annotations

import math
import sys

from trainkit import hookimpl


class NanGuard:
    """Stop the run at the first loss that is NaN or infinite."""

    def __init__(self) -> None:
        self.name = "nan-guard"
        self.message: str | None = None

    @hookimpl
    def on_batch_end(self, trainer, step, logs):
        loss = logs["loss"]
        if not math.isfinite(loss):
            self.message = (f"loss is {loss} at epoch {trainer.state.epoch + 1}, step {step} "
                            f"(global step {trainer.state.global_step})")
            trainer.stop("nan")
            if trainer.is_main_process:
                print(f"trainkit: nan-guard: {self.message}; stopping", file=sys.stderr)


@hookimpl
def register_plugins(register):
    register("nan-guard", NanGuard, default=True)
