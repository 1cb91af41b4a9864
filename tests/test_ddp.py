"""Data-parallel training under a real `mpiexec -n 2`. Skipped, with the reason, without mpi4py."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from trainkit.data import DataLoader
from trainkit.persist.checkpoint_io import load_checkpoint

pytest.importorskip("mpi4py", reason="mpi4py is not installed: pip install 'trainkit[mpi]'")
MPIEXEC = shutil.which("mpiexec")
pytestmark = pytest.mark.skipif(MPIEXEC is None, reason="no mpiexec on PATH (pip install mpich)")

RANK_DUMP = textwrap.dedent("""
    import os
    from pathlib import Path
    import numpy as np
    from trainkit import hookimpl

    @hookimpl
    def on_fit_start(trainer):
        rank = os.environ.get("PMI_RANK", "0")
        Path(os.environ["RANK_DIR"], f"pid-{rank}").write_text(str(os.getpid()))

    @hookimpl
    def on_fit_end(trainer):
        rank = os.environ.get("PMI_RANK", "0")
        np.save(Path(os.environ["RANK_DIR"]) / f"weights-{rank}.npy", trainer.model.params)
        np.save(Path(os.environ["RANK_DIR"]) / f"states-{rank}.npy", trainer.model.states)

    @hookimpl
    def on_epoch_start(trainer):
        trainer.samples_so_far = trainer.state.sums[0] if len(trainer.state.sums) else 0

    @hookimpl
    def on_batch_end(trainer):
        trainer.samples_so_far = trainer.state.sums[0]  # the epoch's samples, global under ddp

    @hookimpl
    def on_epoch_end(trainer, epoch):
        rank = os.environ.get("PMI_RANK", "0")
        with open(Path(os.environ["RANK_DIR"]) / f"samples-{rank}", "a") as f:
            f.write(f"{epoch} {trainer.samples_so_far:.0f}\\n")
""")

STOP_AT_STEP_37 = textwrap.dedent("""
    from trainkit import hookimpl

    @hookimpl
    def on_batch_end(trainer):
        if trainer.state.global_step == 37:
            trainer.request_interrupt()  # as if Ctrl+C: an emergency checkpoint mid-epoch
""")

PERTURB_RANK_1 = textwrap.dedent("""
    import os
    from trainkit import hookimpl

    @hookimpl
    def on_batch_end(trainer):
        if os.environ.get("PMI_RANK") == "1" and trainer.state.global_step == 5:
            trainer.model.params[0] += 0.01  # on this rank alone: the ranks diverge
