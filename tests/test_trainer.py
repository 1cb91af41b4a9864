"""The Trainer from Python: hook order, stopping, failures naming the plugin, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from trainkit import Trainer, hookimpl
from trainkit.data import DataLoader
from trainkit.errors import PluginError
from trainkit.plugins.losses import CrossEntropy
from trainkit.plugins.metrics import Accuracy, TopKAccuracy
from trainkit.plugins.models import MLP
from trainkit.plugins.optimizers import Adam

from .conftest import make_images


def loaders(seed=0, n_train=256, n_val=64, batch=32):
    rng = np.random.default_rng(123)
    x, y = make_images(n_train, rng)
    vx, vy = make_images(n_val, rng)
    train = DataLoader(x, y, batch, shuffle=True, rng=np.random.default_rng(seed))
    return train, DataLoader(vx, vy, 100)


def make_trainer(plugins=(), seed=0, activation="sigmoid", **kw):
    model = MLP(hidden=(16,), activation=activation).build(784, 10, np.random.default_rng(seed))
    return Trainer(model, CrossEntropy(), Adam(lr=1e-2), [Accuracy(), TopKAccuracy(k=3)],
                   plugins, **kw)


class Recorder:
    """Records every lifecycle hook it sees, accepting only the arguments it needs."""

    def __init__(self):
        self.calls = []

    @hookimpl
    def on_fit_start(self):
        self.calls.append("fit_start")

    @hookimpl
    def on_epoch_start(self, epoch):
        self.calls.append(f"epoch_start {epoch}")

    @hookimpl
    def on_batch_start(self, step):
        self.calls.append(f"batch_start {step}")

    @hookimpl
    def on_before_optimizer_step(self, step):
        self.calls.append(f"before_step {step}")

    @hookimpl
    def on_batch_end(self, step, logs):
        self.calls.append(f"batch_end {step} {sorted(logs)}")

    @hookimpl
    def on_validation_start(self, epoch):
        self.calls.append(f"validation_start {epoch}")

    @hookimpl
    def on_validation_end(self, epoch, logs):
        self.calls.append(f"validation_end {epoch} {sorted(logs)}")

    @hookimpl
    def on_epoch_end(self, epoch, logs):
        self.calls.append(f"epoch_end {epoch} {sorted(logs)}")

    @hookimpl
    def on_fit_end(self, reason):
        self.calls.append(f"fit_end {reason}")


def test_hooks_run_in_design_order():
    recorder = Recorder()
    train, val = loaders(n_train=64, batch=32)
    history = make_trainer([recorder]).fit(train, val, epochs=1)
    batch_logs = "['acc', 'loss', 'top3_acc']"
    val_logs = "['val_acc', 'val_loss', 'val_top3_acc']"
    epoch_logs = "['acc', 'loss', 'lr', 'top3_acc', 'val_acc', 'val_loss', 'val_top3_acc']"
    assert recorder.calls == [
        "fit_start", "epoch_start 1",
        "batch_start 0", "before_step 0", f"batch_end 0 {batch_logs}",
        "batch_start 1", "before_step 1", f"batch_end 1 {batch_logs}",
        "validation_start 1", f"validation_end 1 {val_logs}",
        f"epoch_end 1 {epoch_logs}", "fit_end completed",
    ]
    assert len(history) == 1 and set(history.rows[0]) == set(eval(epoch_logs))


def test_training_learns_and_history_is_sample_weighted():
    train, val = loaders()
    trainer = make_trainer()
    history = trainer.fit(train, val, epochs=5)
    assert history["val_acc"][-1] > 0.9
    assert history["loss"][-1] < history["loss"][0]
    assert trainer.state.epoch == 5 and trainer.state.global_step == 5 * len(train)


def test_same_seed_gives_bit_identical_weights():
    a, b = make_trainer(seed=5), make_trainer(seed=5)
    a.fit(*loaders(seed=1), epochs=2)
    b.fit(*loaders(seed=1), epochs=2)
    np.testing.assert_array_equal(a.model.params, b.model.params)
    c = make_trainer(seed=6)
    c.fit(*loaders(seed=1), epochs=2)
    assert not np.array_equal(a.model.params, c.model.params)


class StopAfter:
    def __init__(self, hook, at):
        self.hook, self.at = hook, at

    @hookimpl
    def on_epoch_end(self, trainer, epoch):
        if self.hook == "epoch" and epoch == self.at:
            trainer.stop("early-stopping")

    @hookimpl
    def on_batch_end(self, trainer, step):
        if self.hook == "batch" and step == self.at:
            trainer.stop("nan")


def test_stop_from_epoch_end_finishes_that_epoch():
    recorder = Recorder()
    trainer = make_trainer([StopAfter("epoch", 2), recorder])
    history = trainer.fit(*loaders(), epochs=10)
    assert len(history) == 2 and trainer.state.epoch == 2
    assert recorder.calls[-1] == "fit_end early-stopping"


def test_stop_from_a_batch_ends_mid_epoch_without_validation():
    recorder = Recorder()
    trainer = make_trainer([StopAfter("batch", 2), recorder])
    trainer.fit(*loaders(), epochs=3)
    assert trainer.state.epoch == 0 and trainer.state.step_in_epoch == 3
    assert not any(c.startswith("validation") for c in recorder.calls)
    assert recorder.calls[-1] == "fit_end nan"


class Failing:
    name = "failing"

    def __init__(self):
        self.seen = []

    @hookimpl
    def on_batch_end(self, step):
        if step == 1:
            raise RuntimeError("boom")

    @hookimpl
    def on_exception(self, exception):
        self.seen.append(type(exception).__name__)

    @hookimpl
    def on_fit_end(self, reason):
        self.seen.append(reason)


def test_an_exception_in_a_hook_names_the_plugin_and_the_hook():
    failing = Failing()
    trainer = make_trainer([failing])
    with pytest.raises(PluginError) as info:
        trainer.fit(*loaders(), epochs=1)
    assert info.value.plugin == "failing" and info.value.hook == "on_batch_end"
    assert "plugin 'failing' failed in hook on_batch_end: RuntimeError: boom" in str(info.value)
    assert failing.seen == ["PluginError", "failed"]
    assert trainer.state.step_in_epoch == 2  # the step itself had completed


def test_run_plugins_are_unregistered_after_fit():
    trainer = make_trainer([Recorder()])
    trainer.fit(*loaders(n_train=32), epochs=1)
    assert not [n for n, _ in trainer.plugin_manager.list_name_plugin() if n.startswith("run:")]


def test_evaluate_does_not_change_weights():
    trainer = make_trainer()
    before = trainer.model.params.copy()
    logs = trainer.evaluate(loaders()[1])
    np.testing.assert_array_equal(trainer.model.params, before)
    assert set(logs) == {"loss", "acc", "top3_acc"} and 0 <= logs["acc"] <= 1


@pytest.mark.parametrize("activation", ["sigmoid", "relu", "tanh"])
def test_no_float64_appears_in_a_training_step(activation):
    trainer = make_trainer(activation=activation)
    seen = []

    def watch(fn):
        def wrapper(*args):
            out = fn(*args)
            if isinstance(out, np.ndarray):
                seen.append(out.dtype)
            return out
        return wrapper

    for layer in trainer.model.layers:
        layer.forward, layer.backward = watch(layer.forward), watch(layer.backward)
    trainer.loss.backward = watch(trainer.loss.backward)
    trainer.fit(*loaders(n_train=64), epochs=1)
    assert seen and set(seen) == {np.dtype(np.float32)}
    assert trainer.model.params.dtype == np.float32 and trainer.model.grads.dtype == np.float32
    for name in trainer.optimizer.state_names:
        assert getattr(trainer.optimizer, name).dtype == np.float32


class SampleRecorder:
    """Records which samples each training batch holds (every image here is its own index)."""

    def __init__(self):
        self.seen: list[int] = []
        self.steps: list[int] = []

    @hookimpl
    def on_batch_start(self, step, batch):
        x, _ = batch
        self.seen += np.rint(x[:, 0] * 255).astype(int).tolist()
        self.steps.append(step)


@pytest.mark.parametrize("done,batch", [(48, 8), (40, 16), (96, 16)])
def test_a_resumed_epoch_continues_at_the_first_sample_not_trained_on(done, batch):
    # A checkpoint taken mid-epoch by a run whose global batches had another size (another number
    # of data-parallel processes): `done` samples of the epoch's order were trained on. The resumed
    # epoch trains on exactly the others, whether or not `done` is a multiple of the new batch.
    n = 100
    images = np.repeat(np.arange(n, dtype=np.uint8)[:, None], 784, axis=1)
    labels = np.arange(n) % 10
    loader = DataLoader(images, labels, batch, shuffle=True, rng=np.random.default_rng(5))
    order = np.random.default_rng(5).permutation(n)
    recorder = SampleRecorder()
    trainer = make_trainer([recorder])
    trainer.state.epoch_rng_state = loader.epoch_rng_state
    trainer.state.step_in_epoch = 3  # in the old run's batches: not this run's
    trainer.state.sums = [float(done), 0.0, 0.0, 0.0]
    trainer.fit(loader, None, epochs=1)
    assert recorder.seen == order[done:].tolist()
    assert recorder.steps[-1] == len(loader) - 1  # the epoch ends on its last step
    assert trainer.history.rows[0]["loss"] > 0


class AddsALog:
    """Adds a key to the epoch's logs with a plain @hookimpl."""

    @hookimpl
    def on_epoch_end(self, logs):
        logs["twice_acc"] = 2 * logs["acc"]


