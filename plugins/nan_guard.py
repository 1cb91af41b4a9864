"""nan-guard (on by default): stop at the first non-finite loss, naming the epoch and the step.

It stops the run with the reason ``nan`` instead of raising, so no emergency checkpoint replaces the
last good one with broken weights.
"""

from __future__ import annotations

import math

from trainkit import hookimpl


class NanGuard:
    """Stop the run at the first loss that is NaN or infinite."""

    def __init__(self) -> None:
        self.name = "nan-guard"

    @hookimpl
    def on_batch_end(self, trainer, step, logs):
        loss = logs["loss"]
        if not math.isfinite(loss):
            trainer.stop("nan", f"loss is {loss} at epoch {trainer.state.epoch + 1}, step {step} "
                                f"(global step {trainer.state.global_step})")


@hookimpl
def register_run_plugins(register):
    register("nan-guard", NanGuard, default=True)
