"""``BatchNorm``: normalise each feature (or channel) over the batch while training.

It normalises over every axis but the last, so the same layer serves dense outputs ``(N, F)`` and
channels-last conv outputs ``(N, H, W, C)``. While training it uses the batch's mean and variance
and updates running estimates (PyTorch's convention: ``momentum`` 0.1, the unbiased variance);
in evaluation it uses those running estimates. They are state, not parameters: saved in
checkpoints, never trained (``state_arrays``).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from trainkit.nn.module import Module, Parameter, ShapeError
from trainkit.nn.parallel import RUN, Parts, Steps, add_up, contiguous, value_parts


class BatchNorm(Module):
    """``y = gamma * (x - mean) / sqrt(var + eps) + beta`` per feature (the last axis)."""

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

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        features = self.gamma.data.size
        if not input_shape or input_shape[-1] != features:
            raise ShapeError(f"normalises {features} features (the last axis), got input "
                             f"{'x'.join(map(str, input_shape)) or 'a scalar'}")
        return input_shape

    def forward_steps(self, x: np.ndarray) -> Steps:
        x = yield from contiguous(x)  # so that every reshape below is a view of it
        shape, n = x.shape, x.shape[0]
        x2 = x.reshape(-1, shape[-1])  # x is the previous layer's fresh output: safe to reuse
        rows = x2.shape[0]
        per_sample = rows // n
        centred = self.buffer("centred", x2.shape, x2.dtype)
        # element-wise passes work on one row per sample (``per_sample_row``)
        xs, cs = x.reshape(n, -1), centred.reshape(n, -1)
        bounds = value_parts(n, x.size)
        if self.training:
            # each part of the batch sums its own rows; the parts' sums are added in order
            sums = self.partials("sums", len(bounds) - 1, (shape[-1],), x.dtype)
            yield Parts(bounds, lambda i, lo, hi: self.column_sums(
                x2[lo * per_sample:hi * per_sample], out=sums[i]))
            yield RUN
            mean = add_up(sums) / np.float32(rows)
            mean_row = self.per_sample_row("mean_row", mean, shape)
            squares = xs  # overwritten: only the centred values are needed from here on

            def centre(i: int, lo: int, hi: int) -> None:
                np.subtract(xs[lo:hi], mean_row, out=cs[lo:hi])
                np.multiply(cs[lo:hi], cs[lo:hi], out=squares[lo:hi])
                self.column_sums(x2[lo * per_sample:hi * per_sample], out=sums[i])

            yield Parts(bounds, centre)
            yield RUN
            var = add_up(sums) / np.float32(rows)  # of the squares
            self._update_running(mean, var, rows)
        else:
            mean, var = self.running_mean, self.running_var
            mean_row = self.per_sample_row("mean_row", mean, shape)
            yield Parts(bounds, lambda _, lo, hi: np.subtract(xs[lo:hi], mean_row, out=cs[lo:hi]))
        inv_std = 1 / np.sqrt(var + self.eps)
        scale = self.per_sample_row("scale_row", self.gamma.data * inv_std, shape)
        beta = self.per_sample_row("beta_row", self.beta.data, shape)

        def normalise(_: int, lo: int, hi: int) -> None:
            np.multiply(cs[lo:hi], scale, out=xs[lo:hi])
            xs[lo:hi] += beta

        yield Parts(bounds, normalise)
        self._centred, self._inv_std = centred, inv_std
        return x

    def _update_running(self, mean: np.ndarray, var: np.ndarray, rows: int) -> None:
        keep = 1 - self.momentum
        self.running_mean *= keep
        self.running_mean += self.momentum * mean
        self.running_var *= keep
        self.running_var += (self.momentum * np.float32(rows / max(rows - 1, 1))) * var

    def backward_steps(self, grad_output: np.ndarray) -> Steps:
        grad_output = yield from contiguous(grad_output)
        shape, n = grad_output.shape, grad_output.shape[0]
        g = grad_output.reshape(-1, shape[-1])
        rows = g.shape[0]
        centred, inv_std = self._centred, self._inv_std
        product = self.buffer("product", g.shape, g.dtype)
        gs, cs, ps = grad_output.reshape(n, -1), centred.reshape(n, -1), product.reshape(n, -1)
        per_sample = rows // n
        bounds = value_parts(n, g.size)
        g_sums = self.partials("g_sums", len(bounds) - 1, self.beta.grad.shape, g.dtype,
                               first=self.beta.grad)
        product_sums = self.partials("product_sums", len(bounds) - 1, g_sums[0].shape, g.dtype)

        def products_and_sums(i: int, lo: int, hi: int) -> None:
            np.multiply(gs[lo:hi], cs[lo:hi], out=ps[lo:hi])
            self.column_sums(g[lo * per_sample:hi * per_sample], out=g_sums[i])
            self.column_sums(product[lo * per_sample:hi * per_sample], out=product_sums[i])

        yield Parts(bounds, products_and_sums)
        yield RUN
        add_up(g_sums)  # into beta's gradient
        g_centred = add_up(product_sums)  # sum(g * (x - mean)) per feature
        np.multiply(g_centred, inv_std, out=self.gamma.grad)  # sum(g * x_hat)
        scale = self.gamma.data * inv_std
        scale_row = self.per_sample_row("scale_row", scale, shape)
        if not self.training:  # the statistics are constants here
            yield Parts(bounds, lambda _, lo, hi: np.multiply(gs[lo:hi], scale_row, out=gs[lo:hi]))
            return grad_output
        # dx = gamma * inv_std * (g - mean(g) - (x - mean) * inv_std^2 * mean(g * (x - mean)))
        g_mean = self.per_sample_row("mean_row", self.beta.grad / np.float32(rows), shape)
        k = self.per_sample_row("k_row", inv_std * inv_std * g_centred / np.float32(rows), shape)

        def input_grad(_: int, lo: int, hi: int) -> None:
            part, prod = gs[lo:hi], ps[lo:hi]
            np.multiply(cs[lo:hi], k, out=prod)
            part -= prod
            part -= g_mean
            part *= scale_row

        yield Parts(bounds, input_grad)
        return grad_output

    def describe(self) -> str:
        return f"BatchNorm({self.gamma.data.size})"