def test_a_key_a_plugin_adds_in_on_epoch_end_reaches_the_console_and_history_files(
        tmp_path, capsys):
    from trainkit.plugins.console import Console
    from trainkit.plugins.history import HistoryFiles

    # registered first, so without trylast on the reporters pluggy would call it last
    trainer = make_trainer(plugins=[AddsALog(), Console(), HistoryFiles()], run_dir=tmp_path)
    train, val = loaders()
    trainer.fit(train, val, epochs=1)
    assert "twice_acc:" in capsys.readouterr().out
    assert "twice_acc" in (tmp_path / "history.csv").read_text().splitlines()[0]


def test_the_old_names_of_the_epoch_log_and_the_history_plugin_still_work_with_a_warning():
    import trainkit
    from trainkit.loop.trainer import EpochLog
    from trainkit.plugins import history as history_plugin

    with pytest.warns(DeprecationWarning, match="now EpochLog"):
        assert trainkit.History is EpochLog
    with pytest.warns(DeprecationWarning, match="now HistoryFiles"):
        assert history_plugin.History is history_plugin.HistoryFiles


def test_hooks_receive_the_run_context(synthetic_dir, tmp_path):
    from click.testing import CliRunner

    from trainkit.cli import make_cli
    from trainkit.loop.context import RunContext

    seen = []

    class Reader:
        name = "reader"

        @hookimpl
        def on_fit_start(self, context):
            seen.append(context)

    result = CliRunner().invoke(make_cli([Reader()]), [
        "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1", "--out",
        "run", "--threads", "1"])
    assert result.exit_code == 0, result.output
    (context,) = seen
    assert isinstance(context, RunContext) and context.run_dir.name == "run"
    assert context.config["epochs"] == 1 and context.threads == 1
    assert context.is_main_process


def test_a_trainer_fed_labels_outside_the_classes_stops_with_a_data_error():
    from trainkit.errors import DataError

    rng = np.random.default_rng(1)
    x, y = make_images(64, rng)
    train = DataLoader(x, y + 1, 32)  # labels 1-10 for 10 outputs
    with pytest.raises(DataError, match=r"^label 10 is outside the model's 10 classes"):
        make_trainer().fit(train, DataLoader(x, y, 32), epochs=1)
