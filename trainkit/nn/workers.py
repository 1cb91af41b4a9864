"""The threads a model's work is split over: a pool of workers and ``on_threads``.

numpy runs a copy, a ufunc or (with BLAS on one thread) a GEMM on one core, but it releases the
GIL while it does, so Python threads really do work on parts of a batch at once. Which work is
cut, and how, is the schedule's business (``trainkit.nn.schedule``); this module only runs the
parts it is given, this thread taking the first.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable

_workers: list[_Worker] = []
_dispatch = threading.Lock()  # one split at a time: a second caller waits for the workers
_in_part = threading.local()  # set on a thread running a part: a split inside it runs inline


class _Worker:
    """A thread that runs one task at a time, handed over through two locks.

    A split is a few hundred microseconds of work, and a step makes about twenty of them, so the
    hand-over matters: two locks take about 20 us there and back, a ``ThreadPoolExecutor``'s
    futures about 55 us."""

    def __init__(self, index: int) -> None:
        self._go, self._done = threading.Lock(), threading.Lock()
        self._go.acquire()
        self._done.acquire()
        self._task: Callable[[], object] | None = None
        self._error: BaseException | None = None
        threading.Thread(target=self._loop, name=f"trainkit-batch-{index}", daemon=True).start()

    def _loop(self) -> None:
        _in_part.active = True
        while True:
            self._go.acquire()
            try:
                assert self._task is not None
                self._task()
            except BaseException as e:  # handed to the caller, which raises it
                self._error = e
            finally:
                self._task = None
                self._done.release()

    def start(self, task: Callable[[], object]) -> None:
        self._task = task
        self._go.release()

    def wait(self) -> None:
        """Return once the task is over (even if a Ctrl+C lands meanwhile: the next task must
        not start before it ends), raising what it raised."""
        interrupted: BaseException | None = None
        while True:
            try:
                self._done.acquire()
                break
            except BaseException as e:  # KeyboardInterrupt while waiting: raised afterwards
                interrupted = interrupted or e
        error, self._error = self._error, None
        if interrupted is not None or error is not None:
            raise interrupted or error  # type: ignore[misc]


def start_workers(count: int) -> None:
    while len(_workers) < count:
        _workers.append(_Worker(len(_workers) + 1))


def _forget_workers() -> None:  # in a forked child, whose copies of the threads do not run
    global _dispatch
    _workers.clear()
    _dispatch = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def on_threads(bounds: list[int], work: Callable[[int, int, int], object]) -> None:
    """Call ``work(part index, start, stop)`` for every part, in parallel, this thread taking the
    first part."""
    if len(bounds) <= 2 or getattr(_in_part, "active", False):
        for i in range(len(bounds) - 1):  # one part, or a split inside a part: on this thread
            work(i, bounds[i], bounds[i + 1])
        return
    with _dispatch:
        start_workers(len(bounds) - 2)
        helpers = _workers[:len(bounds) - 2]
        _in_part.active = True
        for i, worker in enumerate(helpers, 1):
            worker.start(functools.partial(work, i, bounds[i], bounds[i + 1]))
        error: BaseException | None = None
        try:
            work(0, bounds[0], bounds[1])
        except BaseException as e:
            error = e
        for worker in helpers:  # every part ends before this returns, even when one failed
            try:
                worker.wait()
            except BaseException as e:
                error = error or e
        _in_part.active = False
        if error is not None:
            raise error
