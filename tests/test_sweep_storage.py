"""Sweeps across machines: a real PostgreSQL server and a journal file, with a worker lost.

The PostgreSQL server is the machine's own (Debian's ``postgresql``: ``initdb`` and ``pg_ctl``),
started for this module in a temporary folder on 127.0.0.1 and a free port, and stopped at its
end; the tests are skipped, saying why, where no server binary exists. No mock storage.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli

optuna = pytest.importorskip("optuna", reason="the test extra installs optuna")

TRIALS, WORKERS, HEARTBEAT = 3, 2, 1


def server_binaries() -> Path | None:
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def postgres_url():
    """A PostgreSQL server of this machine's binaries, with an empty database ``optuna``."""
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("no PostgreSQL server binaries (initdb, pg_ctl): apt-get install postgresql")
    psycopg = pytest.importorskip("psycopg", reason="the test extra installs psycopg")
    root = Path(tempfile.mkdtemp(prefix="trainkit-postgres-"))
    as_user: list[str] = []
    if hasattr(os, "geteuid") and os.geteuid() == 0:  # initdb refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root, and no runuser to start PostgreSQL as its own user")
        try:
            shutil.chown(root, "postgres", "postgres")
        except (LookupError, OSError):
            pytest.skip("running as root, and no postgres user to start PostgreSQL as")
        as_user = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", free_port()
    subprocess.run([*as_user, str(binaries / "initdb"), "-D", str(data), "-A", "trust", "-U",
                    "postgres", "--no-sync"], check=True, capture_output=True)
    subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-l",
                    str(root / "server.log"), "-w", "-o",
                    f"-h 127.0.0.1 -p {port} -k {root} -F", "start"],
                   check=True, capture_output=True)
    try:
        with psycopg.connect(f"host=127.0.0.1 port={port} user=postgres dbname=postgres",
                             autocommit=True) as connection:
            connection.execute("CREATE DATABASE optuna")
        yield f"postgresql://postgres@127.0.0.1:{port}/optuna"
    finally:
        subprocess.run([*as_user, str(binaries / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(root, ignore_errors=True)


def write_spec(path: Path, data_dir: Path) -> Path:
    # 30 epochs of the tiny MLP: a trial lasts long enough to be killed in the middle
    path.write_text(textwrap.dedent(f"""\
        dataset = "idx"
        data_dir = "{data_dir}"
        epochs = 30
        hidden = [8]
        threads = 1

        [sweep]
        monitor = "val_acc"
        trials = {TRIALS}
        pruner = "none"
        seed = 5
        heartbeat = {HEARTBEAT}

        [sweep.search]
        lr = {{ low = 1e-3, high = 0.1, log = true }}
    """))
    return path


def worker(spec: Path, storage: str, out: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "trainkit", "sweep", str(spec), "--storage",
                             storage, "--study", "shared", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=spec.parent)  # not the repository, whose trainkit/ would shadow


def load(storage: str):
    """The study, through trainkit's storage URLs (``journal:PATH`` is trainkit's)."""
    from trainkit.sweep.storage import open_storage

    return optuna.load_study(study_name="shared", storage=open_storage(storage, HEARTBEAT))


def running_trial_of(storage: str, pid: int, timeout: float = 120):
    """The trial the worker ``pid`` is training, once it has one."""
    deadline, study = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        if study is None:  # opened once: opening a study takes long on a busy machine
            try:
                study = load(storage)
            except KeyError:  # not created yet
                time.sleep(0.1)
                continue
        for trial in study.get_trials(states=(optuna.trial.TrialState.RUNNING,)):
            if trial.user_attrs.get("worker", "").endswith(f":{pid}") and \
                    2 <= len(trial.intermediate_values) <= 20:  # 10+ epochs to go
                return trial
        time.sleep(0.1)
    raise AssertionError(f"worker {pid} never trained a trial")


def lose_a_worker_then_resume(storage: str, spec: Path, out: Path):
    """Two workers on one study; one is killed with SIGKILL in the middle of a trial; after
    the grace period, --resume runs the lost trial again and the trials still missing."""
    survivor, doomed = worker(spec, storage, out), worker(spec, storage, out)
    running_trial_of(storage, doomed.pid)  # in the middle of a trial
    killed_at = time.monotonic()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    # the trial it left RUNNING: read after the kill, since the one seen above may have ended
    # and the next begun in between
    lost, = [t for t in load(storage).get_trials(states=(optuna.trial.TrialState.RUNNING,))
             if t.user_attrs.get("worker", "").endswith(f":{doomed.pid}")]
    output = survivor.communicate(timeout=300)[0]
    assert survivor.returncode == 0, output
    time.sleep(max(0.0, 4 * HEARTBEAT + 1.5 - (time.monotonic() - killed_at)))  # grace period
    resumed = CliRunner().invoke(make_cli(), ["sweep", str(spec), "--storage", storage,
                                              "--study", "shared", "--out", str(out),
                                              "--resume"])
    assert resumed.exit_code == 0, resumed.output
    assert f"trial(s) {lost.number} lost with their worker" in resumed.output, resumed.output
    return lost, load(storage)


def assert_the_study_finished(study, lost) -> None:
    from trainkit.sweep.recovery import finished_trials

    trials = study.get_trials()
    states = {t.number: t.state for t in trials}
    assert optuna.trial.TrialState.RUNNING not in states.values()
    assert states[lost.number] == optuna.trial.TrialState.FAIL
    rerun = [t for t in trials if t.user_attrs.get("retry_of") == lost.number]
    assert len(rerun) == 1 and rerun[0].params == lost.params
    assert rerun[0].state == optuna.trial.TrialState.COMPLETE
    assert finished_trials(study) == TRIALS * WORKERS
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in trials
               if t.number != lost.number)


def assert_show_counts_the_rerun_once(storage: str, out: Path) -> None:
    shown = CliRunner().invoke(make_cli(), ["sweep", "--show", storage, "--study", "shared",
                                            "--out", str(out / "shown")])
    assert shown.exit_code == 0, shown.output
    assert (f"study shared: {TRIALS * WORKERS} trials, {TRIALS * WORKERS} complete (1 lost with "
            f"their worker, run again)") in shown.output


@pytest.fixture(params=["postgresql", "journal"])
def storage(request, tmp_path) -> str:
    """A real PostgreSQL server's database, or a journal file: the two storages docs/sweeps.md
    offers for many machines."""
    if request.param == "postgresql":
        return request.getfixturevalue("postgres_url")
    return f"journal:{tmp_path / 'study.log'}"


def test_a_lost_workers_trial_is_run_again_and_the_study_finishes(storage, synthetic_dir,
                                                                  tmp_path):
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir)
    lost, study = lose_a_worker_then_resume(storage, spec, tmp_path / "sweep")
    assert_the_study_finished(study, lost)
    assert_show_counts_the_rerun_once(storage, tmp_path)


def test_a_resume_beside_a_live_worker_leaves_its_trial_alone_and_does_not_overshoot(
        synthetic_dir, tmp_path):
    storage = f"journal:{tmp_path / 'study.log'}"
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir)
    busy = worker(spec, storage, tmp_path / "sweep")
    try:
        running = running_trial_of(storage, busy.pid)
        early = CliRunner().invoke(make_cli(), ["sweep", str(spec), "--storage", storage,
                                                "--study", "shared", "--out",
                                                str(tmp_path / "sweep"), "--resume"])
        assert early.exit_code == 0, early.output
        assert "lost" not in early.output and "still RUNNING elsewhere" in early.output
    finally:
        busy.communicate(timeout=300)
    study = load(storage)
    assert study.get_trials()[running.number].state == optuna.trial.TrialState.COMPLETE
    # the resume ran some of the study's missing trials, and the live worker stopped when
    # the total was under way: no more trials than were requested
    assert len(study.get_trials()) == TRIALS
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.get_trials())


