"""Running a sweep: an Optuna study whose trials are ordinary trainkit runs.

One worker process runs ``trials`` trials with ``Study.optimize``, one after the other; each is
a ``Session`` with its own run folder under the sweep folder (``trial-0007``: checkpoints,
history, run.json, and ``trial.json`` with the trial's number and parameters). Any number of
workers, on this machine or others, share a study through its storage: an SQLite file (the
default, in the sweep folder), a journal file (``journal:PATH``, for a shared filesystem) or a
PostgreSQL/MySQL URL. Optuna's heartbeat marks the trials of a worker that died as failed.

A trial ends as one of Optuna's states: COMPLETE with the monitored metric of its last epoch,
PRUNED when the pruner stopped it (``trainer.stop("pruned")``), FAIL with the reason (a NaN loss,
an option combination trainkit refuses) in its ``fail_reason`` attribute; the sweep goes on.
Ctrl+C stops the running trial at a batch boundary (its emergency checkpoint is written), marks
it FAIL with ``interrupted``, and ends the sweep; ``--resume`` runs its parameters again and the
trials still missing.

A worker that dies (SIGKILL, a lost machine) leaves its trial RUNNING. Every worker sends a
heartbeat every ``[sweep] heartbeat`` seconds: Optuna's on a database, and trainkit's own
(the trial's ``alive`` attribute) on a journal file, which Optuna gives none. Once four
heartbeats are missed the trial is lost: ``--resume`` marks it FAIL, runs its parameters again
(the new trial records ``retry_of``) and the trials still missing, up to the total that every
sweep process joining the study requested (``requested/...`` study attributes). A lost trial is
a FAIL with no ``fail_reason``: every trial trainkit fails itself has one.
"""

from __future__ import annotations

import json
import math
import os
import random
import socket
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from trainkit import hookimpl
from trainkit.errors import ConfigError, TrainkitError
from trainkit.plugin.manager import PluginWarning
from trainkit.sweep.recovery import (
    TrialHeartbeat,
    enqueue_retries,
    finished_trials,
    requested_total,
    running_trials,
)
from trainkit.sweep.spec import SweepSpec, trial_layer
from trainkit.sweep.storage import import_optuna, open_storage


def open_study(spec: SweepSpec, storage_url: str, name: str, seed_offset: int = 0):
    optuna = import_optuna()
    pruner = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2,
                                                            n_warmup_steps=0),
              "hyperband": lambda: optuna.pruners.HyperbandPruner(),
              "none": lambda: optuna.pruners.NopPruner()}[spec.pruner]()
    for attempt in range(5):  # workers starting at once race to create the tables
        try:
            study = optuna.create_study(storage=open_storage(storage_url, spec.heartbeat),
                                        study_name=name,
                                        direction=spec.direction, pruner=pruner,
                                        load_if_exists=True)
            break
        except ConfigError:
            raise
        except Exception:  # noqa: BLE001 (an SQL error of a race; the last one is raised)
            if attempt == 4:
                raise
            time.sleep(0.5 + random.random())
    if spec.seed is not None:  # reproducible, but no worker or resume repeats another's draws
        done = len(study.get_trials(deepcopy=False))
        study.sampler = optuna.samplers.TPESampler(
            seed=(spec.seed + 100_003 * seed_offset + done) % 2**32)
    study.set_user_attr("monitor", spec.monitor)
    return study


class Pruning:
    """Reports the monitored metric to the Optuna trial after every epoch (its validation
    included) and stops the run with ``trainer.stop("pruned")`` when the pruner says so; tells
    the worker which trainer is training, for Ctrl+C."""

    def __init__(self, trial, monitor: str, worker: Worker | None = None) -> None:
        self.trial, self.monitor, self.worker = trial, monitor, worker
        self.name = "sweep-pruning"

    @hookimpl
    def on_fit_start(self, trainer):
        if self.worker is not None:
            self.worker.training = trainer
            if self.worker.interrupted:  # Ctrl+C came while the trial was being set up
                trainer.request_interrupt()

    @hookimpl
    def on_fit_end(self):
        if self.worker is not None:
            self.worker.training = None

    @hookimpl(trylast=True)  # after plugins that add to the logs
    def on_epoch_end(self, trainer, epoch, logs):
        if self.monitor not in logs:
            raise ConfigError(f"[sweep] monitor {self.monitor!r} is not logged; the run logs "
                              f"{', '.join(sorted(logs))}")
        self.trial.report(float(logs[self.monitor]), epoch)
        # the last epoch is never pruned: the trial has trained in full and is complete
        if epoch < trainer.epochs and self.trial.should_prune():
            trainer.stop("pruned", f"pruned at epoch {epoch} ({self.monitor} "
                                   f"{logs[self.monitor]:.4f})")


class TrialFailed(TrainkitError):
    """A trial that could not give a value (NaN loss, refused options): FAIL, and go on."""


