"""The ``trainkit`` command line: ``run``, ``plugins``, ``evaluate``, and commands plugins add.

The plugin manager is built before any command is parsed (``-p MODULE`` and ``-p no:NAME`` are read
from the raw arguments first, as pytest does), so that plugins can add options and commands.
Inside, errors are trainkit exceptions; here, and only here, they become click errors: usage
errors exit with code 2, runtime errors with code 1, and a traceback shows only with ``-v``.
"""

from __future__ import annotations

import sys
import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from trainkit import __version__
from trainkit.errors import ConfigError, TrainkitError
from trainkit.run_lock import RunLock

CORE_OPTIONS = ("dataset", "model", "optimizer", "loss", "metric", "plugin", "no_plugin",
                "epochs", "batch_size", "seed", "out", "threads")
KIND_TITLES = {"dataset": "Dataset options", "model": "Model options",
               "optimizer": "Optimizer options", "loss": "Loss options",
               "metric": "Metric options"}
EXIT_INTERRUPTED = 130


# --------------------------------------------------------------------------- plugin loading


@dataclass
class AppState:
    """The plugin manager and registry of one CLI invocation."""

    pm: Any
    registry: Any
    verbose: bool = False
    strict: bool = False
    blocked: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, args: Sequence[str], group: click.Group) -> AppState:
        from trainkit.errors import PluginError
        from trainkit.plugin_manager import PluginWarning, get_plugin_manager
        from trainkit.registry import Registry

        modules, blocked, strict, verbose = prescan(args)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PluginWarning)
            try:
                pm = get_plugin_manager(extra_modules=(), blocked=blocked, strict=strict)
                for plugin in getattr(group, "extra_plugins", ()):
                    pm.register(plugin, name=getattr(plugin, "name", None) or type(plugin).__name__)
                for module in modules:
                    try:
                        pm.load_module(module)
                    except Exception as e:
                        raise click.UsageError(
                            f"-p {module}: cannot import plugin module: {type(e).__name__}: {e}"
                        ) from None
                registry = Registry.collect(pm, strict=strict)
                add_plugin_commands(pm, group, strict)
            except (PluginError, TrainkitError) as e:
                if verbose:
                    traceback.print_exc()
                raise click.ClickException(f"{e} (--strict-plugins)" if strict else str(e)) from None
        for warning in caught:
            if issubclass(warning.category, PluginWarning):
                click.echo(f"trainkit: warning: {warning.message}", err=True)
        return cls(pm, registry, verbose, strict, blocked)


def prescan(args: Sequence[str]) -> tuple[list[str], list[str], bool, bool]:
    """Read ``-p MODULE``, ``-p no:NAME``, ``--strict-plugins`` and ``-v`` from raw arguments."""
    modules: list[str] = []
    blocked: list[str] = []
    strict = verbose = False
    args = list(args)
    i = 0
    while i < len(args):
        arg = args[i]
        value = None
        if arg == "--":
            break
        if arg == "-p" and i + 1 < len(args):
            value, i = args[i + 1], i + 2
        elif arg.startswith("-p") and not arg.startswith("--") and len(arg) > 2:
            value, i = arg[2:], i + 1
        else:
            strict = strict or arg == "--strict-plugins"
            verbose = verbose or arg in ("-v", "--verbose")
            i += 1
        if value is not None:
            (blocked if value.startswith("no:") else modules).append(value.removeprefix("no:"))
    return modules, blocked, strict, verbose


def add_plugin_commands(pm, group: click.Group, strict: bool) -> None:
    for impl in pm.hook.register_commands.get_hookimpls():
        try:
            impl.function(*[group for _ in impl.argnames])
        except Exception as e:
            if pm.info(impl.plugin_name).source == "built-in":
                raise
            pm.skip(impl.plugin_name, e, strict=strict, doing="register_commands")


class TrainkitGroup(click.Group):
    """Loads the plugins before parsing, then builds ``run`` from what they registered."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if ctx.obj is None:
            ctx.obj = AppState.load(args, self)
        return super().parse_args(ctx, args)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({"run", *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name == "run" and isinstance(ctx.obj, AppState):
            return make_run_command(ctx.obj)
        return super().get_command(ctx, name)


# --------------------------------------------------------------------------- option building


class GroupedOption(click.Option):
    """An option that knows which heading of ``--help`` it belongs under."""

    def __init__(self, *args: Any, group: str = "Run options", **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.group = group


class GroupedCommand(click.Command):
    """A command whose ``--help`` shows options under their group's heading."""

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        groups: dict[str, list[tuple[str, str]]] = {}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is not None:
                groups.setdefault(getattr(param, "group", "Run options"), []).append(record)
        for title, rows in groups.items():
            with formatter.section(title):
                formatter.write_dl(rows)


