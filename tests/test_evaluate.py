"""trainkit evaluate: the model and preprocessing rebuilt from the manifest alone."""

from __future__ import annotations

import re

from click.testing import CliRunner

from trainkit.checkpoint_io import load_checkpoint
from trainkit.cli import make_cli


def test_evaluate_of_a_run_folder_reproduces_the_runs_test_scores(synthetic_dir, tmp_path):
    trained = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2", "--out", "run",
        "--hidden", "32,16", "--activation", "tanh", "--metric", "accuracy",
        "--metric", "top-k-accuracy", "--k", "2"],
        catch_exceptions=False)
    assert trained.exit_code == 0, trained.output
    manifest, _ = load_checkpoint(tmp_path / "run" / "final.npz")
    last = manifest["history"][-1]
    result = CliRunner().invoke(make_cli(), ["evaluate", "run", "--data-dir",
                                             str(synthetic_dir)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "final.npz" in result.output  # a run folder is scored by the model it handed over
    values = dict(re.findall(r"(\w+): ([0-9.]+)", result.output))
    assert float(values["test_acc"]) == round(last["test_acc"], 4)
    assert float(values["test_top2_acc"]) == round(last["test_top2_acc"], 4)
    assert abs(float(values["test_loss"]) - last["test_loss"]) < 1e-4


def test_evaluate_a_missing_checkpoint(tmp_path):
    result = CliRunner().invoke(make_cli(), ["evaluate", "nope.npz"])
    assert result.exit_code == 1 and "nope.npz: checkpoint not found" in result.output
