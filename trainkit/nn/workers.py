"""The threads a model's work is split over: a pool of workers and ``on_threads``.

numpy runs a copy, a ufunc or (with BLAS on one thread) a GEMM on one core, but it releases the
GIL while it does, so Python threads really do work on parts of a batch at once. Which work is
cut, and how, is the schedule's business (``trainkit.nn.schedule``); this module only runs the
parts it is given, this thread taking the first.

A Ctrl+C is held back while parts run (``ctrl_c_held``): Python raises ``KeyboardInterrupt`` in
the main thread at whatever line it has reached, and one raised between a worker's hand-over and
its bookkeeping left the caller waiting for a task that had already ended (``trainkit lr-find``
hung on Ctrl+C), or a worker still writing into the batch after the caller had given up on it.
The press is handed to the handler in place once every part has ended.
"""

from __future__ import annotations

import functools
import os
import threading
from collections.abc import Callable
from typing import Any

_workers: list[_Worker] = []
_dispatch = threading.Lock()  # one split at a time: a second caller waits for the workers
_in_part = threading.local()  # set on a thread running a part: a split inside it runs inline
_MAIN_THREAD = threading.main_thread().ident  # the one thread Python runs signal handlers in


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
        """Return once the task is over, raising what it raised (a Ctrl+C cannot land here:
        ``on_threads`` holds it back)."""
        self._done.acquire()
        error, self._error = self._error, None
        if error is not None:
            raise error


def start_workers(count: int) -> None:
    while len(_workers) < count:
        _workers.append(_Worker(len(_workers) + 1))


def _forget_workers() -> None:  # in a forked child, whose copies of the threads do not run
    global _dispatch, _MAIN_THREAD
    _workers.clear()
    _dispatch = threading.Lock()
    _MAIN_THREAD = threading.get_ident()  # the thread that forked is the child's main thread


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


try:  # signal's own functions without its enum conversions: 1 us a swap and back, against 17
    import _signal as signals
except ImportError:  # pragma: no cover - an interpreter without CPython's module
    import signal as signals  # type: ignore[no-redef]


class ctrl_c_held:
    """``with ctrl_c_held():`` SIGINT's Python handler only records a press inside the block
    (in the main thread, where Python runs it), and the handler that was in place is called
    for each press when the block ends: Python's own raises ``KeyboardInterrupt`` there, a
    training run's records a stop. (A class: a generator-based context manager costs more,
    and this is entered on every split.)"""

    __slots__ = ("_previous", "_presses")

    def __enter__(self) -> None:
        self._previous: Any = None
        if threading.get_ident() != _MAIN_THREAD:
            return  # a thread Python never interrupts
        previous = signals.getsignal(signals.SIGINT)
        if not callable(previous):  # ignored, the default, or not Python's: nothing is raised
            return
        self._presses: list[tuple[int, Any]] = []
        signals.signal(signals.SIGINT, self._record)  # no KeyboardInterrupt from here on
        self._previous = previous

    def _record(self, signum: int, frame: Any) -> None:
        self._presses.append((signum, frame))

    def __exit__(self, *exception: object) -> None:
        previous = self._previous
        if previous is None:
            return
        signals.signal(signals.SIGINT, previous)  # a KeyboardInterrupt may come from here on
        for signum, frame in self._presses:
            previous(signum, frame)


def on_threads(bounds: list[int], work: Callable[[int, int, int], object]) -> None:
    """Call ``work(part index, start, stop)`` for every part, in parallel, this thread taking the
    first part. Every part has ended when it returns or raises."""
    if len(bounds) <= 2 or getattr(_in_part, "active", False):
        for i in range(len(bounds) - 1):  # one part, or a split inside a part: on this thread
            work(i, bounds[i], bounds[i + 1])
        return
    with ctrl_c_held(), _dispatch:
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
