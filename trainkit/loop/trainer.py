"""The training loop. It calls the lifecycle hooks and owns no optional feature.

Everything optional (progress bars, logging, checkpoints, early stopping, ...) is a plugin that
implements hooks. The Trainer keeps the run's state consistent at batch boundaries, so that a
checkpoint written from any hook, or from ``on_exception`` after Ctrl+C, resumes bit-exactly.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainkit.data.loader import Batch, DataLoader
from trainkit.errors import PluginError, TrainkitError
from trainkit.loop.context import CONTEXT_FIELDS, RunContext
from trainkit.loop.metrics import MetricSet
from trainkit.loop.profiler import LIFECYCLE_HOOKS, HookProfiler
from trainkit.plugin import contract
from trainkit.plugin.manager import each_implementation

__all__ = ["Batch", "EpochLog", "TrainState", "Trainer"]

#: Run plugin objects are registered with the plugin manager as "run:<name>" for one run, so
#: that a run plugin may share its name with the module that registers it.
RUN_PLUGIN_PREFIX = "run:"


@dataclass
class TrainState:
    """Where the run is. Consistent after every completed optimizer step.

    ``epoch`` is the last completed epoch (0 before training); ``step_in_epoch`` counts the steps
    completed in the epoch under way; ``sums`` is that epoch's metric state so far, ``[samples,
    loss * samples, each metric's state...]`` (``trainkit.loop.metrics.MetricSet``), so that a resumed
    epoch logs exactly what an uninterrupted one would.
    """

    epoch: int = 0
    global_step: int = 0
    step_in_epoch: int = 0
    epoch_rng_state: dict[str, Any] | None = None
    sums: Any = field(default_factory=list)  # a float64 array during an epoch

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "global_step": self.global_step,
            "step_in_epoch": self.step_in_epoch,
            "epoch_rng_state": self.epoch_rng_state,
            "sums": [float(x) for x in self.sums],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TrainState:
        return cls(int(data["epoch"]), int(data["global_step"]), int(data["step_in_epoch"]),
                   data.get("epoch_rng_state"), [float(x) for x in data.get("sums", [])])


class EpochLog:
    """Every epoch's logs, in order: ``log.rows[-1]["val_acc"]`` or ``log["loss"]``. What
    ``fit`` returns and ``trainer.history`` holds (the ``history`` plugin writes it to files)."""

    def __init__(self, rows: Iterable[dict[str, float]] = ()) -> None:
        self.rows: list[dict[str, float]] = [dict(r) for r in rows]

    def append(self, row: dict[str, float]) -> None:
        self.rows.append(row)

    def __getitem__(self, key: str) -> list[float]:
        return [row[key] for row in self.rows if key in row]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"EpochLog({len(self.rows)} epochs)"

    def plot(self, metrics: Sequence[str] | None = None, *, width: float = 5.0,
             height: float = 4.0):
        """The curves as a matplotlib figure, train against validation (and the test score):
        shown inline when a notebook cell ends with it. Needs ``trainkit[plot]``."""
        from trainkit.loop.curves import curves_figure

        return curves_figure(self.rows, width=width, height=height, names=metrics)

    def to_pandas(self):
        """The epochs as a ``pandas.DataFrame``, one row per epoch (index from 1)."""
        try:
            import pandas
        except ImportError:
            raise TrainkitError("EpochLog.to_pandas needs pandas: pip install pandas") from None
        frame = pandas.DataFrame(self.rows)
        frame.index = pandas.RangeIndex(1, len(self.rows) + 1, name="epoch")
        return frame


class _Hooks:
    """Calls hooks by name, skips hooks nobody implements, and names the plugin that fails."""

    def __init__(self, pm) -> None:
        self.pm = pm
        #: set during ``fit``: the training loop's hooks are then timed per plugin
        self.profiler: HookProfiler | None = None

    def caller(self, name: str):
        """The hook's caller, or ``None`` when no plugin implements it (the cheap skip).

        While a profiler is set, a lifecycle hook without wrappers is called here, one
        implementation at a time in pluggy's order with pluggy's argument rule, each timed
        (two ``perf_counter`` calls) and named when it fails; otherwise pluggy calls it."""
        hook = getattr(self.pm.hook, name)
        impls = hook.get_hookimpls()
        if not impls:
            return None
        if self.profiler is None or name not in LIFECYCLE_HOOKS or \
                any(impl.hookwrapper or impl.wrapper for impl in impls):
            return lambda **kwargs: self._call(hook, name, kwargs)
        plan = [(impl.function, impl.argnames, impl.plugin_name.removeprefix(RUN_PLUGIN_PREFIX),
                 self.profiler.stat(impl, name)) for impl in reversed(impls)]
        clock = time.perf_counter

        def call(**kwargs: Any) -> None:
            for function, argnames, plugin, stat in plan:
                start = clock()
                try:
                    function(*[kwargs[arg] for arg in argnames])
                except PluginError:
                    raise
                except Exception as e:
                    raise PluginError(plugin, name, e) from e
                finally:
                    stat.add(clock() - start)

        return call

    def __call__(self, name: str, **kwargs: Any) -> None:
        call = self.caller(name)
        if call is not None:
            call(**kwargs)

    def each(self, name: str, **kwargs: Any) -> list[PluginError]:
        """Call every implementation on its own, in pluggy's order, so that one that raises does
        not keep the others from running; returns the failures. For ``on_exception``: the
        checkpoint plugin must still get it when another plugin's handler breaks."""
        return [PluginError(impl.plugin_name.removeprefix(RUN_PLUGIN_PREFIX), name, error)
                for impl, error in each_implementation(getattr(self.pm.hook, name), **kwargs)
                if error is not None]

    def _call(self, hook, name: str, kwargs: dict[str, Any]) -> None:
        try:
            hook(**kwargs)
        except PluginError:
            raise
        except Exception as e:
            raise PluginError(self.culprit(hook, e), name, e) from e

    @staticmethod
    def culprit(hook, error: BaseException) -> str:
        codes = {}
        for impl in hook.get_hookimpls():
            function = getattr(impl.function, "__func__", impl.function)
            code = getattr(function, "__code__", None)
            if code is not None:
                codes[code] = impl.plugin_name
        tb = error.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code in codes:
                return codes[tb.tb_frame.f_code].removeprefix(RUN_PLUGIN_PREFIX)
            tb = tb.tb_next
        return "unknown"


