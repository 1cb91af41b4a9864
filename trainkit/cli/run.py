"""``trainkit run``: its options come from the registered components and run plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from trainkit.cli.app import RUN_SHORT_HELP, AppState
from trainkit.cli.errors import cli_errors
from trainkit.cli.options import (
    GroupedCommand,
    GroupedOption,
    ThreadsType,
    describe_default,
    envvar_of,
    flag_of,
    spec_option,
)
from trainkit.errors import ConfigError
from trainkit.formatting import format_value
from trainkit.options import plugin_option_param
from trainkit.run_lock import RunLock

CORE_OPTIONS = ("dataset", "model", "optimizer", "loss", "metric", "plugin", "no_plugin",
                "epochs", "batch_size", "seed", "val_split", "out", "threads", "limit_batches")
KIND_TITLES = {"dataset": "Dataset options", "model": "Model options",
               "optimizer": "Optimizer options", "loss": "Loss options",
               "metric": "Metric options"}
EXIT_INTERRUPTED = 130


def make_run_command(app: AppState) -> click.Command:
    from trainkit.run import component_option_owners

    registry = app.registry
    names = {kind: registry.names(kind) for kind in ("dataset", "model", "optimizer", "loss",
                                                    "metric", "plugin")}
    defaults_on = registry.defaults()

    def choice_option(flag: str, kind: str, default: str, help_text: str, **kw: Any):
        return GroupedOption([flag], type=click.Choice(names[kind]), default=None,
                             default_text=default, help=help_text,
                             envvar=envvar_of(flag[2:]), **kw)

    params: list[click.Parameter] = [
        choice_option("--dataset", "dataset", "mnist", "Dataset to train on."),
        choice_option("--model", "model", "mlp", "Model to build."),
        choice_option("--optimizer", "optimizer", "adam", "Optimizer."),
        choice_option("--loss", "loss", "cross-entropy", "Loss function."),
        GroupedOption(["--metric"], type=click.Choice(names["metric"]), multiple=True,
                      default_text="accuracy", envvar="TRAINKIT_METRIC",
                      help="Metric to log (repeatable)."),
        GroupedOption(["--plugin"], type=click.Choice(names["plugin"]), multiple=True,
                      envvar="TRAINKIT_PLUGIN", help="Turn a run plugin on (repeatable)."),
        GroupedOption(["--no-plugin"], type=click.Choice(names["plugin"]), multiple=True,
                      envvar="TRAINKIT_NO_PLUGIN",
                      help=f"Turn a run plugin off (repeatable). On by default: "
                           f"{', '.join(defaults_on) or 'none'}."),
        GroupedOption(["-p", "plugin_module"], multiple=True, metavar="MODULE|no:NAME",
                      help="Load a plugin module by import path, or block one (no:NAME)."),
        GroupedOption(["--epochs"], type=click.IntRange(min=1), default_text="10",
                      envvar="TRAINKIT_EPOCHS", help="Epochs to train (in total, on resume)."),
        GroupedOption(["--batch-size"], type=click.IntRange(min=1), default_text="64",
                      envvar="TRAINKIT_BATCH_SIZE", help="Samples per training batch."),
        GroupedOption(["--seed"], type=int, default_text="42", envvar="TRAINKIT_SEED",
                      help="Seed of the weights and the data order."),
        GroupedOption(["--val-split"], type=click.FloatRange(0, 1, max_open=True),
                      default_text="0.1", envvar="TRAINKIT_VAL_SPLIT",
                      help="Fraction of the training set held out (seeded) for validation; the "
                           "test split is scored once, at the end. 0 validates on the test split."),
        GroupedOption(["--limit-batches"], type=click.IntRange(min=1), metavar="N",
                      envvar="TRAINKIT_LIMIT_BATCHES",
                      help="Train and validate on the first N batches of each epoch only: a "
                           "smoke run.  [default: all]"),
        GroupedOption(["--out"], type=click.Path(path_type=Path), envvar="TRAINKIT_OUT",
                      help="Run folder.  [default: runs/<timestamp>]"),
        GroupedOption(["--overwrite"], is_flag=True,
                      help="Clear a run folder that holds an earlier run, then train in it "
                           "(without it such a folder is refused)."),
        GroupedOption(["--resume"], metavar="PATH|last",
                      help="Continue from a checkpoint file, a run folder, or 'last'."),
        GroupedOption(["--threads"], type=ThreadsType(), envvar="TRAINKIT_THREADS",
                      default_text="all cores for a convnet, 1 otherwise",
                      help="Threads: a count, or 'auto' to time 1 against all cores at the start "
                           "(fastest under load, but the last bits of the results then depend on "
                           "it)."),
        GroupedOption(["--config"], type=click.Path(path_type=Path),
                      help="TOML file of options; command-line flags override it."),
        GroupedOption(["--print-config"], is_flag=True,
                      help="Print the full effective config as TOML and exit."),
        GroupedOption(["--profile-hooks"], is_flag=True,
                      help="Print the time each plugin spends in each hook at the end."),
        GroupedOption(["--strict-plugins"], is_flag=True,
                      help="Fail when a plugin cannot be loaded instead of skipping it."),
        GroupedOption(["-v", "--verbose"], is_flag=True, help="Show tracebacks of errors."),
    ]

    owners = component_option_owners(registry)
    for option_name, owned_by in owners.items():
        first_kind, first_name = owned_by[0]
        spec = next(s for s in registry.get(first_kind, first_name).options
                    if s.name == option_name)
        defaults: dict[str, list[str]] = {}
        for kind, comp_name in owned_by:
            component = registry.get(kind, comp_name)
            comp_spec = next(s for s in component.options if s.name == option_name)
            if app.pm.info(component.plugin).source != "built-in":  # say where it came from
                comp_name = f"{comp_name} from plugin {component.plugin}"
            defaults.setdefault(describe_default(comp_spec.default), []).append(comp_name)
        if len(defaults) == 1:
            default, names_ = next(iter(defaults.items()))
            default_text = f"[default: {default}; {', '.join(names_)}]"
        else:
            default_text = "[default: " + "; ".join(
                f"{d} for {', '.join(ns)}" for d, ns in defaults.items()) + "]"
        params.append(spec_option(option_name, spec, f"{spec.help}  {default_text}".strip(),
                                  KIND_TITLES[first_kind]))

    plugin_params: dict[str, tuple[str, str]] = {}
    for plugin_name in names["plugin"]:
        component = registry.get("plugin", plugin_name)
        state = "on by default" if component.default else "--plugin " + plugin_name
        if any(plugin_option_param(plugin_name, spec.name) == plugin_name.replace("-", "_")
               for spec in component.options):
            state += f", or --{plugin_name} NAME"
        if app.pm.info(component.plugin).source != "built-in":
            state += f", from plugin {component.plugin}"
        for spec in component.options:
            param_name = plugin_option_param(plugin_name, spec.name)
            plugin_params[param_name] = (plugin_name, spec.name)
            params.append(spec_option(
                param_name, spec,
                f"{spec.help}  [default: {describe_default(spec.default)}]".strip(),
                f"Plugin {plugin_name} ({state})"))
            long_name = f"{plugin_name}_{spec.name}".replace("-", "_")
            if long_name != param_name:  # the name it had before the naming rule, kept working
                plugin_params[long_name] = (plugin_name, spec.name)
                params.append(spec_option(long_name, spec, "", "", hidden=True))

    def callback(**kwargs: Any) -> None:
        ctx = click.get_current_context()
        run_command(ctx, app, kwargs, set(owners), plugin_params)

    return GroupedCommand(
        "run", params=params, callback=callback,
        help="Train a model. Every part of the run is a plugin; see `trainkit plugins`.",
        short_help=RUN_SHORT_HELP,
    )


def given_options(ctx: click.Context, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Only the options the user set, on the command line or in the environment."""
    given = {}
    for name, value in kwargs.items():
        source = ctx.get_parameter_source(name)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            given[name] = list(value) if isinstance(value, tuple) and name in (
                "metric", "plugin", "no_plugin", "plugin_module") else value
    return given


