"""End to end on the real MNIST in ../shared/data/mnist (or TRAINKIT_DATA_DIR).

Marked slow: skip them locally with ``pytest -m "not slow"``.
"""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli

pytestmark = pytest.mark.slow


def val_accuracies(output: str) -> list[float]:
    return [float(v) for v in re.findall(r"val_acc: ([0-9.]+)", output)]


def run(mnist_dir, *args):
    result = CliRunner().invoke(make_cli(), ["run", "--data-dir", str(mnist_dir), "--out", "run",
                                             *args], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_short_training_on_real_mnist_learns_and_leaves_a_checkpoint(mnist_dir, tmp_path):
    output = run(mnist_dir, "--epochs", "2", "--optimizer", "adam", "--plugin", "checkpoint")
    accuracies = val_accuracies(output)
    assert len(accuracies) == 2 and accuracies[-1] > 0.92 and accuracies[1] > accuracies[0]
    assert (tmp_path / "run" / "last.npz").is_file()


@pytest.mark.parametrize("args,target", [
    ((), 0.970),                                       # the notebook's configuration
    (("--activation", "relu", "--hidden", "256"), 0.978),  # 0.980-0.983 by threads and kernels
])
def test_ten_epochs_reach_the_readme_accuracy(mnist_dir, args, target):
    accuracies = val_accuracies(run(mnist_dir, *args))
    assert len(accuracies) == 10 and accuracies[-1] >= target
