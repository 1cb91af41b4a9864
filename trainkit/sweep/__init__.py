"""Hyperparameter sweeps on Optuna: ``trainkit sweep SPEC.toml`` (see docs/sweeps.md).

spec.py reads and checks the spec, study.py runs trials as trainkit runs against an Optuna
storage, report.py says what was found. Optuna is an optional extra (``trainkit[sweep]``),
imported only when a sweep runs.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trainkit.sweep.spec import SweepSpec, read_spec

__all__ = ["SweepSpec", "Sweep", "read_spec"]


@dataclass
class Sweep:
    """One ``trainkit sweep`` invocation: where its study lives and how many workers run it."""

    spec: SweepSpec
    folder: Path
    storage: str
    study_name: str
    workers: int = 1
    resume: bool = False
    worker_index: int = 0
    worker_trials: int | None = None  # set by the parent of worker processes
    #: the user named the storage (one shared by many machines, which join it on purpose);
    #: else it is the sweep folder's own SQLite file
    storage_given: bool = False

    def optimize(self, say=print) -> bool:
        """Run the sweep; ``False`` when Ctrl+C cut it short."""
        from trainkit.sweep.recovery import record_request
        from trainkit.sweep.study import Worker, open_study

        self.folder.mkdir(parents=True, exist_ok=True)
        study = open_study(self.spec, self.storage, self.study_name, self.seed_offset())
        trials, retry = self.worker_trials, list[tuple[int, dict]]()
        if trials is None:
            trials = self.spec.trials * self.workers
            if self.resume:
                trials, retry = self.resume_plan(study, trials, say)
            else:
                self.join_or_refuse(study, trials, say)
                record_request(study, trials)
            if self.workers > 1:
                return self.run_workers(study, trials, retry, say)
        worker = Worker(self.spec, study, self.folder, threads=None, say=say)
        worker.optimize(trials, retry)
        return not worker.interrupted

    def seed_offset(self) -> int:
        """What sets this process's sampler seed apart from the other workers': its index among
        the workers of one ``trainkit sweep`` (reproducible), and a random number for a process
        joining a named storage, which cannot know how many others join (with one seed, each
        would draw the same parameters as the others)."""
        if self.storage_given and self.worker_trials is None:
            import secrets

            return 1 + secrets.randbelow(2**20)
        return self.worker_index

    def resume_plan(self, study, trials: int, say) -> tuple[int, list]:
        """What ``--resume`` runs: the trials lost with their worker are marked FAIL (after
        four missed heartbeats) and, with those Ctrl+C cut short, run again; then the trials
        still missing from the total requested of the study, less those RUNNING elsewhere."""
        from trainkit.sweep.recovery import (
            finished_trials,
            reclaim_lost_trials,
            requested_total,
            running_trials,
            trials_to_retry,
        )
        from trainkit.sweep.storage import GRACE_BEATS

        lost = reclaim_lost_trials(study, self.spec.heartbeat)
        retry = trials_to_retry(study)
        running = len(running_trials(study))
        total = requested_total(study) or trials
        to_run = max(total - finished_trials(study) - running, 0)
        notes = []
        if lost:
            notes.append(f"trial(s) {', '.join(map(str, lost))} lost with their worker "
                         f"(no heartbeat for {GRACE_BEATS * self.spec.heartbeat} s)")
        if retry:
            notes.append(f"{len(retry)} to run again")
        if running:
            notes.append(f"{running} still RUNNING elsewhere")
        say(f"sweep: resuming study {self.study_name}: {to_run} trial(s) to run"
            + (f" ({'; '.join(notes)})" if notes else ""))
        return to_run, retry[:to_run]

    def join_or_refuse(self, study, trials: int, say) -> None:
        """Running a sweep again where its study has trials already: its own folder's study
        is refused (a second run by mistake would silently mix into the first's results) unless
        ``--resume``; a storage the user named is joined, as other machines do, and said so."""
        from trainkit.errors import ConfigError

        existing = len(study.get_trials(deepcopy=False))
        if not existing:
            return
        if not self.storage_given:
            raise ConfigError(
                f"study {self.study_name!r} in {self.folder} has {existing} trial(s) already: "
                f"continue it with --resume (it runs the trials still missing), or start "
                f"another with --study NAME or --out DIR", "study")
        say(f"sweep: joining study {self.study_name} ({existing} trial(s) there already); "
            f"this process adds {trials}")

    def run_workers(self, study, trials: int, retry: list[tuple[int, dict[str, Any]]],
                    say) -> bool:
        """``workers`` processes on this machine, each on its share of the cores and trials."""
        from trainkit.session.threads import available_cores
        from trainkit.session.tomlio import dump_toml
        from trainkit.sweep.recovery import enqueue_retries

        enqueue_retries(study, retry)  # any worker picks these up first
        layer = dict(self.spec.layer)
        if layer.get("threads") is None:  # split the cores: no oversubscription
            layer["threads"] = max(1, available_cores() // self.workers)
        spec_file = self.folder / "worker-spec.toml"
        spec_file.write_text(dump_toml({**layer, "sweep": self.spec.raw_sweep}), encoding="utf-8")
        shares = [trials // self.workers + (i < trials % self.workers)
                  for i in range(self.workers)]
        children = [subprocess.Popen([
            sys.executable, "-m", "trainkit", "sweep", str(spec_file), "--storage", self.storage,
            "--study", self.study_name, "--out", str(self.folder), "--worker-index", str(i),
            "--worker-trials", str(share)]) for i, share in enumerate(shares) if share]
        say(f"sweep: {len(children)} workers, {layer['threads']} thread(s) each, "
            f"{trials} trials in all")
        codes = []
        for child in children:
            while True:
                try:
                    codes.append(child.wait())
                    break
                except KeyboardInterrupt:  # the workers got it too: wait for them to stop
                    continue
        return all(code == 0 for code in codes)

    def report(self, say=print) -> None:
        show(self.storage, self.study_name, self.folder, say, self.spec.layer)


def show(storage: str, study_name: str, folder: Path | None, say=print,
         spec_layer: dict[str, Any] | None = None) -> None:
    """The study's best trials, the best trial's config as TOML (written to best.toml in
    ``folder``), and the plots."""
    from trainkit.errors import ConfigError
    from trainkit.session.tomlio import dump_toml
    from trainkit.sweep.report import best_config, summary, write_plots
    from trainkit.sweep.storage import import_optuna, open_storage

    optuna = import_optuna()
    try:
        study = optuna.load_study(study_name=study_name, storage=open_storage(storage))
    except KeyError:
        raise ConfigError(f"no study {study_name!r} in {storage}", "study") from None
    say(summary(study))
    config = best_config(study, spec_layer)
    if config is not None:
        text = dump_toml(config)
        where = folder if folder is not None else Path(".")
        where.mkdir(parents=True, exist_ok=True)
        (where / "best.toml").write_text(text, encoding="utf-8")
        say(f"\nbest trial {study.best_trial.number}: {study.best_value:.4f}; its config, in "
            f"{where / 'best.toml'} (trainkit run --config {where / 'best.toml'}):\n")
        say(text.rstrip())
        for path in write_plots(study, where):
            say(f"sweep: plot {path}")