def run_command(ctx, app: AppState, kwargs: dict[str, Any], component_options: set[str],
                plugin_params: dict[str, tuple[str, str]]) -> None:
    from trainkit import run as runlib
    from trainkit.tomlio import dump_toml, read_toml

    given = given_options(ctx, kwargs)
    cli_layer: dict[str, Any] = {}
    for name, value in given.items():
        if name in CORE_OPTIONS or name in component_options:
            cli_layer[name] = value
        elif name in plugin_params:
            plugin, option = plugin_params[name]
            cli_layer.setdefault(plugin, {})[option] = value
    for name in given:  # the option named after a plugin turns it on: --lr-schedule cosine
        if name in plugin_params and name == plugin_params[name][0].replace("-", "_"):
            cli_layer.setdefault("plugin", []).append(plugin_params[name][0])
    for name in app.blocked:  # -p no:NAME also turns a run plugin of that name off
        if name in app.registry.components["plugin"]:
            cli_layer.setdefault("no_plugin", []).append(name)
    with cli_errors(app.verbose):
        layers = []
        resume_from = manifest = saved = None
        if kwargs.get("resume"):
            from trainkit.checkpoint_io import load_checkpoint

            resume_from = resolve_resume_path(kwargs["resume"], kwargs.get("out"))
            manifest, arrays = load_checkpoint(resume_from)
            runlib.check_components_installed(manifest, app.registry, app.pm, str(resume_from))
            # Checkpoints from before the validation split validated on the test split.
            saved = {"val_split": 0.0, **(manifest.get("config") or {})}
            layers.append(saved)
        file_layer = None
        if kwargs.get("config"):
            file_layer = read_toml(kwargs["config"])
            layers.append(file_layer)
        layers.append(cli_layer)
        config = runlib.merge_configs(*layers)
        if resume_from is not None:
            runlib.check_resume_keys(saved, config, str(resume_from))
            if "out" not in cli_layer:
                config["out"] = str(resume_from.parent)
        if file_layer is not None:  # its mistakes are the file's, not flags the user typed
            on = runlib.enabled_plugins(runlib.merge_configs(runlib.RUN_DEFAULTS, config),
                                        app.registry)
            runlib.check_config_file(file_layer, app.registry, on, str(kwargs["config"]))
        run = runlib.resolve(config, app.registry)
        for param_name, (plugin, _) in plugin_params.items():
            if param_name in given and plugin not in run.plugins:
                raise ConfigError(f"{flag_of(param_name)} is an option of plugin {plugin!r}, "
                                  f"which is off; turn it on with --plugin {plugin}", param_name)
        changes: list[str] = []
        if resume_from is not None:
            changes = runlib.resume_changes(saved, run, str(resume_from))
            check_epochs_left(run.config["epochs"], manifest, resume_from)
        if kwargs.get("print_config"):
            click.echo(dump_toml(runlib.effective_config(run)), nl=False)
            return
        out = Path(run.config["out"]) if run.config.get("out") else None
        continuing = resume_from is not None and out is not None and \
            out.resolve() == resume_from.parent.resolve()
        if out is not None and run.is_main_process and not continuing and not kwargs.get("overwrite") and \
                holds_a_run(out):
            raise ConfigError(f"{out} holds an earlier run; resume it with --resume {out}, "
                              f"train elsewhere with another --out, or clear it with --overwrite",
                              "out")
        runlib.build(run, app.pm)
        trainer = run.trainer
        if resume_from is not None:
            from trainkit.snapshot import restore

            restore(trainer, manifest, arrays, source=str(resume_from))
            if saved.get("lr") != trainer.config.get("lr"):  # a new lr is applied, not recorded
                trainer.optimizer.lr = trainer.config["lr"]
        if not trainer.is_main_process:  # other data-parallel ranks write nothing
            train(ctx, run, kwargs, resume_from, manifest, changes)
            return
        prepare_run_dir(run.run_dir)
        with RunLock(run.run_dir) as lock:
            if lock.stale_owner:
                click.echo(f"trainkit: took over the lock of process {lock.stale_owner.get('pid')}, "
                           f"which is no longer running", err=True)
            if kwargs.get("overwrite") and not continuing and holds_a_run(run.run_dir):
                clear_run_dir(run.run_dir)  # under the lock: never a folder a live run uses
                click.echo(f"trainkit: cleared {run.run_dir} (--overwrite)", err=True)
            train(ctx, run, kwargs, resume_from, manifest, changes)


