"""A trained model as an ONNX graph, in evaluation mode, for ONNX Runtime and the rest.

The graph takes what ``trainkit predict`` takes: the dataset's inputs with a dynamic batch
dimension (``input``: ``(N, 28, 28)`` uint8 pixels for MNIST, scaled by 1/255 inside the graph
as training scaled them; ``float_input`` takes floats already scaled). It gives ``logits``,
and ``probabilities`` (a softmax) when asked. Dropout is left out; batch norm uses its
running statistics.

trainkit's images are channels-last (NHWC) and ONNX's convolutions and pools channels-first
(NCHW): the graph transposes to NCHW before the first convolution, pool or image batch norm,
and back to NHWC before a flatten, so that a dense layer after it reads its features in the
order it was trained on. Between image layers nothing is transposed.

Each built-in layer has a converter here; a plugin's layer exports through its own
``to_onnx(graph, x) -> str`` (docs/plugins.md): ``graph`` is an ``OnnxGraph``, ``x`` the name
of its input tensor, and it returns the name of its output.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from trainkit.errors import ExportError
from trainkit.export import metadata, missing_extra
from trainkit.nn.summary import describe

#: ONNX Runtime has run opset 17 since 1.14 (2023); IR version 8 is the one that opset came
#: with. The onnx package writes its own newest IR version unless told: ONNX Runtimes older
#: than that package then refuse the file.
OPSET, IR_VERSION = 17, 8


class OnnxGraph:
    """The graph being built: ``constant`` adds a weight, ``node`` an operator, and
    ``channels_first``/``channels_last`` move an image tensor to the layout an operator needs.
    ``shape`` is one sample's shape as trainkit sees it (channels-last), ``layout`` the current
    tensor's (``"NHWC"``, ``"NCHW"``, or ``"flat"`` for features)."""

    def __init__(self, onnx: Any, shape: tuple[int, ...]) -> None:
        self.onnx = onnx
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []
        self.shape = tuple(shape)
        self.layout = "NHWC" if len(shape) == 3 else "flat"
        self._count = 0

    def unique(self, prefix: str) -> str:
        self._count += 1
        return f"{prefix}_{self._count}"

    def constant(self, prefix: str, array: Any) -> str:
        """Add ``array`` (float32 unless it is integer) as a named weight; returns its name."""
        array = np.asarray(array)
        if array.dtype.kind == "f":
            array = array.astype(np.float32)
        name = self.unique(prefix)
        self.initializers.append(self.onnx.numpy_helper.from_array(array, name))
        return name

    def node(self, op: str, inputs: Sequence[str], **attributes: Any) -> str:
        """Add operator ``op`` on ``inputs``; returns the name of its one output."""
        out = self.unique(op.lower())
        self.nodes.append(self.onnx.helper.make_node(op, list(inputs), [out], name=out,
                                                     **attributes))
        return out

    def channels_first(self, x: str) -> str:
        if self.layout == "NHWC":
            x, self.layout = self.node("Transpose", [x], perm=[0, 3, 1, 2]), "NCHW"
        return x

    def channels_last(self, x: str) -> str:
        if self.layout == "NCHW":
            x, self.layout = self.node("Transpose", [x], perm=[0, 2, 3, 1]), "NHWC"
        return x


def linear(layer: Any, graph: OnnxGraph, x: str) -> str:
    return graph.node("Gemm", [x, graph.constant("weight", layer.weight.data),
                               graph.constant("bias", layer.bias.data)])


def conv2d(layer: Any, graph: OnnxGraph, x: str) -> str:
    k, s, p = layer.kernel_size, layer.stride, layer.padding
    inputs = [graph.channels_first(x),  # (k, k, C_in, C_out) -> ONNX's (C_out, C_in, k, k)
              graph.constant("weight", layer.weight.data.transpose(3, 2, 0, 1))]
    if layer.bias is not None:
        inputs.append(graph.constant("bias", layer.bias.data))
    return graph.node("Conv", inputs, kernel_shape=[k, k], strides=[s, s], pads=[p, p, p, p])


def pool(op: str) -> Callable[[Any, OnnxGraph, str], str]:
    def convert(layer: Any, graph: OnnxGraph, x: str) -> str:
        k, s = layer.kernel_size, layer.stride
        return graph.node(op, [graph.channels_first(x)], kernel_shape=[k, k], strides=[s, s])

    return convert