class Worker:
    """Runs trials of one study in this process, each a Session in its own run folder."""

    def __init__(self, spec: SweepSpec, study, folder: Path, *, threads: int | None = None,
                 say=print) -> None:
        self.spec, self.study, self.folder = spec, study, folder
        self.threads, self.say = threads, say
        self.interrupted = False
        self.ctrl_c_said = False
        self.training = None  # the trainer of the trial under way, while it trains

    def optimize(self, trials: int, retry: Sequence[tuple[int, dict[str, Any]]] = ()) -> None:
        """Run ``trials`` trials (``retry``'s parameters first). Ctrl+C never lands inside
        Optuna's bookkeeping: it is taken here, passed to the training trial as a stop at the
        next batch (its emergency checkpoint is written), and ends the sweep after it; a second
        Ctrl+C stops at once."""
        import signal
        import threading

        enqueue_retries(self.study, retry)  # the trials cut short, first
        optuna = import_optuna()
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self.on_ctrl_c) if main else None
        try:
            self.study.optimize(self.objective, n_trials=trials, catch=(TrialFailed,),
                                gc_after_trial=False,
                                callbacks=[self.stop_if_interrupted, self.stop_if_covered])
        except KeyboardInterrupt:
            self.interrupted = True
        except optuna.exceptions.OptunaError as e:
            raise TrainkitError(f"sweep: {e}") from None
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)

    def on_ctrl_c(self, signum, frame) -> None:
        """The SIGINT handler: records, and asks the trial's trainer to stop; no I/O here (see
        trainkit.loop.interrupts), the message is said by ``acknowledge``."""
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        if self.training is not None:
            self.training.request_interrupt()

    def acknowledge(self) -> None:
        """Say, once, what the Ctrl+C does: from the sweep's own code, never its handler."""
        if self.interrupted and not self.ctrl_c_said:
            self.ctrl_c_said = True
            self.say("sweep: Ctrl+C: stopping the trial under way at its next batch (its "
                     "emergency checkpoint is written); Ctrl+C again stops at once")

    def stop_if_interrupted(self, study, trial) -> None:
        if self.interrupted:
            self.acknowledge()
            study.stop()

    def stop_if_covered(self, study, trial) -> None:
        """Stop once the study's requested total is finished or under way: a ``--resume`` that
        took over a lost worker's share must not make the live workers overshoot it."""
        total = requested_total(study)
        if total is not None and finished_trials(study) + len(running_trials(study)) >= total:
            study.stop()

    def objective(self, trial) -> float:
        from trainkit.session.session import Session

        optuna = import_optuna()
        if self.interrupted:  # Ctrl+C between two trials: this one never starts
            self.acknowledge()
            trial.set_user_attr("fail_reason", "interrupted")
            raise KeyboardInterrupt
        params = {s.key: s.suggest(trial) for s in self.spec.search}
        folder = self.folder / f"trial-{trial.number:04d}"
        layer = trial_layer(self.spec, params)
        layer.update(out=str(folder), plugin=[*layer.get("plugin", []), "history"],
                     no_plugin=[*layer.get("no_plugin", []), "progress", "console"])
        if self.threads is not None and layer.get("threads") is None:
            layer["threads"] = self.threads
        trial.set_user_attr("run_dir", str(folder.resolve()))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        record = {"number": trial.number, "study": self.study.study_name, "params": params}
        if trial.user_attrs.get("retry_of") is not None:
            record["retry_of"] = trial.user_attrs["retry_of"]
        try:
            with warnings.catch_warnings():  # shown once when the sweep started, not per trial
                warnings.simplefilter("ignore", PluginWarning)
                session = Session(layer, plugins=[Pruning(trial, self.spec.monitor, self)],
                                  report=self.report_for(trial))
            config = session.effective_config()
            trial.set_user_attr("config", json.loads(json.dumps(config, default=str)))
            folder.mkdir(parents=True, exist_ok=True)
            (folder / "trial.json").write_text(json.dumps(record, indent=2, default=str) + "\n",
                                               encoding="utf-8")
            with self.heartbeat(trial):
                outcome = session.fit()
        except TrainkitError as e:  # a combination trainkit refuses: this trial fails
            self.fail(trial, str(e), params)
        history = outcome.history.rows if outcome.history else []
        epochs = len(history)
        if outcome.status == "interrupted":
            trial.set_user_attr("fail_reason", "interrupted")
            self.acknowledge()
            self.say(f"sweep: trial {trial.number} interrupted at epoch {epochs + 1}; "
                     f"`trainkit sweep --resume` runs it again")
            raise KeyboardInterrupt
        if outcome.status == "nan":
            self.fail(trial, outcome.message, params)
        if outcome.status == "pruned":
            self.say(f"sweep: {self.name(trial)} pruned after {epochs} epoch(s) "
                     f"{self.describe(params)}")
            raise optuna.TrialPruned()
        value = history[-1].get(self.spec.monitor) if history else None
        if value is None or not math.isfinite(value):
            self.fail(trial, f"{self.spec.monitor} is {value} after epoch {epochs}", params)
        self.say(f"sweep: {self.name(trial)} {self.spec.monitor} {value:.4f} after {epochs} "
                 f"epoch(s) {self.describe(params)}")
        return float(value)

    def heartbeat(self, trial):
        """trainkit's own heartbeat where the storage has none of Optuna's (a journal file)."""
        import contextlib

        optuna = import_optuna()
        if isinstance(self.study._storage, optuna.storages.RDBStorage):
            return contextlib.nullcontext()
        return TrialHeartbeat(trial, self.spec.heartbeat)

    def fail(self, trial, reason: str, params: dict[str, Any]) -> NoReturn:
        trial.set_user_attr("fail_reason", reason)
        self.say(f"sweep: {self.name(trial)} failed {self.describe(params)}: {reason}")
        raise TrialFailed(reason)

    def report_for(self, trial):
        def report(message: str, error: bool = False) -> None:
            if error:  # warnings of the trial's run; its progress lines stay in its folder
                self.say(f"sweep: trial {trial.number}: {message.removeprefix('trainkit: ')}")
        return report

    @staticmethod
    def name(trial) -> str:
        """``trial 6``, or ``trial 6 (rerun of trial 2)`` for a trial run again."""
        again = trial.user_attrs.get("retry_of")
        return f"trial {trial.number}" + (f" (rerun of trial {again})" if again is not None
                                          else "")

    @staticmethod
    def describe(params: dict[str, Any]) -> str:
        return "(" + ", ".join(f"{k}={format_param(v)}" for k, v in params.items()) + ")"


def format_param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


