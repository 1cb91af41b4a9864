"""Exact resume: a run split by a stop, or by Ctrl+C mid-epoch, ends bit-identical to one in one go."""

from __future__ import annotations

import io
import os
import re
import signal
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from trainkit import hookimpl
from trainkit.cli import EXIT_INTERRUPTED, make_cli
from trainkit.persist.checkpoint_io import load_checkpoint
from trainkit.session import Session

PLUGINS = ["--plugin", "checkpoint", "--plugin", "history", "--plugin", "early-stopping",
           "--plugin", "lr-schedule", "--lr-schedule-schedule", "exponential",
           "--lr-schedule-gamma", "0.7", "--early-stopping-patience", "2",
           "--early-stopping-restore-best", "--early-stopping-min-delta", "0.05"]


def invoke(args, plugins=()):
    return CliRunner().invoke(make_cli(plugins), args, catch_exceptions=False)


def train(data_dir, out, epochs, *extra, plugins=()):
    args = ["run", "--dataset", "idx", "--data-dir", str(data_dir), "--batch-size", "64", "--seed", "3",
            "--threads", "1",
            "--epochs", str(epochs), "--out", str(out), *PLUGINS, *extra]
    return invoke(args, plugins)


def epoch_lines(output: str) -> int:
    return len(re.findall(r"^\[\s*\d+/\d+\]", output, flags=re.M))


def assert_same_run(a: Path, b: Path) -> None:
    manifest_a, arrays_a = load_checkpoint(a / "last.npz")
    manifest_b, arrays_b = load_checkpoint(b / "last.npz")
    assert sorted(arrays_a) == sorted(arrays_b)
    assert any(k.startswith("optimizer/") for k in arrays_a)
    assert any(k.startswith("plugins/early-stopping/") for k in arrays_a)
    for name in arrays_a:
        np.testing.assert_array_equal(arrays_a[name], arrays_b[name], err_msg=name)
    for key in ("epoch", "global_step", "state", "optimizer", "history", "plugins",
                "data_rng_state"):
        assert manifest_a[key] == manifest_b[key], key
    assert (a / "history.csv").read_text() == (b / "history.csv").read_text()


