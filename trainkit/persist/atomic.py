"""Write files so that a crash leaves the old version or the new one, never a torn file."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[BinaryIO]:
    """A binary file that replaces ``path`` only if the block ends without an error: written to a
    temporary file beside ``path``, fsynced, then moved over it. On an error the temporary file
    is removed and ``path`` is left as it was."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~current_umask())  # mkstemp makes 0600; give the usual file mode
        replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


#: How long a replace waits on Windows for another process to close the file it replaces.
REPLACE_WAITS = (0.05, 0.1, 0.2, 0.4, 0.8, 1.6)


def replace(source: str | Path, target: Path) -> None:
    """``os.replace``, which Windows refuses (PermissionError) while another process has
    ``target`` open, as a reader of ``last.npz`` may for a moment: there it is tried again for a
    few seconds before the error goes up. Elsewhere a replace never waits for readers."""
    import sys
    import time

    for wait in (*REPLACE_WAITS, None):
        try:
            os.replace(source, target)
            return
        except PermissionError:
            if sys.platform != "win32" or wait is None:
                raise
            time.sleep(wait)


def atomic_write(path: Path, data: bytes | str) -> None:
    """Write ``data`` to ``path`` atomically (see ``atomic_file``)."""
    with atomic_file(path) as f:
        f.write(data.encode() if isinstance(data, str) else data)


def current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort where folders cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
