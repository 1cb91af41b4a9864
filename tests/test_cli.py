"""The CLI through click's CliRunner: runs, listings, and one clear line for every bad input."""

from __future__ import annotations

import gzip

import numpy as np
import pytest
from click.testing import CliRunner

from trainkit import hookimpl
from trainkit.cli import make_cli
from trainkit.nn.optim import Optimizer


def invoke(args, plugins=(), env=None):
    result = CliRunner().invoke(make_cli(plugins), args, env=env, catch_exceptions=False)
    return result


def quick(data_dir, *extra):
    return ["run", "--dataset", "idx", "--data-dir", str(data_dir), "--epochs", "1", "--batch-size", "64",
            "--out", "out", *extra]


def test_run_trains_and_prints_one_line_per_epoch(synthetic_dir):
    result = invoke(quick(synthetic_dir, "--epochs", "2"))
    assert result.exit_code == 0, result.output
    lines = [line for line in result.output.splitlines() if line.startswith("[")]
    assert len(lines) == 3
    assert lines[1].startswith("[  2/2] loss: ") and " | val_loss: " in lines[1]
    assert "acc: " in lines[1] and "val_acc: " in lines[1]
    assert lines[2].startswith("[   test] test_loss: ") and "test_acc: " in lines[2]


def test_checkpoint_plugin_leaves_npz_files_without_pickle(synthetic_dir, tmp_path):
    result = invoke(quick(synthetic_dir, "--plugin", "checkpoint"))
    assert result.exit_code == 0, result.output
    last = tmp_path / "out" / "last.npz"
    with np.load(last, allow_pickle=False) as npz:
        assert "model/0.weight" in npz.files


def test_data_dir_from_the_environment(synthetic_dir):
    result = invoke(["run", "--dataset", "idx", "--epochs", "1", "--out", "o"],
                    env={"TRAINKIT_DATA_DIR": str(synthetic_dir)})
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("args,needle", [
    (["--optimizer", "nope"], "momentum"),
    (["--loss", "nope"], "cross-entropy"),
    (["--metric", "nope"], "top-k-accuracy"),
    (["--dataset", "nope"], "fashion-mnist"),
    (["--model", "nope"], "sequential"),
    (["--plugin", "nope"], "checkpoint"),
    (["--no-plugin", "nope"], "console"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "-1"], "--batch-size"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "abc"], "abc"),
    (["--hidden", "10,x"], "--hidden"),
    (["--activation", "tahn"], "tanh"),
    (["--beta1", "0.5", "--optimizer", "sgd"], "--beta1"),
    (["--early-stopping-patience", "2"], "early-stopping"),
    (["-p", "no:nothing-like-it"], "unknown plugin"),
])
def test_usage_errors_exit_2_with_one_clear_message(synthetic_dir, args, needle):
    result = invoke(quick(synthetic_dir, *args))
    assert result.exit_code == 2, result.output
    assert needle in result.output
    assert "Traceback" not in result.output


