"""mlflow: the run in MLflow tracking, through MLflow's own client.

    trainkit run --plugin mlflow [--mlflow-tracking-uri URI] [--mlflow-experiment NAME]

At the start: the run's full config as params, and tags (``dataset``, ``model``,
``trainkit.version``, ``trainkit.run_dir``). Every epoch: each logged metric at ``step`` = the
epoch; the test scores once scored. At the end: the run folder's checkpoints, history, plots and
confusion matrices as artifacts, and the run's status: FINISHED, KILLED after Ctrl+C, FAILED after
a failure or a NaN stop.

The tracking URI is ``--mlflow-tracking-uri``, else the standard ``MLFLOW_TRACKING_URI``, else
MLflow's own default: a local store (``mlflow.db`` in the current folder) that needs no server;
``mlflow ui`` in that folder shows it. The experiment is ``--mlflow-experiment``, else
``MLFLOW_EXPERIMENT_NAME``, else ``trainkit``.

A resumed trainkit run continues the same MLflow run: its id is in the checkpoint's plugin state.
Params already logged keep their first value (MLflow's params never change); the lr or epochs a
resume changes are in its history and run.json.

Tracking never costs the training: a server that is down or refuses a request gets one warning,
after which the plugin stops talking to it and the run goes on, its run folder complete. Requests
are retried at most ``retries`` times (MLflow's own default would wait minutes on a dead server).
Only the main process logs under ddp.

``pip install 'trainkit[mlflow]'``; mlflow is imported only when the plugin runs.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

from trainkit import hookimpl
from trainkit.errors import ConfigError

#: reason given to on_fit_end -> MLflow's run status
STATUS = {"completed": "FINISHED", "interrupted": "KILLED", "failed": "FAILED", "nan": "FAILED"}
#: the run folder's files logged as artifacts at the end (run.json is still being written then)
ARTIFACT_PATTERNS = ("*.npz", "history.*", "*.png", "*.csv")


class MLflow:
    """Log params, per-epoch metrics, tags, artifacts and the run status to MLflow.

    Args:
        tracking_uri: where runs are tracked (default: MLFLOW_TRACKING_URI, else MLflow's local
            mlflow.db).
        experiment: the MLflow experiment (default: MLFLOW_EXPERIMENT_NAME, else trainkit).
        run_name: the MLflow run's name (default: the run folder's name).
        artifacts: log the run folder's checkpoints, history and plots at the end.
        retries: retries of a failed request to a tracking server before giving up on it.
    """

    def __init__(self, tracking_uri: str = "", experiment: str = "", run_name: str = "",
                 artifacts: bool = True, retries: int = 1) -> None:
        if importlib.util.find_spec("mlflow") is None:
            raise ConfigError("plugin 'mlflow' needs mlflow: pip install 'trainkit[mlflow]'",
                              "plugin")
        if retries < 0:
            raise ConfigError(f"retries must be 0 or more, got {retries}", "retries")
        self.tracking_uri = tracking_uri or os.environ.get("MLFLOW_TRACKING_URI", "")
        self.experiment = experiment or os.environ.get("MLFLOW_EXPERIMENT_NAME", "") or "trainkit"
        self.run_name, self.artifacts, self.retries = run_name, artifacts, retries
        self.name = "mlflow"
        self.client = None
        self.run_id: str | None = None
        self._resumed_run_id: str | None = None
        self.failed = False  # the tracking server failed once: no more requests, no more warnings

    # ------------------------------------------------------------------ talking to MLflow

    def call(self, trainer, doing: str, function, *args, **kwargs):
        """``function(*args, **kwargs)``, or ``None`` after one warning if tracking fails."""
        if self.failed:
            return None
        try:
            return function(*args, **kwargs)
        except Exception as e:  # noqa: BLE001 (any failure of tracking must leave training be)
            self.failed = True
            where = self.tracking_uri or "MLflow's default store"
            reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            trainer.say(f"trainkit: warning: mlflow: {doing} at {where} failed ({reason[:200]}); "
                        f"training goes on without MLflow tracking, the run folder has "
                        f"everything", "warning")
            return None

    def connect(self):
        import logging

        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", str(self.retries))
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "30")
        # a new local store says it creates its tables: not news above a progress bar
        logging.getLogger("mlflow.store.db.utils").setLevel(logging.WARNING)
        logging.getLogger("alembic").setLevel(logging.WARNING)
        from mlflow.tracking import MlflowClient

        return MlflowClient(tracking_uri=self.tracking_uri or None)

    # ------------------------------------------------------------------ the run

    @hookimpl
    def on_load_checkpoint(self, state):
        mine = state.get(self.name) or {}
        self._resumed_run_id = mine.get("run_id")

    @hookimpl
    def on_save_checkpoint(self, state):
        if self.run_id is not None:
            state[self.name] = {"run_id": self.run_id}

    @hookimpl
    def on_fit_start(self, trainer, context):
        if not context.is_main_process:
            return
        self.client = self.call(trainer, "connecting", self.connect)
        if self.client is None:
            return
        if self._resumed_run_id is not None:
            self.run_id = self._resumed_run_id
            self.call(trainer, "reopening the run", self.client.update_run, self.run_id,
                      status="RUNNING")
        else:
            self.run_id = self.call(trainer, "starting a run", self.start_run, context)
        if self.run_id is not None:
            self.call(trainer, "logging the config", self.log_config, context)

    def start_run(self, context) -> str:
        from trainkit import __version__

        experiment = self.client.get_experiment_by_name(self.experiment)
        experiment_id = (experiment.experiment_id if experiment is not None
                         else self.client.create_experiment(self.experiment))
        config = context.config
        tags = {"dataset": str(config.get("dataset")), "model": str(config.get("model")),
                "trainkit.version": __version__}
        if context.run_dir is not None:
            tags["trainkit.run_dir"] = str(Path(context.run_dir).resolve())
        name = self.run_name or (context.run_dir.name if context.run_dir is not None else None)
        return self.client.create_run(experiment_id, tags=tags, run_name=name).info.run_id

    def log_config(self, context) -> None:
        from mlflow.entities import Param

        logged = self.client.get_run(self.run_id).data.params
        params = [Param(key, str(value)[:6000]) for key, value in flat(context.config).items()
                  if key not in logged]  # a param keeps its first value (MLflow's rule)
        for start in range(0, len(params), 100):  # MLflow takes 100 params per request
            self.client.log_batch(self.run_id, params=params[start:start + 100])

    def log_metrics(self, logs, step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(key, float(value), now, step) for key, value in logs.items()
                   if isinstance(value, (int, float))]
        self.client.log_batch(self.run_id, metrics=metrics)

    @hookimpl(trylast=True)  # after plugins that add to the logs: they are logged too
    def on_epoch_end(self, trainer, epoch, logs):
        if self.run_id is not None:
            self.call(trainer, "logging metrics", self.log_metrics, logs, epoch)

    @hookimpl
    def on_test_end(self, trainer, logs):
        if self.run_id is not None:
            self.call(trainer, "logging the test scores", self.log_metrics, logs,
                      trainer.state.epoch)

    @hookimpl(trylast=True)  # after the files of the other plugins are written
    def on_fit_end(self, trainer, context, reason):
        if self.run_id is None:
            return
        if self.artifacts and context.run_dir is not None:
            self.call(trainer, "logging artifacts", self.log_artifacts, Path(context.run_dir))
        self.call(trainer, "ending the run", self.client.set_terminated, self.run_id,
                  STATUS.get(reason, "FINISHED"))

    def log_artifacts(self, folder: Path) -> None:
        files = sorted({p for pattern in ARTIFACT_PATTERNS for p in folder.glob(pattern)
                        if p.is_file()})
        for path in files:
            self.client.log_artifact(self.run_id, str(path))


def flat(config, prefix: str = "") -> dict[str, object]:
    """``{"lr": 0.001, "checkpoint.every": 1, ...}``: plugin tables flattened with dots."""
    out: dict[str, object] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = ",".join(map(str, value)) if isinstance(
                value, (list, tuple)) else value
    return out


@hookimpl
def register_run_plugins(register):
    register("mlflow", MLflow)
