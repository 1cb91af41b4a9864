"""``Flatten``: image batches ``(N, H, W, C)`` to feature batches ``(N, H*W*C)`` for dense layers."""

from __future__ import annotations

import math

import numpy as np

from trainkit.nn.module import Module, no_products


class Flatten(Module):
    """Every sample's values in one row (a view when the input is contiguous)."""

    scheduled = True  # forward and backward hand their work to the schedule
    multiply_adds = no_products

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self.contiguous(x)  # a view then, whose values may still be on their way
        self._input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        grad_output = self.contiguous(grad_output)
        return grad_output.reshape(self._input_shape)
