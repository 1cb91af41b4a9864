"""A model's summary: every layer's output shape, parameters, multiply-adds and activations.

As Keras' ``model.summary()`` and Lightning's ``ModelSummary``: one row per layer, then the
totals. Parameters are split into trainable (``parameters()``) and not (``state_arrays()``,
such as batch norm's running statistics). Multiply-adds are per sample, in evaluation, counted
by the layer's own ``multiply_adds(input_shape)`` (dense and convolution layers: one per weight
and output position; batch norm: one per value); a layer without it shows ``-`` and the total
says it leaves it out. Activations are the layer's output at the batch size, in float32.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LayerRow", "ModelSummary", "summarize"]


@dataclass(frozen=True)
class LayerRow:
    position: int
    kind: str
    description: str
    output_shape: tuple[int, ...]
    trainable: int
    non_trainable: int
    multiply_adds: int | None

    @property
    def parameters(self) -> int:
        return self.trainable + self.non_trainable


@dataclass
class ModelSummary:
    input_shape: tuple[int, ...]
    batch_size: int
    rows: list[LayerRow] = field(default_factory=list)

    @property
    def trainable(self) -> int:
        return sum(r.trainable for r in self.rows)

    @property
    def non_trainable(self) -> int:
        return sum(r.non_trainable for r in self.rows)

    @property
    def parameters(self) -> int:
        return self.trainable + self.non_trainable

    @property
    def multiply_adds(self) -> int:
        """Per sample, of the layers that count theirs."""
        return sum(r.multiply_adds or 0 for r in self.rows)

    @property
    def activation_bytes(self) -> int:
        """Every layer's output at ``batch_size``, in float32: what a forward pass keeps."""
        return sum(4 * self.batch_size * math.prod(r.output_shape) for r in self.rows)

    def table(self) -> str:
        header = ("#", "layer", "output shape", "params", "trainable", "mult-adds",
                  f"activations (batch {self.batch_size})")
        lines = [(str(r.position), r.description, shape_text(r.output_shape),
                  f"{r.parameters:,}", f"{r.trainable:,}",
                  "-" if r.multiply_adds is None else f"{r.multiply_adds:,}",
                  size_text(4 * self.batch_size * math.prod(r.output_shape)))
                 for r in self.rows]
        lines.insert(0, ("", "input", shape_text(self.input_shape), "", "", "", ""))
        widths = [max(len(row[i]) for row in (header, *lines)) for i in range(len(header))]
        right = {0, 3, 4, 5, 6}

        def line(cells: tuple[str, ...]) -> str:
            return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                             for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

        rule = "-" * len(line(header))
        unknown = [str(r.position) for r in self.rows if r.multiply_adds is None]
        left_out = f" (layers {', '.join(unknown)} do not count theirs)" if unknown else ""
        return "\n".join([
            line(header), rule, *map(line, lines), rule,
            f"parameters: {self.parameters:,} ({self.trainable:,} trainable, "
            f"{self.non_trainable:,} not)",
            f"multiply-adds per sample: {self.multiply_adds:,}{left_out}",
            f"activations at batch {self.batch_size}: {size_text(self.activation_bytes)}; "
            f"weights: {size_text(4 * self.parameters)}",
        ])

    def __str__(self) -> str:
        return self.table()

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:  # IPython shows the table
        printer.text(self.table())


def summarize(model: Any, input_shape: tuple[int, ...] | None = None,
              batch_size: int = 64) -> ModelSummary:
    """The summary of ``model`` for inputs of ``input_shape`` (one sample's; by default the
    model's ``input_shape``, or its first dense layer's inputs). A model that is not a
    ``Sequential`` is one row. A layer that cannot take its input raises its ``ShapeError``,
    naming the layer."""
    layers = getattr(model, "layers", None)
    if input_shape is None:
        input_shape = getattr(model, "input_shape", None)
    if input_shape is None and layers:
        weight = getattr(getattr(layers[0], "weight", None), "data", None)
        if weight is not None and weight.ndim == 2:
            input_shape = (weight.shape[0],)
    if input_shape is None:
        raise ValueError("the summary needs the shape of one input: pass input_shape")
    summary = ModelSummary(tuple(input_shape), batch_size)
    shape = tuple(input_shape)
    for position, layer in enumerate(layers if layers is not None else [model], 1):
        counts = getattr(layer, "multiply_adds", None)
        try:
            adds = int(counts(shape)) if callable(counts) else None
            out = output_shape(layer, shape)
        except ValueError as e:  # a ShapeError
            raise type(e)(f"layer {position} ({describe(layer)}): {e}") from None
        summary.rows.append(LayerRow(
            position, type(layer).__name__, describe(layer), out,
            sum(p.data.size for p in layer.parameters()),
            sum(a.size for _, a in layer.state_arrays()) if hasattr(layer, "state_arrays") else 0,
            adds))
        shape = out
    return summary


def output_shape(layer: Any, shape: tuple[int, ...]) -> tuple[int, ...]:
    """``layer.output_shape(shape)``, or, for a model that has none, its output's shape on one
    zero sample."""
    if hasattr(layer, "output_shape"):
        return tuple(layer.output_shape(shape))
    import numpy as np

    return tuple(np.shape(layer.forward(np.zeros((1, *shape), np.float32)))[1:])


def describe(layer: Any) -> str:
    describe_layer = getattr(layer, "describe", None)
    return describe_layer() if callable(describe_layer) else type(layer).__name__


def shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) or "scalar"


def size_text(size: int) -> str:
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            return f"{size / scale:.1f} {unit}"
    return f"{size} B"
