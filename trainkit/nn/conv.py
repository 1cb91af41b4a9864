"""``Conv2d``: a 2-D convolution on channels-last (NHWC) batches, as im2col plus one GEMM (or,
for a 5x5 kernel over several channels, Winograd's algorithm: ``trainkit.nn.winograd``).

Layout: inputs are ``(N, H, W, C)``, weights ``(k, k, C_in, C_out)``. Channels-last makes every
step a plain matrix product: the ``k x k x C_in`` patch under each output pixel is one row of the
column matrix ``(N * H_out * W_out, k * k * C_in)``, and ``columns @ weight`` is the output, already
``(N, H_out, W_out, C_out)`` (computed a few images at a time, while their columns are in
cache). The backward pass is one GEMM for the weights and, for the input
gradient, one small GEMM per kernel offset added back where its pixels were read (col2im). The
first layer of a network skips that input gradient. Everything is done per part of the batch
(``trainkit.nn.schedule``): on several threads, each part runs its own GEMMs, and the weight
gradient is the sum of the parts' products, added in a fixed order.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from trainkit.nn.module import Module, Parameter, ShapeError
from trainkit.nn.winograd import Winograd

#: How ``Conv2d`` computes: see its docstring.
ALGORITHMS = ("auto", "im2col", "winograd")


def conv_output_size(size: int, kernel: int, stride: int, padding: int) -> int:
    return (size + 2 * padding - kernel) // stride + 1


class Conv2d(Module):
    """``out[n, y, x, :] = sum over the k x k patch at (y*stride, x*stride) of patch @ W + b``.

    ``init`` is ``"he"`` (uniform, for ReLU) or ``"glorot"`` (uniform), over the patch's fan-in
    ``k * k * in_channels`` (and fan-out ``k * k * out_channels``). Zero padding of ``padding``
    pixels on each side; ``input_grad=False`` skips the gradient of the input; ``bias=False``
    leaves the bias out (a batch norm right after it would cancel it anyway).

    ``algorithm`` is how it is computed: ``"im2col"`` (one GEMM over the patches),
    ``"winograd"`` (``trainkit.nn.winograd``: for a 5x5 kernel F(4x4, 5x5), 6.25x fewer
    multiply-adds, float32 error about 6x im2col's; stride 1, an odd kernel, an even output
    size), or ``"auto"``: Winograd where it was measured faster (a 5x5 kernel over 8 channels
    or more, where it tiles), im2col elsewhere.
    """

    scheduled = True  # forward and backward hand their work to the schedule
    splits_batch = True
    #: Output pixels whose patches are copied and multiplied at a time: each chunk's columns
    #: are still in cache for their GEMM (a step of the default convnet 3-4% faster than one
    #: copy and one GEMM per part of the batch, on 1 or 2 threads).
    chunk_rows = 512

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int,
                 rng: np.random.Generator, *, stride: int = 1, padding: int = 0,
                 init: str = "he", input_grad: bool = True, bias: bool = True,
                 algorithm: str = "auto") -> None:
        for name, value, low in (("in_channels", in_channels, 1), ("out_channels", out_channels, 1),
                                 ("kernel_size", kernel_size, 1), ("stride", stride, 1),
                                 ("padding", padding, 0)):
            if value < low:
                raise ShapeError(f"{name} must be at least {low}, got {value}")
        k = kernel_size
        fan_in, fan_out = k * k * in_channels, k * k * out_channels
        limit = np.sqrt(6.0 / fan_in) if init == "he" else np.sqrt(6.0 / (fan_in + fan_out))
        w = rng.uniform(-limit, limit, size=(k, k, in_channels, out_channels)).astype(np.float32)
        self.weight = Parameter(w, "weight")
        self.bias = Parameter(np.zeros(out_channels, dtype=np.float32), "bias") if bias else None
        self.kernel_size, self.stride, self.padding = k, stride, padding
        self.input_grad = input_grad
        self._padded: dict[tuple[int, ...], np.ndarray] = {}
        if algorithm not in ALGORITHMS:
            raise ShapeError(f"algorithm must be one of {', '.join(ALGORITHMS)}, got {algorithm!r}")
        if algorithm == "winograd" and (stride != 1 or k % 2 == 0):
            raise ShapeError(f"a Winograd convolution needs stride 1 and an odd kernel, got "
                             f"stride {stride} and kernel {k}; use algorithm='im2col'")
        self.algorithm = algorithm
        self._winograd = None
        if algorithm == "winograd" or (algorithm == "auto" and k == 5 and in_channels >= 8):
            self._winograd = Winograd(self)
        self._winograd_pass = False

    def parameters(self) -> Iterator[Parameter]:
        yield self.weight
        if self.bias is not None:
            yield self.bias

    def multiply_adds(self, input_shape: tuple[int, ...]) -> int:
        """Per sample: every weight, once for every output pixel."""
        h_out, w_out, _ = self.output_shape(input_shape)
        return h_out * w_out * self.weight.data.size

    def winograd_tile(self, output_shape: tuple[int, ...]) -> int:
        """Outputs per tile side of the Winograd convolution that computes an output of
        ``output_shape``; 0 when im2col does."""
        if self._winograd is None:
            return 0
        return self._winograd.tile(output_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        k, s, p = self.kernel_size, self.stride, self.padding
        c_in, c_out = self.weight.data.shape[2:]
        if len(input_shape) != 3:
            raise ShapeError(f"needs image input (height, width, channels), got "
                             f"{describe_shape(input_shape)}")
        h, w, c = input_shape
        if c != c_in:
            raise ShapeError(f"expects {c_in} input channels, got {c}")
        if k > h + 2 * p or k > w + 2 * p:
            raise ShapeError(f"kernel {k}x{k} is larger than its {h + 2 * p}x{w + 2 * p} "
                             f"(padded) input")
        shape = (conv_output_size(h, k, s, p), conv_output_size(w, k, s, p), c_out)
        if self.algorithm == "winograd" and not self.winograd_tile(shape):
            raise ShapeError(f"a Winograd convolution needs an even output size, got "
                             f"{shape[0]}x{shape[1]}; use algorithm='im2col'")
        return shape

    def padded(self, x: np.ndarray) -> np.ndarray:
        """The buffer for ``x`` with ``padding`` zeros around each image (``x`` itself without
        padding); its border stays zero, and the forward pass copies the images in."""
        p = self.padding
        if not p:
            return x
        n, h, w, c = x.shape
        shape = (n, h + 2 * p, w + 2 * p, c)
        padded = self._padded.get(shape)
        if padded is None:
            padded = self._padded[shape] = np.zeros(shape, dtype=x.dtype)
        return padded

    def forward(self, x: np.ndarray) -> np.ndarray:
        n = x.shape[0]
        k, s, p = self.kernel_size, self.stride, self.padding
        h_out, w_out, c_out = self.output_shape(x.shape[1:])
        tile = self.winograd_tile((h_out, w_out))  # an explicit "winograd" tiles (output_shape)
        self._winograd_pass = tile > 0
        if tile:
            return self._winograd.forward(x, (h_out, w_out, c_out), tile)  # type: ignore[union-attr]
        padded = self.padded(x)
        c_in = padded.shape[3]
        if c_in == 1:
            # one image channel: a column per kernel offset, each one strided copy of the
            # images with rows of w_out values (the general copy below moves k at a time)
            patches = self.buffer("columns", (k * k, n, h_out, w_out), x.dtype)
            columns = patches.transpose(1, 0, 2, 3)  # by sample: (n, k * k, h_out, w_out)
            windows = padded[..., 0]

            def im2col(images: np.ndarray, columns: np.ndarray) -> None:
                for i in range(k):
                    for j in range(k):
                        np.copyto(columns[:, i * k + j], images[:, i:i + s * (h_out - 1) + 1:s,
                                                                j:j + s * (w_out - 1) + 1:s])
        else:
            # one copy: the (n, y, x, c, i, j) window view, reordered to patch rows (a row's
            # j and c axes are contiguous in the input: k * c_in values at a time)
            columns = self.buffer("columns", (n, h_out, w_out, k, k, c_in), x.dtype)
            windows = sliding_window_view(padded, (k, k), axis=(1, 2))[:, ::s, ::s]
            windows = windows.transpose(0, 1, 2, 4, 5, 3)

            def im2col(images: np.ndarray, columns: np.ndarray) -> None:  # images: windows
                np.copyto(columns, images)

        out = self.buffer("out", (n, h_out, w_out, c_out), x.dtype)
        weight = self.weight.data.reshape(-1, c_out)
        bias = None
        if self.bias is not None:  # added to one row per sample (``per_sample_row``)
            bias = self.per_sample_row("bias_row", self.bias.data, out.shape)

        def convolve(x: np.ndarray, padded: np.ndarray, windows: np.ndarray,
                     columns: np.ndarray, out: np.ndarray) -> None:  # a few samples
            if p:  # windows is a view of padded
                padded[:, p:p + x.shape[1], p:p + x.shape[2], :] = x
            im2col(windows, columns)
            # (W.T @ columns.T).T: the same product, written straight into ``out``, and 8%
            # faster in OpenBLAS for these tall-and-narrow shapes than columns @ W
            np.matmul(weight.T, self.patch_matrix(columns), out=out.reshape(-1, c_out).T)
            if bias is not None:
                samples = out.reshape(len(out), -1)
                samples += bias

        # several images' patches at a time: copied, then multiplied while still in cache (a
        # one-channel image's few columns are copied in one go: per chunk, the copies cost more)
        chunk = n if c_in == 1 else max(1, self.chunk_rows // (h_out * w_out))

        def in_chunks(*arrays: np.ndarray) -> None:
            for start in range(0, len(arrays[0]), chunk):
                convolve(*(a[start:start + chunk] for a in arrays))

        self.over_batch(in_chunks, x, padded, windows, columns, out)
        self._columns, self._input_shape = columns, x.shape
        return out

    @staticmethod
    def patch_matrix(columns: np.ndarray) -> np.ndarray:
        """Samples' columns (a slice of the forward pass's) as the ``(k * k * C_in, pixels)``
        matrix whose columns are their patches: a view."""
        if columns.ndim == 4:  # one channel: (n, k * k, h_out, w_out)
            return columns.transpose(1, 0, 2, 3).reshape(columns.shape[1], -1)
        return columns.reshape(-1, math.prod(columns.shape[3:])).T

    def backward(self, grad_output: np.ndarray) -> np.ndarray | None:
        if self._winograd_pass:
            return self._winograd.backward(grad_output)  # type: ignore[union-attr]
        grad_output = self.contiguous(grad_output)
        n, h_out, w_out, c_out = grad_output.shape
        k, s, p = self.kernel_size, self.stride, self.padding
        _, h, w, c_in = self._input_shape
        weight = self.weight.data
        grad_padded = share = None
        if self.input_grad:
            grad_padded = self.buffer("grad_padded", (n, h + 2 * p, w + 2 * p, c_in),
                                      grad_output.dtype)
            share = self.buffer("share", (n, h_out * w_out, c_in), grad_output.dtype)
        sums = {"weight_grad": self.weight.grad.reshape(-1, c_out)}
        if self.bias is not None:
            sums["bias_grad"] = self.bias.grad

        def gradients(g: np.ndarray, columns: np.ndarray, grad_padded: np.ndarray | None,
                      share: np.ndarray | None, weight_grad: np.ndarray,
                      bias_grad: np.ndarray | None = None) -> None:
            g = g.reshape(-1, c_out)
            np.matmul(self.patch_matrix(columns), g, out=weight_grad)
            if bias_grad is not None:
                self.column_sums(g, out=bias_grad)
            if grad_padded is None or share is None:
                return
            # col2im, one kernel offset at a time: the gradient of the pixels each patch read
            # at offset (i, j) is one small GEMM, added where they were read (a single GEMM into
            # the whole column matrix costs the same FLOPs, but adding back its strided slices
            # is slow)
            grad_padded.fill(0)
            share = share.reshape(-1, c_in)
            for i in range(k):
                for j in range(k):
                    np.matmul(g, weight[i, j].T, out=share)
                    grad_padded[:, i:i + s * (h_out - 1) + 1:s, j:j + s * (w_out - 1) + 1:s,
                                :] += share.reshape(-1, h_out, w_out, c_in)

        self.over_batch(gradients, grad_output, self._columns, grad_padded, share,
                              sums=sums)
        if grad_padded is None:
            return None
        return grad_padded[:, p:p + h, p:p + w, :] if p else grad_padded

    def describe(self) -> str:
        k, _, c_in, c_out = self.weight.data.shape
        extra = f", stride={self.stride}" if self.stride != 1 else ""
        extra += f", padding={self.padding}" if self.padding else ""
        extra += ", no bias" if self.bias is None else ""
        return f"Conv2d({c_in}, {c_out}, {k}x{k}{extra})"


def describe_shape(shape: tuple[int, ...]) -> str:
    return "x".join(map(str, shape)) if shape else "a scalar"
