"""``Flatten``: image batches ``(N, H, W, C)`` to feature batches ``(N, H*W*C)`` for dense layers."""

from __future__ import annotations

import math

import numpy as np

from trainkit.nn.module import Module
from trainkit.nn.parallel import Steps, contiguous


class Flatten(Module):
    """Every sample's values in one row (a view when the input is contiguous)."""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)

    def forward_steps(self, x: np.ndarray) -> Steps:
        x = yield from contiguous(x)  # a view then, whose values may still be on their way
        self._input_shape = x.shape
        return x.reshape(x.shape[0], -1)

    def backward_steps(self, grad_output: np.ndarray) -> Steps:
        grad_output = yield from contiguous(grad_output)
        return grad_output.reshape(self._input_shape)
