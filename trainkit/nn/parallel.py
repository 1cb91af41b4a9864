"""Layer work split over the batch, on the run's threads.

numpy runs a copy, a ufunc or (with BLAS on one thread) a GEMM on one core, but it releases the
GIL while it does, so Python threads really do work on parts of a batch at once. Max-pooling and
batch norm's element-wise passes split their work this way. A convolution splits all of it,
im2col and its GEMMs included: a model with one (``Module.splits_batch``) runs BLAS on a single
thread and these threads do the work, because a multi-threaded BLAS leaves a worker spinning on
the second core after every GEMM, right where the element-wise work would run.

Every sample's values, and the gradient of the input, are computed the same way whatever the
split. A convolution's weight gradient is the sum of its parts' products, added in a fixed order:
like BLAS's own threads, the thread count changes its last bits, and the same count gives the
same bits. Sums over the batch elsewhere (biases, batch norm's statistics) are never split.
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


def batch_parts(n: int) -> list[int]:
    """The bounds ``[0, ..., n]`` of the contiguous parts ``range(n)`` is split into."""
    parts = max(1, min(_threads, n // MIN_SAMPLES))
    return [n * i // parts for i in range(parts + 1)]


def run_parts(bounds: list[int], work: Callable[[int, int, int], object]) -> None:
    """Call ``work(part index, start, stop)`` for every part, in parallel, this thread taking the
    first part."""
    futures = [_pool.submit(work, i, bounds[i], bounds[i + 1]) for i in range(1, len(bounds) - 1)]
    work(0, bounds[0], bounds[1])
    for future in futures:
        future.result()


def over_batch(n: int, work: Callable[[int, int], object]) -> None:
    """Call ``work(start, stop)`` on contiguous parts of ``range(n)`` that together cover it,
    in parallel on up to ``threads()`` threads (this one included)."""
    run_parts(batch_parts(n), lambda _, lo, hi: work(lo, hi))
