"""``BatchNorm``: normalise each feature (or channel) over the batch while training.

It normalises over every axis but the last, so the same layer serves dense outputs ``(N, F)`` and
channels-last conv outputs ``(N, H, W, C)``. While training it uses the batch's mean and variance
and updates running estimates (PyTorch's convention: ``momentum`` 0.1, the unbiased variance);
in evaluation it uses those running estimates. They are state, not parameters: saved in
checkpoints, never trained (``state_arrays``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from trainkit.nn.module import Module, Parameter, ShapeError


class BatchNorm(Module):
    """``y = gamma * (x - mean) / sqrt(var + eps) + beta`` per feature (the last axis)."""

    scheduled = True  # forward and backward hand their work to the schedule

    def __init__(self, num_features: int, *, momentum: float = 0.1, eps: float = 1e-5) -> None:
        if num_features < 1:
            raise ShapeError(f"num_features must be at least 1, got {num_features}")
        if not 0 < momentum <= 1:
            raise ShapeError(f"momentum must be in (0, 1], got {momentum}")
        self.gamma = Parameter(np.ones(num_features, np.float32), "gamma")
        self.beta = Parameter(np.zeros(num_features, np.float32), "beta")
        self.running_mean = np.zeros(num_features, np.float32)
        self.running_var = np.ones(num_features, np.float32)
        self.momentum, self.eps = np.float32(momentum), np.float32(eps)

    def parameters(self) -> Iterator[Parameter]:
        yield self.gamma
        yield self.beta

    def state_arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        yield "running_mean", self.running_mean
        yield "running_var", self.running_var

    def set_state_array(self, name: str, array: np.ndarray) -> None:
        setattr(self, name, array)

    def multiply_adds(self, input_shape: tuple[int, ...]) -> int:
        """Per sample, in evaluation: ``x * scale + shift`` for every value."""
        return math.prod(input_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        features = self.gamma.data.size
        if not input_shape or input_shape[-1] != features:
            raise ShapeError(f"normalises {features} features (the last axis), got input "
                             f"{'x'.join(map(str, input_shape)) or 'a scalar'}")
        return input_shape

    def forward(self, x: np.ndarray) -> np.ndarray:
        x = self.contiguous(x)  # so that every reshape below is a view of it
        shape, features = x.shape, x.shape[-1]
        rows = x.size // features  # the values each feature's statistics are over
        # element-wise work runs on one row per sample: x.reshape(n, -1) and vectors repeated
        # over a sample (``per_sample_row``); sums on x.reshape(-1, features)
        xs = x.reshape(len(x), -1)  # x is the previous layer's fresh output: safe to reuse
        centred = self.buffer("centred", xs.shape, x.dtype)
        if self.training:
            total = self.buffer("sums", (features,), x.dtype)

            def column_sums(x: np.ndarray, total: np.ndarray) -> None:
                self.column_sums(x.reshape(-1, features), out=total)

            self.over_batch(column_sums, xs, sums={"sums": total}, values=x.size)
            self.wait()
            mean = total / np.float32(rows)
            mean_row = self.per_sample_row("mean_row", mean, shape)

            def centre_and_square(x: np.ndarray, centred: np.ndarray, total: np.ndarray) -> None:
                np.subtract(x, mean_row, out=centred)
                np.multiply(centred, centred, out=x)  # x is not needed any more
                column_sums(x, total)

            self.over_batch(centre_and_square, xs, centred, sums={"sums": total},
                                  values=x.size)
            self.wait()
            var = total / np.float32(rows)
            self._update_running(mean, var, rows)
        else:
            mean, var = self.running_mean, self.running_var  # type: ignore[assignment]
            mean_row = self.per_sample_row("mean_row", mean, shape)
            self.over_batch(lambda x, centred: np.subtract(x, mean_row, out=centred),
                                  xs, centred, values=x.size)
        inv_std = 1 / np.sqrt(var + self.eps)
        scale = self.per_sample_row("scale_row", self.gamma.data * inv_std, shape)
        beta = self.per_sample_row("beta_row", self.beta.data, shape)

        def normalise(centred: np.ndarray, y: np.ndarray) -> None:  # y = x_hat * gamma + beta
            np.multiply(centred, scale, out=y)
            y += beta

        self.over_batch(normalise, centred, xs, values=x.size)
        self._centred, self._inv_std = centred, inv_std
        return x

    def _update_running(self, mean: np.ndarray, var: np.ndarray, rows: int) -> None:
        keep = 1 - self.momentum
        self.running_mean *= keep
        self.running_mean += self.momentum * mean
        self.running_var *= keep
        self.running_var += (self.momentum * np.float32(rows / max(rows - 1, 1))) * var

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        grad_output = self.contiguous(grad_output)
        shape, features = grad_output.shape, grad_output.shape[-1]
        rows = grad_output.size // features
        gs = grad_output.reshape(len(grad_output), -1)
        centred, inv_std = self._centred, self._inv_std
        product = self.buffer("product", gs.shape, gs.dtype)
        g_centred = self.buffer("g_centred", (features,), gs.dtype)

        def sums(g: np.ndarray, centred: np.ndarray, product: np.ndarray, g_sum: np.ndarray,
                 g_centred: np.ndarray) -> None:
            np.multiply(g, centred, out=product)
            self.column_sums(g.reshape(-1, features), out=g_sum)
            self.column_sums(product.reshape(-1, features), out=g_centred)

        self.over_batch(sums, gs, centred, product, values=grad_output.size,
                              sums={"g_sums": self.beta.grad, "product_sums": g_centred})
        self.wait()
        # beta's gradient is sum(g); g_centred is sum(g * (x - mean)) per feature
        np.multiply(g_centred, inv_std, out=self.gamma.grad)  # sum(g * x_hat)
        scale_row = self.per_sample_row("scale_row", self.gamma.data * inv_std, shape)
        if not self.training:  # the statistics are constants here
            self.over_batch(lambda g: np.multiply(g, scale_row, out=g), gs,
                                  values=grad_output.size)
            return grad_output
        # dx = gamma * inv_std * (g - mean(g) - (x - mean) * inv_std^2 * mean(g * (x - mean)))
        g_mean = self.per_sample_row("mean_row", self.beta.grad / np.float32(rows), shape)
        k = self.per_sample_row("k_row", inv_std * inv_std * g_centred / np.float32(rows), shape)

        def input_grad(g: np.ndarray, centred: np.ndarray, product: np.ndarray) -> None:
            np.multiply(centred, k, out=product)
            g -= product
            g -= g_mean
            g *= scale_row

        self.over_batch(input_grad, gs, centred, product, values=grad_output.size)
        return grad_output

    def describe(self) -> str:
        return f"BatchNorm({self.gamma.data.size})"
