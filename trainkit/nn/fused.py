"""Fused passes: two layers of a model done as one, for fewer passes over a big activation.

``BatchNorm`` followed by a 2x2 ``MaxPool2d`` (a convnet's first block) is done pool first.
Batch norm is, per channel, ``y = a * (x - mean) + b`` with ``a = gamma / std``; for ``a > 0``
that is non-decreasing in ``x``, rounding included, so the largest ``y`` of a window is the
``y`` of its largest ``x``: pooling ``x`` first and normalising the quarter that is left gives
exactly the values of normalising everything and then pooling. Backward, the pooled gradient
is non-zero at one position a window, so batch norm's two sums (of ``g`` and ``g * (x - mean)``)
are taken on the pooled arrays, a quarter of the values; only the input gradient is computed at
every position. The statistics are the layers' own, over every value, in the same order, so
the forward pass and the running statistics are the unfused ones to the bit. The gradients
differ in the last bits (the sums run over fewer terms) and, where rounding makes two
normalised values of a window equal that were not equal before, in which of them the
gradient goes to (the larger ``x``; the unfused pair takes the first in row order): both are
the maximum's gradient.

A channel with ``a <= 0`` (a negative or zero ``gamma``) would need the smallest ``x``: a step
where any channel has one runs the two layers as they are. So does a subclass of either layer,
or a pool that is not 2x2 on an even-sized image. ``passes(layers)`` is the model's plan:
each layer, or a fused pair in place of two; the layers themselves are untouched, so a
summary, a checkpoint or an export sees them as before.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from trainkit.nn.module import Module
from trainkit.nn.normalization import BatchNorm
from trainkit.nn.pooling import MaxPool2d
from trainkit.nn.schedule import contiguous, over_batch, wait


class NormThenMaxPool:
    """``BatchNorm`` then a 2x2 ``MaxPool2d``, as one pass of a model (see the module)."""

    def __init__(self, norm: BatchNorm, pool: MaxPool2d) -> None:
        self.norm, self.pool = norm, pool
        self._fused = False

    @staticmethod
    def fits(norm: Module, pool: Module) -> bool:
        """Whether the pair is one this pass does (exactly these classes, 2x2 windows)."""
        return (type(norm) is BatchNorm and type(pool) is MaxPool2d
                and pool.kernel_size == pool.stride == 2)

    def in_model(self, backward: bool, array: np.ndarray) -> np.ndarray | None:
        if backward:
            return self.backward(array)
        return self.forward(array)

    def forward(self, x: np.ndarray) -> np.ndarray:
        norm, pool = self.norm, self.pool
        scale = norm.gamma.data  # the sign of gamma / std is gamma's
        self._fused = (x.ndim == 4 and not (x.shape[1] % 2 or x.shape[2] % 2)
                       and bool((scale > 0).all()))
        if not self._fused:
            normalised = norm.in_model(False, x)
            assert normalised is not None  # a forward pass gives an array
            pooled = pool.in_model(False, normalised)
            assert pooled is not None
            return pooled
        x = contiguous(x)
        pooled = pool.forward(x)  # the raw maxima, and where they are
        features = x.shape[-1]
        rows = x.size // features
        centred_pooled = norm.buffer("centred_pooled", pooled.shape, x.dtype)
        if norm.training:
            xs = x.reshape(len(x), -1)
            centred = norm.buffer("centred", xs.shape, x.dtype)
            total = norm.buffer("sums", (features,), x.dtype)

            def column_sums(x: np.ndarray, total: np.ndarray) -> None:
                norm.column_sums(x.reshape(-1, features), out=total)

            over_batch(norm, column_sums, xs, sums={"sums": total}, values=x.size)
            wait()
            mean = total / np.float32(rows)
            mean_row = norm.per_sample_row("mean_row", mean, x.shape)

            def centre_and_square(x: np.ndarray, centred: np.ndarray, total: np.ndarray) -> None:
                np.subtract(x, mean_row, out=centred)
                np.multiply(centred, centred, out=x)  # pooling has read x already
                column_sums(x, total)

            over_batch(norm, centre_and_square, xs, centred, sums={"sums": total},
                       values=x.size)
            wait()
            var = total / np.float32(rows)
            norm._update_running(mean, var, rows)
            self._centred = centred
        else:
            mean, var = norm.running_mean, norm.running_var  # type: ignore[assignment]
        inv_std = 1 / np.sqrt(var + norm.eps)
        shape = pooled.shape
        mean_row = norm.per_sample_row("pooled_mean_row", mean, shape)
        scale_row = norm.per_sample_row("pooled_scale_row", norm.gamma.data * inv_std, shape)
        beta_row = norm.per_sample_row("pooled_beta_row", norm.beta.data, shape)
        ps = pooled.reshape(len(pooled), -1)

        def normalise(p: np.ndarray, centred: np.ndarray) -> None:  # as BatchNorm's, a quarter
            np.subtract(p, mean_row, out=centred)
            np.multiply(centred, scale_row, out=p)
            p += beta_row

        over_batch(norm, normalise, ps, centred_pooled.reshape(ps.shape), values=ps.size)
        self._centred_pooled, self._inv_std, self._rows = centred_pooled, inv_std, rows
        return pooled

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        norm, pool = self.norm, self.pool
        if not self._fused:
            grad = pool.in_model(True, grad_output)
            return None if grad is None else norm.in_model(True, grad)
        grad_output = contiguous(grad_output)
        features = grad_output.shape[-1]
        gs = grad_output.reshape(len(grad_output), -1)
        centred_pooled, inv_std, rows = self._centred_pooled, self._inv_std, self._rows
        product = norm.buffer("product_pooled", gs.shape, gs.dtype)
        g_centred = norm.buffer("g_centred", (features,), gs.dtype)

        def sums(g: np.ndarray, centred: np.ndarray, product: np.ndarray, g_sum: np.ndarray,
                 g_centred: np.ndarray) -> None:  # zero elsewhere: the pooled values suffice
            np.multiply(g, centred, out=product)
            norm.column_sums(g.reshape(-1, features), out=g_sum)
            norm.column_sums(product.reshape(-1, features), out=g_centred)

        over_batch(norm, sums, gs, centred_pooled.reshape(gs.shape), product,
                   values=grad_output.size,
                   sums={"g_sums": norm.beta.grad, "product_sums": g_centred})
        wait()
        np.multiply(g_centred, inv_std, out=norm.gamma.grad)  # sum(g * x_hat)
        grad = pool.backward(grad_output)  # the pooled gradient back where the maxima were
        assert grad is not None
        shape = grad.shape
        scale_row = norm.per_sample_row("scale_row", norm.gamma.data * inv_std, shape)
        gs = grad.reshape(len(grad), -1)
        if not norm.training:
            over_batch(norm, lambda g: np.multiply(g, scale_row, out=g), gs, values=grad.size)
            return grad
        # dx = gamma * inv_std * (g - mean(g) - (x - mean) * inv_std^2 * mean(g * (x - mean)))
        g_mean = norm.per_sample_row("mean_row", norm.beta.grad / np.float32(rows), shape)
        k = norm.per_sample_row("k_row", inv_std * inv_std * g_centred / np.float32(rows), shape)
        product = norm.buffer("product", gs.shape, gs.dtype)

        def input_grad(g: np.ndarray, centred: np.ndarray, product: np.ndarray) -> None:
            np.multiply(centred, k, out=product)
            g -= product
            g -= g_mean
            g *= scale_row

        over_batch(norm, input_grad, gs, self._centred, product, values=grad.size)
        return grad


def passes(layers: Sequence[Module]) -> list[Any]:
    """The passes of a model of ``layers``: each layer, or a fused pass in place of a pair
    (``NormThenMaxPool``). Each has ``in_model(backward, array)``."""
    plan: list[Any] = []
    index = 0
    while index < len(layers):
        if index + 1 < len(layers) and NormThenMaxPool.fits(layers[index], layers[index + 1]):
            plan.append(NormThenMaxPool(layers[index], layers[index + 1]))  # type: ignore[arg-type]
            index += 2
        else:
            plan.append(layers[index])
            index += 1
    return plan
