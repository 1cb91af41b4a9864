"""early-stopping on scripted metrics with a fake trainer, and on real MNIST."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli
from trainkit.errors import ConfigError
from trainkit.persist.checkpoint_io import load_checkpoint
from trainkit.plugins.early_stopping import EarlyStopping


class FakeTrainer:
    is_main_process = True

    def __init__(self):
        self.model = type("Model", (), {"params": np.zeros(3, np.float32),
                                        "states": np.zeros(2, np.float32)})()
        self.stopped = self.message = None
        self.plugins = {"checkpoint": None}

    def stop(self, reason, message=None):
        self.stopped, self.message = reason, message

    def say(self, message, level="info"):
        self.said = message


def drive(plugin, values, key="val_loss"):
    """Feed one value per epoch, with weights equal to the epoch number; return the stop epoch."""
    trainer = FakeTrainer()
    for epoch, value in enumerate(values, 1):
        trainer.model.params[:] = epoch
        trainer.model.states[:] = -epoch  # running statistics move with the weights
        plugin.on_epoch_end(trainer, epoch, {key: value})
        if trainer.stopped:
            plugin.on_train_end(trainer, trainer.stopped)
            return epoch, trainer
    plugin.on_train_end(trainer, "completed")
    return None, trainer


def test_stops_after_patience_epochs_without_improvement_and_restores_the_best():
    plugin = EarlyStopping(patience=2, restore_best=True)
    epoch, trainer = drive(plugin, [1.0, 0.8, 0.85, 0.9, 0.5])
    assert epoch == 4 and trainer.stopped == "early-stopping"
    assert (trainer.model.params == 2).all()  # epoch 2 had the best val_loss
    assert (trainer.model.states == -2).all()  # and its batch-norm statistics come back too


def test_min_delta_and_max_mode():
    plugin = EarlyStopping(monitor="val_acc", patience=1, min_delta=0.01)
    epoch, _ = drive(plugin, [0.90, 0.95, 0.955, 0.99], key="val_acc")
    assert epoch == 3  # +0.005 is not an improvement of at least 0.01; auto mode is max


def test_baseline_must_be_beaten():
    plugin = EarlyStopping(patience=2, baseline=0.5)
    epoch, _ = drive(plugin, [0.9, 0.8, 0.7])
    assert epoch == 2


def test_without_restore_best_the_last_weights_stay():
    epoch, trainer = drive(EarlyStopping(patience=1), [1.0, 2.0])
    assert epoch == 2 and (trainer.model.params == 2).all()


def test_state_survives_a_checkpoint_round_trip():
    a = EarlyStopping(patience=3, restore_best=True)
    drive(a, [1.0, 0.5, 0.7])
    state = {}
    a.on_save_checkpoint(state)
    b = EarlyStopping(patience=3, restore_best=True)
    b.on_load_checkpoint(state)
    assert (b.wait, b.monitor.best, b.monitor.best_epoch) == (1, 0.5, 2)


def test_an_unlogged_monitor_is_a_clear_error():
    with pytest.raises(ConfigError, match="'val_nope' is not logged; logged: val_loss"):
        drive(EarlyStopping(monitor="val_nope", mode="min"), [1.0])


@pytest.mark.slow
def test_on_real_mnist_small_patience_stops_before_the_last_epoch(mnist_dir):
    result = CliRunner().invoke(make_cli(), [
        "run", "--data-dir", str(mnist_dir), "--epochs", "10", "--out", "run",
        "--plugin", "early-stopping", "--early-stopping-patience", "1",
        "--early-stopping-min-delta", "0.03"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    epochs = re.findall(r"\[\s*(\d+)/10\]", result.output)
    assert 1 < len(epochs) < 10
    assert f"early-stopping after epoch {epochs[-1]} (val_loss has not improved for 1 epoch;" \
        in result.output


def test_the_stop_is_said_after_the_epoch_line_and_recorded(synthetic_dir, tmp_path):
    # min_delta 10: no epoch after the first counts as an improvement
    result = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "5", "--out",
        "run", "--plugin", "early-stopping", "--early-stopping-patience", "1",
        "--early-stopping-min-delta", "10"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    said = next(i for i, line in enumerate(lines) if "has not improved" in line)
    assert lines[said - 2].startswith("[  2/5]") and lines[said - 1].startswith("[   test]")
    assert "early-stopping after epoch 2 (val_loss has not improved for 1 epoch; best" in lines[said]
    status = json.loads((tmp_path / "run" / "run.json").read_text())
    assert status["status"] == "early-stopping"
    assert status["stop_message"].startswith("val_loss has not improved for 1 epoch; best ")


def test_restore_best_is_what_final_npz_holds_and_what_the_test_split_scores(synthetic_dir,
                                                                             tmp_path):
    # Watching the training loss for a *maximum* makes epoch 1 the best, whatever the data.
    result = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "3", "--out",
        "run", "--plugin", "early-stopping", "--early-stopping-monitor", "loss",
        "--early-stopping-mode", "max", "--early-stopping-patience", "5",
        "--early-stopping-restore-best"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    run = tmp_path / "run"
    final, final_arrays = load_checkpoint(run / "final.npz")
    _, first_arrays = load_checkpoint(run / "epoch-001.npz")
    _, last_arrays = load_checkpoint(run / "last.npz")
    assert "restored the weights of epoch 1 (best loss" in result.output
    assert "final.npz holds them" in result.output
    for name, value in first_arrays.items():
        if name.startswith("model/"):
            np.testing.assert_array_equal(final_arrays[name], value)
            assert not np.array_equal(last_arrays[name], value)
    assert final["history"][-1]["test_loss"] > 0


@pytest.mark.parametrize("metric,mode", [("val_acc", "max"), ("val_top5_acc", "max"),
                                         ("val_f1", "max"), ("val_precision", "max"),
                                         ("test_auc", "max"), ("val_loss", "min"),
                                         ("val_error", "min")])
def test_the_direction_of_known_metrics_is_known(metric, mode):
    from trainkit.loop.monitor import Monitor

    assert Monitor(metric).mode == mode


def test_an_unknown_metric_without_a_mode_is_a_one_line_error(synthetic_dir):
    from click.testing import CliRunner

    from trainkit.cli import make_cli

    result = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1",
        "--plugin", "early-stopping", "--early-stopping-monitor", "val_score"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "--early-stopping-mode" in result.output and "'val_score'" in result.output
    maximised = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1", "--out",
        "run", "--plugin", "early-stopping", "--early-stopping-monitor", "val_acc",
        "--early-stopping-mode", "max"])
    assert maximised.exit_code == 0, maximised.output


# -- the four bugs of the schedules-and-early-stopping issue, and their siblings -----------------


def test_nan_in_the_first_epochs_stops_cleanly_with_the_last_weights():
    plugin = EarlyStopping(patience=2, restore_best=True)
    epoch, trainer = drive(plugin, [float("nan"), float("nan"), 0.5])
    assert epoch == 2 and trainer.stopped == "early-stopping"
    assert trainer.message.endswith("no epoch had a finite val_loss")
    assert "no epoch had a finite val_loss: the last weights are kept" in trainer.said
    assert (trainer.model.params == 2).all()


def test_inf_is_never_the_best():
    plugin = EarlyStopping(patience=2, restore_best=True)
    epoch, trainer = drive(plugin, [float("inf"), 1.0, 2.0, 3.0])
    assert epoch == 4 and (trainer.model.params == 2).all()


def test_a_baseline_never_beaten_restores_the_best_epoch_seen():
    plugin = EarlyStopping(patience=2, baseline=0.5, restore_best=True)
    epoch, trainer = drive(plugin, [0.9, 0.95])
    assert epoch == 2
    assert (trainer.model.params == 1).all()  # epoch 1's 0.9, not the last weights
    assert trainer.message.endswith("best 0.9 at epoch 1, short of the baseline 0.5")


@pytest.mark.parametrize("delta,counted", [(0.01, 9901), (0.0099, 9901), (0.0101, 0)])
def test_min_delta_is_one_rule_for_every_value(delta, counted):
    """A change of exactly min_delta counts, whatever the values' last binary digits."""
    from trainkit.loop.monitor import Monitor

    def improves(metric, best, value):
        monitor = Monitor(metric, min_delta=delta)
        monitor.best = best
        return monitor.is_improvement(value)

    steps = [(k / 10000, (k + 100) / 10000) for k in range(0, 9901)]
    assert sum(improves("val_acc", old, new) for old, new in steps) == counted
    assert sum(improves("val_loss", new, old) for old, new in steps) == counted