def check_epochs_left(epochs: int, manifest: dict[str, Any], source: Path) -> None:
    """A resume must have an epoch left to train."""
    done = int(manifest.get("epoch") or 0)
    mid_epoch = bool((manifest.get("state") or {}).get("step_in_epoch"))
    if epochs < done or (epochs == done and not mid_epoch):
        raise ConfigError(f"{source} has trained {done} epochs already, and this run asks for "
                          f"{epochs} in all: nothing is left to train; give --epochs more than "
                          f"{done} to train further", "epochs")


def train(ctx, run, kwargs: dict[str, Any], resume_from: Path | None, manifest,
          changes: list[str] = ()) -> None:
    """Pick the BLAS threads, fit, and keep run.json's status true at every moment."""
    from trainkit.run import write_status
    from trainkit.threads import (
        available_cores,
        blas_kernels,
        blas_threads,
        calibrate,
        default_threads,
        model_state_kept,
        training_step_probe,
    )

    trainer = run.trainer
    main = trainer.is_main_process
    say = click.echo if main else (lambda *args, **kwargs: None)
    threads_wanted = run.config.get("threads")
    split_batch = getattr(trainer.model, "splits_batch", False)
    cores = available_cores()
    if isinstance(threads_wanted, int) and threads_wanted > cores:
        say(f"trainkit: warning: --threads {threads_wanted} is more than the {cores} cores this "
            f"process can use: BLAS threads then wait for each other, and training can be many "
            f"times slower", err=True)
    if threads_wanted is None and manifest is not None:
        threads_wanted = manifest.get("blas_threads")
    preferred = [p.preferred_blas_threads for p in run.plugins.values()
                 if getattr(p, "preferred_blas_threads", None)]
    if threads_wanted is None and preferred:
        threads_wanted = min(preferred)
    if threads_wanted is None:
        threads_wanted = default_threads(split_batch)
    if threads_wanted == "auto":
        with model_state_kept(trainer.model):
            threads_wanted = calibrate(training_step_probe(
                trainer.model, trainer.loss, run.config["batch_size"], run.splits.input_size,
                trainer.optimizer), split_batch=split_batch)
    if run.config["val_split"] == 0:
        say("trainkit: warning: --val-split 0 validates on the test split: best.npz, early "
            "stopping and plateau schedules then pick on test data", err=True)
    status = "failed"
    if main:
        write_status(run, "running")
    try:
        with blas_threads(threads_wanted, split_batch) as threads:
            trainer.blas_threads, trainer.blas_kernels = threads, blas_kernels()
            recorded = manifest.get("blas_kernels") if manifest is not None else None
            if recorded and recorded != trainer.blas_kernels:
                say(f"trainkit: note: {resume_from} was written with BLAS {recorded}, this run uses "
                    f"{trainer.blas_kernels}: it can differ in the last bits from a run that was "
                    "never interrupted", err=True)
            what = "training"
            if resume_from is not None:
                state = trainer.state
                where = f"after epoch {state.epoch}" if not state.step_in_epoch else \
                    f"in epoch {state.epoch + 1} after step {state.step_in_epoch}"
                what = f"resuming from {resume_from} {where}:"
                if changes:
                    say(f"trainkit: resuming with changes: {'; '.join(changes)}")
            say(
                f"trainkit: {what} {run.config['model']} ({trainer.model.describe()}) on "
                f"{run.config['dataset']} with {run.config['optimizer']}, "
                f"{plural(run.config['epochs'], 'epoch')} in all, batch "
                f"{run.config['batch_size']}, {plural(threads, 'BLAS thread')}; "
                f"run folder {run.run_dir}"
            )
            try:
                trainer.fit(run.train_loader, run.val_loader, epochs=run.config["epochs"],
                            test=run.test_loader)
            except KeyboardInterrupt:
                status = "interrupted"
                say(f"trainkit: interrupted at epoch {trainer.state.epoch + 1}, "
                    f"step {trainer.state.step_in_epoch}; run folder {run.run_dir}", err=True)
                ctx.exit(EXIT_INTERRUPTED)
            if kwargs.get("profile_hooks") and main:
                click.echo(trainer.profiler.table(trainer.loop_seconds))
        status = trainer.stop_reason or "completed"
    finally:
        if main:
            write_status(run, status)
    if status == "nan":
        raise click.ClickException(
            f"training stopped by nan-guard: {trainer.stop_message or 'the loss is not finite'}; "
            f"the last good checkpoint (if any) is in {run.run_dir}")
    why = f" ({trainer.stop_message})" if trainer.stop_message else ""
    scores = ""
    if trainer.test_logs:
        scores = "; " + " ".join(f"{k}: {format_value(v, 4)}"
                                 for k, v in trainer.test_logs.items())
    say(f"trainkit: {status} after epoch {trainer.state.epoch}{why}{scores}; "
        f"run folder {run.run_dir}")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


