"""Neural-network building blocks in plain numpy: forward and backward side by side.

One module per layer family: ``layers`` (Linear and the activations), ``conv``, ``pooling``,
``reshape`` (Flatten), ``dropout`` and ``normalization`` (BatchNorm); ``optim`` is the
optimizers' base class. Image batches are channels-last: ``(N, height, width, channels)``.

Every name is imported when first asked for (``from trainkit.nn import Linear`` works as
usual): the optimizer plugins import ``trainkit.nn.optim`` when trainkit starts, and that must
not import numpy for ``trainkit --help``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainkit.nn.conv import Conv2d
    from trainkit.nn.dropout import Dropout
    from trainkit.nn.layers import (
        ACTIVATIONS,
        GELU,
        LeakyReLU,
        Linear,
        ReLU,
        Rescale,
        Sigmoid,
        Softmax,
        Tanh,
    )
    from trainkit.nn.module import Module, Parameter, Sequential, ShapeError
    from trainkit.nn.normalization import BatchNorm
    from trainkit.nn.optim import Optimizer
    from trainkit.nn.pooling import AvgPool2d, MaxPool2d
    from trainkit.nn.reshape import Flatten

_WHERE = {"Conv2d": "conv", "Dropout": "dropout", "ACTIVATIONS": "layers", "Linear": "layers",
          "ReLU": "layers", "Sigmoid": "layers", "Tanh": "layers", "Rescale": "layers",
          "LeakyReLU": "layers", "GELU": "layers", "Softmax": "layers",
          "Module": "module",
          "Parameter": "module", "Sequential": "module", "ShapeError": "module",
          "BatchNorm": "normalization", "Optimizer": "optim", "AvgPool2d": "pooling",
          "MaxPool2d": "pooling", "Flatten": "reshape"}

__all__ = ["ACTIVATIONS", "AvgPool2d", "BatchNorm", "Conv2d", "Dropout", "Flatten", "GELU",
           "LeakyReLU", "Linear", "Softmax",
           "MaxPool2d", "Module", "Optimizer", "Parameter", "ReLU", "Rescale", "Sequential",
           "ShapeError",
           "Sigmoid", "Tanh"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        import importlib

        return getattr(importlib.import_module(f"trainkit.nn.{_WHERE[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
