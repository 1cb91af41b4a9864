"""Data-parallel scaling: samples/s for 1 and 2 MPI ranks, allreduce time per step, and a worked
extrapolation to N machines on 10 GbE with the ring-allreduce cost 2(N-1)/N x bytes / bandwidth.

    TRAINKIT_DATA_DIR=../shared/data python benchmarks/ddp_scaling.py

(It starts `mpiexec -n 1` and `mpiexec -n 2` itself; needs `pip install 'trainkit[mpi]'`.)
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time

import numpy as np

EPOCHS = 3
BATCH_PER_RANK = 64


def worker() -> None:
    """Runs inside mpiexec: trains the notebook's MLP with the ddp plugin, 1 BLAS thread."""
    from threadpoolctl import threadpool_limits

    from trainkit import hookimpl
    from trainkit.data import DataLoader
    from trainkit.loop.trainer import Trainer
    from trainkit.plugin.manager import PluginManager
    from trainkit.plugins.datasets import MNIST
    from trainkit.plugins.ddp import DDP
    from trainkit.plugins.losses import CrossEntropy
    from trainkit.plugins.metrics import Accuracy
    from trainkit.plugins.models import MLP
    from trainkit.plugins.optimizers import Adam

    class EpochTimer:
        def __init__(self):
            self.starts = []

        @hookimpl
        def on_epoch_start(self):
            self.starts.append(time.perf_counter())

    splits = MNIST().load()
    ddp, timer = DDP(), EpochTimer()
    model = MLP().build(784, 10, np.random.default_rng(0))
    trainer = Trainer(model, CrossEntropy(), Adam(), [Accuracy()], [ddp, timer],
                      plugin_manager=PluginManager(), is_main_process=ddp.is_main_process)
    loader = DataLoader(splits.train_images, splits.train_labels, BATCH_PER_RANK, shuffle=True,
                        rng=np.random.default_rng(1))
    with threadpool_limits(1, user_api="blas"):
        trainer.fit(loader, None, epochs=EPOCHS)
    timer.starts.append(time.perf_counter())
    epoch_seconds = float(np.median(np.diff(timer.starts)[1:]))
    steps = len(loader) * EPOCHS
    if ddp.is_main_process:
        print(json.dumps({"ranks": ddp.world, "epoch_seconds": epoch_seconds,
                          "samples": len(splits.train_labels),
                          "allreduce_ms": ddp.allreduce_seconds / steps * 1e3,
                          "step_ms": epoch_seconds / len(loader) * 1e3,
                          "gradient_bytes": model.grads.nbytes}))


LATENCY = 25e-6  # seconds per message on 10 GbE with TCP; an assumption, not a measurement


def ring_allreduce_seconds(nbytes: int, machines: int, bandwidth: float = 10e9 / 8,
                           latency: float = 0.0) -> float:
    """2(N-1)/N x bytes / bandwidth, plus 2(N-1) message latencies when ``latency`` is given."""
    return 2 * (machines - 1) / machines * nbytes / bandwidth + 2 * (machines - 1) * latency


def main() -> None:
    mpiexec = shutil.which("mpiexec")
    if mpiexec is None:
        sys.exit("no mpiexec: pip install 'trainkit[mpi]'")
    results = {}
    for ranks in (1, 2):
        out = subprocess.run([mpiexec, "-n", str(ranks), sys.executable, __file__, "--worker"],
                             capture_output=True, text=True, check=True)
        results[ranks] = json.loads(out.stdout.strip().splitlines()[-1])
    print(f"MLP 784-100-10, Adam, batch {BATCH_PER_RANK} per rank, 1 BLAS thread per rank, "
          f"MNIST, median of {EPOCHS - 1} epochs")
    print(f"{'ranks':>5} {'s/epoch':>8} {'samples/s':>10} {'step ms':>8} {'allreduce ms':>13}")
    for ranks, r in results.items():
        print(f"{ranks:>5} {r['epoch_seconds']:8.3f} {r['samples'] / r['epoch_seconds']:10,.0f} "
              f"{r['step_ms']:8.3f} {r['allreduce_ms']:13.3f}")

    compute_ms = results[1]["step_ms"]  # one rank's compute per step of 64 samples
    nbytes = results[1]["gradient_bytes"]
    print(f"\nExtrapolation to N machines on 10 GbE (1.25 GB/s), one rank each, no overlap of "
          f"compute and communication: step = {compute_ms:.3f} ms compute + ring allreduce "
          f"2(N-1)/N x bytes / bandwidth.")
    for label, scale in (("this model (79,510 params, 318 KB of gradients)", 1),
                         ("a 10x larger model (795,100 params, 3.2 MB)", 10)):
        print(f"\n{label}: bandwidth only | with {LATENCY * 1e6:.0f} us latency per message")
        print(f"{'N':>4} {'allreduce ms':>13} {'samples/s':>11} {'efficiency':>10} | "
              f"{'allreduce ms':>13} {'samples/s':>11} {'efficiency':>10}")
        single = BATCH_PER_RANK / (compute_ms * scale / 1e3)
        for n in (1, 2, 4, 8, 16, 32, 64, 128):
            cells = []
            for latency in (0.0, LATENCY):
                comm = ring_allreduce_seconds(nbytes * scale, n, latency=latency) * 1e3
                rate = n * BATCH_PER_RANK / ((compute_ms * scale + comm) / 1e3)
                cells.append(f"{comm:13.3f} {rate:11,.0f} {rate / single / n:10.0%}")
            print(f"{n:>4} {cells[0]} | {cells[1]}")

if __name__ == "__main__":
    worker() if "--worker" in sys.argv else main()
