"""The IDX reader: round trips, and one clear DataError naming the file for every defect."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from trainkit.data import read_idx, write_idx
from trainkit.errors import DataError


@pytest.mark.parametrize("suffix", [".gz", ""])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64])
def test_round_trip(tmp_path, suffix, dtype):
    array = (np.arange(24).reshape(2, 3, 4) - 5).astype(dtype)
    if dtype == np.uint8:
        array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    path = write_idx(tmp_path / f"a.idx{suffix}", array)
    out = read_idx(path)
    np.testing.assert_array_equal(out, array)
    assert out.dtype == array.dtype and out.dtype.isnative


def header(code=0x08, dims=(2, 2)) -> bytes:
    return bytes([0, 0, code, len(dims)]) + struct.pack(f">{len(dims)}I", *dims)


CASES = {
    "truncated data": (header(dims=(4, 4)) + b"\x00" * 10, "truncated|declares"),
    "wrong magic": (b"\x01\x02\x08\x02" + b"\x00" * 12, "magic"),
    "unknown type": (header(code=0x07) + b"\x00" * 4, "type code"),
    "zero dims": (bytes([0, 0, 8, 0]), "dimensions"),
    "short header": (b"\x00\x00", "truncated"),
    "truncated dims": (bytes([0, 0, 8, 3]) + b"\x00\x00\x00\x01", "header"),
    "trailing bytes": (header(dims=(1, 2)) + b"\x00" * 5, "declares|trailing"),
    "empty": (b"", "truncated"),
}


@pytest.mark.parametrize("compress", [False, True])
@pytest.mark.parametrize("name", list(CASES))
def test_defects_raise_a_data_error_naming_the_file(tmp_path, name, compress):
    payload, pattern = CASES[name]
    path = tmp_path / ("bad.idx.gz" if compress else "bad.idx")
    path.write_bytes(gzip.compress(payload) if compress else payload)
    with pytest.raises(DataError, match=pattern) as info:
        read_idx(path)
    assert str(path) in str(info.value)
    assert "\n" not in str(info.value)


def test_not_gzip_under_a_gz_name(tmp_path):
    path = tmp_path / "plain.gz"
    path.write_bytes(header() + b"\x00" * 4)
    with pytest.raises(DataError, match="gzip") as info:
        read_idx(path)
    assert str(path) in str(info.value)


def test_huge_declared_dims_are_refused_before_allocating(tmp_path):
    path = tmp_path / "bomb.gz"
    path.write_bytes(gzip.compress(header(dims=(60000, 60000, 60000))))
    with pytest.raises(DataError, match="more than"):
        read_idx(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_idx(tmp_path / "nope.gz")