class Trainer:
    """Trains ``model`` with ``loss`` and ``optimizer``, calling the lifecycle hooks on the way.

    Usable from Python without the CLI::

        trainer = Trainer(model, CrossEntropy(), Adam(lr=1e-3), metrics=[Accuracy()],
                          plugins=[MyPlugin()])
        history = trainer.fit(train_loader, val_loader, epochs=10, test=test_loader)

    ``plugins`` are run plugin objects: they are registered with the plugin manager for the
    duration of ``fit``. ``plugin_manager`` defaults to one with trainkit's hook specs and no
    plugins at all, which is what library use usually wants.
    """

    def __init__(
        self,
        model,
        loss,
        optimizer,
        metrics: Sequence[Any] = (),
        plugins: Iterable[Any] | dict[str, Any] = (),
        *,
        plugin_manager=None,
        run_dir: str | Path | None = None,
        config: dict[str, Any] | None = None,
        is_main_process: bool = True,
        context: RunContext | None = None,
    ) -> None:
        if plugin_manager is None:
            from trainkit.plugin.manager import PluginManager

            plugin_manager = PluginManager()
        self.plugin_manager = plugin_manager
        self.model = model
        self.loss = loss
        self.optimizer = optimizer
        #: the metrics' state layout; ``self.metrics`` are its metrics (batch means wrapped)
        self.metric_set = MetricSet(metrics)
        self.metrics = self.metric_set.metrics
        self._evaluation_metrics: list[Any] = []
        self._evaluation_set: MetricSet | None = None
        if isinstance(plugins, dict):
            self.plugins = dict(plugins)
        else:
            self.plugins = {contract.read(p, "name") or f"{type(p).__name__}-{id(p):x}": p
                            for p in plugins}
        #: the run's facts (run folder, config, main process, BLAS): see trainkit.loop.context
        self.context = context or RunContext(run_dir=run_dir, config=config or {},
                                             is_main_process=is_main_process)
        #: The current batch's metric state (``[samples, loss * samples, metric states...]``),
        #: set before ``on_before_optimizer_step``: a data-parallel plugin sums it across
        #: processes there, in place, and the batch's logs are computed from it afterwards.
        self.batch_state: np.ndarray | None = None
        #: Every metric's value from the last evaluations, arrays (a confusion matrix) included,
        #: by logged name: ``results["val_confusion"]``, ``results["test_f1"]``.
        self.results: dict[str, Any] = {}
        self.state = TrainState()
        self.history = EpochLog()
        self.epochs = 0
        self.train_loader: DataLoader | None = None
        self.val_loader: DataLoader | None = None
        self.test_loader: DataLoader | None = None
        #: The test split's scores, once ``fit`` has scored it (``test_loss``, ``test_acc``, ...).
        self.test_logs: dict[str, float] | None = None
        self.stop_reason: str | None = None
        self.stop_message: str | None = None
        self._interrupt_requested = False
        self._interrupt_signalled = False
        self._interrupt_forced = False
        #: Set by a plugin that coordinates several processes: a Ctrl+C then stops the loop only
        #: once that plugin calls ``request_interrupt()``.
        self.collective_interrupts = False
        self._pending_plugin_state: dict[str, Any] | None = None
        self._pending_data_rng: dict[str, Any] | None = None
        self.profiler: HookProfiler | None = None  # the last fit's hook timings
        self.loop_seconds = 0.0  # time spent in training epochs in the last fit
        self._hooks = _Hooks(plugin_manager)
        optimizer.bind(model.params, model.grads)

    # ------------------------------------------------------------------ control

    def stop(self, reason: str = "stopped", message: str | None = None) -> None:
        """Ask the loop to stop: after this batch (from a batch hook) or this epoch.

        ``reason`` becomes ``on_fit_end``'s reason; ``message`` says why, for the user.
        """
        self.stop_reason = reason
        self.stop_message = message

    @property
    def interrupt_signalled(self) -> bool:
        """True once Ctrl+C was pressed in this process."""
        return self._interrupt_signalled

    @property
    def interrupt_forced(self) -> bool:
        """True once a second Ctrl+C stopped the run at once, in the middle of a step: the state
        is then not consistent, and nothing may be saved from it (no emergency checkpoint)."""
        return self._interrupt_forced

    @property
    def interrupt_requested(self) -> bool:
        """True once the loop has decided to stop at the next batch boundary."""
        return self._interrupt_requested

    def request_interrupt(self) -> None:
        """Stop at the next batch boundary as if Ctrl+C had been pressed here."""
        self._interrupt_requested = True

    def _should_interrupt(self) -> bool:
        # With collective_interrupts a plugin (ddp) turns a local Ctrl+C into request_interrupt()
        # at a step every process agrees on; acting on the local signal alone would leave the
        # other processes waiting in a collective.
        return self._interrupt_requested or (
            self._interrupt_signalled and not self.collective_interrupts)

    def restore_pending(self, data_rng_state: dict[str, Any] | None,
                        plugin_state: dict[str, Any]) -> None:
        """Remember state that can only be applied inside ``fit``: the training data's random
        generator and the plugins' own state (see ``trainkit.session.snapshot.restore``)."""
        self._pending_data_rng = data_rng_state
        self._pending_plugin_state = plugin_state

    def call_hook(self, name: str, **kwargs: Any) -> None:
        """Call a hook on every plugin, with ``trainer`` and ``context``; failures name the
        plugin."""
        self._hooks(name, trainer=self, context=self.context, **kwargs)

    # ------------------------------------------------------------------ fit

    def fit(self, train: DataLoader, val: DataLoader | None = None, epochs: int = 10,
            test: DataLoader | None = None) -> EpochLog:
        """Train until ``epochs`` epochs are complete (counting epochs already done on resume).

        ``val`` is scored after every epoch (``val_*``) and is what early stopping, best
        checkpoints and plateau schedules watch. ``test`` is scored once, when training has
        ended normally (``test_*``, added to the last history row): it never steers training.
        """
        from trainkit.loop.monitor import check_monitors

        check_monitors(self.plugins, self.logged_names(validation=val is not None))
        self.train_loader, self.val_loader, self.epochs = train, val, epochs
        self.test_loader, self.test_logs = test, None
        self.stop_reason = None
        self._interrupt_requested = self._interrupt_signalled = self._interrupt_forced = False
        registered = [self.plugin_manager.register(p, name=RUN_PLUGIN_PREFIX + name)
                      for name, p in self.plugins.items()
                      if not self.plugin_manager.is_registered(p)]
        if self._pending_data_rng is not None:
            train.rng.bit_generator.state = self._pending_data_rng
            self._pending_data_rng = None
        self._bind_metrics(train)
        reason = "failed"
        in_flight: BaseException | None = None
        previous_handler = self._install_sigint_handler()
        self.profiler = self._hooks.profiler = HookProfiler()
        self.loop_seconds = 0.0
        try:
            if self._pending_plugin_state is not None:
                self.call_hook("on_load_checkpoint", state=self._pending_plugin_state)
                self._pending_plugin_state = None
            self.call_hook("on_fit_start")
            while self.state.epoch < epochs and self.stop_reason is None:
                self._run_epoch(self.state.epoch + 1)
                if self._should_interrupt():
                    raise KeyboardInterrupt
            reason = self.stop_reason or "completed"
            self.call_hook("on_train_end", reason=reason)
            if self.test_loader is not None and reason != "nan":
                self._test()
        except BaseException as e:
            in_flight = e
            reason = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            self._notify_exception(e)
            raise
        finally:
            self._hooks.profiler = None
            self._restore_sigint_handler(previous_handler)
            try:
                self.call_hook("on_fit_end", reason=reason)
            except Exception as e:
                if in_flight is None:  # otherwise the first failure is the one to report
                    self._notify_exception(e)
                    raise
            finally:
                for name in registered:
                    if name is not None:
                        self.plugin_manager.unregister(name=name)
        return self.history

    def logged_names(self, validation: bool = True) -> list[str]:
        """The names every epoch's logs hold, known before the first batch: ``loss`` and each
        logged metric, the same with ``val_`` when there is a validation split, and ``lr``."""
        from trainkit.loop.metrics import as_metric, logged

        train = ["loss", *(m.name for m in map(as_metric, self.metrics) if logged(m))]
        names = list(train)
        if validation:
            extra = [m.name for m in self._evaluation_metrics if logged(m)]
            names += [f"val_{name}" for name in (*train, *extra)]
        return [*names, "lr"]

    def add_evaluation_metric(self, metric: Any) -> None:
        """Also compute ``metric`` in validation and test passes (not in training steps): how a
        run plugin asks for a metric it needs, such as a confusion matrix, whatever ``--metric``
        chose. A metric of the same name already there is kept instead."""
        from trainkit.loop.metrics import as_metric

        metric = as_metric(metric)
        known = {m.name for m in (*self.metrics, *self._evaluation_metrics)}
        if metric.name not in known:
            self._evaluation_metrics.append(metric)
            self._evaluation_set = None

    def _bind_metrics(self, loader: DataLoader) -> None:
        """Lay the metric states out for the model's number of outputs, read from a forward pass
        of one sample in evaluation mode (no random draw, no statistics updated)."""
        if self.metric_set.bound:
            return
        training = getattr(self.model, "training", True)
        self._set_mode(False)
        try:
            x, _ = loader.make_batch(np.zeros(1, dtype=np.intp))
            outputs = self.model.forward(x)
        finally:
            self._set_mode(training)
        self.metric_set.bind(int(outputs.shape[1]))

    def _test(self) -> None:
        self.call_hook("on_test_start")
        logs = self.evaluate(self.test_loader, prefix="test_")
        self.call_hook("on_test_end", logs=logs)
        self.test_logs = logs
        if self.history.rows:
            self.history.rows[-1].update(logs)

    def _notify_exception(self, error: BaseException) -> None:
        for hook_error in self._hooks.each("on_exception", trainer=self, context=self.context,
                                           exception=error):
            # never mask the original failure; do say it
            self.say(f"trainkit: warning: while handling {type(error).__name__}: {hook_error}",
                     "warning")

    def _run_epoch(self, epoch: int) -> None:
        state, loader = self.state, self.train_loader
        if state.step_in_epoch and state.epoch_rng_state is not None:
            order = loader.resume_epoch(state.epoch_rng_state)  # continue a resumed epoch
            if len(state.sums):
                self.metric_set.check(state.sums, "the resumed checkpoint")
            sums = state.sums = np.array(state.sums, dtype=np.float64) if len(state.sums) else \
                self.metric_set.new_state()
            # Continue at the first sample not trained on (sums[0] counts them, globally under
            # data parallelism), so that a resume with another number of processes, whose global
            # batches are another size, neither skips nor repeats a sample.
            first_sample = (int(sums[0]) if sums[0] else
                            state.step_in_epoch * loader.batch_size * loader.world)
            start = len(loader) - loader.batches_left(first_sample)
            state.step_in_epoch = start
        else:
            order = loader.new_epoch()
            first_sample, start, sums = 0, 0, self.metric_set.new_state()
            state.step_in_epoch, state.sums = 0, sums
        state.epoch_rng_state = loader.epoch_rng_state
        started = time.perf_counter()
        self._set_mode(True)
        self.call_hook("on_epoch_start", epoch=epoch)
        if start < len(loader):
            try:
                completed = self._train_batches(loader.batches(order, first_sample), start, sums)
            finally:
                self.loop_seconds += time.perf_counter() - started
            if not completed:
                return  # stopped mid-epoch: no validation, no epoch end
        logs, results = self.metric_set.summary(sums)
        self.results.update(results)
        if self.val_loader is not None:
            self.call_hook("on_validation_start", epoch=epoch)
            val_logs = self.evaluate(self.val_loader, prefix="val_")
            self.call_hook("on_validation_end", epoch=epoch, logs=val_logs)
            logs.update(val_logs)
        logs["lr"] = self.optimizer.lr
        state.epoch, state.step_in_epoch, state.sums = epoch, 0, []
        self.history.append(logs)
        started = time.perf_counter()
        self.call_hook("on_epoch_end", epoch=epoch, logs=logs)
        self.loop_seconds += time.perf_counter() - started
        for warning in self.profiler.slow_warnings(self.loop_seconds):
            self.say(warning, "warning")

    def _train_batches(self, batches, start: int, sums: np.ndarray) -> bool:
        model, loss_fn, optimizer, state, context = (
            self.model, self.loss, self.optimizer, self.state, self.context)
        metric_set = self.metric_set
        batch_state = self.batch_state = metric_set.new_state()
        hooks = self._hooks
        batch_start = hooks.caller("on_batch_start")
        before_step = hooks.caller("on_before_optimizer_step")
        batch_end = hooks.caller("on_batch_end")
        for step, batch in enumerate(batches, start):
            if batch_start is not None:
                batch_start(trainer=self, context=context, step=step, batch=batch)
            x, y = batch
            outputs = model.forward(x)
            batch_state[:] = 0.0
            metric_set.update(batch_state, outputs, y, loss_fn.forward(outputs, y))
            model.backward(loss_fn.backward())
            if before_step is not None:  # data-parallel training sums batch_state here
                before_step(trainer=self, context=context, step=step)
            optimizer.step()
            sums += batch_state
            logs = metric_set.batch_logs(batch_state)  # values computed when read
            state.global_step += 1
            state.step_in_epoch = step + 1
            if batch_end is not None:
                batch_end(trainer=self, context=context, step=step, batch=batch, logs=logs)
            if (self._interrupt_requested or self._interrupt_signalled) and \
                    self._should_interrupt():
                raise KeyboardInterrupt
            if self.stop_reason is not None:
                return False
        return True

    # ------------------------------------------------------------------ evaluate

    def evaluate(self, data: DataLoader, prefix: str = "") -> dict[str, float]:
        """Loss and metrics over ``data`` (each computed once from its state summed over every
        batch), in evaluation mode (dropout off, batch norm on its running statistics), without
        touching the weights; the model's mode is put back afterwards. Metric values that are
        arrays go to ``self.results`` only."""
        self._bind_metrics(data)
        training = getattr(self.model, "training", True)
        self._set_mode(False)
        try:
            return self._evaluate(data, prefix)
        finally:
            self._set_mode(training)

    def _set_mode(self, training: bool) -> None:
        """Train or eval mode, for models that have modes (every ``trainkit.nn.Module``)."""
        switch = getattr(self.model, "train", None)
        if switch is not None:
            switch(training)

    def _evaluate(self, data: DataLoader, prefix: str) -> dict[str, float]:
        metric_set = self._evaluation_metric_set()
        state = metric_set.new_state()
        for x, y in data.batches(np.arange(len(data.labels))):
            outputs = self.model.forward(x)
            metric_set.update(state, outputs, y, self.loss.forward(outputs, y))
        # a data-parallel plugin sums the processes' states here
        self.call_hook("on_evaluation_state", state=state, prefix=prefix)
        logs, results = metric_set.summary(state, prefix)
        self.results.update(results)
        return logs

    def _evaluation_metric_set(self) -> MetricSet:
        """The run's metrics plus those plugins asked for (``add_evaluation_metric``)."""
        if not self._evaluation_metrics:
            return self.metric_set
        if self._evaluation_set is None:
            self._evaluation_set = MetricSet([*self.metrics, *self._evaluation_metrics])
            self._evaluation_set.bind(self.metric_set.num_classes)
        return self._evaluation_set

    # ------------------------------------------------------------------ Ctrl+C

    def _install_sigint_handler(self):
        """Defer the first Ctrl+C to the next batch boundary, where the state is consistent."""
        if threading.current_thread() is not threading.main_thread():
            return None
        if signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
            return None

        def handler(signum, frame):
            if self._interrupt_signalled:  # a second Ctrl+C: stop right now
                self._interrupt_forced = True
                self.say("trainkit: second Ctrl+C: stopping now, without an emergency "
                         "checkpoint", "warning")
                raise KeyboardInterrupt
            self._interrupt_signalled = True
            self.say("trainkit: Ctrl+C: stopping after this batch; press Ctrl+C again to stop "
                     "now without an emergency checkpoint", "warning")

        return signal.signal(signal.SIGINT, handler)

    def say(self, message: str, level: str = "info") -> None:
        """Show ``message`` to the user through the ``on_message`` hook (the console plugin
        shows it above the progress bar), else print it; other data-parallel ranks stay
        silent."""
        if not self.is_main_process:
            return
        try:
            shown = self.plugin_manager.hook.on_message(trainer=self, context=self.context,
                                                        message=message,
                                                        level=level)
        except Exception:  # noqa: BLE001 (a broken reporter must not hide the message)
            shown = False
        if not shown:
            print(message, file=sys.stdout if level == "info" else sys.stderr, flush=True)

    @staticmethod
    def _restore_sigint_handler(previous) -> None:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)


def __getattr__(name: str) -> Any:
    if name == "History":  # the epoch log's name until the history plugin's class took it
        import warnings

        warnings.warn("trainkit.loop.trainer.History is now EpochLog", DeprecationWarning,
                      stacklevel=2)
        return EpochLog
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _context_view(name: str) -> property:
    def get(trainer: Trainer) -> Any:
        return getattr(trainer.context, name)

    def set_(trainer: Trainer, value: Any) -> None:
        setattr(trainer.context, name, value)

    return property(get, set_, doc=f"``trainer.context.{name}`` (see trainkit.loop.context).")


for _name in CONTEXT_FIELDS:  # trainer.run_dir and friends: views of trainer.context
    setattr(Trainer, _name, _context_view(_name))
