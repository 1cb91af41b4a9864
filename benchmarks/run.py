"""trainkit's performance, as ratios measured within one run (absolute times drift on shared
machines). Prints one table; BENCHMARKS.md holds the latest numbers.

    TRAINKIT_DATA_DIR=../shared/data python benchmarks/run.py             # everything
    TRAINKIT_DATA_DIR=../shared/data python benchmarks/run.py --quick     # fewer repeats
    TRAINKIT_DATA_DIR=../shared/data python benchmarks/run.py --convnet   # the convnet section

Configuration: the notebook's MLP 784-100-10 with sigmoid, Adam (lr 1e-3), batch 64, MNIST; and
the default `--model cnn` (LeNet-style: conv 1->32 5x5, batch norm, ReLU, max-pool 2, conv
32->64 5x5, batch norm, ReLU, max-pool 2, dropout 0.25, dense 1024->128, batch norm, ReLU,
dropout 0.25, dense 128->10), Adam, batch 64, 20,000 samples.
PyTorch is compared whenever it can be imported: `pip install torch==2.13.0` (a CPU build from
local disk on the project's machines).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import importlib.metadata
import importlib.util
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from trainkit import hookimpl
from trainkit.data import DataLoader
from trainkit.plugins.datasets import MNIST
from trainkit.plugins.losses import CrossEntropy
from trainkit.plugins.metrics import Accuracy
from trainkit.plugins.models import CNN, MLP
from trainkit.plugins.optimizers import Adam
from trainkit.session.threads import (
    available_cores,
    blas_kernels,
    calibrate,
    default_threads,
    model_state_kept,
    training_step_probe,
    using_threads,
)


def _load_from_beside(filename: str, name: str):
    """``name`` from a script beside this one (benchmarks/ is not a package)."""
    path = Path(__file__).resolve().with_name(filename)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


train_reference = _load_from_beside("reference_loop.py", "train_reference")

ROWS: list[tuple[str, str, str]] = []


def row(name: str, value: str, note: str = "") -> None:
    ROWS.append((name, value, note))
    print(f"  {name:<58} {value:>12}  {note}", flush=True)


def default_plugins():
    """progress (forced on, drawing to a null device), console, nan-guard, history."""
    from trainkit.plugins.console import Console
    from trainkit.plugins.history import HistoryFiles
    from trainkit.plugins.nan_guard import NanGuard
    from trainkit.plugins.progress import Progress

    return [Progress(force=True), Console(), NanGuard(), HistoryFiles()]


class EpochTimer:
    """Records when every epoch starts (and, appended by the caller, when the last one ends)."""

    def __init__(self) -> None:
        self.times: list[float] = []

    @hookimpl
    def on_epoch_start(self):
        self.times.append(time.perf_counter())


def build_model(name: str):
    rng = np.random.default_rng(0)
    if name == "cnn":
        return CNN().build(784, 10, rng, input_shape=(28, 28, 1))
    return MLP().build(784, 10, rng)


def trainkit_epoch_seconds(images, labels, *, threads: int, epochs: int, batch: int = 64,
                           plugins: bool = True, run_dir: Path | None = None,
                           model: str = "mlp", metrics=None) -> float:
    """Median seconds of one training epoch (no validation) after a warm-up epoch, with
    ``metrics`` (default: accuracy, the default metric)."""
    from trainkit.loop.trainer import Trainer
    from trainkit.plugin.manager import get_plugin_manager

    network = build_model(model)
    trainer = Trainer(network, CrossEntropy(), Adam(), [Accuracy()] if metrics is None else metrics,
                      default_plugins() if plugins else [],
                      plugin_manager=get_plugin_manager(), run_dir=run_dir)
    loader = DataLoader(images, labels, batch, shuffle=True, rng=np.random.default_rng(1),
                        sample_shape=network.input_shape)
    timer = EpochTimer()
    trainer.plugin_manager.register(timer, name="bench-timer")
    sink = io.StringIO()
    with using_threads(threads, network.splits_batch), contextlib.redirect_stderr(sink), \
            contextlib.redirect_stdout(sink):
        trainer.fit(loader, None, epochs=1 + epochs)
        timer.times.append(time.perf_counter())
    durations = np.diff(timer.times)[1:]  # drop the warm-up epoch
    return float(np.median(durations))


def reference_epoch_seconds(images, labels, *, threads: int, epochs: int, batch: int = 64) -> float:
    with threadpool_limits(threads, user_api="blas"):
        train_reference(images, labels, epochs=1, batch=batch)
        times = []
        for _ in range(epochs):
            start = time.perf_counter()
            train_reference(images, labels, epochs=1, batch=batch)
            times.append(time.perf_counter() - start)
    return float(np.median(times))


torch_network = _load_from_beside("torch_cnn.py", "torch_network")


def torch_epoch_seconds(images, labels, *, threads: int, epochs: int, batch: int = 64,
                        model: str = "mlp") -> float:
    """Median seconds of one PyTorch training epoch after a warm-up epoch, the same way."""
    import torch

    torch.set_num_threads(threads)
    torch.manual_seed(0)
    shape = (len(images), 1, 28, 28) if model == "cnn" else (len(images), -1)
    x_all = torch.from_numpy(images.reshape(shape))
    y_all = torch.from_numpy(labels.astype(np.int64))
    network = torch_network(model)
    optimizer = torch.optim.Adam(network.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(1)

    def epoch():
        order = torch.randperm(len(y_all), generator=generator)
        for start in range(0, len(y_all), batch):
            index = order[start:start + batch]
            x = x_all[index].float().div_(255)
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(network(x), y_all[index])
            loss.backward()
            optimizer.step()

    epoch()
    times = []
    for _ in range(epochs):
        start = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def convnet_section(images, labels, epochs: int, rounds: int) -> None:
    """trainkit's default convnet against PyTorch's, at 1 thread and at trainkit's default count
    (every core), alternating the two sides and reporting the median ratio."""
    images, labels = images[:20_000], labels[:20_000]
    cores = default_threads(split_batch=True)
    have_torch = importlib.util.find_spec("torch") is not None
    for threads, label in sorted({(1, "1 thread"), (cores, f"default: {cores} thread(s)")}):
        mine, theirs = [], []
        for _ in range(rounds):
            mine.append(trainkit_epoch_seconds(images, labels, threads=threads, epochs=epochs,
                                               model="cnn"))
            if have_torch:
                theirs.append(torch_epoch_seconds(images, labels, threads=threads,
                                                  epochs=epochs, model="cnn"))
        row(f"convnet, trainkit, {label}: s/epoch", f"{statistics.median(mine):.2f}",
            f"{len(labels) / statistics.median(mine):,.0f} samples/s")
        if not have_torch:
            row("PyTorch", "skipped", "not installed: pip install torch==2.13.0")
            continue
        row(f"convnet, PyTorch CPU, {label}: s/epoch", f"{statistics.median(theirs):.2f}",
            f"torch {importlib.metadata.version('torch')}")
        row(f"  ratio trainkit / PyTorch ({label})",
            f"{statistics.median(m / t for m, t in zip(mine, theirs)):.3f}",
            f"target <= 0.80 (median of {rounds} alternations)")


@contextlib.contextmanager
def competing_process():
    """Another CPU-bound process on the machine for the duration of the block."""
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    time.sleep(0.5)
    try:
        yield
    finally:
        spinner.kill()
        spinner.wait()


def gemm_rate_single_core() -> float:
    """FLOP/s of a large float32 matrix product on one thread."""
    a = np.random.default_rng(0).standard_normal((1024, 1024), dtype=np.float32)
    b = np.random.default_rng(1).standard_normal((1024, 1024), dtype=np.float32)
    out = np.empty_like(a)
    with threadpool_limits(1, user_api="blas"):
        np.matmul(a, b, out=out)
        best = min(_time(lambda: np.matmul(a, b, out=out)) for _ in range(5))
    return 2 * 1024**3 / best


def _time(function) -> float:
    start = time.perf_counter()
    function()
    return time.perf_counter() - start


def flops_per_sample(hidden: int = 100, features: int = 784, classes: int = 10) -> int:
    forward = 2 * (features * hidden + hidden * classes)
    backward = 2 * (features * hidden + hidden * classes) + 2 * hidden * classes  # no dx for layer 1
    return forward + backward


def startup_seconds(args: list[str], repeats: int) -> float:
    """Median wall time of the whole ``trainkit`` process (the installed console script)."""
    script = Path(sys.executable).with_name("trainkit")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "trainkit"]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([*command, *args], capture_output=True, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def python_startup_seconds(repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def peak_rss_mib_of_full_run(data_dir: str) -> tuple[float, str]:
    """Peak RSS of a 10-epoch MNIST `trainkit run` with its default plugins, as `/usr/bin/time -v`
    reports it (run this before anything big is imported here: a forked child inherits our RSS
    until it execs, and getrusage would count that)."""
    import re
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory() as out:
        command = [sys.executable, "-m", "trainkit", "run", "--data-dir", data_dir, "--epochs",
                   "10", "--out", out]
        if shutil.which("time") or Path("/usr/bin/time").exists():
            done = subprocess.run(["/usr/bin/time", "-v", *command], capture_output=True,
                                  text=True, check=True)
            kib = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr)[1])
            return kib / 1024, "/usr/bin/time -v"
        subprocess.run(command, capture_output=True, check=True)
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, "getrusage"


def best_times(images, labels, epochs: int, threads: list[int]) -> dict[str, float]:
    """Best-thread-count epoch seconds of the floor, trainkit and (when importable) PyTorch."""
    times = {
        "floor": min(reference_epoch_seconds(images, labels, threads=t, epochs=epochs) for t in threads),
        "trainkit": min(trainkit_epoch_seconds(images, labels, threads=t, epochs=epochs) for t in threads),
    }
    if importlib.util.find_spec("torch") is not None:
        times["torch"] = min(torch_epoch_seconds(images, labels, threads=t, epochs=epochs) for t in threads)
    return times


def without_forced_kernels(epochs: int) -> None:
    """When OPENBLAS_CORETYPE holds OpenBLAS to a kernel set, measure again in a child process
    without it, so the table shows what OpenBLAS's own pick for this CPU would give."""
    forced = os.environ.get("OPENBLAS_CORETYPE")
    if not forced:
        return
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    done = subprocess.run([sys.executable, __file__, "--child-best-times", str(epochs)], env=env,
                          capture_output=True, text=True, check=True)
    child = json.loads(done.stdout.splitlines()[-1])
    print(f"\nOPENBLAS_CORETYPE={forced} is set. In a child process without it ({child['kernels']}):")
    report_best(child["times"])


