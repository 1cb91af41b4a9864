"""``MaxPool2d`` and ``AvgPool2d`` on channels-last (NHWC) batches.

Both visit the ``k x k`` window offsets one at a time, each a strided view of the whole batch, so a
pass costs ``k * k`` vectorised operations whatever the image size, and overlapping windows
(``stride < kernel``) are handled by the same code. Max pooling remembers which offset won in each
window (the first one on ties, as PyTorch does) and sends the gradient there alone.
"""

from __future__ import annotations

import numpy as np

from trainkit.nn.conv import describe_shape
from trainkit.nn.module import Module, ShapeError


class _Pool2d(Module):
    def __init__(self, kernel_size: int, stride: int | None = None) -> None:
        stride = kernel_size if stride is None else stride
        if kernel_size < 1 or stride < 1:
            raise ShapeError(f"kernel and stride must be at least 1, got {kernel_size} and {stride}")
        self.kernel_size, self.stride = kernel_size, stride

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) != 3:
            raise ShapeError(f"needs image input (height, width, channels), got "
                             f"{describe_shape(input_shape)}")
        h, w, c = input_shape
        k, s = self.kernel_size, self.stride
        if k > h or k > w:
            raise ShapeError(f"a {k}x{k} window leaves nothing of its {h}x{w} input")
        return ((h - k) // s + 1, (w - k) // s + 1, c)

    def windows(self, x: np.ndarray, h_out: int, w_out: int):
        """``(offset number, strided view of x at that window offset)`` for every offset."""
        k, s = self.kernel_size, self.stride
        for i in range(k):
            for j in range(k):
                yield i * k + j, x[:, i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s, :]

    def describe(self) -> str:
        stride = "" if self.stride == self.kernel_size else f", stride={self.stride}"
        return f"{type(self).__name__}({self.kernel_size}{stride})"


class MaxPool2d(_Pool2d):
    """The largest value of each ``k x k`` window, stepping ``stride`` pixels (default ``k``)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        h_out, w_out, c = self.output_shape(x.shape[1:])
        out = self.buffer("out", (n, h_out, w_out, c), x.dtype)
        winner = self.buffer("winner", out.shape, np.uint8)
        better = self.buffer("better", out.shape, np.bool_)
        for offset, view in self.windows(x, h_out, w_out):
            if offset == 0:
                out[...] = view
                winner.fill(0)
            else:
                np.greater(view, out, out=better)  # strictly greater: the first max wins ties
                np.copyto(out, view, where=better)
                np.copyto(winner, offset, where=better)
        self._input_shape = x.shape
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_input = self.buffer("grad_input", self._input_shape, grad_output.dtype)
        grad_input.fill(0)
        winner = self.buffer("winner", grad_output.shape, np.uint8)
        here = self.buffer("here", grad_output.shape, np.bool_)
        share = self.buffer("share", grad_output.shape, grad_output.dtype)
        _, h_out, w_out, _ = grad_output.shape
        for offset, view in self.windows(grad_input, h_out, w_out):
            np.equal(winner, offset, out=here)
            np.multiply(grad_output, here, out=share)
            view += share
        return grad_input


class AvgPool2d(_Pool2d):
    """The mean of each ``k x k`` window, stepping ``stride`` pixels (default ``k``)."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        h_out, w_out, c = self.output_shape(x.shape[1:])
        out = self.buffer("out", (n, h_out, w_out, c), x.dtype)
        for offset, view in self.windows(x, h_out, w_out):
            if offset == 0:
                out[...] = view
            else:
                out += view
        out *= np.float32(1 / self.kernel_size**2)
        self._input_shape = x.shape
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_input = self.buffer("grad_input", self._input_shape, grad_output.dtype)
        grad_input.fill(0)
        share = self.buffer("share", grad_output.shape, grad_output.dtype)
        np.multiply(grad_output, np.float32(1 / self.kernel_size**2), out=share)
        _, h_out, w_out, _ = grad_output.shape
        for _, view in self.windows(grad_input, h_out, w_out):
            view += share
        return grad_input
