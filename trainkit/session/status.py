"""``run.json``: whether a run folder's run is running, completed, stopped, failed or
interrupted, with its config and progress, so a folder never looks more complete than it is."""


from __future__ import annotations

import datetime as _dt

from trainkit.session.assembly import BuiltRun

STATUS_FILE = "run.json"


def write_status(run: BuiltRun, status: str) -> None:
    """Record in ``run.json`` whether the run is running, completed, stopped, failed or
    interrupted, with its config and progress, so a folder never looks more complete than it is."""
    import json

    from trainkit.persist.atomic import atomic_write

    trainer = run.trainer
    record = {
        "status": status,
        "epoch": trainer.state.epoch,
        "global_step": trainer.state.global_step,
        "epochs": run.config["epochs"],
        "stop_message": trainer.stop_message,
        "test": trainer.test_logs,
        "threads": trainer.context.threads,
        "blas_threads": trainer.context.blas_threads,
        "blas_kernels": trainer.context.blas_kernels,
        "updated": _dt.datetime.now().isoformat(timespec="seconds"),
        "config": trainer.context.config,
    }
    try:
        atomic_write(run.run_dir / STATUS_FILE, json.dumps(record, indent=1) + "\n")
    except OSError as e:  # the status is a record, not the work: never fail a run over it
        trainer.say(f"trainkit: warning: {run.run_dir / STATUS_FILE}: cannot write the run "
                    f"status ({e.strerror or e})", "warning")
