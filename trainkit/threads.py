"""How many BLAS threads to use: measured, not assumed.

On a small machine the right count depends on what else is running. With idle cores, all of them
are fastest; once another CPU-bound process competes (or the hypervisor steals time), OpenBLAS
threads spin waiting for each other and run several times slower than one thread. So when a run
starts, trainkit times a few real training steps (forward and backward on a zero batch of the
run's shape, which touches no weight, no optimizer state and no random generator) with one thread
and with every core, alternating, and keeps every core unless one thread is more than 10% faster.
That takes a few tens of milliseconds.
``--threads N`` (or ``TRAINKIT_THREADS``) overrides the pick.

The count is fixed for the whole run and recorded in its checkpoints: BLAS results differ in the
last bits between thread counts, so changing it mid-run (or on resume) would break bit-exact
reproducibility. Pin it with ``--threads`` to compare runs bit for bit across machines or loads.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import time
from collections.abc import Callable, Iterator, Sequence


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def calibrate(step: Callable[[], object], candidates: Sequence[int] | None = None, *,
              rounds: int = 3, steps: int = 6, tolerance: float = 0.10) -> int:
    """The thread count among ``candidates`` (default: 1 and every core) that runs ``step``
    fastest, timed in alternating rounds so that a change in load hits every candidate alike.

    The largest count is kept unless a smaller one is more than ``tolerance`` faster: the pick is
    then always within ``tolerance`` of the best, and stable from run to run on an idle machine
    (where all cores win clearly), which keeps runs with the same seed bit-identical.
    """
    from threadpoolctl import threadpool_limits

    candidates = sorted(set(candidates or (1, available_cores())))
    if len(candidates) == 1:
        return candidates[0]
    timings: dict[int, list[float]] = {c: [] for c in candidates}
    for _ in range(rounds):
        for count in candidates:
            with threadpool_limits(limits=count, user_api="blas"):
                step()  # wake the thread pool up
                start = time.perf_counter()
                for _ in range(steps):
                    step()
                timings[count].append(time.perf_counter() - start)
    median = {c: statistics.median(timings[c]) for c in candidates}
    fastest = min(candidates, key=lambda c: (median[c], -c))
    largest = candidates[-1]
    return largest if median[largest] <= median[fastest] * (1 + tolerance) else fastest


def training_step_probe(model, loss, batch_size: int, input_size: int) -> Callable[[], object]:
    """A forward and backward pass on a zero batch: the shape of the real work, no side effects
    on anything that training keeps (weights, optimizer state, random generators)."""
    import numpy as np

    x = np.zeros((batch_size, input_size), dtype=np.float32)
    y = np.zeros(batch_size, dtype=np.intp)

    def step():
        outputs = model.forward(x)
        loss.forward(outputs, y)
        return model.backward(loss.backward())

    return step


@contextlib.contextmanager
def blas_threads(count: int) -> Iterator[int]:
    """Limit BLAS to ``count`` threads for the duration of the block."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=count, user_api="blas"):
        yield count
