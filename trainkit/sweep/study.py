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
"""

from __future__ import annotations

import json
import math
import random
import time
import warnings
from pathlib import Path
from typing import Any

from trainkit import hookimpl
from trainkit.errors import ConfigError, TrainkitError
from trainkit.plugin_manager import PluginWarning
from trainkit.sweep.spec import SweepSpec, trial_layer

SWEEP_EXTRA = "pip install 'trainkit[sweep]'"
HEARTBEAT_SECONDS = 30


def import_optuna():
    try:
        import optuna
    except ImportError:
        raise ConfigError(f"trainkit sweep needs optuna: {SWEEP_EXTRA}") from None
    # trainkit reports each trial itself, a failed one with its reason (Optuna's own line would
    # add a traceback for every Ctrl+C and NaN)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    return optuna


def open_storage(url: str):
    """An Optuna storage: ``journal:PATH`` is a journal file (safe on a shared filesystem),
    anything else a database URL (``sqlite:///...``, ``postgresql://...``, ``mysql://...``)."""
    optuna = import_optuna()
    if url.startswith("journal:"):
        from optuna.storages import JournalStorage
        from optuna.storages.journal import JournalFileBackend

        path = Path(url.removeprefix("journal:").removeprefix("//"))
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    import warnings

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    for _attempt in range(5):  # workers starting at once race to create the tables
        try:
            with warnings.catch_warnings():  # Optuna calls its heartbeat experimental
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                return optuna.storages.RDBStorage(url, engine_kwargs=engine_kwargs,
                                                  heartbeat_interval=HEARTBEAT_SECONDS,
                                                  grace_period=4 * HEARTBEAT_SECONDS)
        except (ImportError, ValueError) as e:  # a missing driver, a bad URL: say which
            error = e
            break
        except Exception as e:  # noqa: BLE001 (SQL errors: a race, or a server that is down)
            error = e
            time.sleep(0.5 + random.random())
    raise ConfigError(f"storage {url!r} cannot be opened: {str(error).splitlines()[0]}",
                      "storage")


def open_study(spec: SweepSpec, storage_url: str, name: str, seed_offset: int = 0):
    optuna = import_optuna()
    pruner = {"median": lambda: optuna.pruners.MedianPruner(n_startup_trials=2,
                                                            n_warmup_steps=0),
              "hyperband": lambda: optuna.pruners.HyperbandPruner(),
              "none": lambda: optuna.pruners.NopPruner()}[spec.pruner]()
    for attempt in range(5):  # workers starting at once race to create the tables
        try:
            study = optuna.create_study(storage=open_storage(storage_url), study_name=name,
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
        study.sampler = optuna.samplers.TPESampler(seed=spec.seed + 100_003 * seed_offset + done)
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
        self.training = None  # the trainer of the trial under way, while it trains

    def run(self, trials: int, retry: list[dict[str, Any]] = ()) -> None:
        """Run ``trials`` trials (``retry``'s parameters first). Ctrl+C never lands inside
        Optuna's bookkeeping: it is taken here, passed to the training trial as a stop at the
        next batch (its emergency checkpoint is written), and ends the sweep after it; a second
        Ctrl+C stops at once."""
        import signal
        import threading

        for params in retry:  # the parameters of trials a Ctrl+C cut short, first
            self.study.enqueue_trial(params, skip_if_exists=False)
        optuna = import_optuna()
        main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, self.on_ctrl_c) if main else None
        try:
            self.study.optimize(self.objective, n_trials=trials, catch=(TrialFailed,),
                                gc_after_trial=False, callbacks=[self.stop_if_interrupted])
        except KeyboardInterrupt:
            self.interrupted = True
        except optuna.exceptions.OptunaError as e:
            raise TrainkitError(f"sweep: {e}") from None
        finally:
            if main:
                signal.signal(signal.SIGINT, previous)

    def on_ctrl_c(self, signum, frame) -> None:
        if self.interrupted:
            raise KeyboardInterrupt
        self.interrupted = True
        self.say("sweep: Ctrl+C: stopping the trial under way at its next batch (its emergency "
                 "checkpoint is written); Ctrl+C again stops at once")
        if self.training is not None:
            self.training.request_interrupt()

    def stop_if_interrupted(self, study, trial) -> None:
        if self.interrupted:
            study.stop()

    def objective(self, trial) -> float:
        from trainkit.session import Session

        optuna = import_optuna()
        if self.interrupted:  # Ctrl+C between two trials: this one never starts
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
        record = {"number": trial.number, "study": self.study.study_name, "params": params}
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
            outcome = session.fit()
        except TrainkitError as e:  # a combination trainkit refuses: this trial fails
            self.fail(trial, str(e), params)
        history = outcome.history.rows if outcome.history else []
        epochs = len(history)
        if outcome.status == "interrupted":
            trial.set_user_attr("fail_reason", "interrupted")
            self.say(f"sweep: trial {trial.number} interrupted at epoch {epochs + 1}; "
                     f"`trainkit sweep --resume` runs it again")
            raise KeyboardInterrupt
        if outcome.status == "nan":
            self.fail(trial, outcome.message, params)
        if outcome.status == "pruned":
            self.say(f"sweep: trial {trial.number} pruned after {epochs} epoch(s) "
                     f"{self.describe(params)}")
            raise optuna.TrialPruned()
        value = history[-1].get(self.spec.monitor) if history else None
        if value is None or not math.isfinite(value):
            self.fail(trial, f"{self.spec.monitor} is {value} after epoch {epochs}", params)
        self.say(f"sweep: trial {trial.number} {self.spec.monitor} {value:.4f} after {epochs} "
                 f"epoch(s) {self.describe(params)}")
        return float(value)

    def fail(self, trial, reason: str, params: dict[str, Any]):
        trial.set_user_attr("fail_reason", reason)
        self.say(f"sweep: trial {trial.number} failed {self.describe(params)}: {reason}")
        raise TrialFailed(reason)

    def report_for(self, trial):
        def report(message: str, error: bool = False) -> None:
            if error:  # warnings of the trial's run; its progress lines stay in its folder
                self.say(f"sweep: trial {trial.number}: {message.removeprefix('trainkit: ')}")
        return report

    @staticmethod
    def describe(params: dict[str, Any]) -> str:
        return "(" + ", ".join(f"{k}={format_param(v)}" for k, v in params.items()) + ")"


def format_param(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def trials_to_retry(study) -> list[dict[str, Any]]:
    """The parameters of trials Ctrl+C cut short that were not run again since."""
    from optuna.trial import TrialState

    done = [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                t.state == TrialState.FAIL and t.user_attrs.get("fail_reason") != "interrupted")]
    ran = [t.params for t in done]
    cut = [t.params for t in study.get_trials(deepcopy=False, states=(TrialState.FAIL,))
           if t.user_attrs.get("fail_reason") == "interrupted"]
    retry = []
    for params in cut:
        if params in ran:
            ran.remove(params)
        else:
            retry.append(params)
    return retry


def finished_trials(study) -> int:
    """Trials that ended by themselves (complete, pruned, or failed but not by Ctrl+C)."""
    from optuna.trial import TrialState

    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
                   t.state == TrialState.FAIL and
                   t.user_attrs.get("fail_reason") != "interrupted"))
