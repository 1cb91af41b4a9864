"""``trainkit summary``: the model a run would train, or a trained one, layer by layer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trainkit.cli.app import SUMMARY_SHORT_HELP, AppState
from trainkit.cli.errors import cli_errors
from trainkit.cli.options import GroupedCommand


def make_summary_command(app: AppState) -> click.Command:
    """``trainkit summary [RUN|CHECKPOINT]`` with every option of ``trainkit run``, so that
    ``run`` can be swapped for ``summary`` in any command line."""
    from trainkit.cli.run import make_run_command

    run = make_run_command(app)
    argument = click.Argument(["path"], required=False, type=click.Path(path_type=Path),
                              metavar="[RUN|CHECKPOINT]")

    def callback(path: Path | None, **kwargs: Any) -> None:
        summarize_command(click.get_current_context(), app, run, path, kwargs)

    return GroupedCommand(
        "summary", params=[argument, *run.params], callback=callback,
        short_help=SUMMARY_SHORT_HELP,
        help="Print the model's layers: output shape, parameters (trainable and not), "
             "multiply-adds per sample and activations at the batch size.\n\nWith a run folder "
             "or checkpoint, the trained model; otherwise the model `trainkit run` would build "
             "with the same options and config file (the dataset is read for its input shape "
             "and classes).")


def summarize_command(ctx: click.Context, app: AppState, run: click.Command, path: Path | None,
                      kwargs: dict[str, Any]) -> None:
    from trainkit.cli.run import given_options, session_of

    with cli_errors(app.verbose):
        given = given_options(ctx, kwargs)
        if path is not None:
            from trainkit.session.inference import load_trained_model

            trained = load_trained_model(path, app.registry, app.pm)
            batch = given.get("batch_size") or trained.manifest.get("config", {}).get(
                "batch_size", 64)
            click.echo(f"{trained.source}:")
            click.echo(trained.summary(batch_size=int(batch)).table())
            return
        session = session_of(app, run, given, kwargs.get("config"))
        click.echo(session.model_summary().table())
