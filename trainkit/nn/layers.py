"""Layers, each with its forward and backward pass side by side.

Every layer works in float32 and keeps only what its backward pass needs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from trainkit.nn.module import Module, Parameter, ShapeError, no_products


class Linear(Module):
    """``y = x @ W + b`` with ``W`` of shape ``(in_features, out_features)``.

    ``input_grad=False`` (the first layer of a network) skips the input gradient nobody uses.
    ``init`` is ``"glorot"`` (uniform, for sigmoid/tanh) or ``"he"`` (uniform, for ReLU).
    """

    scheduled = True  # forward and backward hand their work to the schedule

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

    def multiply_adds(self, input_shape: tuple[int, ...]) -> int:
        """Per sample: one for every weight."""
        return self.weight.data.size

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        n_in, n_out = self.weight.data.shape
        if input_shape != (n_in,):
            shape = "x".join(map(str, input_shape))
            hint = "; put a flatten before it" if len(input_shape) > 1 else ""
            raise ShapeError(f"expects {n_in} input features, got {shape}{hint}")
        return (n_out,)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x
        weight, bias = self.weight.data, self.bias.data
        out = self.buffer("out", (len(x), bias.size), x.dtype)

        def affine(x: np.ndarray, out: np.ndarray) -> None:
            np.matmul(x, weight, out=out)
            out += bias

        self.over_batch(affine, x, out, multiply_adds=x.size * bias.size)
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        x, weight = self._x, self.weight.data
        assert x is not None, "backward before forward"
        grad_input = self.buffer("grad_input", x.shape, x.dtype) if self.input_grad else None

        def gradients(x: np.ndarray, g: np.ndarray, grad_input: np.ndarray | None,
                      weight_grad: np.ndarray) -> None:
            np.matmul(x.T, g, out=weight_grad)  # dL/dW = x^T g
            if grad_input is not None:
                np.matmul(g, weight.T, out=grad_input)  # dL/dx = g W^T

        def bias_grad() -> None:  # dL/db = the sum of g over the batch
            np.add.reduce(grad_output, axis=0, out=self.bias.grad)

        self.over_batch(gradients, x, grad_output, grad_input,
                              sums={"weight_grad": self.weight.grad}, then=bias_grad,
                              multiply_adds=x.size * weight.shape[1])
        return grad_input

    def describe(self) -> str:
        n_in, n_out = self.weight.data.shape
        return f"Linear({n_in}, {n_out})"


class Sigmoid(Module):
    """``y = 1 / (1 + exp(-x))``, computed as ``(1 + tanh(x / 2)) / 2``; ``dy/dx = y (1 - y)``.

    The tanh form is exact in real arithmetic, overflow-free for any input, and about five times
    faster than ``scipy.special.expit`` on float32 batches (numpy's tanh is vectorised). Its only
    cost: outputs below ~3e-8 round to 0 in float32, where the gradient ``y (1 - y)`` is ~0 anyway.
    """

    multiply_adds = no_products

    def forward(self, x: np.ndarray) -> np.ndarray:
        x *= 0.5  # x is the previous layer's fresh output: safe to reuse
        np.tanh(x, out=x)
        x *= 0.5
        x += 0.5
        self._out = x
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        y = self._out
        one_minus_y = np.subtract(1.0, y, out=self.buffer("scratch", y.shape, y.dtype))
        grad_output *= y
        grad_output *= one_minus_y
        return grad_output


class ReLU(Module):
    """``y = max(x, 0)``; the gradient passes where the input was positive."""

    scheduled = True  # forward and backward hand their work to the schedule
    multiply_adds = no_products

    def forward(self, x: np.ndarray) -> np.ndarray:
        mask = self._mask = self.buffer("mask", x.shape, np.bool_)

        def relu(x: np.ndarray, mask: np.ndarray) -> None:
            np.greater(x, 0, out=mask)
            np.maximum(x, 0, out=x)

        self.over_batch(relu, x, mask, values=x.size)
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        self.over_batch(lambda g, mask: np.multiply(g, mask, out=g), grad_output,
                              self._mask, values=grad_output.size)
        return grad_output


class Tanh(Module):
    """``y = tanh(x)``; ``dy/dx = 1 - y^2``."""

    multiply_adds = no_products

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._out = np.tanh(x, out=x)
        return self._out

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        y = self._out
        one_minus_y2 = np.multiply(y, y, out=self.buffer("scratch", y.shape, y.dtype))
        np.subtract(1.0, one_minus_y2, out=one_minus_y2)
        grad_output *= one_minus_y2
        return grad_output


class LeakyReLU(Module):
    """``y = x`` where ``x > 0``, else ``negative_slope * x``; the gradient likewise."""

    multiply_adds = no_products

    def __init__(self, negative_slope: float = 0.01) -> None:
        self.negative_slope = np.float32(negative_slope)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._positive = x > 0
        return np.where(self._positive, x, x * self.negative_slope)

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        return np.where(self._positive, grad_output, grad_output * self.negative_slope)

    def describe(self) -> str:
        return f"LeakyReLU({self.negative_slope:g})"


class GELU(Module):
    """``y = x * Phi(x)`` with ``Phi`` the standard normal's distribution function (exact, with
    ``erf``), or PyTorch's ``approximate="tanh"`` form ``x/2 (1 + tanh(sqrt(2/pi) (x +
    0.044715 x^3)))``; the gradient of the form used."""

    multiply_adds = no_products
    SQRT_2_OVER_PI = np.float32(np.sqrt(2 / np.pi))

    def __init__(self, approximate: str = "none") -> None:
        if approximate not in ("none", "tanh"):
            raise ShapeError(f"approximate must be none or tanh, got {approximate!r}")
        self.approximate = approximate

    def forward(self, x: np.ndarray) -> np.ndarray:
        self._x = x.copy()
        if self.approximate == "tanh":
            self._t = np.tanh(self.SQRT_2_OVER_PI * (x + np.float32(0.044715) * x ** 3))
            return np.float32(0.5) * x * (1 + self._t)
        from scipy.special import erf

        self._phi = np.float32(0.5) * (1 + erf(x * np.float32(1 / np.sqrt(2))))
        return x * self._phi

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        x = self._x
        if self.approximate == "tanh":
            t = self._t
            inner = self.SQRT_2_OVER_PI * (1 + np.float32(3 * 0.044715) * x * x)
            return grad_output * (np.float32(0.5) * (1 + t) + np.float32(0.5) * x * (1 - t * t)
                                  * inner)
        density = np.exp(np.float32(-0.5) * x * x) * np.float32(1 / np.sqrt(2 * np.pi))
        return grad_output * (self._phi + x * density)

    def describe(self) -> str:
        return "GELU(tanh)" if self.approximate == "tanh" else "GELU"


class Softmax(Module):
    """``y = exp(x) / sum(exp(x))`` over the last axis (its maximum subtracted first);
    ``dx = y (g - sum(g y))``. For a model whose outputs are probabilities: the losses take
    logits, so a classifier ends without it."""

    multiply_adds = no_products

    def forward(self, x: np.ndarray) -> np.ndarray:
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        self._y = e / e.sum(axis=-1, keepdims=True)
        return self._y

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        y = self._y
        return y * (grad_output - (grad_output * y).sum(axis=-1, keepdims=True))


class Rescale(Module):
    """``y = x * scale + shift`` per output, with constants that are state, not parameters: a
    regression model ends in one set to its training targets' standard deviation and mean, so
    the network learns standardised targets while losses, metrics and predictions are in the
    targets' own units."""

    multiply_adds = no_products

    def __init__(self, shift: np.ndarray, scale: np.ndarray) -> None:
        self.shift = np.asarray(shift, np.float32).reshape(-1).copy()
        self.scale = np.asarray(scale, np.float32).reshape(-1).copy()

    def state_arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        yield "shift", self.shift
        yield "scale", self.scale

    def set_state_array(self, name: str, array: np.ndarray) -> None:
        setattr(self, name, array)

    def forward(self, x: np.ndarray) -> np.ndarray:
        x *= self.scale
        x += self.shift
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray:
        grad_output *= self.scale
        return grad_output

    def describe(self) -> str:
        return f"Rescale({self.scale.size})"


#: The activations a model puts between its layers (``--activation``).
ACTIVATIONS: dict[str, type[Module]] = {"sigmoid": Sigmoid, "relu": ReLU, "tanh": Tanh,
                                        "leaky-relu": LeakyReLU, "gelu": GELU}
