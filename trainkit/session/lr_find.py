"""The learning-rate finder: an exponential lr sweep on a fresh model, as fastai's ``lr_find``
and Lightning's ``Tuner.lr_find``.

The run is built as ``trainkit run`` would build it (same options, same seed), then trained for
``steps`` optimizer steps (batches, or groups of ``--accumulate`` batches) with the lr growing
from ``start`` to ``end`` by the same factor every step; the sweep stops early once the loss
passes four times its best (it has diverged). The loss is smoothed by fastai's and
Lightning's running average (beta 0.98). The suggestion is fastai's default, the valley: two
thirds of the way down the longest stretch over which the smoothed loss keeps falling.
Lightning's steepest descent is given beside it: it suggested 0.029 for the MLP, where its
loss had stopped falling, and the MLP then trained worse than at the default lr
(BENCHMARKS.md). The model it trained is thrown away: nothing of the run is kept or
written but the curve, as CSV and PNG.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from trainkit.errors import ConfigError

__all__ = ["LrCurve", "check_lr_auto", "find_lr", "suggested_lr", "sweep",
           "use_the_suggested_lr"]


@dataclass
class LrCurve:
    lrs: list[float] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    smoothed: list[float] = field(default_factory=list)
    suggestion: float | None = None  # fastai's valley
    steepest: float | None = None  # Lightning's steepest descent

    def csv(self) -> str:
        rows = ["lr,loss,smoothed_loss"]
        rows += [f"{lr:.6g},{loss:.6g},{s:.6g}"
                 for lr, loss, s in zip(self.lrs, self.losses, self.smoothed)]
        return "\n".join(rows) + "\n"

    def write(self, folder: Path) -> list[Path]:
        """``lr_find.csv`` and, with matplotlib, ``lr_find.png`` in ``folder``."""
        from trainkit.persist.atomic import atomic_write

        folder.mkdir(parents=True, exist_ok=True)
        written = [folder / "lr_find.csv"]
        atomic_write(written[0], self.csv())
        try:
            import matplotlib
        except ImportError:
            return written
        matplotlib.use("Agg")
        from matplotlib.figure import Figure

        figure = Figure(figsize=(6, 4), dpi=100)
        axes = figure.add_subplot()
        axes.plot(self.lrs, self.losses, color="0.75", label="loss")
        axes.plot(self.lrs, self.smoothed, label="smoothed loss")
        if self.suggestion is not None:
            axes.axvline(self.suggestion, color="C3", linestyle="--",
                         label=f"suggested lr {self.suggestion:.2g} (valley)")
        if self.steepest is not None:
            axes.axvline(self.steepest, color="0.5", linestyle=":",
                         label=f"steepest descent {self.steepest:.2g}")
        axes.set_xscale("log")
        finite = [v for v in self.losses if math.isfinite(v)]
        if finite:  # the divergence at the end would dwarf the part that matters
            top = 1.5 * max(self.smoothed[:10] or finite)
            axes.set_ylim(0.9 * min(finite), max(top, 1.05 * min(finite)))
        axes.set_xlabel("learning rate")
        axes.set_ylabel("training loss")
        axes.legend()
        figure.tight_layout()
        figure.savefig(folder / "lr_find.png")
        written.append(folder / "lr_find.png")
        return written


def find_lr(session: Any, start: float = 1e-7, end: float = 10.0, steps: int = 200) -> LrCurve:
    """Sweep the lr on the session's freshly built run (see the module's docstring), on the
    threads the run would train on: ``--lr auto`` then picks the lr this prints."""
    from trainkit.session import assembly
    from trainkit.session.threads import run_threads, using_threads

    check_sweep(start, end, steps)
    built = assembly.build(session.run or session.resolve(), session.pm)
    threads, split_batch = run_threads(built, None, lambda message, error=False: None)
    with using_threads(threads, split_batch):
        return sweep(built, start, end, steps)


def suggested_lr(built: Any) -> float:
    """``--lr auto``: the default sweep's suggestion on ``built`` (a run built for it alone:
    its model and optimizer are trained), to two significant figures: the value ``trainkit
    lr-find`` prints, so that ``--lr auto`` trains as ``--lr <that value>`` does."""
    curve = sweep(built)
    if curve.suggestion is None:
        raise ConfigError(f"--lr auto: the lr finder's sweep ended too soon to suggest an lr "
                          f"(the loss diverged after {len(curve.lrs)} steps); run trainkit "
                          f"lr-find with the same options to see the curve, and give --lr a "
                          f"number", "lr")
    return float(f"{curve.suggestion:.2g}")


def use_the_suggested_lr(run: Any, copy: Any, pm: Any, say: Callable[..., None]) -> None:
    """``--lr auto``: sweep on ``copy`` (the run's config made afresh: the sweep trains its
    model and steps its optimizer), then give the built ``run`` the suggestion as its lr and
    record it as the lr of its config."""
    from trainkit.session import assembly

    lr = suggested_lr(assembly.build(copy, pm))
    run.trainer.optimizer.lr = run.config["lr"] = run.trainer.context.config["lr"] = lr
    say(f"trainkit: --lr auto: {lr:g}, the lr finder's suggestion (trainkit lr-find with the "
        f"same options draws its curve)", False)


def check_lr_auto(run: Any, resume_from: Any) -> None:
    """``--lr auto`` picks the lr of a new run in one process."""
    if resume_from is not None:
        raise ConfigError(f"--lr auto picks the lr of a new run; {resume_from} goes on with its "
                          f"own (give --lr a number to change it)", "lr")
    if "ddp" in run.plugins:
        raise ConfigError("--lr auto sweeps the lr in one process, not under ddp: run trainkit "
                          "lr-find with the same options and give --lr the lr it prints", "lr")


def check_sweep(start: float, end: float, steps: int) -> None:
    if not 0 < start < end:
        raise ConfigError(f"the sweep needs 0 < start < end, got {start} and {end}", "start")
    if steps < 10:
        raise ConfigError(f"the sweep needs at least 10 steps, got {steps}", "steps")


def sweep(built: Any, start: float = 1e-7, end: float = 10.0, steps: int = 200) -> LrCurve:
    """Train a built run (``assembly.build``) for ``steps`` optimizer steps on the growing lr.

    With ``--accumulate N`` a step is N batches (fewer at an epoch's end), their gradients
    averaged as in training, and its loss is the mean of theirs: the curve is that of the
    batch the optimizer sees (Lightning's finder also counts optimizer steps)."""
    check_sweep(start, end, steps)
    trainer = built.trainer
    model, loss, optimizer = trainer.model, trainer.loss, trainer.optimizer
    accumulation = trainer.accumulation
    loader = built.train_loader
    loader.limit_batches = None
    curve, factor = LrCurve(), (end / start) ** (1 / (steps - 1))
    average, best = 0.0, math.inf

    def batches():  # each with whether it ends an epoch (a group of micro-batches ends there)
        while True:
            last = len(loader) - 1
            for i, (x, y) in enumerate(loader.batches(loader.new_epoch())):
                yield x, y, i == last

    model.train(True)
    stream = batches()
    for step in range(steps):
        optimizer.lr = start * factor ** step
        values = []
        for x, y, ends_epoch in stream:  # as the Trainer steps: when the group is ready
            values.append(loss.forward(model.forward(x), y))
            model.backward(loss.backward())
            if accumulation is None or accumulation.ready(model.grads, ends_epoch):
                break
        optimizer.step()
        value = sum(values) / len(values)
        average = 0.98 * average + 0.02 * value
        smoothed = average / (1 - 0.98 ** (step + 1))
        curve.lrs.append(optimizer.lr)
        curve.losses.append(value)
        curve.smoothed.append(smoothed)
        best = min(best, smoothed)
        if not math.isfinite(smoothed) or smoothed > 4 * best:
            break
    curve.suggestion, curve.steepest = valley(curve), steepest(curve)
    return curve


def steepest(curve: LrCurve) -> float | None:
    """Lightning's suggestion: the lr where the smoothed loss falls fastest against log(lr),
    without the first 10 and the last point."""
    import numpy as np

    losses = np.asarray(curve.smoothed[10:-1])
    if len(losses) < 3:
        return None
    slope = np.gradient(losses, np.log(np.asarray(curve.lrs[10:-1])))
    return float(curve.lrs[10 + int(np.argmin(slope))])


def valley(curve: LrCurve) -> float | None:
    """fastai's default suggestion (``SuggestionMethod.Valley``): the longest stretch over
    which the smoothed loss keeps falling, and the lr two thirds of the way down it."""
    losses = curve.smoothed
    if len(losses) < 3:
        return None
    longest = [1] * len(losses)  # the longest falling run ending at each point
    start = end = 0
    for i in range(1, len(losses)):
        for j in range(i):
            if losses[i] < losses[j] and longest[i] < longest[j] + 1:
                longest[i] = longest[j] + 1
            if longest[end] < longest[i]:
                end, start = i, i - longest[i]
    third = (end - start) / 3
    return float(curve.lrs[start + int(third) + int(third / 2)])
