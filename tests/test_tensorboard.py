"""The tensorboard plugin, read back with TensorBoard's own event reader."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli

pytest.importorskip("tensorboardX", reason="the test extra installs tensorboardX")
event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")


def run(args):
    return CliRunner().invoke(make_cli(), ["run", *args], catch_exceptions=False)


def read(folder):
    reader = event_accumulator.EventAccumulator(
        str(folder), size_guidance={event_accumulator.SCALARS: 0,
                                    event_accumulator.HISTOGRAMS: 0})
    reader.Reload()
    return reader


def test_scalars_histograms_and_a_resume_without_duplicate_steps(synthetic_dir, tmp_path):
    common = ["--dataset", "idx", "--data-dir", str(synthetic_dir), "--batch-size", "64",
              "--threads", "1", "--out", "run", "--plugin", "tensorboard",
              "--tensorboard-step-loss", "--tensorboard-histograms", "1",
              "--checkpoint-every", "1"]
    assert run([*common, "--epochs", "2"]).exit_code == 0
    # resume from epoch 1 in the same folder: epoch 2 is trained (and written) again
    resumed = run(["--resume", "run/epoch-001.npz", "--epochs", "2", "--out", "run",
                   "--data-dir", str(synthetic_dir)])
    assert resumed.exit_code == 0, resumed.output
    reader = read(tmp_path / "run" / "tensorboard")
    tags = set(reader.Tags()["scalars"])
    assert {"loss", "acc", "val_loss", "val_acc", "lr", "epoch_seconds", "step_loss",
            "test_loss", "test_acc"} <= tags
    steps_per_epoch = 8  # 461 training samples (10% held out of 512) in batches of 64
    step_loss = [event.step for event in reader.Scalars("step_loss")]
    assert step_loss == list(range(1, 2 * steps_per_epoch + 1))  # each step once, in order
    assert [event.step for event in reader.Scalars("val_loss")] == [8, 16]
    assert [event.value for event in reader.Scalars("epoch")] == [1, 2]
    assert any(tag.startswith("weights/") for tag in reader.Tags()["histograms"])
    assert any(tag.startswith("gradients/") for tag in reader.Tags()["histograms"])


def test_the_config_is_written_as_hparams(synthetic_dir, tmp_path):
    result = run(["--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1",
                  "--lr", "0.005", "--out", "run", "--plugin", "tensorboard",
                  "--tensorboard-dir", str(tmp_path / "tb")])
    assert result.exit_code == 0, result.output
    from tensorboard.plugins.hparams import plugin_data_pb2

    found = {}
    for folder in [tmp_path / "tb", *(p for p in (tmp_path / "tb").iterdir() if p.is_dir())]:
        try:
            contents = read(folder).PluginTagToContent("hparams")
        except KeyError:  # a folder without hparams
            continue
        for content in contents.values():
            data = plugin_data_pb2.HParamsPluginData.FromString(content)
            if data.HasField("session_start_info"):
                found.update({k: v for k, v in data.session_start_info.hparams.items()})
    assert found["lr"].number_value == pytest.approx(0.005)
    assert found["optimizer"].string_value == "adam"
    assert not (tmp_path / "run" / "tensorboard").exists()  # --tensorboard-dir was used