class IntTuple(click.ParamType):
    name = "N[,N...]"

    def convert(self, value: Any, param: Any, ctx: Any) -> tuple[int, ...]:
        from trainkit.options import parse_int_tuple

        try:
            return parse_int_tuple(value)
        except ValueError as e:
            self.fail(f"{value!r} {e}", param, ctx)


class ThreadsType(click.ParamType):
    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | None:
        if value in (None, "auto") or isinstance(value, int) and value > 0:
            return None if value in (None, "auto") else value
        try:
            count = int(value)
        except ValueError:
            self.fail(f"{value!r} is not a positive integer or 'auto'", param, ctx)
        if count < 1:
            self.fail(f"{value!r} is not a positive integer or 'auto'", param, ctx)
        return count


def click_type(spec) -> Any:
    if spec.choices is not None:
        return click.Choice([str(c) for c in spec.choices])
    return {int: click.INT, float: click.FLOAT, Path: click.Path(path_type=Path),
            tuple: IntTuple()}.get(spec.type, click.STRING)


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def envvar_of(name: str) -> str:
    return "TRAINKIT_" + name.upper().replace("-", "_")


def spec_option(param_name: str, spec, help_text: str, group: str) -> GroupedOption:
    flag = flag_of(param_name)
    decls = [f"{flag}/--no-{flag[2:]}"] if spec.is_flag else [flag]
    return GroupedOption(decls, param_name, type=None if spec.is_flag else click_type(spec),
                         default=None, help=help_text, envvar=envvar_of(param_name), group=group)


def describe_default(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)


