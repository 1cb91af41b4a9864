"""A table of bad command lines: each gets exit code 2 (usage) or 1 (runtime) and one clear line,
never a traceback, and never a run folder that looks complete."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli

USAGE, RUNTIME = 2, 1

TABLE = [
    # unknown names
    (["--optimizer", "nope"], USAGE, "nope"),
    (["--loss", "nope"], USAGE, "nope"),
    (["--metric", "nope"], USAGE, "nope"),
    (["--dataset", "nope"], USAGE, "nope"),
    (["--model", "nope"], USAGE, "sequential"),  # the valid names are listed
    (["--plugin", "nope"], USAGE, "nope"),
    (["--no-plugin", "nope"], USAGE, "nope"),
    (["--activation", "swish"], USAGE, "swish"),
    (["-p", "no:nope"], USAGE, "unknown plugin 'nope'"),
    (["-p", "no_such_plugin_module"], USAGE, "cannot import plugin module"),
    # zero, negative and non-numeric numbers
    (["--epochs", "0"], USAGE, "--epochs"),
    (["--epochs", "-3"], USAGE, "--epochs"),
    (["--epochs", "two"], USAGE, "two"),
    (["--batch-size", "0"], USAGE, "--batch-size"),
    (["--batch-size", "-1"], USAGE, "--batch-size"),
    (["--batch-size", "1.5"], USAGE, "1.5"),
    (["--lr", "-1"], USAGE, "lr must be in (0.0, inf), got -1.0"),
    (["--lr", "0"], USAGE, "lr must be in (0.0, inf)"),
    (["--lr", "abc"], USAGE, "abc"),
    (["--lr", "nan"], USAGE, "lr must be in"),
    (["--seed", "x"], USAGE, "--seed"),
    (["--threads", "0"], USAGE, "not a positive integer or 'auto'"),
    (["--threads", "many"], USAGE, "not a positive integer or 'auto'"),
    (["--hidden", "0"], USAGE, "sizes must be positive integers"),
    (["--hidden", "-5"], USAGE, "sizes must be positive integers"),
    (["--hidden", "10,x"], USAGE, "comma-separated integers"),
    (["--beta1", "1.5"], USAGE, "beta1 must be in [0.0, 1.0)"),
    (["--optimizer", "momentum", "--momentum", "2"], USAGE, "momentum must be in"),
    (["--metric", "top-k-accuracy", "--k", "0"], USAGE, "k must be at least 1"),
    (["--plugin", "checkpoint", "--checkpoint-every", "-1"], USAGE, "every must be 0 or more"),
    (["--plugin", "early-stopping", "--early-stopping-patience", "0"], USAGE, "patience"),
    (["--plugin", "lr-schedule", "--lr-schedule-gamma", "2"], USAGE, "gamma must be in (0, 1]"),
    # conflicting options
    (["--plugin", "checkpoint", "--no-plugin", "checkpoint"], USAGE, "both name checkpoint"),
    (["--metric", "accuracy", "--metric", "accuracy"], USAGE, "listed more than once"),
    (["--optimizer", "sgd", "--beta1", "0.5"], USAGE, "applies to optimizer adam"),
    (["--early-stopping-patience", "2"], USAGE, "turn it on with --plugin early-stopping"),
    # paths that do not exist, or are not what they should be
    (["--data-dir", "{tmp}/nowhere"], RUNTIME, "data folder does not exist"),
    (["--data-dir", "{tmp}/a-file"], RUNTIME, "a-file"),
    (["--out", "{tmp}/a-file"], USAGE, "run folder exists and is not a folder"),
    (["--resume", "{tmp}/missing.npz"], RUNTIME, "checkpoint not found"),
    (["--resume", "{tmp}/a-file"], RUNTIME, "not a valid checkpoint"),
    (["--resume", "{ckpt}", "--hidden", "50"], USAGE, "hidden cannot change on resume"),
    # config files
    (["--config", "{tmp}/missing.toml"], USAGE, "config file not found"),
    (["--config", "{tmp}"], USAGE, "cannot read config file"),
    (["--config", "{tmp}/broken.toml"], USAGE, "invalid TOML"),
    (["--config", "{tmp}/unknown.toml"], USAGE, "unknown key 'learning_rate'"),
    (["--config", "{tmp}/wrongtype.toml"], USAGE, "batch_size must be an integer >= 1"),
]


@pytest.fixture(scope="module")
def checkpoint(synthetic_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("ckpt") / "run"
    result = CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir", str(synthetic_dir),
                                             "--epochs",
                                             "1", "--out", str(out), "--plugin", "checkpoint"])
    assert result.exit_code == 0, result.output
    return out / "last.npz"


def test_the_table_is_large_enough():
    assert len(TABLE) >= 30


@pytest.mark.parametrize("args,code,needle", TABLE, ids=[" ".join(a) for a, _, _ in TABLE])
def test_bad_input(args, code, needle, synthetic_dir, checkpoint, tmp_path):
    (tmp_path / "a-file").write_text("not a folder, not a checkpoint\n")
    (tmp_path / "broken.toml").write_text("epochs = = 1\n")
    (tmp_path / "unknown.toml").write_text("learning_rate = 0.1\n")
    (tmp_path / "wrongtype.toml").write_text('batch-size = "ten"\n')
    args = [a.format(tmp=tmp_path, ckpt=checkpoint) for a in args]
    if "--data-dir" not in args:
        args = ["--dataset", "idx", "--data-dir", str(synthetic_dir), *args]
    if "--out" not in args:
        args = [*args, "--out", str(tmp_path / "out")]
    result = CliRunner().invoke(make_cli(), ["run", "--epochs", "1", *args]
                                if "--epochs" not in args else ["run", *args])
    assert result.exit_code == code, result.output
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1 and needle in errors[0], result.output
    status = tmp_path / "out" / "run.json"
    assert not status.exists() or json.loads(status.read_text())["status"] != "completed"
    assert not (tmp_path / "out" / "last.npz").exists()
