"""Layer work split over the batch, on the run's threads.

numpy runs a copy, a ufunc or (with BLAS on one thread) a GEMM on one core, but it releases the
GIL while it does, so Python threads really do work on parts of a batch at once. A model with a
convolution (``Module.splits_batch``) splits all its work this way, GEMMs included, and runs
BLAS on a single thread (``split_batch``), because a multi-threaded BLAS leaves a worker
spinning on the second core after every GEMM, right where the element-wise work would run.

Layers hand their work over as steps (``Module.forward_steps``): ``Parts`` of work on the
batch, and ``RUN`` where they need its results. A model runs its layers' steps through one
``Schedule``, which hands consecutive layers' parts to the threads together: each thread takes
its samples through a convolution, batch norm's sums, pooling and ReLU in one go, and a step
makes 9 hand-overs (the optimizer's included) instead of about 25, each of which costs 30
to 150 us before the worker runs.

The split changes the last bits and nothing else. A sum over the batch (a weight or bias
gradient, batch norm's statistics) is the sum of its parts' sums, added in a fixed order; and
OpenBLAS computes a row of a product differently depending on how many rows it is given. So,
as with BLAS's own threads, the thread count changes the last bits, and the same count gives
the same bits, on an idle or a busy machine. On one thread every sum is whole and the work is
done in the order of layer-by-layer calls: the arithmetic of an unsplit step.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Generator

import numpy as np

_threads = 1
_split = False  # whether a model splits all its work over the batch (BLAS then runs on one thread)
_workers: list[_Worker] = []
_dispatch = threading.Lock()  # one split at a time: a second caller waits for the workers
_splitting = threading.local()  # set on a thread running a part: a split inside it runs inline

#: Below this many samples a split costs more than it saves.
MIN_SAMPLES = 8
#: Nor is it worth it for element-wise work on fewer values than this (a dense layer's batch
#: norm over 64 x 128 values takes a few microseconds, a hand-over 20 to 70).
MIN_VALUES = 65_536
#: Nor for a product of fewer multiply-adds than this (a classifier's 64 x 128 x 10).
MIN_MULTIPLY_ADDS = 1_000_000


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
        _splitting.active = True
        while True:
            self._go.acquire()
            try:
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
            raise interrupted or error


def set_threads(count: int) -> int:
    """Use ``count`` threads from now on; returns the previous count."""
    global _threads
    previous, _threads = _threads, max(1, int(count))
    _start_workers(_threads - 1)
    return previous


def _start_workers(count: int) -> None:
    while len(_workers) < count:
        _workers.append(_Worker(len(_workers) + 1))


def _forget_workers() -> None:  # in a forked child, whose copies of the threads do not run
    global _dispatch
    _workers.clear()
    _dispatch = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_workers)


def threads() -> int:
    return _threads


def split_batch(on: bool) -> bool:
    """Whether the model splits its work over the batch on these threads (a model with a
    convolution, whose BLAS runs on one thread); returns the previous setting. Convolutions
    always split; dense layers' GEMMs and element-wise passes only then, because otherwise BLAS's
    own threads split the GEMMs, and they leave a worker spinning where the element-wise work
    would run."""
    global _split
    previous, _split = _split, bool(on)
    return previous


def splitting() -> bool:
    """Whether the model's work is split over several threads (``split_batch`` and
    ``set_threads``)."""
    return _split and _threads > 1


def gemms_split(multiply_adds: int) -> bool:
    """Whether a layer's product of ``multiply_adds`` is to be split over the batch."""
    return _split and _threads > 1 and multiply_adds >= MIN_MULTIPLY_ADDS


