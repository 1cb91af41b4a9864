"""``trainkit sweep SPEC.toml``: a hyperparameter search on Optuna whose trials are trainkit runs;
the run options are ``run``'s and override the spec, as they override ``--config``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from trainkit.cli.app import EXIT_INTERRUPTED, SWEEP_SHORT_HELP, AppState
from trainkit.cli.errors import cli_errors
from trainkit.cli.options import GroupedCommand, GroupedOption


def make_sweep_command(app: AppState) -> click.Command:
    """``trainkit sweep``, with every option of ``run`` to override the spec's run config."""
    from trainkit.cli.run import (
        choice_options,
        component_options,
        config_layer,
        given_options,
        plugin_options,
        training_options,
    )
    from trainkit.session.config import component_option_owners

    registry = app.registry
    names = {kind: registry.names(kind) for kind in ("dataset", "model", "optimizer", "loss",
                                                      "metric", "plugin")}
    params = [*sweep_options(),
              *choice_options(names, registry.defaults(), registry.model_plugins()),
              *training_options()]
    owners = component_option_owners(registry)
    params += component_options(app, owners)
    plugin_params = plugin_options(app, params)

    def callback(**kwargs: Any) -> None:
        ctx = click.get_current_context()
        layer = config_layer(app, given_options(ctx, kwargs), set(owners), plugin_params)
        with cli_errors(app.verbose):
            completed = sweep_command(app, layer, kwargs)
        if not completed:
            ctx.exit(EXIT_INTERRUPTED)

    return GroupedCommand("sweep", params=params, callback=callback, short_help=SWEEP_SHORT_HELP,
                          help="Search hyperparameters: run the trials of SPEC (a run config "
                               "plus [sweep] and [sweep.search] tables, see docs/sweeps.md) as "
                               "trainkit runs in an Optuna study, pruning poor ones.")


def sweep_options() -> list[click.Parameter]:
    def option(*decls: str, **kwargs: Any) -> GroupedOption:
        return GroupedOption(list(decls), group="Sweep options", **kwargs)

    return [
        click.Argument(["spec"], required=False, type=click.Path(path_type=Path)),
        option("--storage", metavar="URL",
               help="The study's storage: sqlite:///PATH, journal:PATH (a shared filesystem), "
                    "postgresql://... or mysql://...  [default: sqlite in the sweep folder]"),
        option("--study", metavar="NAME", help="Study name; runs against the same storage and "
                                               "name join it.  [default: the spec's file name]"),
        option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
               help="Worker processes on this machine, each on its share of the cores."),
        option("--out", type=click.Path(path_type=Path),
               help="Sweep folder: a run folder per trial, best.toml, plots.  "
                    "[default: sweeps/<study>]"),
        option("--resume", is_flag=True,
               help="Continue the study: run again the trials Ctrl+C cut short, then the rest."),
        option("--show", metavar="STORAGE",
               help="Print the best trials and config of --study in STORAGE, and exit."),
        option("--worker-index", type=int, default=0, hidden=True),
        option("--worker-trials", type=int, hidden=True),
    ]


def sweep_command(app: AppState, layer: dict[str, Any], kwargs: dict[str, Any]) -> bool:
    from trainkit.errors import ConfigError
    from trainkit.sweep import Sweep, read_spec, show

    spec_path: Path | None = kwargs["spec"]
    if kwargs["show"]:
        study = kwargs["study"] or (spec_path.stem if spec_path else None)
        if study is None:
            raise ConfigError("--show needs --study NAME (or the SPEC it was run from)", "study")
        show(kwargs["show"], study, kwargs["out"], click.echo)
        return True
    if spec_path is None:
        raise ConfigError("give the sweep's SPEC.toml (or --show STORAGE --study NAME)", "spec")
    from trainkit.sweep.storage import import_optuna

    import_optuna()  # the one-line error naming the extra comes before anything else
    spec = read_spec(spec_path, app.registry, layer)
    study = kwargs["study"] or spec_path.stem
    folder = kwargs["out"] or Path("sweeps") / study
    storage = kwargs["storage"] or f"sqlite:///{(folder / 'study.db').resolve()}"
    sweep = Sweep(spec, folder, storage, study, workers=kwargs["workers"],
                  resume=kwargs["resume"], worker_index=kwargs["worker_index"],
                  worker_trials=kwargs["worker_trials"], storage_given=bool(kwargs["storage"]))
    completed = sweep.optimize(click.echo)
    if kwargs["worker_trials"] is None:  # the parent (or only) process reports
        if not completed:
            click.echo(f"sweep: interrupted; continue with: trainkit sweep {spec_path} --resume"
                       + (f" --study {study}" if kwargs["study"] else "")
                       + (f" --storage {kwargs['storage']}" if kwargs["storage"] else ""))
        try:
            sweep.report(click.echo)
        except KeyboardInterrupt:  # Ctrl+C after the last trial: the study is complete
            click.echo("sweep: Ctrl+C: report cut short; trainkit sweep --show prints it")
            return False
    return completed
