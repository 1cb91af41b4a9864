"""Session: the run object the CLI uses, driven from Python."""

from __future__ import annotations

import json

import pytest

from trainkit.errors import ConfigError
from trainkit.session import Session


def config(synthetic_dir, out, **extra):
    return {"dataset": "idx", "data_dir": str(synthetic_dir), "out": str(out), "threads": 1,
            "hidden": (16,), **extra}


def test_a_session_trains_writes_run_json_and_refuses_a_folder_holding_a_run(
        synthetic_dir, tmp_path):
    messages = []
    outcome = Session(config(synthetic_dir, tmp_path / "a", epochs=1),
                      report=lambda message, error=False: messages.append(message)).fit()
    assert outcome.status == "completed" and outcome.test_logs["test_acc"] > 0
    assert json.loads((tmp_path / "a" / "run.json").read_text())["status"] == "completed"
    assert any(m.startswith("trainkit: completed after epoch 1") for m in messages)
    with pytest.raises(ConfigError, match="holds an earlier run"):
        Session(config(synthetic_dir, tmp_path / "a", epochs=1)).fit()


def test_a_session_resumes_with_the_epochs_it_is_given(synthetic_dir, tmp_path):
    Session(config(synthetic_dir, tmp_path / "a", epochs=1)).fit()
    session = Session({"epochs": 2}, resume=tmp_path / "a")
    outcome = session.fit()
    assert session.changes == ["epochs 1 -> 2"]
    assert outcome.status == "completed" and len(outcome.history.rows) == 2


def test_config_file_mistakes_name_the_file(synthetic_dir, tmp_path):
    (tmp_path / "run.toml").write_text("[checkpoint]\nevry = 2\n")
    with pytest.raises(ConfigError, match=r"run.toml: \[checkpoint\] has an unknown key 'evry'"):
        Session(config(synthetic_dir, tmp_path / "a"), config_file=tmp_path / "run.toml").resolve()


def test_one_plugin_name_as_a_string_is_that_plugin_not_its_letters(synthetic_dir, tmp_path):
    outcome = Session(config(synthetic_dir, tmp_path / "run", epochs=1, plugin="history",
                             no_plugin="progress")).fit()
    assert outcome.status == "completed"
    assert (tmp_path / "run" / "history.csv").exists()
    assert "history" in outcome.run.plugins and "progress" not in outcome.run.plugins


def test_an_unknown_key_suggests_the_known_one(synthetic_dir, tmp_path):
    with pytest.raises(ConfigError, match=r"^unknown option 'epoch'; did you mean 'epochs'\?$"):
        Session(config(synthetic_dir, tmp_path / "run", epoch=1)).resolve()


def test_an_outcome_prints_as_one_line(synthetic_dir, tmp_path):
    outcome = Session(config(synthetic_dir, tmp_path / "run", epochs=1)).fit()
    text = repr(outcome)
    assert "\n" not in text and len(text) < 300
    assert text.startswith("Outcome(status='completed', epochs=1, test_logs={'test_loss': ")
    assert text.endswith(f"run_dir={str(tmp_path / 'run')!r})")
