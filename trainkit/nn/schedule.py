"""How a model's work is split over the run's threads: below the layers, never inside them.

A layer says what its work is, not how it is split: ``over_batch(work, *arrays)`` (a function
of the arrays it reads and writes, which may be cut by sample) and ``wait()`` where it reads
the results. This module holds the ``Plan`` in force (how many threads, whether the model splits
all its work, what is too small to cut) and the ``Schedule`` of a model's pass, which alone read
it; ``trainkit.nn.workers`` runs the parts on the threads. Nothing in a layer or an optimizer
reads the plan: on one thread the layer's function is called once on the whole arrays, at once,
and the layer reads as the maths.

Why threads at all: numpy runs a copy, a ufunc or (with BLAS on one thread) a GEMM on one core,
but it releases the GIL while it does, so Python threads really do work on parts of a batch at
once. A model with a convolution (``Module.splits_batch``) splits all its work this way, GEMMs
included, and runs BLAS on a single thread, because a multi-threaded BLAS leaves a worker
spinning on the second core after every GEMM, right where the element-wise work would run. Each
thread takes its samples through a convolution, batch norm's sums, pooling and ReLU in one go,
and a step makes 9 hand-overs (the optimizer's included) instead of about 25, each of which
costs 30 to 150 us before the worker runs.

The split changes the last bits and nothing else. A sum over the batch (a weight or bias
gradient, batch norm's statistics) is the sum of its parts' sums, added in a fixed order; and
OpenBLAS computes a row of a product differently depending on how many rows it is given. So,
as with BLAS's own threads, the thread count changes the last bits, and the same count gives
the same bits, on an idle or a busy machine. On one thread every sum is whole and the work is
done in the order of layer-by-layer calls: the arithmetic of an unsplit step.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
from collections.abc import Callable, Generator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from trainkit.nn.workers import on_threads, start_workers

#: Below this many samples a split costs more than it saves.
MIN_SAMPLES = 8
#: Nor is it worth it for element-wise work on fewer values than this (a dense layer's batch
#: norm over 64 x 128 values takes a few microseconds, a hand-over 20 to 70).
MIN_VALUES = 65_536
#: Nor for a product of fewer multiply-adds than this (a classifier's 64 x 128 x 10).
MIN_MULTIPLY_ADDS = 1_000_000


@dataclass(frozen=True)
class Plan:
    """How work is split: over ``threads`` threads, and, with ``split_batch`` (a convnet, whose
    BLAS runs on one thread), all of it; otherwise only convolutions split. ``split_small``
    splits even work too small to gain from it, down to a sample a part (for checks)."""

    threads: int = 1
    split_batch: bool = False
    split_small: bool = False

    def bounds(self, n: int, values: int | None = None,
               multiply_adds: int | None = None) -> list[int]:
        """The bounds ``[0, ..., n]`` of the parts a batch of ``n`` samples is cut into, for
        element-wise work on ``values`` values, a product of ``multiply_adds``, or (neither)
        a convolution's work."""
        small = self.split_small
        if values is not None:
            split = self.split_batch and (small or values >= MIN_VALUES)
        elif multiply_adds is not None:
            split = self.split_batch and (small or multiply_adds >= MIN_MULTIPLY_ADDS)
        else:
            split = True
        parts = max(1, min(self.threads, n // (1 if small else MIN_SAMPLES))) if split else 1
        return [n * i // parts for i in range(parts + 1)]


_plan: contextvars.ContextVar[Plan] = contextvars.ContextVar(
    "trainkit_plan", default=Plan())  # noqa: B039 (a Plan is frozen)


@contextlib.contextmanager
def planned(threads: int, split_batch: bool = False, split_small: bool = False) -> Iterator[Plan]:
    """Split work as ``Plan(threads, split_batch, split_small)`` says inside the block (in this
    thread); the session sets it around a run."""
    plan = Plan(max(1, int(threads)), bool(split_batch), bool(split_small))
    start_workers(plan.threads - 1)
    token = _plan.set(plan)
    try:
        yield plan
    finally:
        _plan.reset(token)


def current_plan() -> Plan:
    return _plan.get()


def batch_parts(n: int) -> list[int]:
    """Deprecated (0.1.0's layer steps): the cut of a convolution's work."""
    from trainkit.deprecated import warn

    warn("parallel.batch_parts, parallel.value_parts")
    return current_plan().bounds(n)


def value_parts(n: int, values: int) -> list[int]:
    """Deprecated (0.1.0's layer steps): the cut of element-wise work on ``values`` values."""
    from trainkit.deprecated import warn

    warn("parallel.batch_parts, parallel.value_parts")
    return current_plan().bounds(n, values)


class Parts:
    """``work(*arrays, *shares)`` on every part of the batch: each array cut by sample (its
    first axis; ``None`` passes as it is), and, for each of ``sums`` (name -> the array the sum
    ends in), the part's own array for its share of that sum. The schedule adds the shares up in
    part order, then calls ``then()``. ``values`` (element-wise work) or ``multiply_adds`` (a
    product) say what the work costs, so that small work is not split; neither: a
    convolution's, split whenever there are threads. ``owner`` (a ``Module``) holds the shares'
    buffers."""

    __slots__ = ("work", "arrays", "values", "multiply_adds", "sums", "owner", "then", "bounds",
                 "_legacy", "_n")

    def __init__(self, work: Callable[..., object], *arrays: np.ndarray | None,
                 values: int | None = None, multiply_adds: int | None = None,
                 sums: Mapping[str, np.ndarray] | None = None, owner: Any = None,
                 then: Callable[[], object] | None = None) -> None:
        self.bounds: list[int] | None = None
        self._legacy = isinstance(work, list)
        if self._legacy:  # Parts(bounds, work(part, lo, hi), then): trainkit 0.1.0's form
            from trainkit.deprecated import warn

            warn("Parts(bounds, work)")
            self.bounds = list(work)  # type: ignore[call-overload]
            work, then = arrays[0], (arrays[1] if len(arrays) > 1 else then)  # type: ignore[assignment]
            arrays = ()
        self.work, self.arrays, self.then = work, arrays, then
        self.values, self.multiply_adds = values, multiply_adds
        self.sums, self.owner = sums or {}, owner

    def cut(self, plan: Plan) -> list[int]:
        if self.bounds is None:
            self._n = next(len(a) for a in self.arrays if a is not None)
            self.bounds = plan.bounds(self._n, self.values, self.multiply_adds)
        return self.bounds

    def part(self, index: int, lo: int, hi: int) -> None:
        if self._legacy:
            self.work(index, lo, hi)
            return
        arrays = self.arrays
        if hi - lo != self._n:
            arrays = tuple(None if a is None else a[lo:hi] for a in arrays)
        shares = [target if index == 0 else self._share(name, index, target)
                  for name, target in self.sums.items()]
        self.work(*arrays, *shares)

    def _share(self, name: str, index: int, target: np.ndarray) -> np.ndarray:
        return self.owner.buffer(f"{name}_{index}", target.shape, target.dtype)

    def finish(self) -> None:
        """Add the parts' shares up in part order (the same sums for the same cut), then
        ``then``."""
        assert self.bounds is not None
        for name, target in self.sums.items():
            for index in range(1, len(self.bounds) - 1):
                target += self._share(name, index, target)
        if self.then is not None:
            self.then()


class _Wait:
    def __repr__(self) -> str:
        return "WAIT"


#: Yielded by 0.1.0's layer steps (generators) when they need the results of their parts.
WAIT = _Wait()


#: 0.1.0's layer pass as steps (``forward_steps``): a generator that yields ``Parts`` and
#: ``WAIT`` and returns its output.
Steps = Generator["Parts | _Wait | None", None, Any]


class Schedule:
    """Runs a model's layers' work with as few hand-overs to the threads as it allows, as the
    plan in force (``planned``) says.

    While a model's pass runs (``scheduled``), ``over_batch`` hands the schedule its work
    without running it, so the next layer's work can join it: consecutive ``Parts`` cut the same
    way run together, each thread taking its part of the batch through several layers in a row
    (a part only reads and writes its own samples). ``wait`` runs everything handed over so
    far, for a layer that reads the results (batch norm's sums). Work that is not cut runs at
    once: on one thread the work is done in exactly the order of layer-by-layer calls."""

    def __init__(self, plan: Plan | None = None) -> None:
        self.plan = plan or current_plan()
        self._pending: list[Parts] = []

    def add(self, parts: Parts) -> None:
        bounds = parts.cut(self.plan)
        if self._pending and self._pending[0].bounds != bounds:
            self.flush()
        self._pending.append(parts)
        if len(bounds) == 2:  # one part: nothing to gain by waiting
            self.flush()

    def flush(self) -> None:
        """Run every part handed over so far, then add up their sums."""
        pending, self._pending = self._pending, []
        if not pending:
            return
        bounds = pending[0].bounds
        assert bounds is not None
        if len(pending) == 1:
            on_threads(bounds, pending[0].part)
        else:
            def part(index: int, lo: int, hi: int) -> None:
                for parts in pending:
                    parts.part(index, lo, hi)

            on_threads(bounds, part)
        for parts in pending:
            parts.finish()

    def drive(self, steps: Steps) -> Any:
        """Run a 0.1.0 layer's steps; returns its output (its last parts may be pending)."""
        try:
            step = next(steps)
            while True:
                if step is WAIT:
                    self.flush()
                elif step is not None:
                    self.add(step)  # type: ignore[arg-type]
                step = next(steps)
        except StopIteration as stop:
            return stop.value


_schedule: contextvars.ContextVar[Schedule | None] = contextvars.ContextVar(
    "trainkit_schedule", default=None)


class scheduled:
    """``with scheduled():`` a model's pass: work handed over inside the block may wait for the
    work after it, and all of it is done when the block ends. (A class: a generator-based
    context manager costs a model's pass a few microseconds more.)"""

    __slots__ = ("schedule", "_token")

    def __enter__(self) -> Schedule:
        self.schedule = Schedule()
        self._token = _schedule.set(self.schedule)
        return self.schedule

    def __exit__(self, kind: object, error: object, traceback: object) -> None:
        try:
            if error is None:
                self.schedule.flush()
        finally:
            _schedule.reset(self._token)


def over_batch(owner: Any, work: Callable[..., object], *arrays: np.ndarray | None,
               values: int | None = None, multiply_adds: int | None = None,
               sums: Mapping[str, np.ndarray] | None = None,
               then: Callable[[], object] | None = None) -> None:
    """Hand ``Parts(work, *arrays, ...)`` to the model's schedule, or run it now when there is
    none; on one thread, where nothing is cut, the work is done at once. ``owner`` (a
    ``Module``) holds the buffers for the parts' shares of ``sums``; it is ``Module.over_batch``,
    the layers' way to it."""
    schedule = _schedule.get()
    plan = schedule.plan if schedule is not None else current_plan()
    if plan.threads == 1:
        work(*arrays, *(sums or {}).values())
        if then is not None:
            then()
        return
    parts = Parts(work, *arrays, values=values, multiply_adds=multiply_adds, sums=sums,
                  owner=owner, then=then)
    if schedule is not None:
        schedule.add(parts)
    else:
        execute(parts)


def scratch(owner: Any, name: str, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """``owner``'s scratch array ``name`` for the work running on this thread: parts of a batch
    that run at once each get their own, which the same thread reuses (grown when too small)."""
    try:
        pools = owner._scratch
    except AttributeError:
        pools = owner._scratch = {}
    arrays = pools.setdefault((threading.get_ident(), np.dtype(dtype)), {})
    size = math.prod(shape)
    array = arrays.get(name)
    if array is None or array.size < size:
        array = arrays[name] = np.empty(size, dtype)
    return array[:size].reshape(shape)


def wait() -> None:
    """Finish the work handed over so far, before reading what it wrote."""
    schedule = _schedule.get()
    if schedule is not None:
        schedule.flush()


def complete(steps: Steps) -> Any:
    """Run a 0.1.0 layer's steps on the model's schedule (or, alone, to the end)."""
    schedule = _schedule.get()
    if schedule is not None:
        return schedule.drive(steps)
    schedule = Schedule()
    output = schedule.drive(steps)
    schedule.flush()
    return output


def execute(parts: Parts) -> None:
    """Run ``parts`` now, on the plan in force."""
    schedule = Schedule()
    schedule.add(parts)
    schedule.flush()


def contiguous_steps(array: np.ndarray) -> Steps:
    """0.1.0's ``x = yield from parallel.contiguous(x)`` in a layer's steps."""
    if not array.flags.c_contiguous:
        yield WAIT
        array = np.ascontiguousarray(array)
    return array


def contiguous(array: np.ndarray) -> np.ndarray:
    """``array`` C-contiguous, so that reshaping it gives a view: a copy waits for the work
    that writes it."""
    if not array.flags.c_contiguous:
        wait()
        array = np.ascontiguousarray(array)
    return array
