"""Checkpoint files: arrays as ``.npy`` members plus a JSON manifest, in one ``.npz`` (zip) file.

Safe to load from a stranger: nothing is unpickled (object arrays are refused before any data is
read), member names must be plain names listed in the manifest, every member's size is checked
against its declared shape before it is read, and every array's SHA-256 is verified.

Saving is atomic: the file is written to a temporary name in the same folder, fsynced, moved over
the target with ``os.replace`` and the folder is fsynced, so a crash at any moment leaves either the
old checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import hashlib
import json
import re
import zipfile
import zlib
from pathlib import Path
from typing import Any

import numpy as np

from trainkit.errors import CheckpointError
from trainkit.persist.atomic import atomic_file

FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MAX_MANIFEST_BYTES = 64 << 20
MAX_ARRAY_BYTES = 8 << 30
_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
_ALLOWED_KINDS = "biuf"  # bool, signed, unsigned, float: nothing that can hold objects


def array_sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def save_checkpoint(path: str | Path, arrays: dict[str, np.ndarray], manifest: dict[str, Any]) -> Path:
    """Write ``arrays`` and ``manifest`` to ``path`` atomically; returns the path."""
    from trainkit import __version__

    path = Path(path)
    entries = {}
    for name, array in arrays.items():
        if not _NAME.match(name) or ".." in name.split("/"):
            raise CheckpointError(f"bad array name {name!r} for a checkpoint")
        array = np.ascontiguousarray(array)
        if array.dtype.kind not in _ALLOWED_KINDS:
            raise CheckpointError(f"array {name!r} has dtype {array.dtype}, which is not numeric")
        entries[name] = {"shape": list(array.shape), "dtype": array.dtype.str,
                         "sha256": array_sha256(array)}
    full_manifest = {"format_version": FORMAT_VERSION, "trainkit_version": __version__,
                     **manifest, "arrays": entries}
    manifest_bytes = json.dumps(full_manifest, indent=1, allow_nan=True).encode()
    with atomic_file(path) as raw, zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(MANIFEST, manifest_bytes)
        for name, array in arrays.items():
            with zf.open(f"{name}.npy", "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
    return path


def load_checkpoint(path: str | Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Read and verify a checkpoint: ``(manifest, arrays)``. Raises ``CheckpointError`` naming
    the file and what is wrong with it."""
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as zf:
            return _load(zf, path)
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"{path}: checkpoint not found") from None
    except IsADirectoryError:
        raise CheckpointError(f"{path}: is a folder, not a checkpoint file") from None
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError) as e:
        raise CheckpointError(f"{path}: not a valid checkpoint (truncated or not an .npz: {e})") from None
    except (OSError, ValueError, KeyError, zlib.error) as e:
        raise CheckpointError(f"{path}: cannot read checkpoint ({e})") from None


def _load(zf: zipfile.ZipFile, path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    infos = {info.filename: info for info in zf.infolist()}
    if MANIFEST not in infos:
        raise CheckpointError(f"{path}: no {MANIFEST}: not a trainkit checkpoint")
    if infos[MANIFEST].file_size > MAX_MANIFEST_BYTES:
        raise CheckpointError(f"{path}: manifest is {infos[MANIFEST].file_size:,} bytes, too large")
    try:
        manifest = json.loads(_read_member(zf, infos[MANIFEST], MAX_MANIFEST_BYTES))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: manifest is not valid JSON ({e})") from None
    if not isinstance(manifest, dict):
        raise CheckpointError(f"{path}: manifest is not a JSON object")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise CheckpointError(f"{path}: manifest has no valid format_version")
    if version > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {version} is newer than this trainkit understands "
            f"({FORMAT_VERSION}); upgrade trainkit to load it"
        )
    declared = manifest.get("arrays")
    if not isinstance(declared, dict):
        raise CheckpointError(f"{path}: manifest lists no arrays")
    expected_members = {f"{name}.npy" for name in declared} | {MANIFEST}
    for member in infos:
        if member not in expected_members:
            raise CheckpointError(f"{path}: unexpected member {member!r} not in the manifest")
    arrays = {}
    for name, meta in declared.items():
        if not isinstance(name, str) or not _NAME.match(name) or ".." in name.split("/"):
            raise CheckpointError(f"{path}: bad array name {name!r} in the manifest")
        info = infos.get(f"{name}.npy")
        if info is None:
            raise CheckpointError(f"{path}: array {name!r} is listed but missing")
        arrays[name] = _read_array(zf, info, name, meta, path)
    return manifest, arrays


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    with zf.open(info) as f:
        data = f.read(limit + 1)
    if len(data) > limit:
        raise CheckpointError(f"member {info.filename!r} is larger than declared")
    return data


def _read_array(zf, info, name: str, meta: Any, path: Path) -> np.ndarray:
    try:
        shape = tuple(int(d) for d in meta["shape"])
        dtype = np.dtype(meta["dtype"])
        digest = str(meta["sha256"])
    except (KeyError, TypeError, ValueError):
        raise CheckpointError(f"{path}: manifest entry of {name!r} is malformed") from None
    if dtype.kind not in _ALLOWED_KINDS or any(d < 0 for d in shape):
        raise CheckpointError(f"{path}: array {name!r} declares dtype {dtype}: refused")
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize if shape else dtype.itemsize
    if nbytes > MAX_ARRAY_BYTES or info.file_size > nbytes + 4096:
        raise CheckpointError(
            f"{path}: member {info.filename!r} holds {info.file_size:,} bytes, more than its "
            f"declared shape {shape} needs"
        )
    with zf.open(info) as f:
        try:
            major, minor = np.lib.format.read_magic(f)
            reader = np.lib.format.read_array_header_1_0 if major == 1 else \
                np.lib.format.read_array_header_2_0
            file_shape, fortran, file_dtype = reader(f)
        except ValueError as e:
            raise CheckpointError(f"{path}: array {name!r} is not a valid .npy ({e})") from None
        if file_dtype.hasobject or file_dtype.kind not in _ALLOWED_KINDS:
            raise CheckpointError(
                f"{path}: array {name!r} holds {file_dtype} data (pickled Python objects?): refused"
            )
        if tuple(file_shape) != shape or file_dtype != dtype or fortran:
            raise CheckpointError(
                f"{path}: array {name!r} is {file_dtype}{tuple(file_shape)}, the manifest says "
                f"{dtype}{shape}"
            )
        data = f.read(nbytes + 1)
    if len(data) != nbytes:
        raise CheckpointError(f"{path}: array {name!r} is truncated")
    array = np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    if array_sha256(array) != digest:
        raise CheckpointError(f"{path}: array {name!r} fails its SHA-256 check (corrupted)")
    return array
