"""``Dropout``: zero a random share of the activations while training (inverted dropout).

Its random generator is its own, seeded by whoever builds the model (trainkit seeds it from the
run's seed), and it is part of the model's state: ``extra_state()`` holds the generator's state,
so a checkpoint resumes with exactly the masks an uninterrupted run would have drawn.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np

from trainkit.nn.module import Module, ShapeError, no_products


class Dropout(Module):
    """While training, keep each value with probability ``1 - rate`` and scale it by
    ``1 / (1 - rate)``, so evaluation (which keeps every value, unscaled) sees the same mean."""

    scheduled = True  # forward and backward hand their work to the schedule
    multiply_adds = no_products

    def __init__(self, rate: float, rng: np.random.Generator) -> None:
        if not 0 <= rate < 1:
            raise ShapeError(f"rate must be in [0, 1), got {rate}")
        self.rate, self.rng = float(rate), rng
        self.scale = np.float32(1 / (1 - rate))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return input_shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._active = self.training and self.rate > 0
        if not self._active:
            return x
        # the draws do not depend on x: they are made now, in the generator's order, and
        # applied with the parts of the batch
        draws = self.buffer("draws", x.shape)
        self.rng.random(out=draws, dtype=np.float32)
        keep = np.greater_equal(draws, np.float32(self.rate), out=self.buffer("keep", x.shape,
                                                                             np.bool_))
        self.over_batch(self._apply, x, keep, values=x.size)
        return x  # x is the previous layer's fresh output: safe to reuse

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        if not self._active:
            return grad_output
        keep = self.buffer("keep", grad_output.shape, np.bool_)
        self.over_batch(self._apply, grad_output, keep, values=grad_output.size)
        return grad_output

    def _apply(self, x: np.ndarray, keep: np.ndarray) -> None:
        x *= keep
        x *= self.scale

    def extra_state(self) -> dict[str, Any]:
        return {"rng": copy.deepcopy(self.rng.bit_generator.state)}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.rng.bit_generator.state = copy.deepcopy(state["rng"])

    def describe(self) -> str:
        return f"Dropout({self.rate:g})"
