"""Where a training step of the default convnet goes, per layer, against a roofline.

    python benchmarks/layer_times.py              # 1 thread, batch 64, 200 steps
    python benchmarks/layer_times.py --threads 2

Each layer's forward and backward pass is timed on its own (the schedule's work waited for),
over random MNIST-shaped batches, median of the steps after a warm-up. Beside each time is what
the pass needs at least on this machine, the larger of

- its FLOPs (2 per multiply-add: a convolution's or a dense layer's products, once forward;
  twice backward, once for the weights and once for the input, once only for a first layer)
  at the GEMM rate of one 1024x1024 float32 product, per thread (a Winograd convolution's
  products are those of its transformed tiles; its transforms count as bytes); and
- its compulsory bytes (forward: read the input, write the output; backward: read the
  gradient and what the pass saved, write the input's gradient) at the copy bandwidth that
  numpy reaches on arrays of that size (they sit in cache or not, as the layer's do).

``time / needed`` says how far a pass is from this machine's limit, and so what is left to win
and where. Element-wise layers have no FLOPs here: their floor is their bytes.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from run import gemm_rate_single_core  # benchmarks/run.py, beside this file

from trainkit.nn import BatchNorm, Conv2d, Linear
from trainkit.nn.schedule import scheduled, wait
from trainkit.plugins.losses import CrossEntropy
from trainkit.plugins.models import CNN
from trainkit.plugins.optimizers import Adam
from trainkit.session.threads import blas_kernels, using_threads


def copy_bandwidth(nbytes: int, cache: dict[int, float]) -> float:
    """Bytes a second that ``np.copyto`` moves (read + write) between arrays of ``nbytes``."""
    size = max(nbytes // 4, 1024)
    if size not in cache:
        src = np.ones(size, np.float32)
        dst = np.empty_like(src)
        repeats = max(3, int(2e8 // (8 * size)))
        times = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(repeats):
                np.copyto(dst, src)
            times.append((time.perf_counter() - start) / repeats)
        cache[size] = 8 * size / min(times)
    return cache[size]


def passes(network, loss, optimizer, images, labels, times) -> None:
    """One training step, each layer's passes timed into ``times[(index, pass)]``."""
    x = images
    with scheduled():
        for index, layer in enumerate(network.layers):
            start = time.perf_counter()
            x = layer.in_model(False, x)
            wait()
            times.setdefault((index, "forward"), []).append(time.perf_counter() - start)
    start = time.perf_counter()
    loss.forward(x, labels)
    grad = loss.backward()
    times.setdefault(("loss", ""), []).append(time.perf_counter() - start)
    with scheduled():
        for index in reversed(range(len(network.layers))):
            if grad is None:
                break
            start = time.perf_counter()
            grad = network.layers[index].in_model(True, grad)
            wait()
            times.setdefault((index, "backward"), []).append(time.perf_counter() - start)
    start = time.perf_counter()
    optimizer.step()
    times.setdefault(("adam", ""), []).append(time.perf_counter() - start)


def needs(layer, shape_in, shape_out, batch: int, first: bool) -> dict[str, tuple[int, int]]:
    """(FLOPs, compulsory bytes) of the layer's forward and backward pass on ``batch``."""
    size_in = 4 * batch * int(np.prod(shape_in))
    size_out = 4 * batch * int(np.prod(shape_out))
    products = isinstance(layer, (Conv2d, Linear))
    flops = 2 * batch * layer.multiply_adds(shape_in) if products else 0
    if isinstance(layer, Conv2d) and layer.winograd_tile(shape_out):  # its products' FLOPs
        m, k = layer.winograd_tile(shape_out), layer.kernel_size
        tiles = (shape_out[0] // m) * (shape_out[1] // m)
        flops = 2 * batch * (m + k - 1) ** 2 * tiles * layer.weight.data[0, 0].size
    saved = size_in if products or isinstance(layer, BatchNorm) else 0
    grad_in = 0 if first else size_in
    return {"forward": (flops, size_in + size_out),
            "backward": (flops * (1 if first else 2), size_out + saved + grad_in)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()

    rng = np.random.default_rng(0)
    network = CNN().build(784, 10, rng, input_shape=(28, 28, 1))
    network.train()
    loss, optimizer = CrossEntropy(), Adam()
    optimizer.bind(network.params, network.grads)
    images = rng.random((args.batch, 28, 28, 1), dtype=np.float32)
    labels = rng.integers(0, 10, args.batch)
    times: dict = {}
    with using_threads(args.threads, network.splits_batch):
        for _ in range(20):  # warm-up: buffers, caches, the BLAS's threads
            passes(network, loss, optimizer, images, labels, {})
        for _ in range(args.steps):
            passes(network, loss, optimizer, images, labels, times)

    peak = gemm_rate_single_core() * args.threads
    cache: dict[int, float] = {}
    median = {key: statistics.median(values) for key, values in times.items()}
    total = sum(median.values())
    print(f"default convnet, batch {args.batch}, {args.threads} thread(s), "
          f"{blas_kernels()}; GEMM {peak / 1e9:.0f} GFLOP/s; "
          f"step {total * 1e3:.2f} ms (median of {args.steps})\n")
    print("| layer | pass | ms | share | GFLOP | MB | needed ms | time / needed |")
    print("|---|---|---|---|---|---|---|---|")
    shape = network.input_shape
    for index, layer in enumerate(network.layers):
        out_shape = layer.output_shape(shape)
        describe = layer.describe()
        if isinstance(layer, Conv2d) and layer.winograd_tile(out_shape):
            m = layer.winograd_tile(out_shape)
            describe += f" Winograd F({m}x{m}, {layer.kernel_size}x{layer.kernel_size})"
        for name, (flops, nbytes) in needs(layer, shape, out_shape, args.batch,
                                           index == 0).items():
            seconds = median.get((index, name))
            if seconds is None:
                continue
            needed = max(flops / peak, nbytes / (copy_bandwidth(nbytes, cache) * args.threads))
            print(f"| {index} {describe} | {name} | {seconds * 1e3:.3f} | "
                  f"{seconds / total:.1%} | {flops / 1e9:.3f} | {nbytes / 1e6:.2f} | "
                  f"{needed * 1e3:.3f} | {seconds / needed:.1f} |")
        shape = out_shape
    for key in (("loss", ""), ("adam", "")):
        print(f"| {key[0]} | | {median[key] * 1e3:.3f} | {median[key] / total:.1%} | | | | |")


if __name__ == "__main__":
    main()
