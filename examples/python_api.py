"""Train from Python, with a custom plugin object, and no CLI.

    TRAINKIT_DATA_DIR=../shared/data python examples/python_api.py --epochs 2
"""

from __future__ import annotations

import argparse

import numpy as np

from trainkit import DataLoader, Trainer, hookimpl
from trainkit.plugins.console import Console
from trainkit.plugins.datasets import MNIST, FashionMNIST, IDXFiles
from trainkit.plugins.losses import CrossEntropy
from trainkit.plugins.metrics import Accuracy
from trainkit.plugins.models import MLP
from trainkit.plugins.optimizers import Adam
from trainkit.session.assembly import validation_split


class GradientNorm:
    """A custom plugin: records the gradient norm of every step, before the optimizer runs."""

    def __init__(self) -> None:
        self.norms: list[float] = []

    @hookimpl
    def on_before_optimizer_step(self, trainer):
        self.norms.append(float(np.linalg.norm(trainer.model.grads)))

    @hookimpl
    def on_epoch_end(self, epoch):
        recent = self.norms[-100:]
        print(f"  gradient norm over the last {len(recent)} steps of epoch {epoch}: "
              f"mean {np.mean(recent):.3f}, max {np.max(recent):.3f}")


DATASETS = {"mnist": MNIST, "fashion-mnist": FashionMNIST, "idx": IDXFiles}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--dataset", choices=sorted(DATASETS), default="mnist")
    args = parser.parse_args()

    # TRAINKIT_DATA_DIR, else the cache (downloading on first use)
    splits = DATASETS[args.dataset]().load()
    model = MLP(hidden=(128,), activation="relu").build(
        splits.input_size, splits.num_classes, np.random.default_rng(0))
    # Hold 10% of the training set out for validation; the test split is scored once, at the end.
    fit_part, val_part = validation_split(len(splits.train_labels), 0.1, np.random.default_rng(2))
    train = DataLoader(splits.train_images[fit_part], splits.train_labels[fit_part],
                       batch_size=64, shuffle=True, rng=np.random.default_rng(1))
    val = DataLoader(splits.train_images[val_part], splits.train_labels[val_part], batch_size=1000)
    test = DataLoader(splits.test_images, splits.test_labels, batch_size=1000)
    grad_norm = GradientNorm()
    trainer = Trainer(model, CrossEntropy(), Adam(lr=1e-3), [Accuracy()],
                      plugins=[Console(), grad_norm])
    history = trainer.fit(train, val, epochs=args.epochs, test=test)
    print(f"final test accuracy: {history['test_acc'][-1]:.4f} "
          f"after {len(grad_norm.norms)} optimizer steps")


if __name__ == "__main__":
    main()