RESUMABLE = ("last.npz", "emergency.npz")


def newest_checkpoint(folder: Path) -> Path | None:
    """The newer of a run folder's ``last.npz`` and ``emergency.npz``, if it has either."""
    found = [folder / name for name in RESUMABLE if (folder / name).is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


def model_in_run_folder(folder: Path) -> Path:
    """The model a run folder hands over: ``final.npz``, else its newest resumable checkpoint."""
    from trainkit.errors import CheckpointError

    if (folder / "final.npz").is_file():
        return folder / "final.npz"
    found = newest_checkpoint(folder)
    if found is None:
        raise CheckpointError(f"{folder}: run folder holds no final.npz, last.npz or "
                              f"emergency.npz")
    return found


def resolve_resume_path(value: str, out: Path | None) -> Path:
    """``--resume``: a checkpoint file, a run folder, or ``last`` (the newest run under
    ``runs/``, or the ``--out`` folder)."""
    from trainkit.errors import CheckpointError

    if value == "last":
        folders = [Path(out)] if out is not None else [p for p in Path("runs").glob("*")
                                                      if p.is_dir()]
        candidates = [c for c in map(newest_checkpoint, folders) if c is not None]
        if not candidates:
            where = out if out is not None else "runs/"
            raise CheckpointError(f"--resume last: no checkpoint (last.npz or emergency.npz) "
                                  f"in {where}")
        return max(candidates, key=lambda p: p.stat().st_mtime_ns)
    path = Path(value)
    if path.is_dir():
        found = newest_checkpoint(path)
        if found is None:
            raise CheckpointError(f"{path}: run folder holds no last.npz or emergency.npz")
        return found
    return path


#: Files that only a run writes: a folder holding one of them holds a run.
RUN_FILES = ("run.json", "last.npz", "best.npz", "final.npz", "emergency.npz", "history.csv")


def holds_a_run(folder: Path) -> bool:
    if not folder.is_dir():
        return False
    return any((folder / name).exists() for name in RUN_FILES) or \
        any(folder.glob("epoch-*.npz"))


def clear_run_dir(folder: Path) -> None:
    """Remove everything in a run folder but its lock file."""
    import shutil

    from trainkit.run_lock import LOCK_NAME

    for entry in folder.iterdir():
        if entry.name == LOCK_NAME:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def prepare_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: run folder exists and is not a folder", "out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{run_dir}: cannot create run folder ({e.strerror})", "out") from None
