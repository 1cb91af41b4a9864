"""Two runs aimed at the same run folder: the second is refused; a dead run's lock is taken over."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

from click.testing import CliRunner

from trainkit.cli import make_cli

HOLD = ("import sys, time; from trainkit.session.run_lock import RunLock; lock = RunLock(sys.argv[1]); "
        "lock.acquire(); print('locked', flush=True); time.sleep(120)")


def hold_lock(folder):
    child = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE,
                             text=True)
    assert child.stdout.readline().strip() == "locked"
    return child


def run(data_dir, out, *extra):
    return CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir", str(data_dir),
                                           "--epochs", "1", "--out", str(out), *extra])


def test_a_second_run_on_a_folder_in_use_is_refused(synthetic_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    child = hold_lock(out)
    try:
        result = run(synthetic_dir, out)
    finally:
        child.kill()
        child.wait()
    assert result.exit_code == 1
    assert f"run folder is in use by process {child.pid}" in result.output
    assert "Traceback" not in result.output
    assert not (out / "run.json").exists()


def test_a_stale_lock_of_a_dead_process_is_taken_over(synthetic_dir, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    child = hold_lock(out)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    result = run(synthetic_dir, out)
    assert result.exit_code == 0, result.output
    assert f"took over the lock of process {child.pid}" in result.output
    assert json.loads((out / "run.json").read_text())["status"] == "completed"


def test_a_finished_run_releases_its_lock(synthetic_dir, tmp_path):
    out = tmp_path / "run"
    assert run(synthetic_dir, out).exit_code == 0
    second = run(synthetic_dir, out, "--overwrite")
    assert second.exit_code == 0 and "took over" not in second.output


def snapshot(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_a_second_run_on_a_run_folder_is_refused_and_leaves_it_untouched(synthetic_dir, tmp_path):
    out = tmp_path / "run"
    assert run(synthetic_dir, out, "--epochs", "2").exit_code == 0
    before = snapshot(out)
    assert {"last.npz", "best.npz", "final.npz", "run.json"} <= set(before)
    second = run(synthetic_dir, out, "--seed", "7")
    assert second.exit_code == 2
    message = " ".join(second.output.split())
    assert f"{out} holds an earlier run; resume it with --resume {out}" in message
    assert "--overwrite" in message and "Traceback" not in second.output
    assert snapshot(out) == before  # byte for byte


def test_overwrite_clears_the_earlier_run_first(synthetic_dir, tmp_path):
    out = tmp_path / "run"
    assert run(synthetic_dir, out, "--epochs", "3").exit_code == 0
    assert (out / "epoch-003.npz").exists()
    (out / "notes").mkdir()
    second = run(synthetic_dir, out, "--overwrite")
    assert second.exit_code == 0, second.output
    assert f"cleared {out}" in second.output
    assert not (out / "epoch-003.npz").exists() and not (out / "notes").exists()
    assert (out / "epoch-001.npz").exists()


def test_an_empty_or_new_folder_needs_no_overwrite(synthetic_dir, tmp_path):
    (tmp_path / "empty").mkdir()
    assert run(synthetic_dir, tmp_path / "empty").exit_code == 0
    assert run(synthetic_dir, tmp_path / "new" / "deeper").exit_code == 0


def test_the_holder_is_recorded_beside_the_lock_while_it_runs_and_removed_after(tmp_path):
    from trainkit.session.run_lock import RunLock

    with RunLock(tmp_path) as lock:
        owner = json.loads((tmp_path / ".trainkit.owner").read_text(encoding="utf-8"))
        assert owner["pid"] == os.getpid() and owner["host"] and lock.stale_owner is None
    assert not (tmp_path / ".trainkit.owner").exists()


def test_a_lock_left_by_trainkit_0_1_0_is_read_as_a_dead_holders(tmp_path):
    from trainkit.session.run_lock import RunLock

    (tmp_path / ".trainkit.lock").write_text('{"pid": 4242, "host": "old", "started": "then"}')
    with RunLock(tmp_path) as lock:
        assert lock.stale_owner == {"pid": 4242, "host": "old", "started": "then"}
