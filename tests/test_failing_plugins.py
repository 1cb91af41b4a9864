"""A plugin raising in each lifecycle hook in turn: the run stops naming the plugin and the hook,
the emergency checkpoint is written and loads, and the exit code is non-zero."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from trainkit import hookimpl
from trainkit.cli import make_cli
from trainkit.persist.checkpoint_io import load_checkpoint

HOOKS = ["on_fit_start", "on_epoch_start", "on_batch_start", "on_before_optimizer_step",
         "on_batch_end", "on_validation_start", "on_validation_end", "on_epoch_end", "on_fit_end"]


class Failing:
    """Raises in one chosen hook.

    Args:
        hook: the lifecycle hook to raise in.
    """

    def __init__(self, hook: str = "on_batch_end") -> None:
        self.hook = hook

    def fail(self, hook):
        if hook == self.hook:
            raise RuntimeError(f"deliberate failure in {hook}")


for _name in HOOKS:
    def _method(self, _hook=_name):
        self.fail(_hook)

    _method.__name__ = _name
    setattr(Failing, _name, hookimpl(_method))


class FailingFactory:
    @hookimpl
    def register_run_plugins(self, register):
        register("failing", Failing)


@pytest.mark.parametrize("hook", HOOKS)
def test_a_failing_hook_stops_the_run_cleanly(hook, synthetic_dir, tmp_path):
    result = CliRunner().invoke(make_cli([FailingFactory()]), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2", "--out", "run",
        "--plugin", "checkpoint", "--plugin", "failing", "--failing-hook", hook])
    assert result.exit_code == 1, result.output
    assert (f"Error: plugin 'failing' failed in hook {hook}: RuntimeError: deliberate failure "
            f"in {hook}") in result.output
    assert "Traceback" not in result.output
    manifest, arrays = load_checkpoint(tmp_path / "run" / "emergency.npz")
    assert "model/0.weight" in arrays
    expected_epoch = {"on_fit_end": 2, "on_epoch_end": 1}.get(hook, 0)
    assert manifest["epoch"] == expected_epoch


class BrokenHandler:
    """Fails in a batch, and then again while the failure is being handled."""

    name = "broken-handler"

    @hookimpl
    def on_batch_end(self, step):
        if step == 2:
            raise RuntimeError("first failure")

    @hookimpl(tryfirst=True)  # called before the checkpoint plugin's handler
    def on_exception(self):
        raise RuntimeError("second failure")


class BrokenHandlerFactory:
    @hookimpl
    def register_run_plugins(self, register):
        register("broken-handler", BrokenHandler)


def test_a_failing_exception_handler_does_not_stop_the_emergency_checkpoint(
        synthetic_dir, tmp_path):
    result = CliRunner().invoke(make_cli([BrokenHandlerFactory()]), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2", "--out", "run",
        "--plugin", "checkpoint", "--plugin", "broken-handler"])
    assert result.exit_code == 1
    assert "Error: plugin 'broken-handler' failed in hook on_batch_end: RuntimeError: first " \
        "failure" in result.output
    assert ("warning: while handling PluginError: plugin 'broken-handler' failed in hook "
            "on_exception: RuntimeError: second failure") in result.output
    manifest, _ = load_checkpoint(tmp_path / "run" / "emergency.npz")
    assert manifest["state"]["step_in_epoch"] == 3


class NumpyCounter:
    """Keeps a count as a numpy integer, which JSON cannot hold."""

    @hookimpl
    def on_save_checkpoint(self, state):
        import numpy as np

        state["numpy-counter"] = {"seen": {"count": np.int64(3)}}


class NumpyCounterFactory:
    @hookimpl
    def register_run_plugins(self, register):
        register("numpy-counter", NumpyCounter)


def test_a_state_that_is_not_json_names_the_plugin_that_stored_it_and_the_work_is_kept(
        synthetic_dir, tmp_path):
    result = CliRunner().invoke(make_cli([NumpyCounterFactory()]), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2", "--out",
        "run", "--plugin", "numpy-counter"])
    assert result.exit_code == 1, result.output
    assert ("Error: plugin 'numpy-counter' failed in hook on_save_checkpoint: "
            "state['numpy-counter']['seen']['count'] is a numpy.int64, which a checkpoint cannot "
            "hold") in result.output
    assert "plugin 'checkpoint'" not in result.output.split("Error:")[-1]
    assert "without the state of plugin 'numpy-counter'" in result.output
    manifest, arrays = load_checkpoint(tmp_path / "run" / "emergency.npz")
    assert manifest["epoch"] == 1 and "numpy-counter" not in manifest["plugins"]
    assert any(name.startswith("model/") for name in arrays)
