"""How many BLAS threads to use.

On a small machine the right count depends on what else is running: with idle cores, all of them
are fastest; once another CPU-bound process competes, OpenBLAS threads spin waiting for each other
and run several times slower than one thread. trainkit picks the count itself when a run starts: it
counts the threads of other processes that are runnable (``/proc/loadavg`` minus our own, over a
few samples) and uses the cores they leave free, at least one. ``--threads N`` (or
``TRAINKIT_THREADS``) overrides the pick.

The count is fixed for the whole run and recorded in its checkpoints: BLAS results differ in the
last bits between thread counts, so changing it mid-run (or on resume) would break bit-exact
reproducibility.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def runnable_others() -> int:
    """Threads of other processes that are runnable right now.

    The 4th field of /proc/loadavg counts every runnable thread on the machine, ours included
    (our BLAS threads may still be spinning after earlier work), so our own runnable threads,
    from /proc/self/task, are taken off.
    """
    try:
        with open("/proc/loadavg") as f:
            running = int(f.read().split()[3].split("/")[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(running - own_runnable_threads(), 0)


def own_runnable_threads() -> int:
    count = 0
    try:
        tasks = os.listdir("/proc/self/task")
    except OSError:
        return 1
    for task in tasks:
        try:
            with open(f"/proc/self/task/{task}/stat") as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        count += state == "R"
    return max(count, 1)


def pick_threads(samples: int = 5, interval: float = 0.01) -> int:
    """All cores when the machine is idle; otherwise the cores nobody else keeps busy (at least 1).

    A CPU-bound neighbour is runnable in every sample; a short-lived command is not, so the
    fewest others seen over a few samples (50 ms) is what counts.
    """
    cores = available_cores()
    others = runnable_others()
    for _ in range(samples - 1):
        if others == 0:
            break
        time.sleep(interval)
        others = min(others, runnable_others())
    return max(1, min(cores, cores - others))


@contextlib.contextmanager
def blas_threads(count: int | None) -> Iterator[int]:
    """Limit BLAS to ``count`` threads (``None``: pick) for the duration of the block."""
    from threadpoolctl import threadpool_limits

    count = pick_threads() if count is None else count
    with threadpool_limits(limits=count, user_api="blas"):
        yield count
