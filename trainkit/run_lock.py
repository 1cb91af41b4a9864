"""One run per run folder: a lock file held with ``flock`` for as long as the run lives.

The kernel releases an ``flock`` when its process dies, however it dies, so a lock left behind by a
killed run is recognised as stale and taken over; a lock held by a live process refuses the second
run with a message naming that process.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from pathlib import Path

from trainkit.errors import TrainkitError

LOCK_NAME = ".trainkit.lock"


class RunFolderLocked(TrainkitError):
    """Another live process is training in this run folder."""


class RunLock:
    """``with RunLock(folder):`` holds the folder's lock; ``stale_owner`` names a dead previous
    holder whose lock was taken over, if any."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.stale_owner: dict | None = None
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            who = (f"process {owner.get('pid')} on {owner.get('host')}, started "
                   f"{owner.get('started')}" if owner else "another process")
            raise RunFolderLocked(
                f"{self.path.parent}: run folder is in use by {who}; wait for it to finish or "
                f"choose another --out") from None
        previous = _read_owner(fd)
        if previous:
            self.stale_owner = previous
        import socket  # here, not at the top: trainkit --help never needs it

        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(record).encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.ftruncate(self._fd, 0)  # an empty lock file means "released cleanly"
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_owner(fd: int) -> dict | None:
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return None
