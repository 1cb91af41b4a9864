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

    def forward(self, x: np.ndarray) -> np.ndarray:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        x_hat = self.buffer("x_hat", x2.shape, x2.dtype)
        if not self.training:
            inv_std = 1 / np.sqrt(self.running_var + self.eps)
            np.subtract(x2, self.running_mean, out=x_hat)
            x_hat *= inv_std
            np.multiply(x_hat, self.gamma.data, out=x2)
            x2 += self.beta.data
            self._x_hat, self._inv_std = x_hat, inv_std
            return x2.reshape(shape)
        m = x2.shape[0]
        mean = x2.mean(axis=0)
        centred = np.subtract(x2, mean, out=x_hat)
        squares = np.multiply(centred, centred, out=x2)  # x is no longer needed
        var = squares.mean(axis=0)
        inv_std = 1 / np.sqrt(var + self.eps)
        x_hat = np.multiply(centred, inv_std, out=centred)
        np.multiply(x_hat, self.gamma.data, out=x2)
        x2 += self.beta.data
        self._x_hat, self._inv_std = x_hat, inv_std
        keep = 1 - self.momentum
        self.running_mean *= keep
        self.running_mean += self.momentum * mean
        self.running_var *= keep
        self.running_var += (self.momentum * np.float32(m / max(m - 1, 1))) * var
        return x2.reshape(shape)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        shape = grad_output.shape
        g = grad_output.reshape(-1, shape[-1])
        gamma = self.gamma.data
        x_hat = self._x_hat
        if not self.training:  # the statistics are constants here
            np.add.reduce(g, axis=0, out=self.beta.grad)
            product = np.multiply(g, x_hat, out=self.buffer("product", g.shape, g.dtype))
            np.add.reduce(product, axis=0, out=self.gamma.grad)
            g *= self._inv_std * gamma
            return g.reshape(shape)
        m = np.float32(g.shape[0])
        np.add.reduce(g, axis=0, out=self.beta.grad)
        product = np.multiply(g, x_hat, out=self.buffer("product", g.shape, g.dtype))
        np.add.reduce(product, axis=0, out=self.gamma.grad)
        # dx = gamma * inv_std / m * (m * g - sum(g) - x_hat * sum(g * x_hat))
        np.multiply(x_hat, self.gamma.grad, out=product)
        g *= m
        g -= self.beta.grad
        g -= product
        g *= (gamma * self._inv_std) / m
        return g.reshape(shape)

    def describe(self) -> str:
        return f"BatchNorm({self.gamma.data.size})"
