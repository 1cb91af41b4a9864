"""``Sequential``: layers applied in order, with every parameter in one flat buffer.

A ``Sequential`` owns two flat float32 buffers, one for all parameters and one for all gradients.
Each layer's parameters are views into them. Optimizers, gradient clipping and all-reduce then
work on one contiguous array instead of a list of small ones. Non-parameter state (batch norm's
running statistics) lives in a third flat buffer, ``states``, for the same reason.

Its forward and backward passes run the layers' work on one schedule (``trainkit.nn.schedule``),
and a pair of layers that a fused pass does as one (``trainkit.nn.fused``) runs as that pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from trainkit.nn.fused import passes
from trainkit.nn.module import Module, Parameter, ShapeError
from trainkit.nn.schedule import scheduled


class Sequential(Module):
    """Layers applied in order, with every parameter living in one flat buffer.

    ``params`` and ``grads`` are those flat buffers; ``state_dict()`` names each parameter
    ``"<index>.<name>"``, for example ``"0.weight"``.
    """

    def __init__(self, *layers: Module, input_shape: tuple[int, ...] | None = None) -> None:
        self.layers = list(layers)
        #: The shape of one input sample the model expects (``(28, 28, 1)`` for a convnet on
        #: MNIST), or ``None`` for flat feature vectors: the data loader shapes batches by it.
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        named_states = list(self.named_state_arrays())
        self.states = np.empty(sum(a.size for _, a in named_states), dtype=np.float32)
        offset = 0
        for name, array in named_states:
            view = self.states[offset:offset + array.size].reshape(array.shape)
            view[...] = array
            self.layers[int(name.split(".")[0])].set_state_array(name.split(".", 1)[1], view)
            offset += array.size
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

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Walk ``input_shape`` through every layer; a ``ShapeError`` names the layer at fault
        by its position (from 1) and what it is."""
        shape = tuple(input_shape)
        for position, layer in enumerate(self.layers, 1):
            try:
                shape = layer.output_shape(shape)
            except ShapeError as e:
                raise ShapeError(f"layer {position} ({layer.describe()}): {e}") from None
        return shape

    @property
    def splits_batch(self) -> bool:  # type: ignore[override]
        return any(layer.splits_batch for layer in self.layers)

    def summary(self, batch_size: int = 64, input_shape: tuple[int, ...] | None = None) -> Any:
        """Every layer's output shape, parameters, multiply-adds and activations, and the
        totals (``trainkit.nn.summary``): print it, or read its fields."""
        from trainkit.nn.summary import summarize

        return summarize(self, input_shape, batch_size)

    def named_parameters(self) -> Iterator[tuple[str, Parameter]]:
        for index, layer in enumerate(self.layers):
            for p in layer.parameters():
                yield f"{index}.{p.name}", p

    def parameters(self) -> Iterator[Parameter]:
        for _, p in self.named_parameters():
            yield p

    def named_state_arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        for index, layer in enumerate(self.layers):
            for name, array in layer.state_arrays():
                yield f"{index}.{name}", array

    def train(self, mode: bool = True) -> Sequential:
        self.training = mode
        for layer in self.layers:
            layer.train(mode)
        return self

    def extra_state(self) -> dict[str, Any]:
        """Each layer's extra state, by layer index (``{"5": {"rng": ...}}``)."""
        return {str(i): state for i, layer in enumerate(self.layers)
                if (state := layer.extra_state())}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        expected = set(self.extra_state())
        if set(state) != expected:
            raise ValueError(f"extra state does not match: the model has it for layers "
                             f"{sorted(expected) or 'none'}, the checkpoint for "
                             f"{sorted(state) or 'none'}")
        for index, layer_state in state.items():
            self.layers[int(index)].load_extra_state(layer_state)

    def passes(self) -> list[Any]:
        """The model's passes: its layers, with a fused pass in place of a pair where one fits
        (``trainkit.nn.fused``), worked out again when the layers change."""
        key = tuple(map(id, self.layers))
        cached = getattr(self, "_passes", None)
        if cached is None or cached[0] != key:
            cached = self._passes = (key, passes(self.layers))
        return cached[1]

    def forward(self, x: np.ndarray) -> np.ndarray:
        with scheduled():
            for step in self.passes():
                x = step.in_model(False, x)  # forward: an array
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        grad: np.ndarray | None = grad_output
        with scheduled():
            for step in reversed(self.passes()):
                if grad is None:
                    break
                grad = step.in_model(True, grad)
        return grad

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter and state array, by name."""
        state = {name: p.data.copy() for name, p in self.named_parameters()}
        state.update((name, array.copy()) for name, array in self.named_state_arrays())
        return state

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy parameters and state arrays in place; raises ``ValueError`` naming any missing
        or misshapen one."""
        named = {name: p.data for name, p in self.named_parameters()}
        named.update(self.named_state_arrays())
        missing = sorted(set(named) - set(state))
        unexpected = sorted(set(state) - set(named))
        if missing or unexpected:
            raise ValueError(f"parameters do not match: missing {missing}, unexpected {unexpected}")
        for name, target in named.items():
            value = state[name]
            if value.shape != target.shape:
                raise ValueError(
                    f"parameter {name} has shape {value.shape}, the model expects {target.shape}"
                )
            target[...] = value

    def describe(self) -> str:
        return " -> ".join(layer.describe() for layer in self.layers)