def test_truncated_idx_is_one_line_naming_the_file(synthetic_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in synthetic_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    target = bad / "train-images-idx3-ubyte.gz"
    target.write_bytes(gzip.compress(gzip.decompress(target.read_bytes())[:5000]))
    result = invoke(quick(bad))
    assert result.exit_code == 1
    assert "Traceback" not in result.output
    error_lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(error_lines) == 1 and str(target) in error_lines[0]
    assert "truncated" in error_lines[0]


def test_wrong_magic_names_the_file(synthetic_dir, tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    for f in synthetic_dir.iterdir():
        (bad / f.name).write_bytes(f.read_bytes())
    target = bad / "t10k-labels-idx1-ubyte.gz"
    target.write_bytes(gzip.compress(b"\x12\x34" + gzip.decompress(target.read_bytes())[2:]))
    result = invoke(quick(bad))
    assert result.exit_code == 1 and "magic" in result.output and str(target) in result.output


def test_missing_data_dir_names_it(tmp_path):
    result = invoke(quick(tmp_path / "nowhere"))
    assert result.exit_code == 1 and "nowhere" in result.output


def test_plugins_lists_the_builtins():
    result = invoke(["plugins"])
    assert result.exit_code == 0
    for kind, name, plugin in [("optimizer", "adam", "optimizers"), ("loss", "cross-entropy",
                               "losses"), ("metric", "accuracy", "metrics"),
                               ("dataset", "mnist", "datasets"), ("model", "mlp", "models"),
                               ("plugin", "progress", "progress"),
                               ("plugin", "checkpoint", "checkpoint")]:
        assert any(line.split()[:3] == [kind, name, plugin] for line in result.output.splitlines())
    assert "[built-in, trainkit" in result.output
    assert ("registers: plugin checkpoint (hooks: on_epoch_end, on_exception, on_fit_end, "
            "on_fit_start, on_load_checkpoint, on_save_checkpoint)") in result.output


class Halving(Optimizer):
    """Moves every parameter half way to zero, ignoring the gradient.

    Args:
        lr: unused but required by the base class.
        factor: how much of each parameter to keep.
    """

    def __init__(self, lr: float = 1.0, factor: float = 0.5) -> None:
        super().__init__(lr)
        self.factor = factor

    def update(self, t):
        self.params *= self.factor


class ThrowawayPlugin:
    @hookimpl
    def register_optimizers(self, register):
        register("halving", Halving)


def test_a_plugin_object_adds_an_optimizer_the_cli_can_select(synthetic_dir):
    listing = invoke(["plugins"], plugins=[ThrowawayPlugin()])
    assert any(line.split()[:2] == ["optimizer", "halving"] for line in listing.output.splitlines())
    help_text = invoke(["run", "--help"], plugins=[ThrowawayPlugin()]).output
    assert "--factor" in help_text
    result = invoke(quick(synthetic_dir, "--optimizer", "halving", "--factor", "0.25",
                          "--plugin", "checkpoint"), plugins=[ThrowawayPlugin()])
    assert result.exit_code == 0, result.output
    with np.load("out/last.npz") as npz:
        init_limit = np.sqrt(6 / (784 + 100))  # Glorot-uniform bound of the first layer
        steps = 512 // 64
        assert np.abs(npz["model/0.weight"]).max() <= init_limit * 0.25**steps


def test_version():
    result = invoke(["--version"])
    from importlib.metadata import version

    import trainkit

    assert result.exit_code == 0 and trainkit.__version__ in result.output
    assert version("trainkit") == trainkit.__version__  # one source: pyproject reads it


def test_run_help_groups_options_by_component_and_plugin():
    text = invoke(["run", "--help"]).output
    for heading in ("Run options:", "Optimizer options:", "Model options:",
                    "Plugin checkpoint (on by default):", "Plugin plot (--plugin plot):"):
        assert heading in text
    assert text.index("Plugin checkpoint") < text.index("--checkpoint-every")
    assert "[default: (" not in text  # every default reads as a value, not a parameter name
    assert ("learning rate, or auto: the lr finder's suggestion (trainkit lr-find), found "
            "before training. [default: 0.01 for sgd, momentum, rmsprop; 0.001 for adam, adamw]"
            in " ".join(text.split()))


def test_run_help_shows_the_environment_variable_of_every_option():
    import click

    from trainkit.cli.app import AppState
    from trainkit.cli.run import make_run_command

    group = make_cli()
    command = make_run_command(AppState.load([], group))
    text = " ".join(invoke(["run", "--help"]).output.split())
    for param in command.params:
        if isinstance(param, click.Option) and param.envvar and not param.hidden:
            assert f"env var: {param.envvar}" in text or f"env var: {param.envvar};" in text, \
                param.name
    for name in ("TRAINKIT_EPOCHS", "TRAINKIT_LR", "TRAINKIT_PLUGIN", "TRAINKIT_CHECKPOINT_EVERY"):
        assert name in text
    evaluate_help = invoke(["evaluate", "--help"]).output
    assert "TRAINKIT_DATA_DIR" in evaluate_help
    assert "Samples scored at a time" in " ".join(evaluate_help.split())


def test_plain_sgd_defaults_to_its_own_learning_rate():
    sgd = invoke(["run", "--optimizer", "sgd", "--print-config"]).output.splitlines()
    adam = invoke(["run", "--print-config"]).output.splitlines()
    assert "lr = 0.01" in sgd and "lr = 0.001" in adam


@pytest.mark.parametrize("value,needle", [
    ("100,,10", "has an empty entry"),
    ("0", "sizes must be positive integers"),
    (",", "has an empty entry"),
    ("100,abc", "must be comma-separated integers"),
    ("", "must name at least one size"),
])
def test_architecture_strings_are_validated_strictly(value, needle):
    result = invoke(["run", "--hidden", value, "--print-config"])
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(lines) == 1 and f"'{value}'" in lines[0] and needle in lines[0]


def test_limit_batches_makes_a_smoke_run(synthetic_dir, tmp_path):
    from trainkit.persist.checkpoint_io import load_checkpoint

    result = invoke(["run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2",
                     "--batch-size", "16", "--limit-batches", "3", "--out", "smoke"])
    assert result.exit_code == 0, result.output
    manifest = load_checkpoint(tmp_path / "smoke" / "last.npz")[0]
    assert manifest["global_step"] == 6  # 3 batches in each of 2 epochs
    assert manifest["config"]["limit_batches"] == 3