def make_run_command(app: AppState) -> click.Command:
    from trainkit.run import component_option_owners

    registry = app.registry
    names = {kind: registry.names(kind) for kind in ("dataset", "model", "optimizer", "loss",
                                                    "metric", "plugin")}
    defaults_on = registry.defaults()

    def choice_option(flag: str, kind: str, default: str, help_text: str, **kw: Any):
        return GroupedOption([flag], type=click.Choice(names[kind]), default=None,
                             show_default=default, help=help_text,
                             envvar=envvar_of(flag[2:]), **kw)

    params: list[click.Parameter] = [
        choice_option("--dataset", "dataset", "mnist", "Dataset to train on."),
        choice_option("--model", "model", "mlp", "Model to build."),
        choice_option("--optimizer", "optimizer", "adam", "Optimizer."),
        choice_option("--loss", "loss", "cross-entropy", "Loss function."),
        GroupedOption(["--metric"], type=click.Choice(names["metric"]), multiple=True,
                      show_default="accuracy", help="Metric to log (repeatable)."),
        GroupedOption(["--plugin"], type=click.Choice(names["plugin"]), multiple=True,
                      help="Turn a run plugin on (repeatable)."),
        GroupedOption(["--no-plugin"], type=click.Choice(names["plugin"]), multiple=True,
                      help=f"Turn a run plugin off (repeatable). On by default: "
                           f"{', '.join(defaults_on) or 'none'}."),
        GroupedOption(["-p"], "plugin_module", multiple=True, metavar="MODULE|no:NAME",
                      help="Load a plugin module by import path, or block one (no:NAME)."),
        GroupedOption(["--epochs"], type=click.IntRange(min=1), show_default="10",
                      envvar="TRAINKIT_EPOCHS", help="Epochs to train (in total, on resume)."),
        GroupedOption(["--batch-size"], type=click.IntRange(min=1), show_default="64",
                      envvar="TRAINKIT_BATCH_SIZE", help="Samples per training batch."),
        GroupedOption(["--seed"], type=int, show_default="42", envvar="TRAINKIT_SEED",
                      help="Seed of the weights and the data order."),
        GroupedOption(["--out"], type=click.Path(path_type=Path), envvar="TRAINKIT_OUT",
                      help="Run folder.  [default: runs/<timestamp>]"),
        GroupedOption(["--resume"], metavar="PATH|last",
                      help="Continue from a checkpoint file, a run folder, or 'last'."),
        GroupedOption(["--threads"], type=ThreadsType(), envvar="TRAINKIT_THREADS",
                      show_default="auto", help="BLAS threads."),
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
        defaults = {}
        for kind, comp_name in owned_by:
            comp_spec = next(s for s in registry.get(kind, comp_name).options
                             if s.name == option_name)
            defaults.setdefault(describe_default(comp_spec.default), []).append(comp_name)
        if len(defaults) == 1:
            default_text = f"[default: {next(iter(defaults))}; {', '.join(n for _, n in owned_by)}]"
        else:
            default_text = "[default: " + "; ".join(
                f"{d} for {', '.join(ns)}" for d, ns in defaults.items()) + "]"
        params.append(spec_option(option_name, spec, f"{spec.help}  {default_text}".strip(),
                                  KIND_TITLES[first_kind]))

    plugin_params: dict[str, tuple[str, str]] = {}
    for plugin_name in names["plugin"]:
        component = registry.get("plugin", plugin_name)
        state = "on by default" if component.default else "--plugin " + plugin_name
        for spec in component.options:
            param_name = f"{plugin_name}_{spec.name}".replace("-", "_")
            plugin_params[param_name] = (plugin_name, spec.name)
            params.append(spec_option(
                param_name, spec,
                f"{spec.help}  [default: {describe_default(spec.default)}]".strip(),
                f"Plugin {plugin_name} ({state})"))

    def callback(**kwargs: Any) -> None:
        ctx = click.get_current_context()
        run_command(ctx, app, kwargs, set(owners), plugin_params)

    return GroupedCommand(
        "run", params=params, callback=callback,
        help="Train a model. Every part of the run is a plugin; see `trainkit plugins`.",
        short_help="Train a model.",
    )


# --------------------------------------------------------------------------- run


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
    run_plugins = set(app.registry.names("plugin"))
    for name in app.blocked:
        if name in run_plugins:
            cli_layer.setdefault("no_plugin", []).append(name)
        elif name not in app.pm.infos and not app.pm.has_plugin(name) and not is_entry_point(name):
            raise click.BadParameter(f"unknown plugin {name!r}; known: "
                                     f"{', '.join(sorted(set(app.pm.infos) | run_plugins))}",
                                     param_hint="'-p no:NAME'")
    with cli_errors(app.verbose):
        layers = []
        resume_from = None
        if kwargs.get("resume"):
            from trainkit.checkpoint_io import load_checkpoint

            resume_from = resolve_resume_path(kwargs["resume"], kwargs.get("out"))
            manifest, arrays = load_checkpoint(resume_from)
            layers.append(manifest.get("config") or {})
        if kwargs.get("config"):
            layers.append(read_toml(kwargs["config"]))
        layers.append(cli_layer)
        config = runlib.merge_configs(*layers)
        if resume_from is not None and "out" not in cli_layer:
            config["out"] = str(resume_from.parent)
        run = runlib.resolve(config, app.registry)
        for param_name, (plugin, _) in plugin_params.items():
            if param_name in given and plugin not in run.plugins:
                raise ConfigError(f"{flag_of(param_name)} is an option of plugin {plugin!r}, "
                                  f"which is off; turn it on with --plugin {plugin}", param_name)
        if kwargs.get("print_config"):
            click.echo(dump_toml(runlib.effective_config(run)), nl=False)
            return
        runlib.build(run, app.pm)
        trainer = run.trainer
        if resume_from is not None:
            from trainkit.snapshot import restore

            restore(trainer, manifest, arrays, source=str(resume_from))
        if not trainer.is_main_process:  # other data-parallel ranks write nothing
            train(ctx, run, kwargs, resume_from, manifest if resume_from else None)
            return
        prepare_run_dir(run.run_dir)
        with RunLock(run.run_dir) as lock:
            if lock.stale_owner:
                click.echo(f"trainkit: took over the lock of process {lock.stale_owner.get('pid')}, "
                           f"which is no longer running", err=True)
            train(ctx, run, kwargs, resume_from, manifest if resume_from else None)


def train(ctx, run, kwargs: dict[str, Any], resume_from: Path | None, manifest) -> None:
    """Pick the BLAS threads, fit, and keep run.json's status true at every moment."""
    from trainkit.run import write_status
    from trainkit.threads import blas_threads, calibrate, training_step_probe

    trainer = run.trainer
    main = trainer.is_main_process
    say = click.echo if main else (lambda *args, **kwargs: None)
    threads_wanted = run.config.get("threads")
    if threads_wanted is None and manifest is not None:
        threads_wanted = manifest.get("blas_threads")
    preferred = [p.preferred_blas_threads for p in run.plugins.values()
                 if getattr(p, "preferred_blas_threads", None)]
    if threads_wanted is None and preferred:
        threads_wanted = min(preferred)
    if threads_wanted is None:
        threads_wanted = calibrate(training_step_probe(
            trainer.model, trainer.loss, run.config["batch_size"], run.splits.input_size))
    status = "failed"
    if main:
        write_status(run, "running")
    try:
        with blas_threads(threads_wanted) as threads:
            trainer.blas_threads = threads
            what = "resuming" if resume_from else "training"
            say(
                f"trainkit: {what} {run.config['model']} ({trainer.model.describe()}) on "
                f"{run.config['dataset']} with {run.config['optimizer']}, "
                f"{plural(run.config['epochs'], 'epoch')}, batch {run.config['batch_size']}, "
                f"{plural(threads, 'BLAS thread')}; run folder {run.run_dir}"
            )
            try:
                trainer.fit(run.train_loader, run.val_loader, epochs=run.config["epochs"])
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
    say(f"trainkit: {status} after epoch {trainer.state.epoch}; run folder {run.run_dir}")


def plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def is_entry_point(name: str) -> bool:
    from importlib.metadata import entry_points

    return any(ep.name == name for ep in entry_points(group="trainkit"))


RESUMABLE = ("last.npz", "emergency.npz")


def newest_checkpoint(folder: Path) -> Path | None:
    """The newer of a run folder's ``last.npz`` and ``emergency.npz``, if it has either."""
    found = [folder / name for name in RESUMABLE if (folder / name).is_file()]
    return max(found, key=lambda p: p.stat().st_mtime_ns) if found else None


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


def prepare_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: run folder exists and is not a folder", "out")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{run_dir}: cannot create run folder ({e.strerror})", "out") from None