@pytest.fixture(scope="module")
def uninterrupted(synthetic_dir, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("whole") / "run"
    result = train(synthetic_dir, out, 4)
    assert result.exit_code == 0, result.output
    assert len(load_checkpoint(out / "last.npz")[0]["history"]) == 4
    return out


def test_stop_then_resume_is_bit_exact(synthetic_dir, uninterrupted, tmp_path):
    split = tmp_path / "split"
    assert train(synthetic_dir, split, 2).exit_code == 0
    resumed = invoke(["run", "--resume", str(split / "last.npz"), "--epochs", "4",
                      "--dataset", "idx", "--data-dir", str(synthetic_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert epoch_lines(resumed.output) == 2  # epochs 3 and 4 only
    assert_same_run(uninterrupted, split)


class InterruptAt:
    """Sends this process a real SIGINT in the middle of an epoch."""

    def __init__(self, global_step: int):
        self.global_step = global_step

    @hookimpl
    def on_batch_end(self, trainer):
        if trainer.state.global_step == self.global_step:
            os.kill(os.getpid(), signal.SIGINT)


def test_sigint_mid_epoch_writes_an_emergency_checkpoint_that_resumes_exactly(
        synthetic_dir, uninterrupted, tmp_path):
    out = tmp_path / "interrupted"
    result = train(synthetic_dir, out, 4, plugins=[InterruptAt(global_step=11)])
    assert result.exit_code == EXIT_INTERRUPTED
    assert "emergency checkpoint written" in result.output
    manifest, _ = load_checkpoint(out / "emergency.npz")
    assert manifest["epoch"] == 1 and manifest["state"]["step_in_epoch"] == 3
    resumed = invoke(["run", "--resume", str(out / "emergency.npz"), "--data-dir",
                      str(synthetic_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert_same_run(uninterrupted, out)


def test_a_per_step_schedule_resumes_mid_epoch_bit_exactly(synthetic_dir, tmp_path):
    def run(out, plugins=()):
        return CliRunner().invoke(make_cli(plugins), [
            "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "3",
            "--threads", "1", "--out", str(out), "--lr-schedule", "one-cycle",
            "--plugin", "early-stopping", "--early-stopping-restore-best", "--plugin", "history"],
            catch_exceptions=False)

    assert run(tmp_path / "whole").exit_code == 0
    interrupted = run(tmp_path / "split", plugins=[InterruptAt(global_step=11)])
    assert interrupted.exit_code != 0 and (tmp_path / "split" / "emergency.npz").exists()
    resumed = CliRunner().invoke(make_cli(), ["run", "--resume", str(tmp_path / "split"),
                                              "--data-dir", str(synthetic_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert_same_run(tmp_path / "whole", tmp_path / "split")
    lrs = [row["lr"] for row in load_checkpoint(tmp_path / "whole" / "last.npz")[0]["history"]]
    assert lrs[0] > lrs[1] > lrs[2] > 0  # each epoch ends lower on the way down


@pytest.mark.parametrize("schedule", [
    ["--lr-schedule", "warmup-cosine", "--lr-schedule-warmup-steps", "20"],
    ["--lr-schedule", "reduce-on-plateau", "--lr-schedule-patience", "1",
     "--lr-schedule-threshold", "10", "--lr-schedule-cooldown", "1"]],
    ids=["mid-warm-up", "mid-cooldown"])
def test_a_resume_mid_patience_mid_warm_up_or_mid_cooldown_is_bit_exact(synthetic_dir, tmp_path,
                                                                         schedule):
    # min_delta and threshold 10: no epoch after the first improves, so early stopping's patience
    # and the plateau's cooldown are counting when the run is interrupted in epoch 3
    def run(out, plugins=()):
        return CliRunner().invoke(make_cli(plugins), [
            "run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "5",
            "--threads", "1", "--out", str(out), "--lr", "0.01", *schedule,
            "--plugin", "early-stopping", "--early-stopping-patience", "3",
            "--early-stopping-min-delta", "10", "--early-stopping-restore-best",
            "--plugin", "history"], catch_exceptions=False)

    assert run(tmp_path / "whole").exit_code == 0
    interrupted = run(tmp_path / "split", plugins=[InterruptAt(global_step=19)])
    assert interrupted.exit_code == EXIT_INTERRUPTED
    manifest, _ = load_checkpoint(tmp_path / "split" / "emergency.npz")
    assert manifest["epoch"] == 2 and manifest["plugins"]["early-stopping"]["wait"] == 1
    resumed = CliRunner().invoke(make_cli(), ["run", "--resume", str(tmp_path / "split"),
                                              "--data-dir", str(synthetic_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert_same_run(tmp_path / "whole", tmp_path / "split")
    final = load_checkpoint(tmp_path / "whole" / "last.npz")[0]
    assert len(final["history"]) == 4  # stopped after 3 epochs without improvement
    lrs = [row["lr"] for row in final["history"]]
    if "reduce-on-plateau" in schedule:  # lowered after epoch 2; epoch 3 cools down (without
        assert lrs == pytest.approx([0.01, 0.01, 0.001, 0.001])  # the cooldown: 0.0001)


class InterruptTwiceAt(InterruptAt):
    """Two SIGINTs in a row, as a user pressing Ctrl+C twice."""

    @hookimpl
    def on_batch_end(self, trainer):
        if trainer.state.global_step == self.global_step:
            os.kill(os.getpid(), signal.SIGINT)
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_says_what_a_second_press_does_and_the_second_says_what_it_skipped(
        synthetic_dir, tmp_path):
    once = train(synthetic_dir, tmp_path / "once", 4, plugins=[InterruptAt(global_step=11)])
    assert "Ctrl+C: stopping after this batch; press Ctrl+C again to stop now without an " \
           "emergency checkpoint" in once.output
    assert "second Ctrl+C" not in once.output
    out = tmp_path / "twice"
    twice = train(synthetic_dir, out, 4, plugins=[InterruptTwiceAt(global_step=11)])
    assert twice.exit_code == EXIT_INTERRUPTED
    assert "second Ctrl+C: stopping now, without an emergency checkpoint" in twice.output
    assert "emergency checkpoint written" not in twice.output
    assert not (out / "emergency.npz").exists()
    assert load_checkpoint(out / "last.npz")[0]["epoch"] == 1  # the last good one is kept


class SigintWhileWriting(io.RawIOBase):
    """Standard error whose ``at``-th write of the bar is hit by a SIGINT: the handler then runs
    inside the write, with the stream's buffer locked, as when Ctrl+C lands while a bar draws."""

    def __init__(self, at: int) -> None:
        self.at, self.bar_writes, self.text = at, 0, bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:
        chunk = bytes(data)
        if chunk.startswith(b"\rstep"):
            self.bar_writes += 1
            if self.bar_writes == self.at:
                os.kill(os.getpid(), signal.SIGINT)
        self.text += chunk
        return len(chunk)


class BarOnStderr:
    """Draws on standard error after every batch, as a progress bar does."""

    name = "bar-on-stderr"

    @hookimpl
    def on_batch_end(self, step):
        sys.stderr.write(f"\rstep {step}")
        sys.stderr.flush()


def test_ctrl_c_while_a_bar_writes_to_stderr_stops_cleanly(synthetic_dir, tmp_path, monkeypatch):
    # Printing from the signal handler in the middle of that write raised "RuntimeError:
    # reentrant call" and failed the run: the handler records, the loop speaks.
    raw = SigintWhileWriting(at=5)
    monkeypatch.setattr(sys, "stderr", io.TextIOWrapper(io.BufferedWriter(raw), "utf-8",
                                                        line_buffering=True))
    out = tmp_path / "run"
    outcome = Session({"dataset": "idx", "data_dir": str(synthetic_dir), "epochs": 2,
                       "threads": 1, "out": str(out), "plugin": ["checkpoint"]},
                      plugins=[BarOnStderr()]).fit()
    sys.stderr.flush()
    assert outcome.status == "interrupted"
    assert "Ctrl+C: stopping after this batch" in raw.text.decode()
    assert load_checkpoint(out / "emergency.npz")[0]["global_step"] == 5


def test_resume_last_takes_the_newest_checkpoint_of_a_run_folder(synthetic_dir, tmp_path):
    out = tmp_path / "runs" / "a"
    assert train(synthetic_dir, out, 1).exit_code == 0
    result = invoke(["run", "--resume", "last", "--out", str(out), "--epochs", "2",
                     "--dataset", "idx", "--data-dir", str(synthetic_dir)])
    assert result.exit_code == 0, result.output
    assert load_checkpoint(out / "last.npz")[0]["epoch"] == 2


def test_a_resume_reuses_the_recorded_blas_thread_count(synthetic_dir, tmp_path):
    # BLAS results differ in the last bits between thread counts, so an automatic pick is
    # recorded and reused, never re-picked, on resume.
    out = tmp_path / "auto"
    result = invoke(["run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1",
                     "--out", str(out),
                     "--plugin", "checkpoint"])
    assert result.exit_code == 0
    recorded = load_checkpoint(out / "last.npz")[0]["threads"]
    assert isinstance(recorded, int) and recorded >= 1
    resumed = invoke(["run", "--resume", str(out), "--epochs", "2",
                      "--dataset", "idx", "--data-dir", str(synthetic_dir)])
    assert f" {recorded} BLAS thread" in resumed.output


def test_resume_of_a_folder_takes_the_emergency_checkpoint_when_it_is_newer(
        synthetic_dir, tmp_path):
    out = tmp_path / "run"
    result = train(synthetic_dir, out, 4, plugins=[InterruptAt(global_step=11)])
    assert result.exit_code == EXIT_INTERRUPTED
    resumed = invoke(["run", "--resume", str(out), "--dataset", "idx", "--data-dir", str(synthetic_dir)])
    assert resumed.exit_code == 0, resumed.output
    assert epoch_lines(resumed.output) == 3  # epochs 2, 3 and 4: it resumed mid-epoch 2


def test_resume_of_a_folder_without_checkpoints(tmp_path):
    (tmp_path / "empty").mkdir()
    result = invoke(["run", "--resume", str(tmp_path / "empty")])
    assert result.exit_code == 1 and "holds no last.npz or emergency.npz" in result.output


def test_a_resume_on_other_blas_kernels_says_the_last_bits_can_differ(synthetic_dir, tmp_path,
                                                                      monkeypatch):
    out = tmp_path / "run"
    assert train(synthetic_dir, out, 1).exit_code == 0
    recorded = load_checkpoint(out / "last.npz")[0]["blas_kernels"]
    assert recorded and "openblas" in recorded.lower()
    same = invoke(["run", "--resume", str(out), "--epochs", "2", "--dataset", "idx", "--data-dir",
                   str(synthetic_dir)])
    assert "last bits" not in same.output
    monkeypatch.setattr("trainkit.session.threads.blas_kernels", lambda: "otherblas 1.0 Z80")
    other = invoke(["run", "--resume", str(out), "--epochs", "3", "--dataset", "idx", "--data-dir",
                    str(synthetic_dir)])
    assert other.exit_code == 0
    assert f"written with BLAS {recorded}, this run uses otherblas 1.0 Z80" in other.output


@pytest.fixture(scope="module")
def two_epochs(synthetic_dir, tmp_path_factory) -> Path:
    """A finished 2-epoch run at lr 0.001, copied by each test that resumes it."""
    out = tmp_path_factory.mktemp("two") / "run"
    result = invoke(["run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2",
                     "--threads", "1", "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def resume(run: Path, tmp_path: Path, *args: str):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run, copy)
    return copy, CliRunner().invoke(make_cli(), ["run", "--resume", str(copy), *args])


def test_a_new_lr_on_resume_is_applied_said_and_recorded(synthetic_dir, two_epochs, tmp_path):
    import json

    run, result = resume(two_epochs, tmp_path, "--lr", "0.01", "--epochs", "3", "--data-dir",
                         str(synthetic_dir))
    assert result.exit_code == 0, result.output
    assert "resuming with changes: epochs 2 -> 3; lr 0.001 -> 0.01" in result.output
    assert f"resuming from {run / 'last.npz'} after epoch 2:" in result.output
    manifest, _ = load_checkpoint(run / "last.npz")
    assert [row["lr"] for row in manifest["history"]] == [0.001, 0.001, 0.01]
    assert manifest["optimizer"]["lr"] == 0.01 and manifest["config"]["lr"] == 0.01
    assert json.loads((run / "run.json").read_text())["config"]["lr"] == 0.01
    # ... and it really trained at 0.01: not what the same resume at 0.001 gives
    same, unchanged = resume(two_epochs, tmp_path / "b", "--epochs", "3", "--data-dir",
                             str(synthetic_dir))
    assert unchanged.exit_code == 0 and "changes" not in unchanged.output.split("epochs 2 -> 3")[1]
    assert load_checkpoint(same / "last.npz")[0]["history"][-1]["loss"] != \
        manifest["history"][-1]["loss"]


def test_a_resumed_schedule_follows_a_new_lr(synthetic_dir, tmp_path):
    out = tmp_path / "sched"
    args = ["--lr-schedule-schedule", "step", "--lr-schedule-step-size", "1",
            "--lr-schedule-gamma", "0.5"]
    first = invoke(["run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1",
                    "--out", str(out), "--plugin", "lr-schedule", *args])
    assert first.exit_code == 0, first.output
    rest = invoke(["run", "--resume", str(out), "--epochs", "3", "--lr", "0.01", "--data-dir",
                   str(synthetic_dir)])
    assert rest.exit_code == 0, rest.output
    lrs = [row["lr"] for row in load_checkpoint(out / "last.npz")[0]["history"]]
    assert lrs == pytest.approx([0.001, 0.005, 0.0025])


@pytest.mark.parametrize("args,needle", [
    (["--hidden", "32"], "hidden cannot change on resume: {ckpt} was trained with hidden = 100, "
                         "this run asks for 32"),
    (["--activation", "relu"], "activation cannot change on resume"),
    (["--dataset", "mnist"], "dataset cannot change on resume"),
    (["--optimizer", "sgd"], "optimizer cannot change on resume"),
    (["--val-split", "0.2"], "val_split cannot change on resume"),
    (["--epochs", "1"], "{ckpt} has trained 2 epochs already, and this run asks for 1"),
    (["--epochs", "2"], "nothing is left to train; give --epochs more than 2"),
])
def test_a_resume_refuses_what_it_cannot_change_in_one_line(synthetic_dir, two_epochs, tmp_path,
                                                            args, needle):
    run, result = resume(two_epochs, tmp_path, *args, "--data-dir", str(synthetic_dir))
    assert result.exit_code == 2, result.output
    assert needle.format(ckpt=run / "last.npz") in " ".join(result.output.split())
    assert "Traceback" not in result.output and "resuming" not in result.output


def test_plugins_turned_on_and_off_on_resume_are_said(synthetic_dir, two_epochs, tmp_path):
    _, result = resume(two_epochs, tmp_path, "--epochs", "3", "--plugin", "history",
                       "--no-plugin", "progress", "--data-dir", str(synthetic_dir))
    assert result.exit_code == 0, result.output
    assert "plugin history on; plugin progress off" in result.output


def test_resuming_an_older_checkpoint_of_a_run_folder_sets_the_later_files_aside(synthetic_dir,
                                                                                 tmp_path):
    out = tmp_path / "run"
    assert train(synthetic_dir, out, 3, "--checkpoint-keep", "0").exit_code == 0
    later = {name: (out / name).read_bytes() for name in ("epoch-002.npz", "epoch-003.npz",
                                                          "last.npz", "final.npz",
                                                          "history.csv", "run.json")}
    resumed = invoke(["run", "--resume", str(out / "epoch-001.npz"), "--epochs", "2",
                      "--dataset", "idx", "--data-dir", str(synthetic_dir)])
    assert resumed.exit_code == 0, resumed.output
    aside = [p for p in out.iterdir() if p.name.startswith("superseded-")]
    assert len(aside) == 1
    assert (f"trainkit: resuming from epoch 1 (epoch-001.npz) a run that had gone further: its "
            f"later checkpoints moved to {aside[0]}, with a copy of its other files") \
        in " ".join(resumed.output.split())
    for name, content in later.items():  # every later file kept, byte for byte
        assert (aside[0] / name).read_bytes() == content, name
    assert load_checkpoint(out / "last.npz")[0]["epoch"] == 2  # the resumed run's own
    assert (out / "epoch-001.npz").exists() and not (out / "epoch-003.npz").exists()
    assert len((out / "history.csv").read_text().splitlines()) == 1 + 2  # continued in place


def test_resuming_the_newest_checkpoint_moves_nothing(synthetic_dir, tmp_path):
    out = tmp_path / "run"
    assert train(synthetic_dir, out, 1).exit_code == 0
    resumed = invoke(["run", "--resume", str(out), "--epochs", "2", "--dataset", "idx",
                      "--data-dir", str(synthetic_dir)])
    assert resumed.exit_code == 0 and "moved to" not in resumed.output
    assert not [p for p in out.iterdir() if p.name.startswith("superseded-")]


def test_a_smoke_runs_limit_is_lifted_on_resume_with_limit_batches_all(synthetic_dir, tmp_path):
    out = tmp_path / "smoke"
    smoke = invoke(["run", "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1",
                    "--out", str(out), "--limit-batches", "2"])
    assert smoke.exit_code == 0, smoke.output
    assert load_checkpoint(out / "last.npz")[0]["global_step"] == 2
    for lift in ("all", "0"):
        resumed = invoke(["run", "--resume", str(out), "--epochs", "2", "--dataset", "idx",
                          "--data-dir", str(synthetic_dir), "--limit-batches", lift,
                          "--out", str(tmp_path / f"full-{lift}")])
        assert resumed.exit_code == 0, resumed.output
        manifest = load_checkpoint(tmp_path / f"full-{lift}" / "last.npz")[0]
        assert manifest["config"]["limit_batches"] is None
        assert manifest["global_step"] > 2 + 2  # the second epoch ran every batch
    bad = invoke(["run", "--dataset", "idx", "--data-dir", str(synthetic_dir),
                  "--limit-batches", "some"])
    assert bad.exit_code == 2 and "'some' is not a number of batches or 'all'" in bad.output


def test_after_a_double_ctrl_c_in_the_first_epoch_the_advice_leads_somewhere(synthetic_dir,
                                                                              tmp_path):
    out = tmp_path / "run"
    stopped = train(synthetic_dir, out, 2, plugins=[InterruptTwiceAt(global_step=3)])
    assert stopped.exit_code == EXIT_INTERRUPTED and not (out / "last.npz").exists()
    again = train(synthetic_dir, out, 2)
    assert again.exit_code == 2
    said = " ".join(again.output.split())
    assert (f"{out} holds an earlier run that saved no checkpoint to resume from (stopped before "
            f"the end of its first epoch); start afresh there with --overwrite") in said
    assert "--resume" not in said
    resumed = invoke(["run", "--resume", str(out)])
    assert resumed.exit_code == 1
    assert "nothing to resume: start afresh there with --overwrite" in resumed.output
    afresh = train(synthetic_dir, out, 2, "--overwrite")
    assert afresh.exit_code == 0, afresh.output
    assert load_checkpoint(out / "last.npz")[0]["epoch"] == 2
