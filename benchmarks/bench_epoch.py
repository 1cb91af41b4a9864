"""Seconds per epoch and samples per second of the notebook's configuration, 1 and 2 BLAS threads.

    TRAINKIT_DATA_DIR=../shared/data/mnist python benchmarks/bench_epoch.py [--epochs 3]

Not a test: absolute times on shared machines drift, so compare numbers from one run only.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits
from trainkit.plugins.datasets import MNIST
from trainkit.plugins.losses import CrossEntropy
from trainkit.plugins.metrics import Accuracy
from trainkit.plugins.models import MLP
from trainkit.plugins.optimizers import Adam

from trainkit.data import DataLoader
from trainkit.trainer import Trainer


def time_epochs(splits, threads: int, epochs: int) -> float:
    model = MLP().build(784, 10, np.random.default_rng(0))
    trainer = Trainer(model, CrossEntropy(), Adam(), [Accuracy()])
    loader = DataLoader(splits.train_images, splits.train_labels, 64, shuffle=True,
                        rng=np.random.default_rng(1))
    with threadpool_limits(threads, user_api="blas"):
        trainer.fit(loader, None, epochs=1)  # warm-up
        start = time.perf_counter()
        trainer.fit(loader, None, epochs=1 + epochs)
        return (time.perf_counter() - start) / epochs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    splits = MNIST().load()
    n = len(splits.train_labels)
    print(f"{'configuration':<44} {'s/epoch':>8} {'samples/s':>10}")
    for threads in (1, 2):
        seconds = time_epochs(splits, threads, args.epochs)
        print(f"{f'mlp 784-100-10 sigmoid, adam, batch 64, {threads} thr':<44} "
              f"{seconds:8.3f} {n / seconds:10,.0f}")


if __name__ == "__main__":
    main()