def batch_norm(layer: Any, graph: OnnxGraph, x: str) -> str:
    if graph.layout == "NHWC":  # over the channels: ONNX's axis 1
        x = graph.channels_first(x)
    inputs = [x, *(graph.constant(name, value) for name, value in (
        ("gamma", layer.gamma.data), ("beta", layer.beta.data),
        ("running_mean", layer.running_mean), ("running_var", layer.running_var)))]
    return graph.node("BatchNormalization", inputs, epsilon=float(layer.eps))


def flatten(layer: Any, graph: OnnxGraph, x: str) -> str:
    x = graph.node("Flatten", [graph.channels_last(x)], axis=1)  # trainkit's feature order
    graph.layout = "flat"
    return x


def rescale(layer: Any, graph: OnnxGraph, x: str) -> str:  # a regression's target units
    x = graph.node("Mul", [x, graph.constant("scale", layer.scale)])
    return graph.node("Add", [x, graph.constant("shift", layer.shift)])


def gelu(layer: Any, graph: OnnxGraph, x: str) -> str:
    """ONNX's Gelu is opset 20: the formula in opset 17's operators."""
    half = graph.constant("half", np.float32(0.5))
    if layer.approximate == "tanh":
        cube = graph.node("Mul", [x, graph.node("Mul", [x, x])])
        inner = graph.node("Add", [x, graph.node("Mul", [cube, graph.constant(
            "c", np.float32(0.044715))])])
        t = graph.node("Tanh", [graph.node("Mul", [inner, graph.constant(
            "k", np.float32(np.sqrt(2 / np.pi)))])])
    else:
        t = graph.node("Erf", [graph.node("Mul", [x, graph.constant(
            "k", np.float32(1 / np.sqrt(2)))])])
    one_plus = graph.node("Add", [t, graph.constant("one", np.float32(1))])
    return graph.node("Mul", [graph.node("Mul", [x, half]), one_plus])


def element_wise(op: str) -> Callable[[Any, OnnxGraph, str], str]:
    return lambda layer, graph, x: graph.node(op, [x])


def built_in_converters() -> dict[type, Callable[[Any, OnnxGraph, str], str]]:
    from trainkit.nn import (
        GELU,
        AvgPool2d,
        BatchNorm,
        Conv2d,
        Dropout,
        Flatten,
        LeakyReLU,
        Linear,
        MaxPool2d,
        ReLU,
        Rescale,
        Sigmoid,
        Softmax,
        Tanh,
    )

    return {Linear: linear, Conv2d: conv2d, MaxPool2d: pool("MaxPool"),
            AvgPool2d: pool("AveragePool"), BatchNorm: batch_norm, Flatten: flatten,
            ReLU: element_wise("Relu"), Sigmoid: element_wise("Sigmoid"),
            Tanh: element_wise("Tanh"), Dropout: lambda layer, graph, x: x, Rescale: rescale,
            GELU: gelu, Softmax: lambda layer, graph, x: graph.node("Softmax", [x], axis=-1),
            LeakyReLU: lambda layer, graph, x: graph.node(
                "LeakyRelu", [x], alpha=float(layer.negative_slope))}


def to_bytes(trained: Any, *, probabilities: bool = False, float_input: bool = False) -> bytes:
    """``trained`` (a ``TrainedModel``) as a checked ONNX model, serialized."""
    try:
        import onnx
        import onnx.checker
        import onnx.helper
        import onnx.numpy_helper
    except ImportError as e:
        raise missing_extra("ONNX", "onnx", e) from None
    model = trained.model
    layers = getattr(model, "layers", None)
    if layers is None:
        raise ExportError(f"{trained.source}: the model ({type(model).__name__}) is not a stack "
                          f"of layers; only sequential models export to ONNX")
    shape = tuple(getattr(model, "input_shape", None) or (math.prod(trained.image_shape),))
    graph = OnnxGraph(onnx, shape)
    x, source_input = input_nodes(graph, trained, float_input)
    converters = built_in_converters()
    for position, layer in enumerate(layers, 1):
        convert = getattr(layer, "to_onnx", None)
        if convert is not None:
            x = convert(graph, x)
        elif type(layer) in converters:
            x = converters[type(layer)](layer, graph, x)
        else:
            raise ExportError(f"layer {position} ({describe(layer)}) cannot be exported to "
                              f"ONNX: its class {type(layer).__name__} has no to_onnx(graph, x) "
                              f"method (docs/plugins.md shows one)")
        graph.shape = tuple(layer.output_shape(graph.shape))
    if probabilities and trained.task == "regression":
        raise ExportError(f"{trained.source}: a regression gives values: it has no "
                          f"probabilities to export")
    width = int(graph.shape[0]) if graph.shape else len(trained.class_names)
    outputs = output_nodes(graph, x, width, probabilities, trained.task)
    onnx_model = onnx.helper.make_model(
        onnx.helper.make_graph(graph.nodes, "trainkit", [source_input], outputs,
                               graph.initializers),
        opset_imports=[onnx.helper.make_opsetid("", OPSET)], producer_name="trainkit",
        ir_version=IR_VERSION)
    onnx.helper.set_model_props(onnx_model, metadata(trained))
    try:
        onnx.checker.check_model(onnx_model, full_check=True)
    except onnx.checker.ValidationError as e:  # a plugin layer's to_onnx built a bad graph
        raise ExportError(f"{trained.source}: the ONNX graph does not check: "
                          f"{str(e).splitlines()[0]}") from None
    return onnx_model.SerializeToString()


