"""trainkit sweep on a real Optuna storage: parallel processes on one study, pruning, failures,
Ctrl+C and --resume, a spec checked before any trial, and best.toml reproducing the best trial."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli
from trainkit.persist.checkpoint_io import load_checkpoint

optuna = pytest.importorskip("optuna", reason="the test extra installs optuna")


def write_spec(path, data_dir, trials=6, epochs=2, search=None, pruner="median", extra=""):
    search = search or textwrap.dedent("""\
        lr = { low = 1e-4, high = 0.3, log = true }
        batch-size = { choices = [16, 64] }
    """)
    path.write_text(textwrap.dedent(f"""\
        dataset = "idx"
        data_dir = "{data_dir}"
        epochs = {epochs}
        hidden = [16]
        threads = 1
        {extra}
        [sweep]
        monitor = "val_acc"
        trials = {trials}
        pruner = "{pruner}"
        seed = 3

        [sweep.search]
    """) + search)
    return path


def sweep_process(*args, cwd, **popen):
    return subprocess.Popen([sys.executable, "-m", "trainkit", "sweep", *map(str, args)],
                            cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"}, **popen)


def load(storage, name):
    return optuna.load_study(study_name=name, storage=storage)


def test_two_processes_share_one_study_prune_and_leave_nothing_running(synthetic_dir,
                                                                       tmp_path):
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir)
    storage = f"sqlite:///{tmp_path}/shared.db"
    workers = [sweep_process(spec, "--storage", storage, "--study", "shared", "--out",
                             tmp_path / "sweep", cwd=tmp_path) for _ in range(2)]
    outputs = [w.communicate(timeout=600)[0] for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs
    trials = load(storage, "shared").get_trials()
    states = [t.state for t in trials]
    assert len(trials) == 12, outputs
    assert optuna.trial.TrialState.RUNNING not in states, outputs
    folders = {t.user_attrs["run_dir"] for t in trials}
    assert len(folders) == 12
    for trial in trials:  # each trial is a run of its own, recorded as such
        record = json.loads((tmp_path / "sweep" / f"trial-{trial.number:04d}" /
                             "trial.json").read_text())
        assert record["number"] == trial.number and record["params"] == trial.params
    pruned = [t for t in trials if t.state == optuna.trial.TrialState.PRUNED]
    complete = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert pruned, f"the median pruner pruned nothing: {outputs}"
    for trial in pruned:  # a pruned trial stopped before its last epoch
        history = (tmp_path / "sweep" / f"trial-{trial.number:04d}" / "history.csv")
        assert len(history.read_text().splitlines()) - 1 < 2
    assert all(len(t.intermediate_values) == 2 for t in complete)


def test_best_toml_reproduces_the_best_trial_and_show_prints_it(synthetic_dir, tmp_path,
                                                                monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir, trials=3, pruner="none")
    result = CliRunner().invoke(make_cli(), ["sweep", str(spec)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    folder = tmp_path / "sweeps" / "spec"
    study = load(f"sqlite:///{folder / 'study.db'}", "spec")
    assert "best trials:" in result.output and (folder / "best.toml").exists()
    assert (folder / "optimization_history.png").read_bytes()[:4] == b"\x89PNG"
    rerun = CliRunner().invoke(make_cli(), ["run", "--config", str(folder / "best.toml"),
                                            "--out", str(tmp_path / "again")],
                               catch_exceptions=False)
    assert rerun.exit_code == 0, rerun.output
    again = load_checkpoint(tmp_path / "again" / "final.npz")[0]["history"]
    assert again[-1]["val_acc"] == study.best_value  # exactly: same seed, same threads
    shown = CliRunner().invoke(make_cli(), ["sweep", "--show", f"sqlite:///{folder / 'study.db'}",
                                            "--study", "spec", "--out", str(tmp_path / "shown")])
    assert shown.exit_code == 0, shown.output
    assert (tmp_path / "shown" / "best.toml").read_text() == (folder / "best.toml").read_text()


def test_a_failing_trial_is_recorded_with_its_reason_and_the_sweep_goes_on(synthetic_dir,
                                                                           tmp_path):
    # lr 1e9 makes the loss NaN at once: each trial fails, and the next one still runs
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir, trials=2, epochs=1, pruner="none",
                      search='lr = { choices = [1e9] }\n',
                      extra='optimizer = "sgd"\nactivation = "relu"')
    result = CliRunner().invoke(make_cli(), ["sweep", str(spec), "--out", str(tmp_path / "s")],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    trials = load(f"sqlite:///{tmp_path / 's' / 'study.db'}", "spec").get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.FAIL] * 2
    assert all("nan-guard" in t.user_attrs["fail_reason"] for t in trials)
    assert "trial 1 failed" in result.output


def test_ctrl_c_leaves_no_running_trial_and_resume_finishes_the_rest(synthetic_dir, tmp_path):
    # trials long enough (40 epochs, about a second or more) for the Ctrl+C to land in one
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir, trials=3, epochs=40, pruner="none")
    storage = f"sqlite:///{tmp_path / 'sweep' / 'study.db'}"
    process = sweep_process(spec, "--out", tmp_path / "sweep", cwd=tmp_path)
    second = tmp_path / "sweep" / "trial-0001" / "last.npz"  # trial 1 has trained an epoch
    deadline = time.monotonic() + 300
    while not second.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    lines: list[str] = []
    rest = process.communicate(timeout=300)[0]
    assert process.returncode == 130, "".join(lines) + rest
    assert "--resume" in rest
    assert "sweep: Ctrl+C: stopping the trial under way" in rest  # said, once out of the handler
    study = load(storage, "spec")
    assert optuna.trial.TrialState.RUNNING not in [t.state for t in study.get_trials()]
    cut = [t for t in study.get_trials() if t.user_attrs.get("fail_reason") == "interrupted"]
    assert len(cut) == 1
    assert (tmp_path / "sweep" / f"trial-{cut[0].number:04d}" / "emergency.npz").exists() or \
        not (tmp_path / "sweep" / f"trial-{cut[0].number:04d}" / "last.npz").exists()
    resumed = sweep_process(spec, "--out", tmp_path / "sweep", "--resume", cwd=tmp_path)
    output = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, output
    trials = load(storage, "spec").get_trials()
    finished = [t for t in trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 3  # the 3 trials of the spec, the cut one run again
    assert len({json.dumps(t.params) for t in finished}) == 3  # no draw repeated on resume
    assert cut[0].params in [t.params for t in finished]


@pytest.mark.parametrize("search,expected", [
    ("lrr = { low = 0.001, high = 0.1 }", "lrr"),
    ("lr = { low = 0.1, high = 0.01 }", "low (0.1) must be below high (0.01)"),
    ("hidden = { choices = [] }", "choices must be a non-empty list"),
    ("hidden = { choices = [\"16\", \"0\"] }", "hidden = '0'"),
    ("early-stopping.patience = { low = 1, high = 3 }", "plugin 'early-stopping', which is off"),
    ("lr = { low = 0.001, high = 0.1 }\n[sweep.x]", "[sweep] has an unknown key 'x'"),
    ("lr = { low = 0.001, high = 0.1 }", "monitor 'val_f1' is not logged by this run"),
])
def test_a_bad_spec_is_one_line_before_any_trial(synthetic_dir, tmp_path, search, expected):
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir, search=search + "\n")
    if "monitor" in expected:
        spec.write_text(spec.read_text().replace('monitor = "val_acc"', 'monitor = "val_f1"'))
    result = CliRunner().invoke(make_cli(), ["sweep", str(spec), "--out", str(tmp_path / "s")])
    assert result.exit_code == 2, result.output
    assert expected in result.output and "spec.toml" in result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "s").exists()  # nothing started


def test_plugin_options_are_searched_and_flags_override_the_spec(synthetic_dir, tmp_path):
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir, trials=2, epochs=3, pruner="none",
                      search='early-stopping.patience = { choices = [1, 2] }\n'
                             'lr-schedule = { choices = ["cosine", "step"] }\n',
                      extra='plugin = ["early-stopping"]')
    result = CliRunner().invoke(make_cli(), ["sweep", str(spec), "--out", str(tmp_path / "s"),
                                             "--epochs", "2"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    trials = load(f"sqlite:///{tmp_path / 's' / 'study.db'}", "spec").get_trials()
    for trial in trials:
        config = trial.user_attrs["config"]
        assert config["epochs"] == 2  # the flag beat the spec's 3
        assert config["early-stopping"]["patience"] == trial.params["early-stopping.patience"]
        assert config["lr-schedule"]["schedule"] == trial.params["lr-schedule"]
        assert "lr-schedule" in config["plugin"]


def test_workers_split_the_cores_and_the_trials(synthetic_dir, tmp_path):
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir, trials=2, epochs=1, pruner="none",
                      extra="").read_text().replace("threads = 1\n", "")
    (tmp_path / "spec.toml").write_text(spec)
    process = sweep_process(tmp_path / "spec.toml", "--workers", "2", "--out", tmp_path / "s",
                            cwd=tmp_path)
    output = process.communicate(timeout=600)[0]
    assert process.returncode == 0, output
    trials = load(f"sqlite:///{tmp_path / 's' / 'study.db'}", "spec").get_trials()
    assert len(trials) == 4 and all(t.state.name == "COMPLETE" for t in trials)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert {t.user_attrs["config"]["threads"] for t in trials} == {max(1, cores // 2)}


def test_without_optuna_the_sweep_is_one_line_naming_the_extra(synthetic_dir, tmp_path,
                                                              monkeypatch):
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir)
    monkeypatch.setitem(sys.modules, "optuna", None)  # import optuna now raises ImportError
    result = CliRunner().invoke(make_cli(), ["sweep", str(spec)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "pip install 'trainkit[sweep]'" in result.output


def test_running_a_sweep_again_is_refused_unless_it_resumes_or_names_its_storage(
        synthetic_dir, tmp_path):
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir, trials=2, epochs=1, pruner="none")
    out = ["--out", str(tmp_path / "s")]
    assert CliRunner().invoke(make_cli(), ["sweep", str(spec), *out]).exit_code == 0
    again = CliRunner().invoke(make_cli(), ["sweep", str(spec), *out])
    assert again.exit_code == 2
    assert (f"study 'spec' in {tmp_path / 's'} has 2 trial(s) already: continue it with --resume "
            f"(it runs the trials still missing), or start another with --study NAME or --out "
            f"DIR") in " ".join(again.output.split())
    storage = f"sqlite:///{tmp_path / 's' / 'study.db'}"
    assert len(load(storage, "spec").get_trials()) == 2  # nothing added
    resumed = CliRunner().invoke(make_cli(), ["sweep", str(spec), *out, "--resume"])
    assert resumed.exit_code == 0 and "0 trial(s) to run" in resumed.output
    joined = CliRunner().invoke(make_cli(), ["sweep", str(spec), *out, "--storage", storage])
    assert joined.exit_code == 0, joined.output
    assert "sweep: joining study spec (2 trial(s) there already); this process adds 2" \
        in joined.output
    assert len(load(storage, "spec").get_trials()) == 4


def test_a_trial_that_trained_every_epoch_is_complete_never_pruned(synthetic_dir, tmp_path):
    # the median pruner judges from the third trial on; with one epoch, that epoch is the last
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir, trials=5, epochs=1)
    result = CliRunner().invoke(make_cli(), ["sweep", str(spec), "--out", str(tmp_path / "s")])
    assert result.exit_code == 0, result.output
    trials = load(f"sqlite:///{tmp_path / 's' / 'study.db'}", "spec").get_trials()
    assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE] * 5
    assert "pruned" not in result.output


def test_a_plugins_warning_is_shown_once_per_sweep_not_once_per_trial(synthetic_dir, tmp_path):
    site = tmp_path / "site"
    dist = site / "broken_extra-1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-extra\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[trainkit]\nbroken-extra = broken_extra_mod\n")
    (site / "broken_extra_mod.py").write_text("raise ImportError('needs frobnicate')\n")
    spec = write_spec(tmp_path / "spec.toml", synthetic_dir, trials=2, epochs=1, pruner="none")
    done = subprocess.run([sys.executable, "-m", "trainkit", "sweep", str(spec), "--out",
                           str(tmp_path / "s")], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(site)})
    assert done.returncode == 0, done.stderr
    output = done.stdout + done.stderr
    assert output.count("needs frobnicate") == 1, output
    assert "PluginWarning" not in output
