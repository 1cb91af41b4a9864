"""The training loop. It calls the lifecycle hooks and owns no optional feature.

Everything optional (progress bars, logging, checkpoints, early stopping, ...) is a plugin that
implements hooks. The Trainer keeps the run's state consistent at batch boundaries, so that a
checkpoint written from any hook, or from ``on_exception`` after Ctrl+C, resumes bit-exactly.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, cast

import numpy as np

from trainkit.data.loader import Batch, DataLoader
from trainkit.loop.accumulation import Accumulation
from trainkit.loop.context import RunContext, add_context_views
from trainkit.loop.interrupts import Interrupts, InterruptViews
from trainkit.loop.profiler import HookProfiler
from trainkit.loop.scoring import Scoring, set_mode
from trainkit.loop.state import (
    EpochLog,
    TrainState,
    __getattr__,  # noqa: F401 (History, deprecated: EpochLog)
)
from trainkit.plugin import contract
from trainkit.plugin.dispatch import RUN_PLUGIN_PREFIX, HookCaller

__all__ = ["Batch", "EpochLog", "TrainState", "Trainer"]  # the state records live in loop.state


class Trainer(InterruptViews):
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
        accumulate: int = 1,
    ) -> None:
        if plugin_manager is None:
            from trainkit.plugin.manager import PluginManager

            plugin_manager = PluginManager()
        self.plugin_manager = plugin_manager
        self.model, self.loss, self.optimizer = model, loss, optimizer
        #: the run's metrics and the evaluation pass (trainkit.loop.scoring); ``metric_set`` is
        #: the training steps' state layout, ``metrics`` its metrics (batch means wrapped)
        self.scoring = Scoring(metrics)
        self.metric_set = self.scoring.metric_set
        self.metrics = self.scoring.metrics
        if isinstance(plugins, dict):
            self.plugins = dict(plugins)
        else:
            self.plugins = {contract.read(p, "name") or f"{type(p).__name__}-{id(p):x}": p
                            for p in plugins}
        #: the run's facts (run folder, config, main process, BLAS): see trainkit.loop.context
        self.context = context or RunContext(run_dir=Path(run_dir) if run_dir else None,
                                             config=config or {},
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
        self.train_loader = self.val_loader = self.test_loader = cast("DataLoader | None", None)
        #: The test split's scores, once ``fit`` has scored it (``test_loss``, ``test_acc``, ...).
        self.test_logs: dict[str, float] | None = None
        self.stop_reason: str | None = None
        self.stop_message: str | None = None
        #: Ctrl+C (trainkit.loop.interrupts); ``collective_interrupts`` and the
        #: ``interrupt_*`` properties below are its views for plugins
        self.interrupts = Interrupts(self.say)
        self._pending_plugin_state: dict[str, Any] | None = None
        self._pending_data_rng: dict[str, Any] | None = None
        self.profiler = HookProfiler()  # the last fit's hook timings
        self.loop_seconds = 0.0  # time spent in training epochs in the last fit
        self._hooks = HookCaller(plugin_manager)
        #: micro-batches per optimizer step (trainkit.loop.accumulation); None for one
        self.accumulation = Accumulation(accumulate) if accumulate > 1 else None
        #: Whether the optimizer stepped on the current batch: always, but with ``accumulate``
        #: only on a group's last micro-batch. A plugin that acts once per optimizer step in
        #: ``on_batch_end`` (``ema``) reads it.
        self.optimizer_stepped = False
        optimizer.bind(model.params, model.grads)

    # ------------------------------------------------------------------ control

    def stop(self, reason: str = "stopped", message: str | None = None) -> None:
        """Ask the loop to stop: after this batch (from a batch hook) or this epoch.

        ``reason`` becomes ``on_fit_end``'s reason; ``message`` says why, for the user.
        """
        self.stop_reason = reason
        self.stop_message = message

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
        self.interrupts.reset()
        registered = [self.plugin_manager.register(p, name=RUN_PLUGIN_PREFIX + name)
                      for name, p in self.plugins.items()
                      if not self.plugin_manager.is_registered(p)]
        if self._pending_data_rng is not None:
            train.rng.bit_generator.state = self._pending_data_rng
            self._pending_data_rng = None
        self.scoring.bind(self.model, train.make_batch)
        reason = "failed"
        in_flight: BaseException | None = None
        self.interrupts.install()
        self.profiler = self._hooks.profiler = HookProfiler()
        self.loop_seconds = 0.0
        try:
            if self._pending_plugin_state is not None:
                self.call_hook("on_load_checkpoint", state=self._pending_plugin_state)
                self._pending_plugin_state = None
            self.call_hook("on_fit_start")
            while self.state.epoch < epochs and self.stop_reason is None:
                self._run_epoch(self.state.epoch + 1, train)
                if self.interrupts.stop_here():  # a Ctrl+C during validation or the epoch end
                    raise KeyboardInterrupt
            reason = self.stop_reason or "completed"
            self.call_hook("on_train_end", reason=reason)
            if test is not None and reason != "nan":
                self._test(test)
        except BaseException as e:
            in_flight = e
            reason = "interrupted" if isinstance(e, KeyboardInterrupt) else "failed"
            if self.interrupts.forced:  # said here, out of its signal handler
                self.interrupts.acknowledge()
            self._notify_exception(e)
            raise
        finally:
            self._hooks.profiler = None
            self.interrupts.restore()
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
        return self.scoring.logged_names(validation)

    def add_evaluation_metric(self, metric: Any) -> None:
        """Also compute ``metric`` in validation and test passes (not in training steps): how a
        run plugin asks for a metric it needs, such as a confusion matrix, whatever ``--metric``
        chose. A metric of the same name already there is kept instead."""
        self.scoring.add(metric)

    def _test(self, loader: DataLoader) -> None:
        self.call_hook("on_test_start")
        logs = self.evaluate(loader, prefix="test_")
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

    def _run_epoch(self, epoch: int, loader: DataLoader) -> None:
        state = self.state
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
        set_mode(self.model, True)
        self.call_hook("on_epoch_start", epoch=epoch)
        if start < len(loader):
            try:
                completed = self._train_batches(loader.batches(order, first_sample), start, sums,
                                                len(loader) - 1)
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

    @property
    def optimizer_step(self) -> int:
        """The optimizer step the current batch works towards: the global step, or with
        accumulation the epochs' steps so far plus this epoch's (each epoch ends on a step)."""
        if self.accumulation is None:
            return self.state.global_step
        assert self.train_loader is not None, "optimizer_step is read during fit"
        per_epoch = self.optimizer_steps_per_epoch(self.train_loader)
        return self.state.epoch * per_epoch + self.state.step_in_epoch // self.accumulation.every

    def optimizer_steps_per_epoch(self, loader: DataLoader) -> int:
        every = self.accumulation.every if self.accumulation is not None else 1
        return -(-len(loader) // every)

    def _train_batches(self, batches, start: int, sums: np.ndarray, last: int) -> bool:
        model, loss_fn, optimizer, state, context = (
            self.model, self.loss, self.optimizer, self.state, self.context)
        metric_set, interrupts = self.metric_set, self.interrupts
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
            accumulation = self.accumulation
            self.optimizer_stepped = (accumulation is None
                                      or accumulation.ready(model.grads, step == last))
            if self.optimizer_stepped:
                if before_step is not None:  # data-parallel training sums batch_state here
                    before_step(trainer=self, context=context, step=step)
                optimizer.step()
            sums += batch_state
            logs = metric_set.batch_logs(batch_state)  # values computed when read
            state.global_step += 1
            state.step_in_epoch = step + 1
            if batch_end is not None:
                batch_end(trainer=self, context=context, step=step, batch=batch, logs=logs)
            if (interrupts.signalled or interrupts.requested) and interrupts.stop_here():
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
        logs, results = self.scoring.evaluate(
            self.model, self.loss, data, prefix,
            # a data-parallel plugin sums the processes' states here
            lambda state: self.call_hook("on_evaluation_state", state=state, prefix=prefix))
        self.results.update(results)
        return logs

    # ------------------------------------------------------------------ messages

    def say(self, message: str, level: str = "info") -> None:
        """Show ``message`` to the user through the ``on_message`` hook (the console plugin
        shows it above the progress bar), else print it; other data-parallel ranks stay
        silent."""
        if self.context.is_main_process:
            self._hooks.message(message, level, trainer=self, context=self.context)


add_context_views(Trainer)  # trainer.run_dir and friends, deprecated: trainer.context's
