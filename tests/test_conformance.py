"""trainkit.testing for plugin authors: the fixtures, and check_plugin on good and bad plugins,
and on every built-in run plugin (that is how we know the check is real)."""

from __future__ import annotations

import importlib.util
import shutil

import pytest

from trainkit import hookimpl
from trainkit.testing.conformance import PluginCheckError, check_plugin


class CountsInMemory:
    """Counts optimizer steps, and forgets the count on resume."""

    name = "step-counter"

    def __init__(self, start: int = 0) -> None:
        self.count = start

    @hookimpl
    def on_batch_end(self):
        self.count += 1


class CountsInCheckpoints(CountsInMemory):
    """The same counter, kept in checkpoints."""

    @hookimpl
    def on_save_checkpoint(self, state):
        state[self.name] = {"count": self.count}

    @hookimpl
    def on_load_checkpoint(self, state):
        self.count = state.get(self.name, {}).get("count", self.count)


def test_a_counter_kept_only_in_memory_fails_naming_the_resume_problem(tmp_path):
    with pytest.raises(PluginCheckError) as failed:
        check_plugin(CountsInMemory, ddp=False, folder=tmp_path)
    message = str(failed.value)
    assert "your plugin's state after resume differs: `count` was" in message
    assert "on_save_checkpoint" in message


def test_the_same_counter_kept_in_checkpoints_passes(tmp_path):
    report = check_plugin(CountsInCheckpoints, ddp=False, folder=tmp_path)
    assert "an interrupted run and its resume" in report.ran
    assert "its options through the command line, a config file and the environment" in \
        report.ran


class FailsWhenAnotherFails(CountsInCheckpoints):
    name = "fragile"

    @hookimpl
    def on_exception(self, exception):
        raise ValueError("cannot cope")


def test_a_plugin_that_breaks_when_another_fails_is_named(tmp_path):
    with pytest.raises(PluginCheckError, match="your plugin failed too"):
        check_plugin(FailsWhenAnotherFails, ddp=False, folder=tmp_path)


def builtin_run_plugins():
    from trainkit.plugin.manager import get_plugin_manager
    from trainkit.plugin.registry import Registry

    registry = Registry.collect(get_plugin_manager(autoload=False))
    return sorted(registry.components["plugin"].items())


NEEDS = {"ddp": "mpi4py", "tensorboard": "tensorboardX", "mlflow": "mlflow",
         "plot": "matplotlib", "confusion-matrix": "matplotlib"}


#: Options that only make sense together: lr-schedule refuses an option its schedule never
#: reads, so the guess of a non-default for every option (a step schedule with a warm-up) is
#: replaced by reduce-on-plateau's own options, and the other schedules' at their defaults.
OPTIONS = {"lr-schedule": {"schedule": "reduce-on-plateau", "gamma": 0.5, "min_lr": 1e-5,
                           "monitor": "val_acc", "mode": "max", "patience": 3,
                           "threshold": 0.01, "threshold_mode": "rel", "cooldown": 1,
                           "step_size": 10, "warmup": 0, "warmup_steps": 0, "pct_start": 0.3,
                           "cycle": 0},
           "ema": {"decay": 0.99, "warmup": False, "power": 0.5, "evaluate": False},
           "swa": {"start": 2, "lr": 0.005},
           "mixup": {"mode": "both", "alpha": 0.4, "probability": 0.9}}


@pytest.mark.parametrize("name,component", builtin_run_plugins(), ids=lambda v: str(v)[:20])
def test_every_builtin_run_plugin_passes_check_plugin(name, component, tmp_path):
    if name in NEEDS and importlib.util.find_spec(NEEDS[name]) is None:
        pytest.skip(f"{name} needs {NEEDS[name]}")
    # one plugin also runs the 2-rank ddp check (where MPI is installed): enough to show it runs
    ddp = None if name == "history" else False
    report = check_plugin(component.factory, name=name, ddp=ddp, folder=tmp_path,
                          options=OPTIONS.get(name))
    assert "an interrupted run and its resume" in report.ran
    if name == "history" and shutil.which("mpiexec") and importlib.util.find_spec("mpi4py"):
        assert "a 2-rank ddp run" in report.ran


def test_the_fixtures(trainkit_cli, hook_recorder, tiny_dataset):
    splits = tiny_dataset.load()
    assert splits.train_images.shape == (320, 8, 8) and splits.num_classes == 10
    result = trainkit_cli(["run", "--epochs", "3", "--lr", "0.01"], plugins=[hook_recorder])
    assert result.exit_code == 0, result.output
    assert len(result.history) == 3
    assert result.history[-1]["val_acc"] > 0.9  # tiny is learnable in a few steps
    assert {"last.npz", "final.npz", "best.npz"} <= set(result.checkpoints)
    names = hook_recorder.names()
    assert names[0] == "on_fit_start" and names[-1] == "on_fit_end"
    assert hook_recorder.count("on_epoch_end") == 3
    (_, arguments), = [c for c in hook_recorder.calls if c[0] == "on_fit_end"]
    assert arguments == {"reason": "completed"}


def test_the_pytest_plugin_imports_nothing_heavy_at_pytest_start():
    import subprocess
    import sys

    code = ("import sys, trainkit.testing\n"
            "print([m for m in ('numpy', 'click', 'trainkit.cli') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60).stdout.strip()
    assert out == "[]"
    from importlib.metadata import entry_points

    assert "trainkit.testing" in [e.value for e in entry_points(group="pytest11")]


def test_the_hook_recorder_records_every_hook_a_run_calls(trainkit_cli, hook_recorder):
    """One list of hooks (hookspecs.RUN_HOOKS): messages and checkpoint hooks are recorded too."""
    from trainkit import hookimpl, hookspecs

    class Says:
        name = "says"

        @hookimpl
        def on_fit_start(self, trainer):
            trainer.say("trainkit: says: hello")

    result = trainkit_cli(["run", "--epochs", "1"], plugins=[hook_recorder, Says()])
    assert result.exit_code == 0, result.output
    assert "trainkit: says: hello" in result.output  # the recorder did not swallow it
    assert all(callable(getattr(hook_recorder, hook)) for hook in hookspecs.RUN_HOOKS)
    assert hook_recorder.count("on_message") == 1
    assert hook_recorder.count("on_save_checkpoint") >= 1
