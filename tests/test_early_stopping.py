"""early-stopping on scripted metrics with a fake trainer, and on real MNIST."""

from __future__ import annotations

import re

import numpy as np
import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli
from trainkit.errors import ConfigError
from trainkit.plugins.early_stopping import EarlyStopping


class FakeTrainer:
    is_main_process = True

    def __init__(self):
        self.model = type("Model", (), {"params": np.zeros(3, np.float32)})()
        self.stopped = None

    def stop(self, reason):
        self.stopped = reason


def drive(plugin, values, key="val_loss"):
    """Feed one value per epoch, with weights equal to the epoch number; return the stop epoch."""
    trainer = FakeTrainer()
    for epoch, value in enumerate(values, 1):
        trainer.model.params[:] = epoch
        plugin.on_epoch_end(trainer, epoch, {key: value})
        if trainer.stopped:
            plugin.on_fit_end(trainer, trainer.stopped)
            return epoch, trainer
    plugin.on_fit_end(trainer, "completed")
    return None, trainer


def test_stops_after_patience_epochs_without_improvement_and_restores_the_best():
    plugin = EarlyStopping(patience=2, restore_best=True)
    epoch, trainer = drive(plugin, [1.0, 0.8, 0.85, 0.9, 0.5])
    assert epoch == 4 and trainer.stopped == "early-stopping"
    assert (trainer.model.params == 2).all()  # epoch 2 had the best val_loss


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
        drive(EarlyStopping(monitor="val_nope"), [1.0])


@pytest.mark.slow
def test_on_real_mnist_small_patience_stops_before_the_last_epoch(mnist_dir):
    result = CliRunner().invoke(make_cli(), [
        "run", "--data-dir", str(mnist_dir), "--epochs", "10", "--out", "run",
        "--plugin", "early-stopping", "--early-stopping-patience", "1",
        "--early-stopping-min-delta", "0.03"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    epochs = re.findall(r"\[\s*(\d+)/10\]", result.output)
    assert 1 < len(epochs) < 10
    assert "early stopping at epoch" in result.output and "early-stopping after epoch" in result.output
