"""How many threads a run uses: fixed by the machine and the model, or timed on request.

The thread count changes the last bits of the results (OpenBLAS's own threads split a product
differently from one thread, and a convolution's weight gradient is a sum over its batch parts),
so a count that followed the machine's load would make the same command give different weights
on a busy minute. The default therefore depends on nothing that moves:

- a model that splits its work over the batch on trainkit's own threads (a convnet,
  ``trainkit.nn.schedule``) uses every core. Its threads wait for each other on locks, not in
  spin loops, so beside a CPU-bound process they still beat one thread;
- any other model (an MLP, whose only parallelism is BLAS's) uses one thread. OpenBLAS's
  threads spin while they wait for each other: beside one CPU-bound process on two cores they
  ran an MLP epoch four times slower than one thread, against 1.1-1.3x faster on an idle machine.

``--threads auto`` times real training steps (forward, backward and an optimizer update on
scratch copies, on a zero batch of the run's shape: no weight, optimizer state or random
generator of the run changes) with one thread and with every core, in windows of about 25 ms,
and keeps every core unless one thread is more than 10% faster: the fastest choice for this
minute's load, at the price of bits that follow it. ``--threads N`` (or ``TRAINKIT_THREADS``)
sets the count.

The count is fixed for the whole run and recorded in its checkpoints, and a resume keeps it.
The BLAS kernels (OpenBLAS picks them for the CPU, or ``OPENBLAS_CORETYPE`` forces them) change
the last bits too: they are recorded beside the count, and a resume on other kernels says so.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def default_threads(split_batch: bool) -> int:
    """The count a run uses unless told otherwise: every core for a model that splits its work
    over the batch on trainkit's own threads (a convnet), one thread for a model whose only
    parallelism is BLAS's (an MLP). It depends on nothing but the machine and the model, so two
    runs of the same command give the same bits whatever else the machine is doing."""
    return available_cores() if split_batch else 1


def calibrate(step: Callable[[], object], candidates: Sequence[int] | None = None, *,
              rounds: int = 3, window: float = 0.025, tolerance: float = 0.10,
              settle: float = 0.15, split_batch: bool = False) -> int:
    """The thread count among ``candidates`` (default: 1 and every core) that runs ``step``
    fastest. Each candidate is timed over ``rounds`` windows of about ``window`` seconds and
    keeps its best: noise can only slow a window down, never speed it up.

    Fewer threads are timed first, after ``settle`` seconds of rest: BLAS worker threads spin
    for a while after their last job, and on a loaded machine those spinning workers would make
    one thread look as slow as two.

    The largest count is kept unless a smaller one is more than ``tolerance`` faster: the pick is
    then always within ``tolerance`` of the best, and stable from run to run on an idle machine
    (where all cores win clearly), which keeps runs with the same seed bit-identical.
    """
    candidates = sorted(set(candidates or (1, available_cores())))
    if len(candidates) == 1:
        return candidates[0]
    timings: dict[int, list[float]] = {c: [] for c in candidates}
    for count in candidates:  # fewest threads first: idle BLAS workers cannot disturb them
        with using_threads(count, split_batch):
            if count == candidates[0]:
                time.sleep(settle)  # workers of earlier BLAS calls spin for a while: let them stop
            step()  # wake the thread pool up
            for _ in range(rounds):  # seconds per step, over a window of at least `window`
                steps, start = 0, time.perf_counter()
                while (elapsed := time.perf_counter() - start) < window or steps < 3:
                    step()
                    steps += 1
                timings[count].append(elapsed / steps)
    best = {c: min(timings[c]) for c in candidates}
    fastest = min(candidates, key=lambda c: (best[c], -c))
    largest = candidates[-1]
    return largest if best[largest] <= best[fastest] * (1 + tolerance) else fastest


@contextlib.contextmanager
def model_state_kept(model) -> Iterator[None]:
    """Put back what a probe's forward passes change besides the weights: batch norm's running
    statistics and dropout's random generators."""
    states = getattr(model, "states", None)
    saved = states.copy() if states is not None else None
    extra = model.extra_state() if hasattr(model, "extra_state") else None
    try:
        yield
    finally:
        if saved is not None and states is not None:
            states[...] = saved
        if extra is not None:
            model.load_extra_state(extra)


