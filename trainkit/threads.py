"""How many BLAS threads to use.

On a small machine the right count depends on what else is running: with idle cores, all of them
are fastest; once another CPU-bound process competes, OpenBLAS threads spin waiting for each other
and run several times slower than one thread. trainkit picks the count itself: it reads how many
processes are runnable right now (``/proc/loadavg``) and uses the cores that are free, at least one.
``--threads N`` (or ``TRAINKIT_THREADS``) overrides the pick.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def runnable_others() -> int:
    """Other runnable processes right now, from the 4th field of /proc/loadavg (minus us)."""
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(running - 1, 0)


def pick_threads() -> int:
    """All cores when the machine is idle; one per core nobody else is using otherwise."""
    cores = available_cores()
    return max(1, min(cores, cores - runnable_others()))


@contextlib.contextmanager
def blas_threads(count: int | None) -> Iterator[int]:
    """Limit BLAS to ``count`` threads (``None``: pick) for the duration of the block."""
    from threadpoolctl import threadpool_limits

    count = pick_threads() if count is None else count
    with threadpool_limits(limits=count, user_api="blas"):
        yield count
