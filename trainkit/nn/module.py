"""Module, Parameter and Sequential: the small core every layer builds on.

A ``Sequential`` owns two flat float32 buffers, one for all parameters and one for all gradients.
Each layer's parameters are views into them. Optimizers, gradient clipping and all-reduce then
work on one contiguous array instead of a list of small ones. Non-parameter state (batch norm's
running statistics) lives in a third flat buffer, ``states``, for the same reason.

A model's state is three things: its parameters, its state arrays (``state_arrays``), and JSON
"extra state" such as a dropout layer's random generator (``extra_state``). Checkpoints hold all
three. ``train()`` and ``eval()`` switch the layers that behave differently while training.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np

from trainkit.nn.schedule import complete, contiguous, over_batch, scheduled, scratch, wait


def no_products(self: Any, input_shape: tuple[int, ...]) -> int:
    """``multiply_adds`` of a layer that multiplies nothing it learned (an activation, pooling,
    reshaping): ``multiply_adds = no_products`` in its class."""
    return 0


class Parameter:
    """A named float32 array and its gradient, updated in place."""

    __slots__ = ("name", "data", "grad")

    def __init__(self, data: np.ndarray, name: str = "") -> None:
        self.name = name
        self.data = np.ascontiguousarray(data, dtype=np.float32)
        self.grad = np.zeros_like(self.data)

    def __repr__(self) -> str:
        return f"Parameter({self.name!r}, shape={self.data.shape})"


class ShapeError(ValueError):
    """A layer cannot take an input of this shape, or was given impossible sizes."""


#: (layer class, "forward" or "backward") -> whether that pass hands its work to the schedule
#: (``scheduled``), and whether it is 0.1.0's steps.
_HOW: dict[tuple[type, str], tuple[bool, bool]] = {}


class Module:
    """Base class of layers and models: ``forward`` and ``backward`` side by side.

    ``backward(grad_output)`` writes the gradients of the parameters in place and returns the
    gradient with respect to the input (or ``None`` when nobody needs it).

    For speed, layers work in preallocated buffers: an activation's ``forward`` overwrites its
    input, ``backward`` may overwrite ``grad_output``, and the arrays a layer returns are reused
    by its next call with the same shape. Copy what you keep.
    """

    _buffers: dict[tuple[str, tuple[int, ...], Any], np.ndarray]
    training: bool = True
    #: True for a layer that splits all its work, GEMMs included, over the batch on the run's
    #: threads (``trainkit.nn.schedule``): a model with one runs BLAS single-threaded.
    splits_batch: bool = False

    def train(self, mode: bool = True) -> Module:
        """Training mode (the default): dropout drops, batch norm uses the batch's statistics."""
        self.training = mode
        return self

    def eval(self) -> Module:
        """Evaluation mode: dropout keeps everything, batch norm uses its running statistics."""
        return self.train(False)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """The shape of one output sample for one input sample of ``input_shape`` (no batch
        axis); raises ``ShapeError`` when the layer cannot take it. Element-wise layers keep it."""
        return input_shape

    def state_arrays(self) -> Iterator[tuple[str, np.ndarray]]:
        """``(name, array)`` of the non-parameter arrays that are part of the model's state."""
        return iter(())

    def set_state_array(self, name: str, array: np.ndarray) -> None:
        """Replace state array ``name`` by ``array`` (a view into the model's flat buffer)."""
        raise NotImplementedError

    def extra_state(self) -> dict[str, Any]:
        """JSON-ready state that is neither a parameter nor an array (a random generator's)."""
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        """Restore what ``extra_state`` returned."""

    def buffer(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """A scratch array owned by this module, reused while ``name`` is asked for with the same
        shape and dtype, and replaced when not: a module holds one batch size's buffers at a
        time (training at 64 and scoring at 256 do not keep both sets alive)."""
        try:
            buffers = self._buffers
        except AttributeError:
            buffers = self._buffers = {}
        key = (name, shape, dtype)
        array = buffers.get(key)
        if array is None:
            for old in [k for k in buffers if k[0] == name]:  # another shape: let it go
                del buffers[old]
            array = buffers[key] = np.empty(shape, dtype=dtype)
        return array

    def scratch(self, name: str, shape: tuple[int, ...], dtype=np.float32) -> np.ndarray:
        """A scratch array for work that ``over_batch`` may run on several threads at once: each
        thread gets its own (``buffer``'s arrays are shared, and cut by sample)."""
        return scratch(self, name, shape, dtype)

    def column_sums(self, x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """``x.sum(axis=0)`` of a 2-D array, computed as ``ones @ x``: a GEMV, about ten times
        faster than numpy's reduction over the first axis of a tall array."""
        ones = getattr(self, "_ones", None)  # read once: parts of a batch call this at once
        if ones is None or ones.shape[0] < x.shape[0] or ones.dtype != x.dtype:
            ones = self._ones = np.ones(x.shape[0], dtype=x.dtype)
        return np.matmul(ones[:x.shape[0]], x, out=out)

    #: ``self.over_batch(work, *arrays, values=None, multiply_adds=None, sums=None,
    #: then=None)``: ``work(*arrays, *shares)`` on the batch (``trainkit.nn.schedule``). On one
    #: thread it is called now, on the whole arrays; in a model split over threads the schedule
    #: may cut ``arrays`` by sample (their first axis) and call ``work`` on each part on its own
    #: thread, later, together with the next layers' work: ``work`` touches only the arrays it
    #: is given, and the layer calls ``self.wait()`` before it reads what ``work`` wrote. A sum
    #: over the batch is declared in ``sums`` (name -> the array it ends in): ``work`` writes
    #: its part's share into the array passed after ``arrays``, and the shares are added in
    #: order. ``values`` (element-wise work) or ``multiply_adds`` (a product) say what the work
    #: costs, so that work too small to gain is not cut; a convolution says neither. A class
    #: whose ``forward`` and ``backward`` use it says ``scheduled = True``.
    over_batch = over_batch

    def wait(self) -> None:
        """Finish the work handed over so far (``over_batch``), before reading its results."""
        wait()

    def contiguous(self, array: np.ndarray) -> np.ndarray:
        """``array`` C-contiguous, so that reshaping it gives a view (a copy waits for the work
        that writes it)."""
        return contiguous(array)

    def per_sample_row(self, name: str, vector: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
        """``vector`` (one value per channel, the last axis of ``shape``) repeated over one whole
        sample of ``shape``, for an operation on ``x.reshape(len(x), -1)``.

        numpy broadcasts a per-channel vector over ``(N, H, W, C)`` one row of ``C`` values at
        a time; over rows of ``H * W * C`` values the same operation runs about twice as fast
        (for ``C = 32``). The values, and so the results, are the same."""
        repeats = math.prod(shape[1:-1])
        if repeats == 1:
            return vector
        row = self.buffer(name, (repeats, vector.shape[-1]), vector.dtype)
        row[...] = vector
        return row.reshape(-1)

    def parameters(self) -> Iterator[Parameter]:
        return iter(())

    def forward(self, x: np.ndarray) -> np.ndarray:
        steps = getattr(self, "forward_steps", None)  # a layer written for 0.1.0
        if steps is None:
            raise NotImplementedError(f"{type(self).__name__} defines no forward")
        return complete(steps(x))

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        steps = getattr(self, "backward_steps", None)
        if steps is None:
            raise NotImplementedError(f"{type(self).__name__} defines no backward")
        return complete(steps(grad_output))

    def in_model(self, backward: bool, array: np.ndarray) -> np.ndarray | None:
        """This layer's forward (or backward) pass inside a model's: a pass that is not
        ``scheduled`` waits for the work before it first (a subclass that overrides a
        scheduled layer's ``forward`` without saying ``scheduled = True`` waits)."""
        name = "backward" if backward else "forward"
        how = _HOW.get((type(self), name))
        if how is None:
            klass = next(k for k in type(self).__mro__
                         if name in vars(k) or f"{name}_steps" in vars(k))
            steps = f"{name}_steps" in vars(klass)  # 0.1.0's steps, driven by Module's pass
            how = _HOW[type(self), name] = (steps or vars(klass).get("scheduled", False), steps)
        hands_over, steps = how
        if not hands_over:
            wait()
        if steps:
            return getattr(Module, name)(self, array)
        return getattr(self, name)(array)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self.forward(x)

    def describe(self) -> str:
        return type(self).__name__


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

    def forward(self, x: np.ndarray) -> np.ndarray:
        with scheduled():
            for layer in self.layers:
                x = layer.in_model(False, x)  # type: ignore[assignment]  # forward: an array
        return x

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        grad: np.ndarray | None = grad_output
        with scheduled():
            for layer in reversed(self.layers):
                if grad is None:
                    break
                grad = layer.in_model(True, grad)
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
