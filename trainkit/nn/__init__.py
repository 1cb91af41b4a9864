"""Neural-network building blocks in plain numpy: forward and backward side by side.

One module per layer family: ``layers`` (Linear and the activations), ``conv``, ``pooling``,
``reshape`` (Flatten), ``dropout`` and ``normalization`` (BatchNorm). Image batches are
channels-last: ``(N, height, width, channels)``.
"""

from trainkit.nn.conv import Conv2d
from trainkit.nn.dropout import Dropout
from trainkit.nn.layers import ACTIVATIONS, Linear, ReLU, Sigmoid, Tanh
from trainkit.nn.module import Module, Parameter, Sequential, ShapeError
from trainkit.nn.normalization import BatchNorm
from trainkit.nn.pooling import AvgPool2d, MaxPool2d
from trainkit.nn.reshape import Flatten

__all__ = ["ACTIVATIONS", "AvgPool2d", "BatchNorm", "Conv2d", "Dropout", "Flatten", "Linear",
           "MaxPool2d", "Module", "Parameter", "ReLU", "Sequential", "ShapeError", "Sigmoid",
           "Tanh"]
