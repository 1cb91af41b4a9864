"""Layers, each with its forward and backward pass side by side.

Every layer works in float32 and keeps only what its backward pass needs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
from scipy.special import expit

from trainkit.nn.module import Module, Parameter


class Linear(Module):
    """``y = x @ W + b`` with ``W`` of shape ``(in_features, out_features)``.

    ``input_grad=False`` (the first layer of a network) skips the input gradient nobody uses.
    ``init`` is ``"glorot"`` (uniform, for sigmoid/tanh) or ``"he"`` (uniform, for ReLU).
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        rng: np.random.Generator,
        *,
        input_grad: bool = True,
        init: str = "glorot",
    ) -> None:
        if init == "he":
            limit = np.sqrt(6.0 / in_features)
        else:
            limit = np.sqrt(6.0 / (in_features + out_features))
        w = rng.uniform(-limit, limit, size=(in_features, out_features)).astype(np.float32)
        self.weight = Parameter(w, "weight")
        self.bias = Parameter(np.zeros(out_features, dtype=np.float32), "bias")
        self.input_grad = input_grad
        self._x: np.ndarray | None = None

    def parameters(self) -> Iterator[Parameter]:
        yield self.weight
        yield self.bias

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        out = x @ self.weight.data
        out += self.bias.data
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        np.matmul(self._x.T, grad_output, out=self.weight.grad)
        np.sum(grad_output, axis=0, out=self.bias.grad)
        if not self.input_grad:
            return None
        return grad_output @ self.weight.data.T

    def describe(self) -> str:
        n_in, n_out = self.weight.data.shape
        return f"Linear({n_in}, {n_out})"


class Sigmoid(Module):
    """``y = 1 / (1 + exp(-x))`` via scipy's overflow-safe ``expit``; ``dy/dx = y (1 - y)``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._out = expit(x, out=x)  # x is the previous layer's fresh output: safe to reuse
        return self._out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        y = self._out
        grad = y * grad_output
        grad -= grad * y
        return grad


class ReLU(Module):
    """``y = max(x, 0)``; the gradient passes where the input was positive."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._mask = x > 0
        return np.maximum(x, 0, out=x)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return grad_output * self._mask


class Tanh(Module):
    """``y = tanh(x)``; ``dy/dx = 1 - y^2``."""

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._out = np.tanh(x, out=x)
        return self._out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        y = self._out
        return grad_output - grad_output * y * y


ACTIVATIONS: dict[str, type[Module]] = {"sigmoid": Sigmoid, "relu": ReLU, "tanh": Tanh}