class cli_errors:
    """Turn trainkit's exceptions into click errors at the CLI boundary."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not isinstance(exc, (TrainkitError, OSError)):
            return False
        if self.verbose:
            traceback.print_exception(exc_type, exc, tb)
        if isinstance(exc, OSError):  # a disk or system failure nobody anticipated
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from None
        if isinstance(exc, ConfigError):
            hint = f"'{flag_of(exc.option)}'" if exc.option else None
            raise click.BadParameter(str(exc), param_hint=hint) from None
        raise click.ClickException(str(exc)) from None


# --------------------------------------------------------------------------- other commands


def hook_call_order(app: AppState) -> dict[str, list[str]]:
    """Every lifecycle hook's implementations in the order pluggy calls them, with one instance
    of every run plugin that can be created with its default options registered."""
    from trainkit.options import instantiate
    from trainkit.profiler import LIFECYCLE_HOOKS
    from trainkit.trainer import RUN_PLUGIN_PREFIX

    registered = []
    for name in app.registry.names("plugin"):
        try:
            plugin = instantiate(app.registry.get("plugin", name).factory, {})
        except Exception:  # e.g. plot without matplotlib: it cannot run, so it has no place
            continue
        registered.append(app.pm.register(plugin, name=RUN_PLUGIN_PREFIX + name))
    try:
        order = {}
        for hook_name in [*LIFECYCLE_HOOKS, "on_fit_end", "on_exception", "on_save_checkpoint",
                          "on_load_checkpoint"]:
            impls = getattr(app.pm.hook, hook_name).get_hookimpls()
            order[hook_name] = [impl.plugin_name for impl in reversed(impls)]
        return order
    finally:
        for name in registered:
            app.pm.unregister(name=name)


@click.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Also show every option and hook.")
@click.option("--hooks", "show_hooks", is_flag=True,
              help="Show the order in which plugins are called for every lifecycle hook.")
@click.pass_obj
def plugins_command(app: AppState, show_all: bool, show_hooks: bool) -> None:
    """List the plugins and the components they register."""
    registry, pm = app.registry, app.pm
    if show_hooks:
        click.echo("Lifecycle hooks, in call order ('run:NAME' is a run plugin):")
        for hook_name, names in hook_call_order(app).items():
            click.echo(f"  {hook_name}: {' -> '.join(names) if names else '(none)'}")
        return
    rows = [(c.kind, c.name, c.plugin, c.summary) for c in registry.all()]
    width = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    click.echo("Components:")
    for kind, name, plugin, summary in rows:
        default = " (on by default)" if kind == "plugin" and name in registry.defaults() else ""
        click.echo(f"  {kind:<{width[0]}}  {name:<{width[1]}}  {plugin:<{width[2]}}  "
                   f"{summary}{default}")
        if show_all:
            component = registry.get(kind, name)
            for spec in component.options:
                flag = flag_of(f"{name}_{spec.name}" if kind == "plugin" else spec.name)
                click.echo(f"      {flag} = {describe_default(spec.default)}"
                           + (f"  {spec.help}" if spec.help else ""))
    click.echo("\nPlugins:")
    for name in sorted(n for n, _ in pm.list_name_plugin()):
        info = pm.info(name)
        origin = f"{info.distribution} {info.version}" if info.distribution else ""
        hooks = sorted(h.name for h in pm.get_hookcallers(pm.get_plugin(name)) or [])
        click.echo(f"  {name}  [{info.source}{', ' + origin if origin else ''}]  "
                   f"hooks: {', '.join(hooks)}")
    for name, error in pm.failures:
        click.echo(f"  {name}  [skipped]  {error}")


@click.command("evaluate")
@click.argument("checkpoint", type=click.Path(path_type=Path))
@click.option("--data-dir", type=click.Path(path_type=Path), envvar="TRAINKIT_DATA_DIR",
              help="Folder that holds the dataset's files.")
@click.option("--batch-size", type=click.IntRange(min=1), default=1000, show_default=True)
@click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of errors.")
@click.pass_obj
def evaluate_command(app: AppState, checkpoint: Path, data_dir: Path | None, batch_size: int,
                     verbose: bool) -> None:
    """Print loss and metrics of CHECKPOINT on its dataset's test split."""
    from trainkit import run as runlib
    from trainkit.checkpoint_io import load_checkpoint
    from trainkit.snapshot import restore

    with cli_errors(verbose or app.verbose):
        manifest, arrays = load_checkpoint(checkpoint)
        config = dict(manifest.get("config") or {})
        config = {k: v for k, v in config.items() if not isinstance(v, dict)}
        config.update(plugin=[], no_plugin=app.registry.defaults(), out=None)
        if data_dir is not None:
            config["data_dir"] = str(data_dir)
        run = runlib.resolve(config, app.registry)
        runlib.build(run, app.pm)
        restore(run.trainer, manifest, arrays, source=str(checkpoint))
        run.val_loader.batch_size = batch_size
        logs = run.trainer.evaluate(run.val_loader)
        parts = " ".join(f"{k}: {v:.4f}" for k, v in logs.items())
        click.echo(f"{checkpoint} (epoch {manifest.get('epoch')}) on {config.get('dataset')} "
                   f"test: {parts}")


def make_cli(plugins: Sequence[object] = ()) -> click.Group:
    """A fresh ``trainkit`` command group (plugins may add commands to it).

    ``plugins`` are extra plugin objects registered next to the installed ones, for embedding the
    CLI or testing a plugin without installing it.
    """

    @click.group(cls=TrainkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="trainkit")
    @click.option("-p", "plugin_module", multiple=True, metavar="MODULE|no:NAME",
                  help="Load a plugin module by import path, or block a plugin (no:NAME).")
    @click.option("--strict-plugins", is_flag=True,
                  help="Fail when a plugin cannot be loaded instead of skipping it.")
    @click.option("-v", "--verbose", is_flag=True, help="Show tracebacks of errors.")
    def cli(plugin_module: tuple[str, ...], strict_plugins: bool, verbose: bool) -> None:
        """trainkit: train numpy neural networks, every part a plugin."""

    cli.add_command(plugins_command)
    cli.add_command(evaluate_command)
    cli.extra_plugins = list(plugins)  # type: ignore[attr-defined]
    return cli


def main(argv: Sequence[str] | None = None) -> None:
    make_cli().main(args=list(sys.argv[1:] if argv is None else argv), prog_name="trainkit")
