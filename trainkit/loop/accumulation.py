"""Gradient accumulation: several micro-batches per optimizer step (Lightning's
``accumulate_grad_batches``, Keras' ``gradient_accumulation_steps``).

Each micro-batch's gradients (a mean over its samples) are added up; at every ``every``-th
micro-batch, and at the last one of an epoch, the gradients become their mean and the optimizer
steps (after ``on_before_optimizer_step``, where ddp sums and grad-clip clips them). For equal
micro-batches that is the gradient of one batch ``every`` times as large, to round-off; batch
norm differs, because it normalises each micro-batch with its own statistics. The sum so far
is part of a checkpoint taken between two steps, so a resume is exact.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class Accumulation:
    def __init__(self, every: int) -> None:
        self.every = int(every)
        self.total: np.ndarray | None = None
        self.count = 0

    def ready(self, grads: np.ndarray, last: bool) -> bool:
        """Add this micro-batch's gradients; ``True`` when the optimizer is to step now, with
        ``grads`` set to the mean of the group."""
        if self.total is None or self.total.shape != grads.shape:
            self.total = np.zeros_like(grads)
        self.total += grads
        self.count += 1
        if self.count < self.every and not last:
            return False
        np.multiply(self.total, np.float32(1 / self.count), out=grads)
        self.total[...] = 0
        self.count = 0
        return True

    def state(self) -> dict[str, Any]:
        return {"count": self.count,
                "total": self.total.copy() if self.count and self.total is not None else None}

    def restore(self, state: dict[str, Any] | None) -> None:
        state = state or {}
        self.count = int(state.get("count") or 0)
        total = state.get("total")
        self.total = None if total is None else np.array(total, np.float32)
