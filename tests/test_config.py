"""--config and --print-config: TOML in, TOML out, command-line flags on top."""

from __future__ import annotations

import json

import numpy as np
from click.testing import CliRunner

from trainkit.cli import make_cli
from trainkit.persist.checkpoint_io import load_checkpoint


def invoke(args):
    return CliRunner().invoke(make_cli(), args, catch_exceptions=False)


def test_print_config_fed_back_reproduces_the_run(synthetic_dir, tmp_path):
    args = ["--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2", "--seed", "9",
            "--optimizer",
            "momentum", "--nesterov", "--lr", "0.05", "--hidden", "32,16", "--activation", "relu",
            "--plugin", "checkpoint", "--checkpoint-keep", "1", "--threads", "1"]
    printed = invoke(["run", *args, "--out", "a", "--print-config"])
    assert printed.exit_code == 0
    text = printed.output
    assert 'optimizer = "momentum"' in text and "nesterov = true" in text
    assert "hidden = [32, 16]" in text and "[checkpoint]\nevery = 1\nkeep = 1" in text
    assert not (tmp_path / "a").exists()  # printing the config trains nothing
    (tmp_path / "run.toml").write_text(text.replace('out = "a"', 'out = "b"'))
    assert invoke(["run", *args, "--out", "a"]).exit_code == 0
    assert invoke(["run", "--config", "run.toml"]).exit_code == 0
    a, b = load_checkpoint(tmp_path / "a" / "last.npz"), load_checkpoint(tmp_path / "b" / "last.npz")
    for name in a[1]:
        np.testing.assert_array_equal(a[1][name], b[1][name])
    assert a[0]["config"] == {**b[0]["config"], "out": "a"}
    assert invoke(["run", "--config", "run.toml", "--print-config"]).output == text.replace(
        'out = "a"', 'out = "b"')


def test_flags_override_the_config_file(synthetic_dir, tmp_path):
    (tmp_path / "run.toml").write_text(
        f'epochs = 3\nbatch-size = 32\nlr = 0.5\ndata_dir = "{synthetic_dir}"\n'
        "plugin = [\"checkpoint\"]\n[checkpoint]\nkeep = 2\n")
    result = invoke(["run", "--config", "run.toml", "--lr", "0.01", "--checkpoint-keep", "5",
                     "--print-config"])
    assert result.exit_code == 0, result.output
    for line in ("epochs = 3", "batch_size = 32", "lr = 0.01", "keep = 5"):
        assert line in result.output.splitlines()


def test_bad_config_files_are_usage_errors(tmp_path):
    (tmp_path / "broken.toml").write_text("epochs = = 3\n")
    (tmp_path / "unknown.toml").write_text("epoks = 3\n")
    (tmp_path / "badtable.toml").write_text("[checkpoint]\nevery = 'often'\n")
    (tmp_path / "typo.toml").write_text("[checkpoint]\nevry = 2\n")
    (tmp_path / "badlr.toml").write_text("lr = 'fast'\n")
    for name, needle in (("broken.toml", "invalid TOML"), ("unknown.toml",
                                                           "unknown key 'epoks'; did you mean 'epochs'?"),
                         ("missing.toml", "config file not found"),
                         ("badtable.toml", "badtable.toml: [checkpoint] every: 'often' is invalid"),
                         ("typo.toml", "typo.toml: [checkpoint] has an unknown key 'evry'; did you "
                                       "mean 'every'?"),
                         ("badlr.toml", "badlr.toml: lr: 'fast' is invalid")):
        result = CliRunner().invoke(make_cli(), ["run", "--config", name, "--plugin", "checkpoint"])
        assert result.exit_code == 2, (name, result.output)
        assert needle in result.output and "Traceback" not in result.output
        if name not in ("broken.toml", "missing.toml"):  # those are about --config itself
            assert "'--" not in result.output  # the file's key, not a flag never typed


def test_environment_variables_set_options(synthetic_dir):
    result = CliRunner().invoke(make_cli(), ["run", "--print-config"],
                                env={"TRAINKIT_EPOCHS": "7", "TRAINKIT_LR": "0.2",
                                     "TRAINKIT_DATA_DIR": str(synthetic_dir)})
    assert "epochs = 7" in result.output and "lr = 0.2" in result.output


def test_a_typo_in_a_config_file_names_the_file_and_the_key(synthetic_dir, tmp_path):
    (tmp_path / "run.toml").write_text("epoch = 3\n")
    result = CliRunner().invoke(make_cli(), ["run", "--config", "run.toml"])
    assert result.exit_code == 2
    assert "run.toml: unknown key 'epoch'; did you mean 'epochs'?" in result.output
    assert "--epoch" not in result.output


def test_a_config_section_of_a_plugin_that_is_off_is_an_error_as_on_the_command_line(
        synthetic_dir, tmp_path):
    (tmp_path / "run.toml").write_text("[early-stopping]\npatience = 1\n")
    result = CliRunner().invoke(make_cli(), ["run", "--config", "run.toml", "--dataset", "idx",
                                             "--data-dir", str(synthetic_dir)])
    assert result.exit_code == 2
    assert ("run.toml: [early-stopping] sets options of plugin 'early-stopping', which is off; "
            "turn it on with plugin = [\"early-stopping\"] or --plugin early-stopping"
            in " ".join(result.output.split()))
    on = CliRunner().invoke(make_cli(), ["run", "--config", "run.toml", "--plugin",
                                         "early-stopping", "--print-config"])
    assert on.exit_code == 0 and "[early-stopping]" in on.output


def test_an_environment_variable_for_a_component_or_plugin_not_in_use_is_ambient(tmp_path):
    """TRAINKIT_DATA_DIR (the README's advice) with a dataset that reads no folder, and an
    option of a plugin that is off: a run goes on; the same typed as flags are mistakes."""
    from trainkit.testing.harness import TinyDatasetPlugin

    args = ["run", "--dataset", "tiny", "--epochs", "1", "--out", str(tmp_path / "run")]
    env = {"TRAINKIT_DATA_DIR": str(tmp_path), "TRAINKIT_EARLY_STOPPING_PATIENCE": "5"}
    ambient = CliRunner().invoke(make_cli([TinyDatasetPlugin()]), args, env=env)
    assert ambient.exit_code == 0, ambient.output
    config = json.loads((tmp_path / "run" / "run.json").read_text())["config"]
    assert "data_dir" not in config
    typed = CliRunner().invoke(make_cli([TinyDatasetPlugin()]),
                               [*args, "--data-dir", str(tmp_path), "--overwrite"])
    assert typed.exit_code == 2 and "option 'data_dir' applies to dataset" in typed.output
    typed = CliRunner().invoke(make_cli([TinyDatasetPlugin()]),
                               [*args, "--early-stopping-patience", "5", "--overwrite"])
    assert typed.exit_code == 2 and "which is off; turn it on with --plugin early-stopping" \
        in typed.output