def test_a_postgresql_url_without_its_driver_names_the_extra(synthetic_dir, tmp_path,
                                                            monkeypatch):
    for driver in ("psycopg", "psycopg2", "pg8000", "asyncpg"):
        monkeypatch.setitem(sys.modules, driver, None)  # not installed
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir)
    url = "postgresql://user@127.0.0.1:1/optuna"
    result = CliRunner().invoke(make_cli(), ["sweep", str(spec), "--storage", url])
    assert result.exit_code != 0
    assert result.output.strip().splitlines()[-1].endswith(
        f"storage {url!r} needs a database driver: pip install 'trainkit[postgres]'")
    assert "Traceback" not in result.output


def test_two_processes_joining_one_study_draw_different_parameters(synthetic_dir, tmp_path):
    """Both open the study before either has drawn (``done`` is 0 for both): with one seed
    they would draw the same parameters, trial for trial."""
    from trainkit.plugin.manager import get_plugin_manager
    from trainkit.plugin.registry import Registry
    from trainkit.sweep import Sweep, read_spec
    from trainkit.sweep.study import open_study

    spec = read_spec(write_spec(tmp_path / "spec.toml", synthetic_dir),
                     Registry.collect(get_plugin_manager()))
    storage = f"journal:{tmp_path / 'study.log'}"
    joining = [Sweep(spec, tmp_path / "sweep", storage, "shared", storage_given=True)
               for _ in range(2)]
    studies = [open_study(spec, storage, "shared", sweep.seed_offset()) for sweep in joining]
    lr = optuna.distributions.FloatDistribution(1e-3, 0.1, log=True)
    drawn = [study.ask({"lr": lr}).params["lr"] for study in studies]
    assert drawn[0] != drawn[1]