def input_nodes(graph: OnnxGraph, trained: Any, float_input: bool) -> tuple[str, Any]:
    """The graph's input (the dataset's inputs, a dynamic batch) and the nodes that scale and
    shape it as training did; returns the name of the model's input tensor and the input."""
    onnx = graph.onnx
    table = trained.preprocessing
    if table is not None and table.get("kind") == "table":
        return table_input(graph, trained, table)
    pixels = tuple(trained.input_range) == (0.0, 1.0) and not float_input
    kind = onnx.TensorProto.UINT8 if pixels else onnx.TensorProto.FLOAT
    source = onnx.helper.make_tensor_value_info("input", kind, ["N", *trained.image_shape])
    low, high = trained.input_range
    source.doc_string = (
        f"{'uint8 pixels (0-255), divided by 255 inside the graph' if pixels else 'floats'}; "
        f"the model was trained on inputs in [{low:g}, {high:g}] of shape "
        f"{json.dumps(list(trained.image_shape))} (one per row of the batch)")
    x = "input"
    if pixels:  # as the DataLoader and trainkit predict scale them: float32(x) * float32(1/255)
        x = graph.node("Cast", [x], to=onnx.TensorProto.FLOAT)
        x = graph.node("Mul", [x, graph.constant("one_255th", np.float32(1 / 255))])
    target = np.array([-1, *graph.shape], dtype=np.int64)
    return graph.node("Reshape", [x, graph.constant("shape", target)]), source


def table_input(graph: OnnxGraph, trained: Any, table: dict[str, Any]) -> tuple[str, Any]:
    """A table's input: its numeric feature columns, in order, standardised inside the graph
    as training did (a table with category columns takes the encoded features, the schema in
    the metadata)."""
    onnx = graph.onnx
    columns = table["columns"]
    width = int(graph.shape[0])
    source = onnx.helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["N", width])
    if not all(c["kind"] == "numeric" for c in columns) or table.get("fill_missing") != "none":
        source.doc_string = ("the table's encoded features (trainkit.data.tables' schema, in "
                             "the metadata as preprocessing)")
        return "input", source
    source.doc_string = ("the table's feature columns as numbers, in this order: "
                         + ", ".join(c["name"] for c in columns)
                         + "; standardised inside the graph with the training rows' mean and "
                           "standard deviation")
    x = graph.node("Sub", ["input", graph.constant("mean", [c["mean"] for c in columns])])
    return graph.node("Div", [x, graph.constant("std", [c["std"] for c in columns])]), source


def output_nodes(graph: OnnxGraph, x: str, width: int, probabilities: bool,
                 task: str = "classification") -> list[Any]:
    """``logits`` (a regression's values: ``values``), and ``probabilities``: a softmax, or
    for a binary logit ``[1 - p, p]``."""
    helper, kind = graph.onnx.helper, graph.onnx.TensorProto.FLOAT
    name = "values" if task == "regression" else "logits"
    graph.nodes.append(helper.make_node("Identity", [x], [name], name=name))
    outputs = [helper.make_tensor_value_info(name, kind, ["N", width])]
    if probabilities and task == "binary":
        p = graph.node("Sigmoid", [name])
        q = graph.node("Sub", [graph.constant("one", np.ones(1, np.float32)), p])
        graph.nodes.append(helper.make_node("Concat", [q, p], ["probabilities"], axis=1,
                                            name="probabilities"))
        outputs.append(helper.make_tensor_value_info("probabilities", kind, ["N", 2]))
    elif probabilities:
        graph.nodes.append(helper.make_node("Softmax", [name], ["probabilities"], axis=1,
                                            name="probabilities"))
        outputs.append(helper.make_tensor_value_info("probabilities", kind, ["N", width]))
    return outputs
