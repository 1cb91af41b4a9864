"""Module, Parameter and Sequential: the small core every layer builds on.

A ``Sequential`` owns two flat float32 buffers, one for all parameters and one for all gradients.
Each layer's parameters are views into them. Optimizers, gradient clipping and all-reduce then
work on one contiguous array instead of a list of small ones.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np


class Parameter:
    """A named float32 array and its gradient, updated in place."""

    __slots__ = ("name", "data", "grad")

    def __init__(self, data: np.ndarray, name: str = "") -> None:
        self.name = name
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.grad = np.zeros_like(self.data)

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.data.shape})"


class Module:
    """Base class of layers and models: ``forward`` and ``backward`` side by side.

    ``backward(grad_output)`` writes the gradients of the parameters in place and returns the
    gradient with respect to the input (or ``None`` when nobody needs it).

    For speed, layers work in preallocated buffers: an activation's ``forward`` overwrites its
    input, ``backward`` may overwrite ``grad_output``, and the arrays a layer returns are reused
    by its next call with the same shape. Copy what you keep.
    """

    _buffers: dict[tuple[str, tuple[int, ...], str], np.ndarray]

    def buffer(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """A scratch array owned by this module, allocated once per name, shape and dtype."""
        try:
            buffers = self._buffers
        except AttributeError:
            buffers = self._buffers = {}
        key = (name, shape, np.dtype(dtype).char)
        array = buffers.get(key)
        if array is None:
            array = buffers[key] = np.empty(shape, dtype=dtype)
        return array

    def parameters(self) -> Iterator[Parameter]:
        return iter(())

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def describe(self) -> str:
        return type(self).__name__


class Sequential(Module):
    """Layers applied in order, with every parameter living in one flat buffer.

    ``params`` and ``grads`` are those flat buffers; ``state_dict()`` names each parameter
    ``"<index>.<name>"``, for example ``"0.weight"``.
    """

    def __init__(self, *layers: Module) -> None:
        self.layers = list(layers)
        named = list(self.named_parameters())
        total = sum(p.data.size for _, p in named)
        self.params = np.empty(total, dtype=np.float32)
        self.grads = np.zeros(total, dtype=np.float32)
        offset = 0
        for _, p in named:
            n = p.data.size
            self.params[offset : offset + n] = p.data.ravel()
            p.data = self.params[offset : offset + n].reshape(p.data.shape)
            p.grad = self.grads[offset : offset + n].reshape(p.data.shape)
            offset += n

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for index, layer in enumerate(self.layers):
            for p in layer.parameters():
                yield f"{index}.{p.name}", p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def forward(self, x: np.ndarray) -> np.ndarray:
        for layer in self.layers:
            x = layer.forward(x)
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        grad: np.ndarray | None = grad_output
        for layer in reversed(self.layers):
            if grad is None:
                break
            grad = layer.backward(grad)
        return grad

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter, by name."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy parameters in place; raises ``ValueError`` naming any missing or misshapen one."""
        named = dict(self.named_parameters())
        missing = sorted(set(named) - set(state))
        unexpected = sorted(set(state) - set(named))
        if missing or unexpected:
            raise ValueError(f"parameters do not match: missing {missing}, unexpected {unexpected}")
        for name, p in named.items():
            value = state[name]
            if value.shape != p.data.shape:
                raise ValueError(
                    f"parameter {name} has shape {value.shape}, the model expects {p.data.shape}"
                )
            p.data[...] = value

    def describe(self) -> str:
        return " -> ".join(layer.describe() for layer in self.layers)
