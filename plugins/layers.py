"""Layer types for the ``sequential`` model, registered like any plugin's (``register_layers``).

Each is ``factory(input_shape, rng, **options)`` returning a ``trainkit.nn`` module; the options
are what a config file sets per layer::

    layers = [{type = "conv2d", channels = 32, kernel = 5}, "relu", {type = "max-pool", size = 2},
              "flatten", {type = "dense", units = 10}]
"""

from __future__ import annotations

from typing import Literal

from trainkit import hookimpl


def dense(input_shape, rng, units: int = 10, init: Literal["glorot", "he"] = "glorot"):
    """A fully connected layer: ``y = x @ W + b``.

    Args:
        units: output features.
        init: weight initialisation: glorot (for sigmoid and tanh) or he (for ReLU).
    """
    from trainkit.nn import Linear, ShapeError

    if units < 1:
        raise ShapeError(f"units must be at least 1, got {units}")
    if len(input_shape) != 1:
        raise ShapeError(f"needs flat input (features), got {'x'.join(map(str, input_shape))}; "
                         f"put a flatten before it")
    return Linear(input_shape[0], units, rng, init=init)


def conv2d(input_shape, rng, channels: int = 32, kernel: int = 3, stride: int = 1,
           padding: int = 0, init: Literal["he", "glorot"] = "he", bias: bool = True,
           algorithm: Literal["auto", "im2col", "winograd"] = "auto"):
    """A 2-D convolution over channels-last images.

    Args:
        channels: output channels.
        kernel: side of the square kernel.
        stride: step between two windows.
        padding: zero pixels added on every side.
        init: weight initialisation: he (for ReLU) or glorot.
        bias: add a learned bias per channel (not needed before batch norm).
        algorithm: how it is computed: im2col (one GEMM over the patches), winograd (fewer
            multiply-adds, float32 error about 6x im2col's; stride 1, an odd kernel, an even
            output size), or auto (Winograd for a 5x5 kernel over 8+ channels where it fits).
    """
    from trainkit.nn import Conv2d, ShapeError

    if len(input_shape) != 3:
        raise ShapeError(f"needs image input (height, width, channels), got "
                         f"{'x'.join(map(str, input_shape))}")
    return Conv2d(input_shape[-1], channels, kernel, rng, stride=stride, padding=padding,
                  init=init, bias=bias, algorithm=algorithm)


def max_pool(input_shape, rng, size: int = 2, stride: int = 0):
    """The largest value of each window.

    Args:
        size: side of the square window.
        stride: step between two windows (0: the window's size).
    """
    from trainkit.nn import MaxPool2d

    return MaxPool2d(size, stride or None)


def avg_pool(input_shape, rng, size: int = 2, stride: int = 0):
    """The mean of each window.

    Args:
        size: side of the square window.
        stride: step between two windows (0: the window's size).
    """
    from trainkit.nn import AvgPool2d

    return AvgPool2d(size, stride or None)


def flatten(input_shape, rng):
    """Each sample's values in one row, for dense layers after image layers."""
    from trainkit.nn import Flatten

    return Flatten()


def dropout(input_shape, rng, rate: float = 0.5):
    """Drop a share of the values while training (seeded from the run's seed).

    Args:
        rate: share of the values dropped.
    """
    from trainkit.nn import Dropout

    return Dropout(rate, rng.spawn(1)[0])


def batch_norm(input_shape, rng, momentum: float = 0.1, eps: float = 1e-5):
    """Batch normalisation of the last axis (features, or channels of images).

    Args:
        momentum: weight of each batch in the running statistics.
        eps: added to the variance, for stability.
    """
    from trainkit.nn import BatchNorm

    return BatchNorm(input_shape[-1] if input_shape else 0, momentum=momentum, eps=eps)


def leaky_relu(input_shape, rng, negative_slope: float = 0.01):
    """The leaky ReLU: x where positive, else negative_slope * x.

    Args:
        negative_slope: the slope below zero.
    """
    from trainkit.nn import LeakyReLU

    return LeakyReLU(negative_slope)


def gelu(input_shape, rng, approximate: Literal["none", "tanh"] = "none"):
    """The GELU, x * Phi(x), exact or in PyTorch's tanh form.

    Args:
        approximate: none (exact, with erf) or tanh.
    """
    from trainkit.nn import GELU

    return GELU(approximate)


def softmax(input_shape, rng):
    """The softmax over the last axis: probabilities out (the losses take logits, so a
    classifier ends without it)."""
    from trainkit.nn import Softmax

    return Softmax()


def activation(name: str):
    def factory(input_shape, rng):
        from trainkit.nn import ACTIVATIONS

        return ACTIVATIONS[name]()

    factory.__doc__ = f"The {name} activation, element by element."
    return factory


@hookimpl
def register_layers(register):
    register("dense", dense)
    register("conv2d", conv2d)
    register("max-pool", max_pool)
    register("avg-pool", avg_pool)
    register("flatten", flatten)
    register("dropout", dropout)
    register("batch-norm", batch_norm)
    for name in ("relu", "sigmoid", "tanh"):
        register(name, activation(name))
    register("softmax", softmax)
    register("leaky-relu", leaky_relu)
    register("gelu", gelu)