def report_best(times: dict[str, float]) -> None:
    """Rows for ``best_times``: each side at its best thread count, and the ratios."""
    row("reference loop, best threads: s/epoch", f"{times['floor']:.3f}")
    row("trainkit + default plugins, best threads: s/epoch", f"{times['trainkit']:.3f}")
    row("  ratio trainkit / floor", f"{times['trainkit'] / times['floor']:.3f}", "target <= 1.10")
    if "torch" not in times:
        row("PyTorch", "skipped", "not installed: pip install torch==2.13.0")
        return
    row("PyTorch CPU, best threads: s/epoch", f"{times['torch']:.3f}",
        f"torch {importlib.metadata.version('torch')}")
    row("  ratio trainkit / PyTorch", f"{times['trainkit'] / times['torch']:.3f}", "target <= 0.40")

def threads_section(images, labels, epochs: int) -> None:
    """The default thread count (fixed by the model: 1 for the MLP, every core for the convnet)
    and ``--threads auto`` (timed at the start), against the best fixed count, idle and beside
    one CPU-bound process."""
    cores = available_cores()
    counts = sorted({1, cores})
    for label, context in (("idle", contextlib.nullcontext()), ("one competing process",
                                                                 competing_process())):
        with context:
            for model, n in (("mlp", len(labels)), ("cnn", 4000)):
                network = build_model(model)
                optimizer = Adam()
                optimizer.bind(network.params, network.grads)
                with model_state_kept(network):
                    picked = calibrate(training_step_probe(network, CrossEntropy(), 64, 784,
                                                           optimizer),
                                       split_batch=network.splits_batch)
                fixed = {t: trainkit_epoch_seconds(images[:n], labels[:n], threads=t,
                                                   epochs=epochs, model=model) for t in counts}
                best = min(fixed.values())
                default = default_threads(network.splits_batch)
                detail = ", ".join(f"{t} thr {s:.3f}s" for t, s in fixed.items())
                row(f"{label}, {model}: default {default} thr / best", f"{fixed[default] / best:.3f}",
                    detail)
                row(f"{label}, {model}: auto picks {picked} thr / best",
                    f"{fixed[picked] / best:.3f}", "")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repeats")
    parser.add_argument("--convnet", action="store_true", help="only the convnet section")
    parser.add_argument("--threads", action="store_true", help="only the thread-count section")
    parser.add_argument("--startup", action="store_true", help="only the start-up times")
    parser.add_argument("--mlp", action="store_true",
                        help="only the MLP against its floor and the metrics' cost")
    parser.add_argument("--child-best-times", type=int, metavar="EPOCHS", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_best_times:
        splits = MNIST().load()
        times = best_times(splits.train_images, splits.train_labels, args.child_best_times,
                           sorted({1, available_cores()}))
        print(json.dumps({"kernels": blas_kernels(), "times": times}))
        return
    epochs = 2 if args.quick else 4
    if args.startup:
        for command in (["--help"], ["--version"], ["plugins"], ["run", "--help"]):
            startup_seconds(command, 1)  # the entry-point cache is written on a first run
        row("python -c pass (the interpreter alone)", f"{python_startup_seconds(31):.3f}", "s")
        for command in (["--help"], ["--version"], ["plugins"], ["run", "--help"]):
            row(f"trainkit {' '.join(command)}", f"{startup_seconds(command, 31):.3f}",
                "s (median of 31), target <= 0.20 for --help")
        return
    if args.threads:
        splits = MNIST().load()
        print(f"trainkit thread-count benchmark; {available_cores()} cores; BLAS: {blas_kernels()}")
        threads_section(splits.train_images, splits.train_labels, epochs=1 if args.quick else 2)
        return
    if args.convnet:
        splits = MNIST().load()
        print(f"trainkit convnet benchmark; {available_cores()} cores; BLAS: {blas_kernels()}")
        convnet_section(splits.train_images, splits.train_labels, epochs=1 if args.quick else 2,
                        rounds=2 if args.quick else 3)
        return
    data_dir = MNIST().data_dir
    memory = None if args.mlp or not data_dir else peak_rss_mib_of_full_run(str(data_dir))
    splits = MNIST().load()
    images, labels = splits.train_images, splits.train_labels
    n = len(labels)
    cores = available_cores()
    all_threads = sorted({1, cores})
    print(f"trainkit benchmarks: MLP 784-100-10 sigmoid, Adam, batch 64, MNIST ({n:,} samples); "
          f"{cores} cores; median of {epochs} epochs after a warm-up; BLAS: {blas_kernels()}")
    rounds = 2 if args.quick else 3
    mlp_section(images, labels, epochs, rounds, all_threads)
    metrics_section(images, labels, epochs, rounds)
    if args.mlp:
        return
    print("\nAgainst PyTorch CPU, each side at its best thread count (training only):")
    report_best(best_times(images, labels, epochs, all_threads))
    without_forced_kernels(epochs)
    remaining_sections(args, images, labels, epochs, memory)


def alternate(measure: dict, rounds: int) -> dict[str, list[float]]:
    """Each measurement ``rounds`` times, the order rotating each round, so that no side always
    runs first or last (the machine drifts by more than the few percent measured)."""
    times: dict[str, list[float]] = {name: [] for name in measure}
    for r in range(rounds):
        names = list(measure)
        for name in names[r % len(names):] + names[:r % len(names)]:
            times[name].append(measure[name]())
    return times


def metrics_section(images, labels, epochs: int, rounds: int) -> None:
    """What computing metrics costs a training step: none, accuracy (the default), and F1 with
    the confusion matrix (states of 30 and 100 numbers), 1 thread, default plugins."""
    from trainkit.plugins.metrics import F1, ConfusionMatrix

    print("\nThe metrics' cost per training step (1 thread, default plugins):")
    common = {"threads": 1, "epochs": epochs}
    times = alternate({
        "none": functools.partial(trainkit_epoch_seconds, images, labels, metrics=[], **common),
        "accuracy": functools.partial(trainkit_epoch_seconds, images, labels, **common),
        "f1": functools.partial(trainkit_epoch_seconds, images, labels,
                                metrics=[F1(), ConfusionMatrix()], **common),
    }, rounds)
    for name in ("accuracy", "f1"):
        ratio = statistics.median(m / b for m, b in zip(times[name], times["none"]))
        label = "--metric accuracy" if name == "accuracy" else "--metric f1 --metric confusion-matrix"
        row(f"  ratio {label} / no metric", f"{ratio:.3f}",
            f"{statistics.median(times[name]):.3f} s/epoch; median of {rounds} alternations")


def mlp_section(images, labels, epochs: int, rounds: int, all_threads: list[int]) -> None:
    n = len(labels)
    print("\nAgainst the numpy floor (benchmarks/reference_loop.py), same thread count:")
    for threads in all_threads:
        # Alternate the three a few times and take the median of each ratio: the machine drifts
        # by more than the few percent measured here between one minute and the next. The order
        # rotates each round, so that no side always runs first or last.
        common = {"threads": threads, "epochs": epochs}
        measure = {
            "floor": functools.partial(reference_epoch_seconds, images, labels, **common),
            "mine": functools.partial(trainkit_epoch_seconds, images, labels, **common),
            "bare": functools.partial(trainkit_epoch_seconds, images, labels, plugins=False, **common),
        }
        times = alternate(measure, rounds)
        floors, mines, bares = times["floor"], times["mine"], times["bare"]
        floor, mine, bare = (statistics.median(times) for times in (floors, mines, bares))
        vs_floor = statistics.median(m / f for m, f in zip(mines, floors))
        vs_bare = statistics.median(m / b for m, b in zip(mines, bares))
        row(f"reference loop, {threads} thread(s): s/epoch", f"{floor:.3f}", f"{n / floor:,.0f} samples/s")
        row(f"trainkit + default plugins, {threads} thread(s): s/epoch", f"{mine:.3f}",
            f"{n / mine:,.0f} samples/s")
        row(f"trainkit, no plugins, {threads} thread(s): s/epoch", f"{bare:.3f}")
        row(f"  ratio trainkit / floor ({threads} thr)", f"{vs_floor:.3f}",
            f"target <= 1.10 (median of {rounds} alternations)")
        row(f"  ratio default plugins / no plugins ({threads} thr)", f"{vs_bare:.3f}",
            f"target <= 1.03 (median of {rounds} alternations)")


def remaining_sections(args, images, labels, epochs: int, memory) -> None:
    n = len(labels)
    print("\nConvnet against PyTorch CPU, same network and thread count, 20,000 samples:")
    convnet_section(images, labels, epochs=1 if args.quick else 2, rounds=2 if args.quick else 3)

    threads_section(images, labels, epochs)

    print("\nScale, 1 BLAS thread: samples/s and share of the single-core float32 GEMM rate:")
    rate = gemm_rate_single_core()
    row("single-core float32 GEMM (1024^3)", f"{rate / 1e9:.1f}", "GFLOP/s")
    for batch in (16, 64, 256, 1024):
        seconds = trainkit_epoch_seconds(images, labels, threads=1, epochs=max(epochs // 2, 1),
                                         batch=batch, plugins=True)
        share = n * flops_per_sample() / seconds / rate
        row(f"batch {batch}: samples/s", f"{n / seconds:,.0f}", f"{share:.0%} of GEMM peak")
    for size in (10_000, 30_000, 60_000):
        seconds = trainkit_epoch_seconds(images[:size], labels[:size], threads=1, epochs=epochs)
        row(f"{size:,} samples: s/epoch", f"{seconds:.3f}", f"{seconds / size * 1e6:.2f} us/sample")

    print("\nStart-up (median wall time) and memory (measured first, in a clean child process):")
    repeats = 5 if args.quick else 11
    row("python -c pass (the interpreter alone)", f"{python_startup_seconds(repeats):.3f}", "s")
    for command in (["--help"], ["--version"], ["plugins"], ["run", "--help"]):
        row(f"trainkit {' '.join(command)}", f"{startup_seconds(command, repeats):.3f}",
            "s, target <= 0.20 for --help")
    if memory is not None:
        row("peak RSS, 10-epoch `trainkit run`", f"{memory[0]:.0f}", f"MiB ({memory[1]}), target <= 160")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
