"""Trials cut short, and getting them run: Ctrl+C (``fail_reason`` interrupted) and a worker lost
with its machine (a FAIL with no ``fail_reason``, after four missed heartbeats; trainkit keeps
its own heartbeat on a journal file, which Optuna gives none). The study records the total
every process that started on it requested (``requested/<id>``), so that ``--resume`` knows
what is missing."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from trainkit.sweep.storage import GRACE_BEATS, import_optuna


def lost(trial) -> bool:
    """A trial whose worker died: FAIL without the ``fail_reason`` trainkit gives every trial it
    fails itself (the heartbeat's doing, or ``reclaim_lost_trials``)."""
    from optuna.trial import TrialState

    return trial.state == TrialState.FAIL and "fail_reason" not in trial.user_attrs


def cut_short(trial) -> bool:
    """A trial to run again: interrupted by Ctrl+C, or lost with its worker."""
    return lost(trial) or trial.user_attrs.get("fail_reason") == "interrupted"


def trials_to_retry(study) -> list[tuple[int, dict[str, Any]]]:
    """``(number, parameters)`` of the trials cut short (Ctrl+C, a lost worker) that were not
    run again since."""
    trials = study.get_trials(deepcopy=False)
    again = {t.user_attrs.get("retry_of") for t in trials} - {None}
    return [(t.number, t.params) for t in trials if cut_short(t) and t.number not in again]


def enqueue_retries(study, retry: Sequence[tuple[int, dict[str, Any]]]) -> None:
    """Queue the parameters of trials cut short, each new trial recording which it reruns."""
    for number, params in retry:
        study.enqueue_trial(params, user_attrs={"retry_of": number}, skip_if_exists=False)


def finished_trials(study) -> int:
    """Trials that ended by themselves (complete, pruned, or failed with a reason that is not
    Ctrl+C): not those cut short, which are run again."""
    return sum(1 for t in study.get_trials(deepcopy=False)
               if t.state.is_finished() and not cut_short(t))


def running_trials(study) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))


def reclaim_lost_trials(study, heartbeat: int) -> list[int]:
    """Mark FAIL the RUNNING trials whose worker missed ``GRACE_BEATS`` heartbeats, and return
    their numbers: Optuna's own check on a database storage; on a journal file, the trial's
    ``alive`` time, which ``TrialHeartbeat`` renews."""
    optuna = import_optuna()
    from optuna.trial import TrialState

    before = {t.number for t in running_trials(study)}
    storage = study._storage  # Optuna's API reaches the storage only through the study
    if isinstance(storage, optuna.storages.RDBStorage):
        optuna.storages.fail_stale_trials(study)
    else:
        now = time.time()
        for trial in running_trials(study):
            alive = trial.user_attrs.get("alive") or (
                trial.datetime_start.timestamp() if trial.datetime_start else now)
            if now - alive > GRACE_BEATS * heartbeat:
                storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
    return sorted(before - {t.number for t in running_trials(study)})


class TrialHeartbeat:
    """``with TrialHeartbeat(trial, seconds):`` renews the trial's ``alive`` time every
    ``seconds`` from a thread, for a storage without Optuna's heartbeat (the journal file)."""

    def __init__(self, trial, seconds: int) -> None:
        import threading

        self.trial, self.seconds = trial, seconds
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self.beat, name="trainkit-trial-heartbeat",
                                       daemon=True)

    def beat(self) -> None:
        while not self.stopped.wait(self.seconds):
            try:
                self.trial.set_user_attr("alive", time.time())
            except Exception:  # noqa: BLE001 (the trial ended meanwhile: nothing to renew)
                return

    def __enter__(self) -> TrialHeartbeat:
        self.trial.set_user_attr("alive", time.time())
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stopped.set()
        self.thread.join()


def record_request(study, trials: int) -> None:
    """Add this sweep process's ``trials`` to the total the study is to finish."""
    import uuid

    study.set_user_attr(f"requested/{uuid.uuid4().hex}", int(trials))


def requested_total(study) -> int | None:
    """The trials every sweep process that started on the study requested (``None`` for a
    study from before they were recorded)."""
    asked = [v for k, v in study.user_attrs.items() if k.startswith("requested/")]
    return sum(asked) if asked else None
