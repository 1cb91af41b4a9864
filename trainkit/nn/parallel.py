"""Element-wise work split over the batch, on the threads BLAS may use.

numpy runs a copy or a ufunc on one core, but it releases the GIL while it does, so two Python
threads really do work on two halves of a batch at once. The convolution's im2col copy and the
2x2 max-pool's passes are split this way when the run uses more than one BLAS thread: at two
threads they are the part of a convnet step that BLAS does not already share.

Every element is computed the same way whatever the split, so results do not depend on it.
Reductions (sums over the batch) are never split here, for the same reason.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

_threads = 1
_pool: ThreadPoolExecutor | None = None

#: Below this many samples a split costs more than it saves.
MIN_SAMPLES = 8


def set_threads(count: int) -> int:
    """Use ``count`` threads from now on; returns the previous count."""
    global _threads, _pool
    previous, _threads = _threads, max(1, int(count))
    if _threads > 1 and (_pool is None or _pool._max_workers < _threads - 1):
        if _pool is not None:
            _pool.shutdown(wait=True)
        _pool = ThreadPoolExecutor(_threads - 1, thread_name_prefix="trainkit-batch")
    return previous


def threads() -> int:
    return _threads


def over_batch(n: int, work: Callable[[int, int], object]) -> None:
    """Call ``work(start, stop)`` on contiguous parts of ``range(n)`` that together cover it,
    in parallel on up to ``threads()`` threads (this one included)."""
    parts = min(_threads, n // MIN_SAMPLES)
    if parts <= 1:
        work(0, n)
        return
    bounds = [n * i // parts for i in range(parts + 1)]
    futures = [_pool.submit(work, bounds[i], bounds[i + 1]) for i in range(1, parts)]
    work(bounds[0], bounds[1])
    for future in futures:
        future.result()