def batch_parts(n: int) -> list[int]:
    """The bounds ``[0, ..., n]`` of the contiguous parts ``range(n)`` is split into."""
    parts = max(1, min(_threads, n // MIN_SAMPLES))
    return [n * i // parts for i in range(parts + 1)]


def run_parts(bounds: list[int], work: Callable[[int, int, int], object]) -> None:
    """Call ``work(part index, start, stop)`` for every part, in parallel, this thread taking the
    first part."""
    if len(bounds) <= 2 or getattr(_splitting, "active", False):
        for i in range(len(bounds) - 1):  # one part, or a split inside a part: on this thread
            work(i, bounds[i], bounds[i + 1])
        return
    with _dispatch:
        _start_workers(len(bounds) - 2)
        helpers = _workers[:len(bounds) - 2]
        _splitting.active = True
        for i, worker in enumerate(helpers, 1):
            worker.start(lambda i=i: work(i, bounds[i], bounds[i + 1]))
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
        _splitting.active = False
        if error is not None:
            raise error


def value_parts(n: int, values: int) -> list[int]:
    """The parts for element-wise work over ``values`` values: ``batch_parts(n)`` when the model
    splits its work (``split_batch``) and there are ``MIN_VALUES`` of them, else one part."""
    return batch_parts(n) if _split and values >= MIN_VALUES else [0, n]


def over_batch(n: int, work: Callable[[int, int], object]) -> None:
    """Call ``work(start, stop)`` on contiguous parts of ``range(n)`` that together cover it,
    in parallel on up to ``threads()`` threads (this one included)."""
    run_parts(batch_parts(n), lambda _, lo, hi: work(lo, hi))


def add_up(partials: list[np.ndarray]) -> np.ndarray:
    """``partials[0]`` plus every other part's, added in part order (the same sum for the same
    split; one part: itself, untouched)."""
    for partial in partials[1:]:
        partials[0] += partial
    return partials[0]


class Parts:
    """Work on a batch cut into parts: ``work(part, start, stop)`` for every part of ``bounds``
    (from ``batch_parts`` or ``value_parts``), then ``then()`` once every part has run."""

    __slots__ = ("bounds", "work", "then")

    def __init__(self, bounds: list[int], work: Callable[[int, int, int], object],
                 then: Callable[[], object] | None = None) -> None:
        self.bounds, self.work, self.then = bounds, work, then


class _Run:
    def __repr__(self) -> str:
        return "RUN"


#: Yielded by a layer's steps when it needs the results of the parts it has handed over.
RUN = _Run()

#: A layer's pass as steps (``Module.forward_steps``): it yields ``Parts`` and ``RUN`` and
#: returns its output.
Steps = Generator["Parts | _Run", None, object]


class Schedule:
    """Runs the steps of a model's layers, one layer after the other, with as few hand-overs to
    the threads as their work allows.

    A layer's steps yield ``Parts`` without waiting for them, so the next layer's parts can join
    them: consecutive ``Parts`` cut the same way run together, each thread taking its part of
    the batch through several layers in a row (a part only reads and writes its own samples).
    ``RUN`` runs everything handed over so far, for a layer that reads the results (batch norm's
    sums). On one thread the work is done in exactly the order of layer-by-layer calls."""

    def __init__(self) -> None:
        self._pending: list[Parts] = []

    def drive(self, steps: Steps) -> object:
        """Run one layer's steps; returns its output (whose last parts may still be pending)."""
        try:
            step = next(steps)
            while True:
                if step is RUN:
                    self.run()
                else:
                    self._add(step)
                step = next(steps)
        except StopIteration as stop:
            return stop.value

    def _add(self, parts: Parts) -> None:
        if self._pending and self._pending[0].bounds != parts.bounds:
            self.run()
        self._pending.append(parts)

    def run(self) -> None:
        """Run every part handed over so far, then their ``then``."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        works = [parts.work for parts in pending]

        def part(index: int, lo: int, hi: int) -> None:
            for work in works:
                work(index, lo, hi)

        run_parts(pending[0].bounds, part)
        for parts in pending:
            if parts.then is not None:
                parts.then()


def run_steps(steps: Steps) -> object:
    """Run one layer's steps to the end, parts included; returns its output."""
    schedule = Schedule()
    output = schedule.drive(steps)
    schedule.run()
    return output


def contiguous(array: np.ndarray) -> Steps:
    """Steps (for ``yield from``) that return ``array`` C-contiguous, so that reshaping it gives
    a view: a copy has to wait for the parts that write it (``RUN``)."""
    if not array.flags.c_contiguous:
        yield RUN
        array = np.ascontiguousarray(array)
    return array