""")


@pytest.fixture
def rank_dir(tmp_path, monkeypatch):
    mods = tmp_path / "mods"
    mods.mkdir()
    (mods / "rank_dump.py").write_text(RANK_DUMP)
    (mods / "stop_at_step_37.py").write_text(STOP_AT_STEP_37)
    (mods / "perturb_rank_1.py").write_text(PERTURB_RANK_1)
    ranks = tmp_path / "ranks"
    ranks.mkdir()
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(mods),
                                                                   os.environ.get("PYTHONPATH")])))
    monkeypatch.setenv("RANK_DIR", str(ranks))
    return ranks


def trainkit_run(ranks: int, *args, timeout=300, **popen):
    command = [sys.executable, "-m", "trainkit", "run", "-p", "rank_dump", *args]
    if ranks:
        command = [MPIEXEC, "-n", str(ranks), *command, "--plugin", "ddp"]
    if popen:
        return subprocess.Popen(command, **popen)
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def weights(folder: Path, rank: int) -> np.ndarray:
    return np.load(folder / f"weights-{rank}.npy")


def test_sharding_splits_every_global_batch_between_ranks():
    images, labels = np.zeros((10, 1), np.uint8), np.arange(10)
    loaders = [DataLoader(images, labels, 2, shuffle=True, rng=np.random.default_rng(0))
               for _ in range(2)]
    for rank, loader in enumerate(loaders):
        loader.shard(rank, 2)
    orders = [loader.new_epoch() for loader in loaders]
    np.testing.assert_array_equal(orders[0], orders[1])
    seen = [[y.tolist() for _, y in loader.batches(order)] for loader, order in zip(loaders, orders)]
    assert len(loaders[0]) == 3  # global batches of 4: 4, 4, and 2 split 1 + 1
    for step in range(3):
        assert seen[0][step] + seen[1][step] == orders[0][step * 4:(step + 1) * 4].tolist()


@pytest.mark.slow
def test_two_ranks_of_32_match_one_process_of_64_on_mnist(mnist_dir, rank_dir, tmp_path):
    common = ["--data-dir", str(mnist_dir), "--epochs", "1", "--threads", "1"]
    ddp = trainkit_run(2, *common, "--batch-size", "32", "--out", str(tmp_path / "ddp"))
    assert ddp.returncode == 0, ddp.stderr
    assert ddp.stdout.count("[  1/1]") == 1  # only rank 0 prints
    rank0, rank1 = weights(rank_dir, 0), weights(rank_dir, 1)
    np.testing.assert_array_equal(rank0, rank1)  # bit-identical across ranks
    single = trainkit_run(0, *common, "--batch-size", "64", "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr
    np.testing.assert_allclose(rank0, weights(rank_dir, 0), rtol=0, atol=1e-5)
    assert not np.array_equal(rank0, np.zeros_like(rank0))


def test_resuming_a_ddp_checkpoint_with_the_same_ranks_is_bit_exact(synthetic_dir, rank_dir,
                                                                      tmp_path):
    common = ["--dataset", "idx", "--data-dir", str(synthetic_dir), "--batch-size", "16", "--threads", "1",
              "--plugin", "checkpoint"]
    whole = trainkit_run(2, *common, "--epochs", "3", "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr
    first = trainkit_run(2, *common, "--epochs", "1", "--out", str(tmp_path / "split"))
    assert first.returncode == 0, first.stderr
    rest = trainkit_run(2, "--resume", str(tmp_path / "split" / "last.npz"), "--epochs", "3",
                        "--dataset", "idx", "--data-dir", str(synthetic_dir))
    assert rest.returncode == 0, rest.stderr
    a, b = load_checkpoint(tmp_path / "whole" / "last.npz"), load_checkpoint(
        tmp_path / "split" / "last.npz")
    for name in a[1]:
        np.testing.assert_array_equal(a[1][name], b[1][name], err_msg=name)
    assert a[0]["history"] == b[0]["history"]


def test_resuming_with_a_different_number_of_ranks_continues(synthetic_dir, rank_dir, tmp_path):
    first = trainkit_run(2, "--dataset", "idx", "--data-dir", str(synthetic_dir), "--batch-size", "16",
                         "--epochs",
                         "1", "--plugin", "checkpoint", "--out", str(tmp_path / "run"))
    assert first.returncode == 0, first.stderr
    rest = trainkit_run(0, "--resume", str(tmp_path / "run"), "--epochs", "3",
                        "--no-plugin", "ddp", "--dataset", "idx", "--data-dir", str(synthetic_dir))
    assert rest.returncode == 0, rest.stderr
    history = load_checkpoint(tmp_path / "run" / "last.npz")[0]["history"]
    assert len(history) == 3 and history[-1]["loss"] < history[0]["loss"]


def test_a_mid_epoch_checkpoint_resumed_on_more_ranks_trains_every_remaining_sample_once(
        synthetic_dir, rank_dir, tmp_path):
    # 1 process of batch 8 stops after 37 steps (296 samples): not a whole number of the 2-rank
    # job's global batches of 16, so the resume must start at a sample, not at a batch index.
    # The epoch has 461 samples: 512 less the 51 held out for validation.
    out = tmp_path / "run"
    first = trainkit_run(0, "--dataset", "idx", "--data-dir", str(synthetic_dir), "--batch-size", "8",
                         "--epochs", "2",
                         "--threads", "1", "--plugin", "checkpoint", "-p", "stop_at_step_37",
                         "--out", str(out))
    assert first.returncode != 0 and "emergency checkpoint written" in first.stderr, first.stderr
    assert load_checkpoint(out / "emergency.npz")[0]["state"]["step_in_epoch"] == 37
    (rank_dir / "samples-0").unlink(missing_ok=True)
    rest = trainkit_run(2, "--resume", str(out), "--dataset", "idx", "--data-dir", str(synthetic_dir))
    assert rest.returncode == 0, rest.stderr
    assert (rank_dir / "samples-0").read_text().split("\n")[:2] == ["1 461", "2 461"]


@contextlib.contextmanager
def long_ddp_job(data_dir: Path, out: Path, rank_dir: Path):
    """A 2-rank job of many epochs, yielded once rank 0 has saved and both ranks are up; always
    reaped at the end."""
    job = trainkit_run(2, "--dataset", "idx", "--data-dir", str(data_dir), "--batch-size", "8",
                       "--epochs", "500",
                       "--plugin", "checkpoint", "--out", str(out),
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not ((out / "last.npz").exists() and (rank_dir / "pid-1").exists()):
            assert time.monotonic() < deadline and job.poll() is None, "the job did not start"
            time.sleep(0.02)
        yield job
    finally:
        if job.poll() is None:
            job.kill()
            job.wait()


def test_killing_one_rank_ends_the_job_quickly_and_keeps_rank_0s_checkpoint(
        synthetic_dir, rank_dir, tmp_path):
    # What trainkit controls: the job ends (a surviving rank left waiting in a collective would
    # run its 500 epochs, and communicate() would time out), it ends in failure, and rank 0's
    # last checkpoint is whole. What MPI prints about the dead rank is its own wording: not
    # asserted.
    out = tmp_path / "run"
    with long_ddp_job(synthetic_dir, out, rank_dir) as job:
        os.kill(int((rank_dir / "pid-1").read_text()), signal.SIGKILL)
        job.communicate(timeout=60)
    assert job.returncode != 0
    manifest, _ = load_checkpoint(out / "last.npz")  # verifies every array's digest
    assert manifest["epoch"] >= 1


@pytest.mark.parametrize("delay", [0.0, 0.13, 0.37])
def test_ctrl_c_stops_every_rank_at_the_same_step(synthetic_dir, rank_dir, tmp_path, delay):
    out = tmp_path / "run"
    with long_ddp_job(synthetic_dir, out, rank_dir) as job:
        time.sleep(delay)
        job.send_signal(signal.SIGINT)  # mpiexec forwards it to every rank
        _, stderr = job.communicate(timeout=30)  # a rank left waiting would hang here
    # The first epoch's line is being printed at delay 0: a handler that printed there failed
    # rank 0 inside an import tqdm makes on its first write (trainkit.loop.interrupts)
    assert job.returncode != 0, stderr
    assert "emergency checkpoint written" in stderr, stderr
    assert stderr.count("interrupted at epoch") == 1, stderr  # rank 0 speaks for the job
    manifest, _ = load_checkpoint(out / "emergency.npz")
    assert manifest["global_step"] >= 1


def test_ranks_that_diverge_stop_together_and_rank_0_says_it_once(synthetic_dir, rank_dir,
                                                                  tmp_path):
    # Every rank sees the divergence at the same check: a consistent failure, not an abort of
    # the job by each rank (which the hook caller's wrapping of ddp's error used to cause)
    result = trainkit_run(2, "--dataset", "idx", "--data-dir", str(synthetic_dir),
                          "--batch-size", "8", "--epochs", "3", "-p", "perturb_rank_1",
                          "--ddp-check-every", "2", "--out", str(tmp_path / "run"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("rank(s) [1] differ from rank 0's at step 6") == 1, result.stderr
    assert "aborting" not in result.stderr, result.stderr


def test_accumulate_under_ddp_is_refused_once_without_an_abort(synthetic_dir, rank_dir,
                                                               tmp_path):
    result = trainkit_run(2, "--dataset", "idx", "--data-dir", str(synthetic_dir),
                          "--epochs", "1", "--accumulate", "2", "--out", str(tmp_path / "run"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.count("--accumulate is not supported under ddp") == 1, result.stderr
    assert "aborting" not in result.stderr, result.stderr


CNN = ["--model", "cnn", "--channels", "4,8", "--dense", "16", "--threads", "1", "--epochs", "1"]


def test_a_convnet_on_two_ranks_of_16_matches_one_process_of_32(synthetic_dir, rank_dir,
                                                                  tmp_path):
    two_ranks_of_16_equal_one_process_of_32(synthetic_dir, rank_dir, tmp_path)


def two_ranks_of_16_equal_one_process_of_32(synthetic_dir, rank_dir, tmp_path, *args):
    """The small convnet without batch norm and dropout (each rank would normalise its own
    half, and draw its own masks), run with ``args``: the ranks' weights are identical and
    within round-off of one process's; those weights are returned."""
    common = ["--dataset", "idx", "--data-dir", str(synthetic_dir), *CNN, "--dropout", "0",
              "--conv-dropout", "0", "--no-batch-norm", *args]
    ddp = trainkit_run(2, *common, "--batch-size", "16", "--out", str(tmp_path / "ddp"))
    assert ddp.returncode == 0, ddp.stderr
    rank0, rank1 = weights(rank_dir, 0), weights(rank_dir, 1)
    np.testing.assert_array_equal(rank0, rank1)
    single = trainkit_run(0, *common, "--batch-size", "32", "--out", str(tmp_path / "one"))
    assert single.returncode == 0, single.stderr
    np.testing.assert_allclose(rank0, weights(rank_dir, 0), rtol=0, atol=1e-5)
    return rank0


