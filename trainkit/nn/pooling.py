"""``MaxPool2d`` and ``AvgPool2d`` on channels-last (NHWC) batches.

Both visit the ``k x k`` window offsets one at a time, each a strided view of the whole batch, so a
pass costs ``k * k`` vectorised operations whatever the image size, and overlapping windows
(``stride < kernel``) are handled by the same code. Max pooling sends each window's gradient to
the first position (in row order) that holds the maximum, as PyTorch does on ties.
"""

from __future__ import annotations

import numpy as np

from trainkit.nn.conv import describe_shape
from trainkit.nn.module import Module, ShapeError, no_products


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

    scheduled = True  # forward and backward hand their work to the schedule
    multiply_adds = no_products

    def forward(self, x: np.ndarray) -> np.ndarray:
        h_out, w_out, c = self.output_shape(x.shape[1:])
        out = self.buffer("out", (len(x), h_out, w_out, c), x.dtype)
        self._x, self._out = x, out
        self._halves = self.kernel_size == self.stride == 2 and not (x.shape[1] % 2 or
                                                                      x.shape[2] % 2)
        if self._halves:
            self._forward_2x2(x, out)
            return out

        def max_pool(x: np.ndarray, out: np.ndarray) -> None:
            for offset, view in self.windows(x, h_out, w_out):
                if offset == 0:
                    out[...] = view
                else:
                    np.maximum(out, view, out=out)

        self.over_batch(max_pool, x, out, values=x.size)
        return out

    def _forward_2x2(self, x: np.ndarray, out: np.ndarray) -> None:
        """2x2 windows that tile the image: the larger of each pair of rows, then of each pair
        of columns, remembering which side won. Rows first, because a pair of image rows is two
        runs of ``W * C`` contiguous values (a pair of columns is two runs of ``C``), so the pass
        over the whole input is the fast one. Ties go to the first maximum in row order, as in
        the general case: the top one within a column, the left one between columns unless the
        left column's maximum is in the bottom row and the right column's in the top row."""
        n, h, w, c = x.shape
        rows = self.buffer("rows", (n, h // 2, w, c), x.dtype)
        bottom = self.buffer("bottom", rows.shape, np.bool_)
        right = self.buffer("right", out.shape, np.bool_)
        tied = self.buffer("tied", out.shape, np.bool_)

        def max_pool(x: np.ndarray, rows: np.ndarray, bottom: np.ndarray, right: np.ndarray,
                     tied: np.ndarray, out: np.ndarray) -> None:
            np.greater(x[:, 1::2], x[:, 0::2], out=bottom)
            np.maximum(x[:, 0::2], x[:, 1::2], out=rows)
            left_value, right_value = rows[:, :, 0::2], rows[:, :, 1::2]
            np.greater(right_value, left_value, out=right)
            np.maximum(left_value, right_value, out=out)
            # a tie between the columns' maxima goes right only when that one comes first (the
            # left one's maximum in the bottom row, the right one's in the top row)
            np.equal(right_value, left_value, out=tied)
            if tied.any():
                tied &= bottom[:, :, 0::2]
                np.greater(tied, bottom[:, :, 1::2], out=tied)
                right |= tied

        self.over_batch(max_pool, x, rows, bottom, right, tied, out, values=x.size)

    def _backward_2x2(self, grad_output: np.ndarray) -> np.ndarray:
        n, h, w, c = self._x.shape
        dtype = grad_output.dtype
        right = self.buffer("right", grad_output.shape, np.bool_)
        bottom = self.buffer("bottom", (n, h // 2, w, c), np.bool_)
        grad_rows = self.buffer("grad_rows", bottom.shape, dtype)
        grad_input = self.buffer("grad_input", self._x.shape, dtype)

        def route(g: np.ndarray, right: np.ndarray, bottom: np.ndarray, grad_rows: np.ndarray,
                  grad_input: np.ndarray) -> None:
            np.multiply(g, right, out=grad_rows[:, :, 1::2])
            np.subtract(g, grad_rows[:, :, 1::2], out=grad_rows[:, :, 0::2])
            np.multiply(grad_rows, bottom, out=grad_input[:, 1::2])
            np.subtract(grad_rows, grad_input[:, 1::2], out=grad_input[:, 0::2])

        self.over_batch(route, grad_output, right, bottom, grad_rows, grad_input,
                              values=grad_input.size)
        return grad_input

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        """The gradient goes to the first position of each window that holds its maximum."""
        if self._halves:
            return self._backward_2x2(grad_output)
        x, out = self._x, self._out
        grad_input = self.buffer("grad_input", x.shape, grad_output.dtype)
        shape = grad_output.shape
        here = self.buffer("here", shape, np.bool_)
        taken = self.buffer("taken", shape, np.bool_)
        share = self.buffer("share", shape, grad_output.dtype)

        def route(x: np.ndarray, out: np.ndarray, g: np.ndarray, grad_input: np.ndarray,
                  here: np.ndarray, taken: np.ndarray, share: np.ndarray) -> None:
            grad_input.fill(0)
            for (offset, view), (_, grad_view) in zip(self.windows(x, shape[1], shape[2]),
                                                      self.windows(grad_input, shape[1], shape[2])):
                np.equal(view, out, out=here)
                if offset == 0:
                    taken[...] = here
                else:  # here and not taken: ties go to the first
                    np.greater(here, taken, out=here)
                    taken |= here
                np.multiply(g, here, out=share)
                grad_view += share

        self.over_batch(route, x, out, grad_output, grad_input, here, taken, share,
                              values=x.size)
        return grad_input


class AvgPool2d(_Pool2d):
    """The mean of each ``k x k`` window, stepping ``stride`` pixels (default ``k``)."""

    scheduled = True  # forward and backward hand their work to the schedule
    multiply_adds = no_products

    def forward(self, x: np.ndarray) -> np.ndarray:
        h_out, w_out, c = self.output_shape(x.shape[1:])
        out = self.buffer("out", (len(x), h_out, w_out, c), x.dtype)
        self._input_shape = x.shape

        def avg_pool(x: np.ndarray, out: np.ndarray) -> None:
            for offset, view in self.windows(x, h_out, w_out):
                if offset == 0:
                    out[...] = view
                else:
                    out += view
            out *= np.float32(1 / self.kernel_size**2)

        self.over_batch(avg_pool, x, out, values=x.size)
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        grad_input = self.buffer("grad_input", self._input_shape, grad_output.dtype)
        share = self.buffer("share", grad_output.shape, grad_output.dtype)
        _, h_out, w_out, _ = grad_output.shape

        def spread(g: np.ndarray, grad_input: np.ndarray, share: np.ndarray) -> None:
            grad_input.fill(0)
            np.multiply(g, np.float32(1 / self.kernel_size**2), out=share)
            for _, view in self.windows(grad_input, h_out, w_out):
                view += share

        self.over_batch(spread, grad_output, grad_input, share, values=grad_input.size)
        return grad_input