def test_a_tie_is_no_improvement_and_min_delta_zero_takes_any_gain():
    from trainkit.loop.monitor import better_by

    assert not better_by(0.5, 0.5, "min", 0.0)
    assert better_by(0.5 - 1e-12, 0.5, "min", 0.0)


def test_resume_keeps_a_patience_count_and_a_best_below_the_baseline():
    a = EarlyStopping(patience=3, baseline=0.1, restore_best=True)
    drive(a, [1.0, 0.5, 0.7])
    state = {}
    a.on_save_checkpoint(state)
    b = EarlyStopping(patience=3, baseline=0.1, restore_best=True)
    b.on_load_checkpoint(json.loads(json.dumps(state, default=lambda array: array.tolist())))
    assert (b.wait, b.monitor.best, b.monitor.best_epoch) == (3, 0.5, 2)


def test_patience_zero_says_what_to_use_instead():
    with pytest.raises(ConfigError, match=r"Keras' patience=0 is 1 here\), got 0"):
        EarlyStopping(patience=0)


def test_a_mode_against_the_metrics_name_is_warned_about():
    trainer = FakeTrainer()
    EarlyStopping(monitor="val_loss", mode="max").on_fit_start(trainer)
    assert trainer.said == "trainkit: early-stopping: warning: mode max for val_loss, which is " \
                           "usually better lower"
    quiet = FakeTrainer()
    EarlyStopping(monitor="val_loss", mode="min").on_fit_start(quiet)
    assert not hasattr(quiet, "said")


