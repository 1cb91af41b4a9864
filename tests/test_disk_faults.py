"""Disk faults while checkpointing: the previous checkpoint stays intact and the error is clear;
training stops or goes on with a warning, as the user chose."""

from __future__ import annotations

import errno
import os
import tempfile

import numpy as np
import pytest
from click.testing import CliRunner

import trainkit.persist.checkpoint_io as checkpoint_io
from trainkit.cli import make_cli
from trainkit.persist.checkpoint_io import load_checkpoint


def fail_saves_after(monkeypatch, good_saves: int, error: int):
    """Let ``good_saves`` checkpoint writes through, then fail every write half way."""
    real = np.lib.format.write_array
    calls = {"saves": 0}
    real_save = checkpoint_io.save_checkpoint

    def save(path, arrays, manifest):
        calls["saves"] += 1
        return real_save(path, arrays, manifest)

    def write_array(f, array, *args, **kwargs):
        if calls["saves"] > good_saves:
            f.write(b"\0" * 100)
            raise OSError(error, os.strerror(error))
        return real(f, array, *args, **kwargs)

    monkeypatch.setattr(checkpoint_io, "save_checkpoint", save)
    monkeypatch.setattr(np.lib.format, "write_array", write_array)


def train(data_dir, *extra):
    return CliRunner().invoke(make_cli(), [
        "run", "--dataset", "idx", "--data-dir", str(data_dir), "--epochs", "3", "--out", "run", "--plugin",
        "checkpoint", "--checkpoint-every", "0", "--checkpoint-monitor", "", *extra])


def assert_intact(tmp_path, epoch):
    manifest, _ = load_checkpoint(tmp_path / "run" / "last.npz")
    assert manifest["epoch"] == epoch
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_disk_full_stops_the_run_and_keeps_the_previous_checkpoint(
        synthetic_dir, tmp_path, monkeypatch):
    fail_saves_after(monkeypatch, good_saves=1, error=errno.ENOSPC)
    result = train(synthetic_dir)
    assert result.exit_code == 1
    assert "cannot save checkpoint (No space left on device); the previous checkpoint is intact" \
        in result.output
    assert "Traceback" not in result.output
    assert_intact(tmp_path, epoch=1)


def test_disk_full_with_on_error_warn_goes_on(synthetic_dir, tmp_path, monkeypatch):
    fail_saves_after(monkeypatch, good_saves=1, error=errno.ENOSPC)
    result = train(synthetic_dir, "--checkpoint-on-error", "warn")
    assert result.exit_code == 0, result.output
    # the saves after epochs 2 and 3, and final.npz, each warn
    assert result.output.count(": cannot save checkpoint (No space left") == 3, result.output
    assert "[  3/3]" in result.output
    assert_intact(tmp_path, epoch=1)


def test_a_read_only_folder(synthetic_dir, tmp_path, monkeypatch):
    if os.geteuid() == 0:  # root writes through permission bits: simulate a read-only mount
        real_save = checkpoint_io.save_checkpoint
        state = {"saves": 0}

        def save(path, arrays, manifest):
            state["saves"] += 1
            if state["saves"] == 1:
                return real_save(path, arrays, manifest)
            with monkeypatch.context() as patch:  # only this save meets a read-only folder
                patch.setattr(tempfile, "mkstemp", read_only)
                return real_save(path, arrays, manifest)

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS))

        monkeypatch.setattr(checkpoint_io, "save_checkpoint", save)
        result = train(synthetic_dir)
    else:  # pragma: no cover - exercised when the suite runs as a normal user
        first = train(synthetic_dir, "--epochs", "1")
        assert first.exit_code == 0
        (tmp_path / "run").chmod(0o555)
        try:
            result = train(synthetic_dir, "--resume", "run/last.npz", "--epochs", "3")
        finally:
            (tmp_path / "run").chmod(0o755)
    assert result.exit_code == 1
    assert "cannot save checkpoint" in result.output and "previous checkpoint is intact" in \
        result.output
    assert "Traceback" not in result.output
    assert_intact(tmp_path, epoch=1)


@pytest.mark.parametrize("error", [errno.ENOSPC, errno.EIO])
def test_save_failures_leave_no_temporary_files(tmp_path, monkeypatch, error):
    checkpoint_io.save_checkpoint(tmp_path / "last.npz", {"a": np.ones(3, np.float32)}, {})
    fail_saves_after(monkeypatch, good_saves=0, error=error)
    with pytest.raises(OSError):
        checkpoint_io.save_checkpoint(tmp_path / "last.npz", {"a": np.zeros(3, np.float32)}, {})
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]
    np.testing.assert_array_equal(load_checkpoint(tmp_path / "last.npz")[1]["a"], np.ones(3))
