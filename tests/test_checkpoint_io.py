"""Checkpoint files: round trip, and hostile or broken files refused in one line, executing nothing."""

from __future__ import annotations

import io
import json
import pickle
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli
from trainkit.errors import CheckpointError
from trainkit.persist.checkpoint_io import FORMAT_VERSION, array_sha256, load_checkpoint, save_checkpoint

SENTINEL = Path("pwned")


class Payload:
    """Unpickling this creates a file: proof that code ran."""

    def __reduce__(self):
        return (Path.touch, (SENTINEL.resolve(),))


def arrays():
    return {"model/0.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
            "optimizer/m": np.ones(4, np.float32)}


def test_round_trip(tmp_path):
    path = save_checkpoint(tmp_path / "a.npz", arrays(), {"epoch": 3, "note": "hi"})
    manifest, loaded = load_checkpoint(path)
    assert manifest["epoch"] == 3 and manifest["format_version"] == FORMAT_VERSION
    for name, value in arrays().items():
        np.testing.assert_array_equal(loaded[name], value)
        assert loaded[name].dtype == value.dtype
    assert [p.name for p in tmp_path.iterdir()] == ["a.npz"]  # no temporary file left
    with np.load(path, allow_pickle=False) as npz:  # a plain .npz for numpy too
        np.testing.assert_array_equal(npz["optimizer/m"], np.ones(4))


def rewrite(path: Path, members: dict[str, bytes], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def npy(array, allow_pickle=False) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, array, allow_pickle=allow_pickle)
    return buffer.getvalue()


def members_of(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


@pytest.fixture
def good(tmp_path) -> Path:
    return save_checkpoint(tmp_path / "good.npz", arrays(), {"epoch": 1})


def corrupt(good: Path, kind: str) -> Path:
    members = members_of(good)
    manifest = json.loads(members["manifest.json"])
    bad = good.with_name(f"{kind}.npz")
    if kind == "pickled-object":
        members["model/0.weight.npy"] = npy(np.array([Payload()], dtype=object), allow_pickle=True)
    elif kind == "pickled-manifest-dtype":
        manifest["arrays"]["model/0.weight"]["dtype"] = "|O"
        members["model/0.weight.npy"] = npy(np.array([Payload()], dtype=object), allow_pickle=True)
    elif kind == "raw-pickle-member":
        members["model/0.weight.npy"] = pickle.dumps(Payload())
    elif kind == "truncated":
        data = good.read_bytes()
        bad.write_bytes(data[: len(data) // 2])
        return bad
    elif kind == "wrong-sha256":
        members["model/0.weight.npy"] = npy(np.full((2, 3), 7, np.float32))
    elif kind == "wrong-shape":
        members["model/0.weight.npy"] = npy(np.zeros((3, 2), np.float32))
    elif kind == "future-version":
        manifest["format_version"] = FORMAT_VERSION + 1
    elif kind == "path-traversal":
        members["../../evil.npy"] = npy(np.zeros(1, np.float32))
    elif kind == "traversal-in-manifest":
        manifest["arrays"]["../evil"] = {"shape": [1], "dtype": "<f4",
                                         "sha256": array_sha256(np.zeros(1, np.float32))}
        members["../evil.npy"] = npy(np.zeros(1, np.float32))
    elif kind == "bomb":
        members["optimizer/m.npy"] = npy(np.zeros(4, np.float32)) + b"\0" * (50 << 20)
        bad.unlink(missing_ok=True)
        members["manifest.json"] = json.dumps(manifest).encode()
        return rewrite(bad, members, zipfile.ZIP_DEFLATED)
    elif kind == "not-json":
        members["manifest.json"] = b"{nope"
        return rewrite(bad, members)
    elif kind == "missing-array":
        del members["optimizer/m.npy"]
    members["manifest.json"] = json.dumps(manifest).encode()
    return rewrite(bad, members)


KINDS = {
    "pickled-object": "object|refused",
    "pickled-manifest-dtype": "refused",
    "raw-pickle-member": "not a valid .npy|refused",
    "truncated": "truncated",
    "wrong-sha256": "SHA-256",
    "wrong-shape": "manifest says",
    "future-version": "newer than this trainkit",
    "path-traversal": "unexpected member",
    "traversal-in-manifest": "bad array name",
    "bomb": "more than its declared shape",
    "not-json": "not valid JSON",
    "missing-array": "missing",
}


@pytest.mark.parametrize("kind", list(KINDS))
def test_bad_checkpoints_are_refused_and_execute_nothing(good, kind, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = corrupt(good, kind)
    tracemalloc.start()
    try:
        with pytest.raises(CheckpointError) as info:
            load_checkpoint(bad)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 << 20, f"{peak:,} bytes allocated refusing {kind}"  # the bomb holds 50 MB
    message = str(info.value)
    assert str(bad) in message and "\n" not in message
    assert any(part in message for part in KINDS[kind].split("|")), message
    assert not SENTINEL.exists()


@pytest.mark.parametrize("command", ["evaluate", "run"])
@pytest.mark.parametrize("kind", ["pickled-object", "truncated", "wrong-sha256", "future-version"])
def test_the_cli_refuses_bad_checkpoints_with_one_line(good, kind, command, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    bad = corrupt(good, kind)
    args = ["evaluate", str(bad)] if command == "evaluate" else ["run", "--resume", str(bad)]
    result = CliRunner().invoke(make_cli(), args)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().startswith("Error:") and result.output.count("\n") == 1
    assert not SENTINEL.exists()


def test_save_refuses_object_arrays(tmp_path):
    with pytest.raises(CheckpointError, match="not numeric"):
        save_checkpoint(tmp_path / "x.npz", {"a": np.array([object()])}, {})
