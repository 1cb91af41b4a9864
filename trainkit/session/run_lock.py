"""One run per run folder: a lock held on ``.trainkit.lock`` for as long as the run lives.

The lock is filelock's: ``flock`` on Linux and macOS, ``msvcrt.locking`` on Windows. Both are
dropped by the operating system when their process dies, however it dies, so a lock left behind
by a killed run is taken over without PIDs or timeouts; a lock held by a live process refuses the
second run with a message naming that process.

Who holds the lock is written beside it, in ``.trainkit.owner`` (JSON: pid, host, started),
and removed when the lock is released cleanly: an owner record found by the next run is that of
a run that died. (It is a file of its own because Windows refuses to read a locked region of a
file to any other handle. trainkit 0.1.0 wrote the same record into the lock file itself; a
record found there is read the same way.)
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from trainkit.errors import TrainkitError

LOCK_NAME = ".trainkit.lock"
OWNER_NAME = ".trainkit.owner"


class RunFolderLocked(TrainkitError):
    """Another live process is training in this run folder."""


class RunLock:
    """``with RunLock(folder):`` holds the folder's lock; ``stale_owner`` names a dead previous
    holder whose lock was taken over, if any."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.owner_path = Path(folder) / OWNER_NAME
        self.stale_owner: dict | None = None
        self._lock: Any = None  # filelock's lock while held

    def acquire(self) -> None:
        import filelock

        legacy = _read_owner(self.path)  # trainkit 0.1.0's record, inside the lock file
        lock = filelock.FileLock(self.path, timeout=0)
        try:
            lock.acquire()
        except filelock.Timeout:
            owner = _read_owner(self.owner_path) or legacy
            who = (f"process {owner.get('pid')} on {owner.get('host')}, started "
                   f"{owner.get('started')}" if owner else "another process")
            raise RunFolderLocked(
                f"{self.path.parent}: run folder is in use by {who}; wait for it to finish or "
                f"choose another --out") from None
        self.stale_owner = _read_owner(self.owner_path) or legacy
        import socket  # here, not at the top: trainkit --help never needs it

        record = {"pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.owner_path.write_text(json.dumps(record), encoding="utf-8")
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            self.owner_path.unlink(missing_ok=True)  # no record: "released cleanly"
            self._lock.release()
            self._lock = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read_owner(path: Path) -> dict | None:
    try:
        data = path.read_bytes()[:4096]
        owner = json.loads(data) if data.strip() else None
    except (OSError, ValueError):
        return None
    return owner if isinstance(owner, dict) else None
