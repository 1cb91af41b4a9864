"""Models: the multi-layer perceptron."""

from __future__ import annotations

from typing import Literal

from trainkit import hookimpl
from trainkit.errors import ConfigError


class MLP:
    """A multi-layer perceptron: Linear layers with an activation between them.

    Args:
        hidden: hidden layer sizes, comma-separated: ``100`` or ``256,128``.
        activation: the activation after every hidden layer.
    """

    def __init__(
        self,
        hidden: tuple[int, ...] = (100,),
        activation: Literal["sigmoid", "relu", "tanh"] = "sigmoid",
    ) -> None:
        hidden = tuple(hidden)
        if not hidden or any(h < 1 for h in hidden):
            raise ConfigError(f"hidden sizes must be positive integers, got {hidden}", "hidden")
        self.hidden, self.activation = hidden, activation

    def build(self, input_size: int, num_classes: int, rng):
        from trainkit.nn import ACTIVATIONS, Linear, Sequential

        if self.activation not in ACTIVATIONS:
            raise ConfigError(f"unknown activation {self.activation!r}", "activation")
        init = "he" if self.activation == "relu" else "glorot"
        sizes = [input_size, *self.hidden, num_classes]
        layers = []
        for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(Linear(n_in, n_out, rng, input_grad=i > 0, init=init))
            if i < len(sizes) - 2:
                layers.append(ACTIVATIONS[self.activation]())
        return Sequential(*layers)


@hookimpl
def register_models(register):
    register("mlp", MLP)
