"""The IDX file format (LeCun's MNIST format), read with full validation and written for tests.

Layout: two zero bytes, a type code, the number of dimensions, then each dimension as a big-endian
uint32, then the data in C order, big-endian. Files may be gzip-compressed (``.gz``).

Every malformed file raises ``DataError`` naming the file. Reading never allocates more than the
file can justify: a gzip stream cannot expand more than about 1032 times, so a header that declares
more data than that is refused before anything is allocated.
"""

from __future__ import annotations

import gzip
import math
import struct
import zlib
from pathlib import Path

import numpy as np

from trainkit.errors import DataError

IDX_TYPES: dict[int, np.dtype] = {
    0x08: np.dtype(np.uint8),
    0x09: np.dtype(np.int8),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
MAX_DIMENSIONS = 8
MAX_DEFLATE_RATIO = 1032  # the most deflate can expand: 258 bytes from a 2-bit code, roughly


def read_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (``.gz`` or plain) into a native-endian numpy array."""
    path = Path(path)
    try:
        size_on_disk = path.stat().st_size
        compressed = path.suffix == ".gz"
        with (gzip.open(path, "rb") if compressed else open(path, "rb")) as f:
            return _read(f, path, size_on_disk, compressed)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (gzip.BadGzipFile, zlib.error, EOFError) as e:
        raise DataError(f"{path}: not a valid gzip file ({e})") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None


def _read(f, path: Path, size_on_disk: int, compressed: bool) -> np.ndarray:
    head = f.read(4)
    if len(head) < 4:
        raise DataError(f"{path}: truncated: {len(head)} bytes, shorter than an IDX header")
    if head[0] != 0 or head[1] != 0:
        raise DataError(
            f"{path}: bad magic number 0x{head.hex()}: an IDX file starts with two zero bytes"
        )
    code, ndim = head[2], head[3]
    if code not in IDX_TYPES:
        known = ", ".join(f"0x{c:02X}" for c in IDX_TYPES)
        raise DataError(f"{path}: unknown IDX type code 0x{code:02X} (known: {known})")
    if not 1 <= ndim <= MAX_DIMENSIONS:
        raise DataError(f"{path}: {ndim} dimensions declared; expected 1 to {MAX_DIMENSIONS}")
    raw_dims = f.read(4 * ndim)
    if len(raw_dims) < 4 * ndim:
        raise DataError(f"{path}: truncated inside the header ({ndim} dimensions declared)")
    dims = struct.unpack(f">{ndim}I", raw_dims)
    dtype = IDX_TYPES[code]
    nbytes = math.prod(dims) * dtype.itemsize
    header_size = 4 + 4 * ndim
    if compressed:
        limit = MAX_DEFLATE_RATIO * size_on_disk + 4096
        if nbytes > limit:
            raise DataError(
                f"{path}: header declares {nbytes:,} data bytes for shape {dims}, more than a "
                f"{size_on_disk:,}-byte gzip file can hold"
            )
    elif nbytes != size_on_disk - header_size:
        raise DataError(
            f"{path}: header declares shape {dims} ({nbytes:,} data bytes) but the file holds "
            f"{size_on_disk - header_size:,} bytes after the header"
            + ("; truncated?" if nbytes > size_on_disk - header_size else "")
        )
    data = _read_at_most(f, nbytes)
    if len(data) < nbytes:
        raise DataError(
            f"{path}: truncated: header declares shape {dims} ({nbytes:,} data bytes), "
            f"found {len(data):,}"
        )
    if f.read(1):
        raise DataError(f"{path}: trailing bytes after the {nbytes:,} data bytes of shape {dims}")
    try:
        array = np.frombuffer(data, dtype=dtype).reshape(dims)
    except ValueError:
        raise DataError(f"{path}: dimensions {dims} do not make a valid array shape") from None
    return array.astype(dtype.newbyteorder("="), copy=False) if dtype.itemsize > 1 else array


def _read_at_most(f, nbytes: int, first_chunk: int = 1 << 16, max_chunk: int = 1 << 20) -> bytearray:
    """Read up to ``nbytes`` in chunks that start small and double, so memory grows with the data
    really there, never with what a header merely declares (a gzip reader allocates the whole
    size asked for, even when far less data follows)."""
    data = bytearray()
    chunk = first_chunk
    while len(data) < nbytes:
        piece = f.read(min(chunk, nbytes - len(data)))
        if not piece:
            break
        data += piece
        chunk = min(chunk * 2, max_chunk)
    return data


def write_idx(path: str | Path, array: np.ndarray) -> Path:
    """Write ``array`` as an IDX file (gzip-compressed when ``path`` ends in ``.gz``)."""
    path = Path(path)
    array = np.asarray(array)
    for code, dtype in IDX_TYPES.items():  # noqa: B007 (code is used after the loop)
        if dtype.kind == array.dtype.kind and dtype.itemsize == array.dtype.itemsize:
            break
    else:
        raise ValueError(f"IDX cannot store dtype {array.dtype}")
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=dtype).tobytes()
    if path.suffix == ".gz":
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)
    return path
