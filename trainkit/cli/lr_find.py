"""``trainkit lr-find``: an exponential lr sweep on the model ``trainkit run`` would train, and
the lr where its loss falls fastest."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trainkit.cli.app import LR_FIND_SHORT_HELP, AppState
from trainkit.cli.errors import cli_errors
from trainkit.cli.options import GroupedCommand, GroupedOption

SWEEP = "Learning-rate sweep"


def make_lr_find_command(app: AppState) -> click.Command:
    """``trainkit lr-find`` with every option of ``trainkit run`` and the sweep's own."""
    from trainkit.cli.run import make_run_command

    run = make_run_command(app)
    own = [GroupedOption(["--sweep-from"], type=float, default=1e-7, show_default=True,
                         help="The first lr of the sweep.", group=SWEEP),
           GroupedOption(["--sweep-to"], type=float, default=10.0, show_default=True,
                         help="The last lr (the sweep stops sooner if the loss diverges).",
                         group=SWEEP),
           GroupedOption(["--sweep-steps"], type=int, default=200, show_default=True,
                         help="Optimizer steps in the sweep (each --accumulate batches).",
                         group=SWEEP)]

    def callback(sweep_from: float, sweep_to: float, sweep_steps: int, **kwargs: Any) -> None:
        find_command(click.get_current_context(), app, run, kwargs, sweep_from, sweep_to,
                     sweep_steps)

    return GroupedCommand(
        "lr-find", params=[*own, *run.params], callback=callback,
        short_help=LR_FIND_SHORT_HELP,
        help="Train the model `trainkit run` would build (same options and config file) for a "
             "few hundred steps while the learning rate grows exponentially, then print the "
             "suggested lr (fastai's valley) and the steepest descent, and write the curve as "
             "lr_find.csv and lr_find.png (into --out, else ./lr-find). The model is thrown "
             "away.")


def find_command(ctx: click.Context, app: AppState, run: click.Command, kwargs: dict[str, Any],
                 start: float, end: float, steps: int) -> None:
    from trainkit.cli.run import given_options, session_of
    from trainkit.session.lr_find import find_lr

    with cli_errors(app.verbose):
        given = given_options(ctx, kwargs)
        out = Path(given.pop("out", None) or "lr-find")
        curve = find_lr(session_of(app, run, given, kwargs.get("config")), start, end, steps)
        written = curve.write(out)
        where = " and ".join(str(p) for p in written)
        if curve.suggestion is None:
            click.echo(f"trainkit: the sweep ended too soon to suggest an lr (the loss "
                       f"diverged after {len(curve.lrs)} steps); see {where}")
            return
        steepest = f"; the steepest descent is at {curve.steepest:.2g}" if curve.steepest else ""
        click.echo(f"trainkit: suggested lr {curve.suggestion:.2g} (fastai's valley{steepest}); "
                   f"train with --lr {curve.suggestion:.2g}. Curve: {where}")
