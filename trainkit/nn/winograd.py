"""Winograd's minimal filtering: a stride-1 convolution with fewer multiplications.

The maths (Lavin and Gray, 2016). In one dimension, ``m`` outputs of a correlation with an
``r``-tap filter, ``y[i] = sum_k d[i + k] g[k]`` for ``i < m``, read ``a = m + r - 1`` inputs
and are

    y = A^T [(G g) * (B^T d)]                      (``*`` element by element)

with ``A^T`` (m x a), ``G`` (a x r) and ``B^T`` (a x a) from the Toom-Cook construction at
``a - 1`` points and infinity (``toom_cook``). In two dimensions a tile of ``a x a`` inputs
gives ``m x m`` outputs:

    Y = A^T [U * V] A,   U = G g G^T,   V = B^T d B.

Over channels, ``U * V`` becomes a sum over the input channels: for each of the ``a * a``
points, one matrix product ``V[point] (tiles, C_in) @ U[point] (C_in, C_out)``. For a 5x5
kernel, F(4x4, 5x5) makes 64 products per tile of 16 outputs where im2col's GEMM makes 400
(6.25x fewer multiply-adds), paid for by the transforms (small products by constant matrices)
and by float32 error about 6x larger (4e-6 of the largest output against 6e-7; a test bounds
it). Its points ``0, +-1, +-2, +-1/2`` matter: ``+-3`` instead of ``+-1/2`` gives 4e-4.

The backward pass is the adjoint of each linear step:

    dM = A dY A^T,   dU[point] = V[point]^T @ dM[point],   dg = G^T dU G,
    dV[point] = dM[point] @ U[point]^T,   dd = B dV B^T,

and ``dd`` of the overlapping tiles (stride ``m``) is added back where they were read.

The schedule: tiles go through the transforms ``chunk`` samples at a time, so that a chunk's
tiles, transforms and products stay in cache (the default convnet's second convolution,
forward and backward at batch 64 on one thread: 5.4 ms in chunks of 8 samples, 8.5 in chunks
of 16; im2col's 18). Chunks start at multiples of ``chunk`` in the batch, so that the forward
pass's ``V``, kept for the backward pass in chunk order, is laid out the same however the
schedule cuts the batch over threads.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
from numpy.lib.stride_tricks import as_strided

if TYPE_CHECKING:
    from trainkit.nn.conv import Conv2d

#: Outputs per tile side, by kernel size: F(4x4, 5x5), measured faster than F(2x2, 5x5)
#: (5.4 ms against 10.0 for the default convnet's layer) and as accurate; F(2x2, k x k)
#: elsewhere (not measured against im2col: ``auto`` picks only 5x5 kernels). An ``m`` must
#: divide ``k - 1``: the backward pass adds the tiles' gradients back in blocks of ``m`` rows
#: (F(4x4, 3x3) would need that loop rewritten).
TILES = {5: 4}

#: Toom-Cook points, in the order they are taken: small values and their inverses.
POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5, -0.5, 3.0, -3.0)


def toom_cook(m: int, r: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(A^T, G, B^T)`` of F(m, r) for the correlation ``y[i] = sum_k d[i + k] g[k]``, in
    float64: the first ``m + r - 2`` of ``POINTS``, and infinity."""
    a = m + r - 1
    if a > len(POINTS) + 1:
        raise ValueError(f"F({m}, {r}) needs {a - 1} points; there are {len(POINTS)}")
    points = POINTS[:a - 1]

    def product(roots: Sequence[float]) -> np.ndarray:  # coefficients of prod (x - root), low first
        coefficients = np.array([1.0])
        for root in roots:
            coefficients = np.polynomial.polynomial.polymul(coefficients, [-root, 1.0])
        return coefficients

    at, g, bt = np.zeros((m, a)), np.zeros((a, r)), np.zeros((a, a))
    for j, point in enumerate(points):
        others = [q for q in points if q != point]
        at[:, j] = point ** np.arange(m)
        g[j] = point ** np.arange(r) / np.prod([point - q for q in others])
        bt[j, :a - 1] = product(others)
    at[m - 1, a - 1] = g[a - 1, r - 1] = 1.0
    bt[a - 1] = product(points)
    return at, g, bt


