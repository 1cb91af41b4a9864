"""The IDX reader fuzzed with hypothesis: any bytes give an array or trainkit's DataError naming
the file, never another exception, never a hang, never memory beyond what the file justifies."""

from __future__ import annotations

import gzip
import struct
import tracemalloc

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trainkit.data import read_idx
from trainkit.data.idx import IDX_TYPES
from trainkit.errors import DataError

CODES = sorted(IDX_TYPES) + [0x00, 0x07, 0x0A, 0x0F, 0xFF]


@st.composite
def idx_like(draw):
    """Mostly well-formed headers with one thing wrong, plus plain random bytes."""
    kind = draw(st.sampled_from(["random", "header", "header", "header"]))
    if kind == "random":
        return draw(st.binary(max_size=300))
    magic = draw(st.sampled_from([b"\x00\x00", b"\x00\x00", b"\x00\x00", b"\x01\x00", b"\x00\x08"]))
    code = draw(st.sampled_from(CODES))
    dims = draw(st.lists(st.one_of(st.integers(0, 6), st.integers(0, 2**32 - 1)),
                         min_size=0, max_size=9))
    itemsize = IDX_TYPES[code].itemsize if code in IDX_TYPES else 1
    declared = int(np.prod(dims, dtype=object)) * itemsize if dims else 0
    if declared < 2000 and draw(st.booleans()):
        body_len = declared + draw(st.integers(-3, 3))
    else:
        body_len = draw(st.integers(0, 200))
    header = magic + bytes([code, len(dims) % 256]) + struct.pack(f">{len(dims)}I", *dims)
    body = draw(st.binary(min_size=max(body_len, 0), max_size=max(body_len, 0)))
    cut = draw(st.one_of(st.none(), st.integers(0, len(header) + len(body))))
    data = header + body
    return data if cut is None else data[:cut]


def check(path, payload: bytes, size_limit: int) -> None:
    tracemalloc.start()
    try:
        array = read_idx(path)
    except DataError as e:
        assert str(path) in str(e) and "\n" not in str(e)
    else:
        assert isinstance(array, np.ndarray) and array.dtype.isnative
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert peak <= size_limit, f"allocated {peak} bytes reading {len(payload)} bytes"


FUZZ = settings(max_examples=1000, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@FUZZ
@given(payload=idx_like())
def test_plain_files(tmp_path, payload):
    path = tmp_path / "fuzz.idx"
    path.write_bytes(payload)
    check(path, payload, 2 * len(payload) + 64 * 1024)


@FUZZ
@given(payload=idx_like(), compress=st.booleans())
def test_gz_files_compressed_or_not(tmp_path, payload, compress):
    path = tmp_path / "fuzz.idx.gz"
    stored = gzip.compress(payload, mtime=0) if compress else payload
    path.write_bytes(stored)
    check(path, payload, 2 * len(payload) + 256 * 1024)


def test_a_gzip_bomb_header_is_refused_without_allocating(tmp_path):
    path = tmp_path / "bomb.idx.gz"
    path.write_bytes(gzip.compress(b"\x00\x00\x08\x03" + struct.pack(">3I", 10**4, 10**4, 10**4)
                                   + b"\x00" * 100_000))
    check(path, b"", 1 << 20)
