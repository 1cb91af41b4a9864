"""Neural-network building blocks in plain numpy: forward and backward side by side."""

from trainkit.nn.layers import ACTIVATIONS, Linear, ReLU, Sigmoid, Tanh
from trainkit.nn.module import Module, Parameter, Sequential

__all__ = ["ACTIVATIONS", "Linear", "Module", "Parameter", "ReLU", "Sequential", "Sigmoid", "Tanh"]