class Winograd:
    """The convolution of ``layer`` (stride 1, an odd kernel ``k``, an even output size) as
    F(m x m, k x k): ``m`` is ``TILES[k]`` where the output divides by it, else 2."""

    #: Samples whose tiles are transformed and multiplied at a time (see the module's text).
    chunk = 8

    def __init__(self, layer: Conv2d) -> None:
        self.layer = layer
        self._matrices: dict[tuple[int, np.dtype], tuple[np.ndarray, ...]] = {}
        self.m = self.a = 0  # the tile of the last forward pass, which its backward pass uses

    def matrices(self, m: int, dtype: np.dtype) -> tuple[np.ndarray, ...]:
        """``(A^T, G, B^T, A, G^T, B)`` of F(m, k) in ``dtype`` (the data's: float32 in
        training)."""
        matrices = self._matrices.get((m, dtype))
        if matrices is None:
            exact = toom_cook(m, self.layer.kernel_size)
            at, g, bt = (np.ascontiguousarray(q, dtype=dtype) for q in exact)
            matrices = self._matrices[m, dtype] = (at, g, bt, *(np.ascontiguousarray(q.T)
                                                              for q in (at, g, bt)))
        return matrices

    def tile(self, output_shape: tuple[int, ...]) -> int:
        """Outputs per tile side for an output of ``(h, w, ...)``; 0 where none fits."""
        k = self.layer.kernel_size
        if self.layer.stride != 1 or k % 2 == 0:
            return 0
        for m in (TILES.get(k, 2), 2):
            if output_shape[0] % m == 0 and output_shape[1] % m == 0:
                return m
        return 0

    def pieces(self, rows: np.ndarray) -> list[tuple[int, int]]:
        """The samples ``rows`` (a part of the batch) cut at multiples of ``chunk``."""
        lo, hi, c = int(rows[0]), int(rows[-1]) + 1, self.chunk
        cuts = [lo, *range((lo // c + 1) * c, hi, c), hi]
        return list(zip(cuts, cuts[1:]))

    def saved(self, lo: int, hi: int) -> np.ndarray:
        """Samples ``lo:hi``'s part of the forward pass's ``V``: ``(a * a, tiles, C_in)``, a view
        of their chunk's block."""
        v, c, n = self._v, self.chunk, len(self._v)
        start = lo // c * c
        block = v[start:min(start + c, n)].reshape(self.a * self.a, -1, self._c_in)
        per_sample = block.shape[1] // (min(start + c, n) - start)
        return block[:, (lo - start) * per_sample:(hi - start) * per_sample]

    def rows(self, n: int) -> np.ndarray:
        rows = getattr(self, "_rows", None)
        if rows is None or len(rows) != n:
            rows = self._rows = np.arange(n)
        return rows

    def tiles(self, images: np.ndarray, t: int, t_w: int) -> np.ndarray:
        """``(a, a, n, t, t_w, C)``: input pixel ``(m ty + i, m tx + j)`` of tile ``(ty, tx)``,
        a view."""
        sn, sh, sw, sc = images.strides
        return as_strided(images, (self.a, self.a, len(images), t, t_w, images.shape[3]),
                          (sh, sw, sn, self.m * sh, self.m * sw, sc), writeable=False)

    def forward(self, x: np.ndarray, output_shape: tuple[int, int, int], m: int) -> np.ndarray:
        """The layer's output for ``x``: ``output_shape`` per sample, in tiles of ``m x m``
        (``tile``'s)."""
        layer = self.layer
        n, h, w, c_in = x.shape
        h_out, w_out, c_out = output_shape
        k = layer.kernel_size
        self.m, self.a = m, a = m, m + k - 1
        t, p = h_out // m, layer.padding
        dtype = x.dtype
        at, g, bt = self.matrices(m, dtype)[:3]
        u = layer.buffer("winograd_u", (a * a, c_in, c_out), dtype)  # U = G g G^T
        np.matmul(g, np.matmul(g, layer.weight.data.reshape(k, -1)).reshape(a, k, -1),
                  out=u.reshape(a, a, -1))
        self._u, self._c_in, self._tiles = u, c_in, (t, w_out // m)
        self._v = layer.buffer("winograd_v", (n, a * a * t * (w_out // m) * c_in), dtype)
        padded = layer.padded(x)
        out = layer.buffer("out", (n, h_out, w_out, c_out), x.dtype)
        bias = None
        if layer.bias is not None:
            bias = layer.per_sample_row("bias_row", layer.bias.data, out.shape)
        t_w = w_out // m

        def convolve(x: np.ndarray, padded: np.ndarray, rows: np.ndarray,
                     out: np.ndarray) -> None:
            if p:
                padded[:, p:p + h, p:p + w, :] = x
            first = int(rows[0])
            for lo, hi in self.pieces(rows):
                s = hi - lo
                d = layer.scratch("d", (a, a, s, t, t_w, c_in), dtype)
                np.copyto(d, self.tiles(padded[lo - first:hi - first], t, t_w))
                v1 = layer.scratch("v1", (a, a * s * t * t_w * c_in), dtype)
                np.matmul(bt, d.reshape(a, -1), out=v1)  # B^T d, by rows
                v = self.saved(lo, hi)
                np.matmul(bt, v1.reshape(a, a, -1), out=v.reshape(a, a, -1))  # ... B
                products = layer.scratch("m", (a * a, s * t * t_w, c_out), dtype)
                np.matmul(v, u, out=products)
                y1 = layer.scratch("y1", (m, a * s * t * t_w * c_out), dtype)
                np.matmul(at, products.reshape(a, -1), out=y1)  # A^T M, by rows
                y = layer.scratch("y", (m, m, s * t * t_w * c_out), dtype)
                np.matmul(at, y1.reshape(m, a, -1), out=y)  # ... A
                np.copyto(out[lo - first:hi - first].reshape(s, t, m, t_w, m, c_out),
                          y.reshape(m, m, s, t, t_w, c_out).transpose(2, 3, 0, 4, 1, 5))
            if bias is not None:
                samples = out.reshape(len(out), -1)
                samples += bias

        layer.over_batch(convolve, x, padded, self.rows(n), out)
        layer._input_shape = x.shape
        return out

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        layer, a, m = self.layer, self.a, self.m
        grad_output = layer.contiguous(grad_output)
        n, h_out, w_out, c_out = grad_output.shape
        _, h, w, c_in = layer._input_shape
        k, p = layer.kernel_size, layer.padding
        t, t_w = self._tiles
        dtype = grad_output.dtype
        at_t, g_t, bt_t = self.matrices(m, dtype)[3:]  # A, G^T, B
        u_t = self._u.transpose(0, 2, 1)
        grad_padded = None
        if layer.input_grad:
            grad_padded = layer.buffer("grad_padded", (n, h + 2 * p, w + 2 * p, c_in),
                                       grad_output.dtype)
        grad_u = layer.buffer("winograd_grad", (a * a, c_in, c_out), dtype)
        sums = {"winograd_grad": grad_u}
        if layer.bias is not None:
            sums["bias_grad"] = layer.bias.grad
        spans = a // m  # blocks of m rows (and columns) a tile reads

        def gradients(g: np.ndarray, rows: np.ndarray, grad_padded: np.ndarray | None,
                      grad_u: np.ndarray, bias_grad: np.ndarray | None = None) -> None:
            first = int(rows[0])
            for index, (lo, hi) in enumerate(self.pieces(rows)):
                s = hi - lo
                g1 = layer.scratch("g1", (m, m, s, t, t_w, c_out), dtype)
                np.copyto(g1, g[lo - first:hi - first].reshape(s, t, m, t_w, m, c_out)
                          .transpose(2, 4, 0, 1, 3, 5))
                m1 = layer.scratch("y1", (a, m * s * t * t_w * c_out), dtype)
                np.matmul(at_t, g1.reshape(m, -1), out=m1)  # A dY, by rows
                grad_m = layer.scratch("m", (a * a, s * t * t_w, c_out), dtype)
                np.matmul(at_t, m1.reshape(a, m, -1), out=grad_m.reshape(a, a, -1))  # A^T
                v = self.saved(lo, hi)
                share = grad_u if index == 0 else layer.scratch("grad_u", grad_u.shape, dtype)
                np.matmul(v.transpose(0, 2, 1), grad_m, out=share)
                if index:
                    grad_u += share
                if grad_padded is None:
                    continue
                grad_v = layer.scratch("grad_v", (a * a, s * t * t_w, c_in), dtype)
                np.matmul(grad_m, u_t, out=grad_v)
                d1 = layer.scratch("v1", (a, a * s * t * t_w * c_in), dtype)
                np.matmul(bt_t, grad_v.reshape(a, -1), out=d1)  # B dV, by rows
                grad_d = layer.scratch("d", (a, a, s * t * t_w * c_in), dtype)
                np.matmul(bt_t, d1.reshape(a, a, -1), out=grad_d)  # ... B^T
                # add each tile's gradient back where it was read: input row m ty + i, with
                # i = m i1 + i0, is row i0 of the block of m rows ty + i1
                target = grad_padded[lo - first:hi - first]
                target.fill(0)
                blocks = target.reshape(s, -1, m, target.shape[2] // m, m, c_in)
                grad_d = grad_d.reshape(spans, m, spans, m, s, t, t_w, c_in)
                for i1 in range(spans):
                    for j1 in range(spans):
                        blocks[:, i1:i1 + t, :, j1:j1 + t_w] += (
                            grad_d[i1, :, j1].transpose(2, 3, 0, 4, 1, 5))
            if bias_grad is not None:
                layer.column_sums(g.reshape(-1, c_out), out=bias_grad)

        def weight_grad() -> None:  # dg = G^T dU G, once the parts' dU are added up
            np.matmul(g_t, np.matmul(g_t, grad_u.reshape(a, -1)).reshape(k, a, -1),
                      out=layer.weight.grad.reshape(k, k, -1))

        layer.over_batch(gradients, grad_output, self.rows(n), grad_padded, sums=sums,
                         then=weight_grad)
        if grad_padded is None:
            return None
        return grad_padded[:, p:p + h, p:p + w, :] if p else grad_padded