def test_augment_grad_clip_and_ema_on_two_ranks_of_16_match_one_process_of_32(
        synthetic_dir, rank_dir, tmp_path):
    # the augmentation's draws are the global batch's, the gradient is clipped after the ranks'
    # sum, the average follows the same weights on every rank
    techniques = two_ranks_of_16_equal_one_process_of_32(
        synthetic_dir, rank_dir, tmp_path, "--plugin", "augment", "--augment-erase", "0.5",
        "--augment-flip", "0.5", "--plugin", "grad-clip", "--grad-clip-max", "0.05",
        "--plugin", "ema")
    plain = two_ranks_of_16_equal_one_process_of_32(synthetic_dir, rank_dir, tmp_path / "plain")
    assert np.abs(techniques - plain).max() > 1e-3  # the plugins changed the run


def test_batch_norm_statistics_stay_in_step_across_ranks(synthetic_dir, rank_dir, tmp_path):
    result = trainkit_run(2, "--dataset", "idx", "--data-dir", str(synthetic_dir), *CNN,
                          "--batch-norm", "--batch-size", "16", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    states = [np.load(rank_dir / f"states-{rank}.npy") for rank in (0, 1)]
    assert states[0].size and not np.allclose(states[0][:4], 0)
    np.testing.assert_array_equal(states[0], states[1])
    _, arrays = load_checkpoint(tmp_path / "run" / "last.npz")
    np.testing.assert_array_equal(arrays["model/1.running_mean"], states[0][:4])


def test_val_f1_of_two_ranks_equals_one_process_on_the_same_weights(synthetic_dir, rank_dir,
                                                                    tmp_path):
    # each rank scores its own part of the split (26 and 25 samples): an average of the ranks'
    # F1 would be another number; their summed counts give the split's F1
    import json

    from click.testing import CliRunner

    from trainkit.cli import make_cli

    out = tmp_path / "ddp"
    run = trainkit_run(2, "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "1",
                       "--batch-size", "16", "--threads", "1", "--hidden", "16", "--metric",
                       "f1", "--out", str(out))
    assert run.returncode == 0, run.stderr
    last = load_checkpoint(out / "final.npz")[0]["history"][-1]
    for split in ("val", "test"):
        single = CliRunner().invoke(make_cli(), ["evaluate", str(out), "--data-dir",
                                                 str(synthetic_dir), "--split", split, "--json"],
                                    catch_exceptions=False)
        assert single.exit_code == 0, single.output
        scores = json.loads(single.output)["metrics"]
        assert scores["f1"] == pytest.approx(last[f"{split}_f1"], abs=1e-12)
        assert scores["loss"] == pytest.approx(last[f"{split}_loss"], rel=1e-6)


def test_only_rank_0_writes_tensorboard_events_and_mlflow_runs(synthetic_dir, rank_dir, tmp_path):
    pytest.importorskip("tensorboardX", reason="the test extra installs tensorboardX")
    pytest.importorskip("mlflow", reason="the test extra installs mlflow")
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path}/mlflow.db"
    out = tmp_path / "run"
    run = trainkit_run(2, "--dataset", "idx", "--data-dir", str(synthetic_dir), "--epochs", "2",
                       "--batch-size", "16", "--threads", "1", "--hidden", "16", "--out",
                       str(out), "--plugin", "tensorboard", "--plugin", "mlflow",
                       "--mlflow-tracking-uri", uri)
    assert run.returncode == 0, run.stderr
    events = list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert len(events) == 1, events  # one writer: rank 0's
    client = MlflowClient(tracking_uri=uri)
    (found,) = client.search_runs([client.get_experiment_by_name("trainkit").experiment_id])
    assert found.info.status == "FINISHED"
    assert [p.step for p in client.get_metric_history(found.info.run_id, "val_loss")] == [1, 2]
