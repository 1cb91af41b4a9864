"""The mlflow plugin, read back with MLflow's own client from a real local store."""

from __future__ import annotations

import socket

import pytest
from click.testing import CliRunner

from trainkit import hookimpl
from trainkit.cli import make_cli

pytest.importorskip("mlflow", reason="the test extra installs mlflow")


def run(args, plugins=()):
    return CliRunner().invoke(make_cli(plugins=plugins), ["run", *args], catch_exceptions=False)


def client_for(uri):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def only_run(client):
    runs = client.search_runs([client.get_experiment_by_name("trainkit").experiment_id])
    assert len(runs) == 1
    return runs[0]


class InterruptAtStep:
    """As if Ctrl+C was pressed during step 3 of the second epoch."""

    name = "interrupt-at-step"

    @hookimpl
    def on_batch_end(self, trainer, step):
        if trainer.state.epoch == 1 and step == 3:
            trainer.request_interrupt()


def test_params_metrics_artifacts_status_and_a_resume_into_the_same_run(synthetic_dir, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    common = ["--dataset", "idx", "--data-dir", str(synthetic_dir), "--plugin", "mlflow",
              "--plugin", "history", "--mlflow-tracking-uri", uri, "--metric", "accuracy",
              "--metric", "f1"]
    interrupted = run([*common, "--epochs", "2", "--lr", "0.005", "--out", "run"],
                      plugins=[InterruptAtStep()])
    assert interrupted.exit_code == 130, interrupted.output
    client = client_for(uri)
    first = only_run(client)
    assert first.info.status == "KILLED"
    assert first.data.params["lr"] == "0.005" and first.data.params["dataset"] == "idx"
    assert first.data.params["checkpoint.monitor"] == "val_loss"  # plugin options, flattened
    assert first.data.tags["dataset"] == "idx" and first.data.tags["model"] == "mlp"
    assert "trainkit.version" in first.data.tags

    resumed = run(["--resume", "run", "--out", "run", "--data-dir", str(synthetic_dir)])
    assert resumed.exit_code == 0, resumed.output
    done = only_run(client)  # the same MLflow run, continued
    assert done.info.run_id == first.info.run_id
    assert done.info.status == "FINISHED"
    history = (tmp_path / "run" / "history.csv").read_text().splitlines()
    header = history[0].split(",")
    for key in ("loss", "acc", "f1", "val_loss", "val_acc", "val_f1", "lr"):
        points = client.get_metric_history(done.info.run_id, key)
        assert [p.step for p in points] == [1, 2], key  # one point per epoch, none twice
        assert [p.value for p in points] == pytest.approx(
            [float(row.split(",")[header.index(key)]) for row in history[1:]], rel=1e-6), key
    assert [p.step for p in client.get_metric_history(done.info.run_id, "test_acc")] == [2]
    artifacts = {a.path for a in client.list_artifacts(done.info.run_id)}
    assert {"final.npz", "last.npz", "best.npz", "emergency.npz", "history.csv"} <= artifacts


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_tracking_server_that_is_down_costs_one_warning_and_nothing_else(synthetic_dir,
                                                                           tmp_path):
    result = run(["--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2",
                  "--out", "run", "--plugin", "mlflow",
                  "--mlflow-tracking-uri", f"http://127.0.0.1:{closed_port()}"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "mlflow" in line]
    assert len(warnings) == 1 and "training goes on" in warnings[0]
    assert "[  2/2]" in result.output
    assert {"final.npz", "last.npz", "best.npz"} <= {p.name for p in (tmp_path / "run").iterdir()}


def test_the_standard_environment_variable_and_the_experiment_option(synthetic_dir, tmp_path,
                                                                     monkeypatch):
    uri = f"sqlite:///{tmp_path}/env.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    result = run(["--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1",
                  "--out", "run", "--plugin", "mlflow", "--mlflow-experiment", "mnist-sweeps",
                  "--no-mlflow-artifacts"])
    assert result.exit_code == 0, result.output
    client = client_for(uri)
    experiment = client.get_experiment_by_name("mnist-sweeps")
    (found,) = client.search_runs([experiment.experiment_id])
    assert found.info.status == "FINISHED" and found.info.run_name == "run"
    assert client.list_artifacts(found.info.run_id) == []
