"""The BLAS thread pick keeps whichever count really runs the step faster."""

from __future__ import annotations

import time

import numpy as np
import pytest
from threadpoolctl import threadpool_info

from trainkit.plugins.losses import CrossEntropy
from trainkit.plugins.models import MLP
from trainkit.plugins.optimizers import Adam
from trainkit.session.threads import calibrate, training_step_probe


def blas_threads_now() -> int:
    return max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas")


class Clock:
    """A clock that moves only when a step says so: calibrate's choice without the machine's
    noise (sleeps and real timers made these tests fail on a loaded CI machine)."""

    def __init__(self) -> None:
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def timed(monkeypatch):
    """(clock, current): calibrate reads ``clock``, and ``current[-1]`` is the thread count it
    has set, seen without asking threadpoolctl."""
    import contextlib

    import trainkit.session.threads

    clock, current = Clock(), []

    @contextlib.contextmanager
    def fake_using_threads(count, split_batch=False):
        current.append(count)
        yield
        current.pop()

    monkeypatch.setattr(trainkit.session.threads, "time", clock)
    monkeypatch.setattr(trainkit.session.threads, "using_threads", fake_using_threads)
    return clock, current


def steps_taking(timed, seconds, slowed_steps=0):
    """A step that takes ``seconds[count]`` of the clock; the first ``slowed_steps`` steps on
    every core (2) take three times as long, as if something else ran on the machine then."""
    clock, current = timed
    taken = {1: 0, 2: 0}

    def step():
        count = current[-1]
        taken[count] += 1
        slowed = count == 2 and taken[count] <= slowed_steps
        clock.now += seconds[count] * (3 if slowed else 1)

    return step


@pytest.mark.parametrize("slow_count,expected", [(2, 1), (1, 2)])
def test_calibrate_picks_the_faster_count(timed, slow_count, expected):
    step = steps_taking(timed, {slow_count: 0.002, 3 - slow_count: 0.0002})
    assert calibrate(step, [1, 2]) == expected


@pytest.mark.parametrize("one_thread_faster_by,expected", [(0.0, 2), (0.05, 2), (0.20, 1)])
def test_all_cores_are_kept_unless_one_thread_is_clearly_faster(timed, one_thread_faster_by,
                                                               expected):
    step = steps_taking(timed, {1: 0.001 * (1 - one_thread_faster_by), 2: 0.001})
    assert calibrate(step, [1, 2]) == expected


def test_a_window_slowed_by_the_machine_does_not_change_the_pick(timed):
    # every core is 20% faster, but its warm-up step, its first window (11 slowed steps) and
    # half its second ran beside something else: the best window counts, not the mean
    step = steps_taking(timed, {1: 0.001, 2: 0.0008}, slowed_steps=20)
    assert calibrate(step, [1, 2]) == 2


def test_the_probe_touches_no_weight_and_no_optimizer_state():
    model = MLP().build(784, 10, np.random.default_rng(0))
    optimizer = Adam()
    optimizer.bind(model.params, model.grads)
    before, state = model.params.copy(), optimizer.state_dict()
    probe = training_step_probe(model, CrossEntropy(), 16, 784, optimizer)
    for _ in range(3):
        probe()
    np.testing.assert_array_equal(model.params, before)
    after = optimizer.state_dict()
    assert after["iterations"] == state["iterations"] == 0
    for name in optimizer.state_names:
        np.testing.assert_array_equal(after[name], state[name])


def test_more_threads_than_cores_is_warned_in_one_line(synthetic_dir, monkeypatch):
    from click.testing import CliRunner

    from trainkit.cli import make_cli
    from trainkit.session import threads

    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    result = CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir",
                                             str(synthetic_dir), "--epochs", "1", "--threads",
                                             "3", "--out", "run"])
    assert result.exit_code == 0, result.output
    assert ("warning: --threads 3 is more than the 2 cores this process can use"
            in result.output)
    quiet = CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir",
                                            str(synthetic_dir), "--epochs", "1", "--threads",
                                            "2", "--out", "run2"])
    assert quiet.exit_code == 0, quiet.output
    assert "cores this process can use" not in quiet.output


def run_and_read_last(synthetic_dir, out, *extra):
    from click.testing import CliRunner

    from trainkit.cli import make_cli
    from trainkit.persist.checkpoint_io import load_checkpoint

    result = CliRunner().invoke(make_cli(), ["run", "--dataset", "idx", "--data-dir",
                                             str(synthetic_dir), "--epochs", "1", "--out",
                                             str(out), *extra])
    assert result.exit_code == 0, result.output
    return load_checkpoint(out / "last.npz")


def test_the_same_command_gives_the_same_bits_on_an_idle_and_on_a_loaded_machine(
        synthetic_dir, tmp_path):
    import subprocess
    import sys

    idle_manifest, idle_arrays = run_and_read_last(synthetic_dir, tmp_path / "idle")
    spinner = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        busy_manifest, busy_arrays = run_and_read_last(synthetic_dir, tmp_path / "busy")
    finally:
        spinner.kill()
        spinner.wait()
    assert busy_manifest["threads"] == idle_manifest["threads"]
    assert busy_arrays.keys() == idle_arrays.keys()
    for name in idle_arrays:
        np.testing.assert_array_equal(busy_arrays[name], idle_arrays[name], err_msg=name)


def test_the_default_count_follows_the_model_and_auto_times_it(synthetic_dir, tmp_path,
                                                                monkeypatch):
    from trainkit.session import threads

    monkeypatch.setattr(threads, "available_cores", lambda: 2)
    mlp = run_and_read_last(synthetic_dir, tmp_path / "mlp")[0]
    cnn = run_and_read_last(synthetic_dir, tmp_path / "cnn", "--model", "cnn", "--channels",
                            "2,4", "--dense", "8")[0]
    assert (mlp["threads"], cnn["threads"]) == (1, 2)
    # BLAS's own threads: the convnet's work is split by trainkit's, BLAS runs on one
    assert (mlp["blas_threads"], cnn["blas_threads"]) == (1, 1)
    timed = []
    monkeypatch.setattr(threads, "calibrate", lambda *a, **k: timed.append(1) or 2)
    auto = run_and_read_last(synthetic_dir, tmp_path / "auto", "--threads", "auto")[0]
    assert timed and auto["threads"] == 2


def test_the_count_does_change_the_bits_so_the_test_above_can_fail(synthetic_dir, tmp_path):
    from trainkit.session.threads import available_cores

    if available_cores() < 2:
        pytest.skip("needs two cores")
    one = run_and_read_last(synthetic_dir, tmp_path / "one", "--threads", "1")[1]
    two = run_and_read_last(synthetic_dir, tmp_path / "two", "--threads", "2")[1]
    assert any(not np.array_equal(one[name], two[name]) for name in one)
