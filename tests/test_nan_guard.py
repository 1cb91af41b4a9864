"""nan-guard: the first non-finite loss stops the run, naming the epoch and step; last.npz survives."""

from __future__ import annotations

import numpy as np
from click.testing import CliRunner

from trainkit import hookimpl
from trainkit.cli import make_cli
from trainkit.persist.checkpoint_io import load_checkpoint
from trainkit.plugins.losses import CrossEntropy


class ExplodingLoss(CrossEntropy):
    """Cross-entropy that turns NaN (and poisons the gradient) from global step 11 on."""

    calls = 0

    def forward(self, logits, targets):
        ExplodingLoss.calls += 1
        loss = super().forward(logits, targets)
        return float("nan") if ExplodingLoss.calls > 11 else loss

    def backward(self):
        grad = super().backward()
        if ExplodingLoss.calls > 11:
            grad[:] = np.nan
        return grad


class Exploding:
    @hookimpl
    def register_losses(self, register):
        register("exploding", ExplodingLoss)


def test_nan_stops_the_run_and_keeps_the_last_good_checkpoint(synthetic_dir, tmp_path):
    ExplodingLoss.calls = 0
    result = CliRunner().invoke(make_cli([Exploding()]), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "3", "--out", "run",
        "--loss", "exploding", "--plugin", "checkpoint", "--threads", "1"], catch_exceptions=False)
    assert result.exit_code == 1
    assert ("Error: training stopped by nan-guard: loss is nan at epoch 2, step 2 "
            "(global step 11)") in result.output
    manifest, arrays = load_checkpoint(tmp_path / "run" / "last.npz")
    assert manifest["epoch"] == 1
    assert all(np.isfinite(a).all() for a in arrays.values())
    assert not (tmp_path / "run" / "emergency.npz").exists()


def test_nan_guard_can_be_turned_off(synthetic_dir):
    ExplodingLoss.calls = 0
    result = CliRunner().invoke(make_cli([Exploding()]), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2", "--out", "run",
        "--loss", "exploding", "--no-plugin", "nan-guard", "--threads", "1"], catch_exceptions=False)
    assert result.exit_code == 0 and "loss: nan" in result.output