@pytest.mark.parametrize("flags,option,wrong,close", [
    (["--plugin", "early-stopping", "--early-stopping-monitor", "val_accuracy"],
     "--early-stopping-monitor", "val_accuracy", " (did you mean 'val_acc'?)"),
    (["--checkpoint-monitor", "val_f1"], "--checkpoint-monitor", "val_f1", ""),
    (["--lr-schedule", "reduce-on-plateau", "--lr-schedule-monitor", "vall_loss"],
     "--lr-schedule-monitor", "vall_loss", " (did you mean 'val_loss'?)")])
def test_a_monitor_typo_is_refused_before_the_first_batch(synthetic_dir, tmp_path, flags, option,
                                                          wrong, close):
    out = tmp_path / "run"
    result = CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1", "--out",
        str(out), *flags])
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in result.output
    assert (f"monitored metric {wrong!r} is not logged{close}; logged: loss, acc, val_loss, "
            f"val_acc, lr") in " ".join(result.output.split())
    assert "[  1/1]" not in result.output and not out.exists()  # no epoch, no run folder


def test_a_trainer_checks_its_plugins_monitors_before_the_first_batch():
    from trainkit import Trainer
    from trainkit.data import DataLoader
    from trainkit.plugins.losses import CrossEntropy
    from trainkit.plugins.metrics import Accuracy
    from trainkit.plugins.models import MLP
    from trainkit.plugins.optimizers import SGD

    model = MLP(hidden=(4,)).build(4, 2, np.random.default_rng(0))
    trainer = Trainer(model, CrossEntropy(), SGD(), [Accuracy()],
                      {"early-stopping": EarlyStopping(monitor="val_acc")})
    data = DataLoader(np.zeros((8, 4), np.float32), np.zeros(8, np.intp), 4)
    with pytest.raises(ConfigError, match="monitored metric 'val_acc' is not logged; logged: "
                                          "loss, acc, lr"):
        trainer.fit(data, None, epochs=1)  # no validation split: no val_acc
    assert trainer.state.global_step == 0