def training_step_probe(model, loss, batch_size: int, input_size: int,
                        optimizer=None) -> Callable[[], object]:
    """One training step on a zero batch: forward, backward and (on scratch copies of the
    parameters and its state) the optimizer's update. It has the shape of the real work, the
    single-threaded element-wise phases included (that is where spinning BLAS threads hurt a
    loaded machine), and leaves nothing that training keeps changed: not the weights, not the
    optimizer state, not any random generator (run it inside ``model_state_kept(model)`` for a
    model with batch norm or dropout)."""
    import copy

    import numpy as np

    shape = getattr(model, "input_shape", None) or (input_size,)
    x = np.zeros((batch_size, *shape), dtype=np.float32)
    y = np.zeros(batch_size, dtype=np.intp)
    scratch = None
    if optimizer is not None:
        scratch = copy.deepcopy(optimizer)
        scratch.bind(model.params.copy(), model.grads)

    def step():
        outputs = model.forward(x)
        loss.forward(outputs, y)
        model.backward(loss.backward())
        if scratch is not None:
            scratch.step()

    return step


def run_threads(run: Any, manifest: dict[str, Any] | None, say: Callable[..., None]
                ) -> tuple[int, bool]:
    """A built run's thread count and whether its model splits the batch: ``threads`` from
    the config, else the resumed checkpoint's (``manifest``), else a plugin's preference (ddp:
    cores per rank), else the model's default; ``"auto"`` times it."""
    from trainkit.plugin import contract

    trainer = run.trainer
    wanted = run.config.get("threads")
    split_batch = getattr(trainer.model, "splits_batch", False)
    cores = available_cores()
    if isinstance(wanted, int) and wanted > cores:
        say(f"trainkit: warning: --threads {wanted} is more than the {cores} cores this "
            f"process can use: BLAS threads then wait for each other, and training can be "
            f"many times slower", True)
    if wanted is None and manifest is not None:
        # before 0.2.0, "blas_threads" held trainkit's count
        wanted = manifest.get("threads", manifest.get("blas_threads"))
    preferred = [contract.read(p, "preferred_threads") for p in run.plugins.values()
                 if contract.read(p, "preferred_threads")]
    if wanted is None and preferred:
        wanted = min(preferred)
    if wanted is None:
        wanted = default_threads(split_batch)
    if wanted == "auto":
        with model_state_kept(trainer.model):
            wanted = calibrate(training_step_probe(
                trainer.model, trainer.loss, run.config["batch_size"], run.splits.input_size,
                trainer.optimizer), split_batch=split_batch)
    return wanted, split_batch


@contextlib.contextmanager
def using_threads(count: int, split_batch: bool = False) -> Iterator[int]:
    """Run the block on ``count`` threads: BLAS on ``count`` threads (a convolution splits its
    work over as many, ``trainkit.nn.schedule``). With ``split_batch`` (a model whose layers
    split their whole work, GEMMs and element-wise passes included, over the batch: a convnet)
    BLAS runs on one thread and trainkit's ``count`` threads do all the work: no idle BLAS
    worker then spins on the cores those threads need."""
    from threadpoolctl import threadpool_limits

    from trainkit.nn import schedule

    with schedule.planned(count, split_batch), \
            threadpool_limits(limits=1 if split_batch else count, user_api="blas"):
        yield count


def blas_kernels() -> str | None:
    """The BLAS numpy calls and the CPU kernels it chose, e.g. ``"openblas 0.3.31 Haswell"``."""
    from threadpoolctl import threadpool_info

    for info in threadpool_info():
        if info.get("user_api") == "blas":
            parts = (info.get("internal_api"), info.get("version"), info.get("architecture"))
            return " ".join(str(part) for part in parts if part)
    return None
