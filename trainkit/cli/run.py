"""``trainkit run``: its options come from the registered components and run plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from click.core import ParameterSource

from trainkit.cli.app import EXIT_INTERRUPTED, RUN_SHORT_HELP, AppState
from trainkit.cli.errors import cli_errors
from trainkit.cli.options import (
    PLUGIN_MODULE_HELP,
    STRICT_PLUGINS_HELP,
    VERBOSE_HELP,
    GroupedCommand,
    GroupedOption,
    LimitBatchesType,
    LrType,
    ThreadsType,
    describe_default,
    envvar_of,
    flag_of,
    spec_option,
)
from trainkit.errors import ConfigError
from trainkit.plugin.options import plugin_option_param
from trainkit.plugin.registry import KINDS
from trainkit.session.config import RUN_DEFAULTS

#: The run keys (RUN_DEFAULTS) are the core options: one source for both.
CORE_OPTIONS = tuple(RUN_DEFAULTS)
#: --help's heading of each component kind's options: the kinds come from the registry.
KIND_TITLES = {kind: f"{kind.capitalize()} options" for kind in KINDS if kind != "plugin"}


def make_run_command(app: AppState) -> click.Command:
    """``trainkit run``, with an option for every run key, component option and plugin option."""
    from trainkit.session.config import component_option_owners

    registry = app.registry
    names = {kind: registry.names(kind) for kind in KINDS}
    params = [*choice_options(names, registry.defaults(), registry.model_plugins()),
              *training_options(),
              *session_options()]
    owners = component_option_owners(registry)
    params += component_options(app, owners)
    plugin_params = plugin_options(app, params)

    def callback(**kwargs: Any) -> None:
        ctx = click.get_current_context()
        run_command(ctx, app, kwargs, set(owners), plugin_params)

    return GroupedCommand(
        "run", params=params, callback=callback,
        help="Train a model. Every part of the run is a plugin; see `trainkit plugins`.",
        short_help=RUN_SHORT_HELP,
    )


def default_of(key: str) -> str:
    """``--help``'s default of a run key, from ``RUN_DEFAULTS``: the one source."""
    from trainkit.session.config import RUN_DEFAULTS

    value = RUN_DEFAULTS[key]
    return ", ".join(value) if isinstance(value, list) else str(value)


def choice_options(names: dict[str, list[str]], defaults_on: list[str],
                   model_plugins: dict[str, list[str]] | None = None) -> list[click.Parameter]:
    """The components and run plugins to use."""
    for_models = "".join(f"; {', '.join(plugins)} with --model {model}"
                         for model, plugins in (model_plugins or {}).items())

    def choice(kind: str, help_text: str) -> GroupedOption:
        return GroupedOption([f"--{kind}"], type=click.Choice(names[kind]), default=None,
                             default_text=default_of(kind), help=help_text,
                             envvar=envvar_of(kind))

    return [
        choice("dataset", "Dataset to train on."),
        choice("model", "Model to build."),
        choice("optimizer", "Optimizer."),
        choice("loss", "Loss function."),
        GroupedOption(["--metric"], type=click.Choice(names["metric"]), multiple=True,
                      default_text=default_of("metric"), envvar="TRAINKIT_METRIC",
                      help="Metric to log (repeatable)."),
        GroupedOption(["--plugin"], type=click.Choice(names["plugin"]), multiple=True,
                      envvar="TRAINKIT_PLUGIN", help="Turn a run plugin on (repeatable)."),
        GroupedOption(["--no-plugin"], type=click.Choice(names["plugin"]), multiple=True,
                      envvar="TRAINKIT_NO_PLUGIN",
                      help=f"Turn a run plugin off (repeatable). On by default: "
                           f"{', '.join(defaults_on) or 'none'}{for_models}."),
        *global_options(),
    ]


def global_options() -> list[click.Parameter]:
    """The options the ``trainkit`` group takes too, accepted after ``run`` as well."""
    return [
        GroupedOption(["-p", "plugin_module"], multiple=True, metavar="MODULE|no:NAME",
                      help=PLUGIN_MODULE_HELP),
        GroupedOption(["--strict-plugins"], is_flag=True, help=STRICT_PLUGINS_HELP),
        GroupedOption(["-v", "--verbose"], is_flag=True, help=VERBOSE_HELP),
    ]


def training_options() -> list[click.Parameter]:
    """How long, on what, and how the data is cut."""
    return [
        GroupedOption(["--epochs"], type=click.IntRange(min=1), default_text=default_of("epochs"),
                      envvar="TRAINKIT_EPOCHS", help="Epochs to train (in total, on resume)."),
        GroupedOption(["--batch-size"], type=click.IntRange(min=1),
                      default_text=default_of("batch_size"), envvar="TRAINKIT_BATCH_SIZE",
                      help="Samples per training batch."),
        GroupedOption(["--accumulate"], type=click.IntRange(min=1), metavar="N",
                      default_text=default_of("accumulate"), envvar="TRAINKIT_ACCUMULATE",
                      help="Batches per optimizer step: their gradients are averaged (a batch "
                           "N times as large, in memory of one)."),
        GroupedOption(["--seed"], type=int, default_text=default_of("seed"),
                      envvar="TRAINKIT_SEED", help="Seed of the weights and the data order."),
        GroupedOption(["--val-split"], type=click.FloatRange(0, 1, max_open=True),
                      default_text=default_of("val_split"), envvar="TRAINKIT_VAL_SPLIT",
                      help="Fraction of the training set held out (seeded) for validation; the "
                           "test split is scored once, at the end. 0 validates on the test split."),
        GroupedOption(["--limit-batches"], type=LimitBatchesType(), metavar="N|all",
                      envvar="TRAINKIT_LIMIT_BATCHES",
                      help="Train and validate on the first N batches of each epoch only: a "
                           "smoke run. 'all' (or 0) lifts a limit, a resumed run's too.  "
                           "[default: all]"),
        GroupedOption(["--threads"], type=ThreadsType(), envvar="TRAINKIT_THREADS",
                      default_text="all cores for a convnet, 1 otherwise",
                      help="Threads: a count, or 'auto' to time 1 against all cores at the start "
                           "(fastest under load, but the last bits of the results then depend on "
                           "it)."),
    ]


def session_options() -> list[click.Parameter]:
    """Where the run goes, what it continues, and what the command prints."""
    return [
        GroupedOption(["--out"], type=click.Path(path_type=Path), envvar="TRAINKIT_OUT",
                      help="Run folder.  [default: runs/<timestamp>]"),
        GroupedOption(["--overwrite"], is_flag=True,
                      help="Clear a run folder that holds an earlier run, then train in it "
                           "(without it such a folder is refused)."),
        GroupedOption(["--resume"], metavar="PATH|last",
                      help="Continue from a checkpoint file, a run folder, or 'last'."),
        GroupedOption(["--config"], type=click.Path(path_type=Path),
                      help="TOML file of options; command-line flags override it."),
        GroupedOption(["--print-config"], is_flag=True,
                      help="Print the full effective config as TOML and exit."),
        GroupedOption(["--profile-hooks"], is_flag=True,
                      help="Print the time each plugin spends in each hook at the end."),
    ]


def component_options(app: AppState, owners) -> list[click.Parameter]:
    """One option per component option name, shared by every component that takes it."""
    registry, params = app.registry, list[click.Parameter]()
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
        help_text, param_type = spec.help, None
        if option_name == "lr":  # every optimizer's; the session sweeps it for 'auto'
            help_text = (f"{help_text.rstrip('.')}, or auto: the lr finder's suggestion "
                         "(trainkit lr-find), found before training.")
            param_type = LrType()
        params.append(spec_option(option_name, spec, f"{help_text}  {default_text}".strip(),
                                  KIND_TITLES[first_kind], param_type=param_type))
    return params


def plugin_options(app: AppState, params: list[click.Parameter]) -> dict[str, tuple[str, str]]:
    """Add every run plugin's options to ``params``; returns parameter name -> (plugin, option)."""
    names = app.registry.names("plugin")
    plugin_params: dict[str, tuple[str, str]] = {}
    for plugin_name in names:
        component = app.registry.get("plugin", plugin_name)
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
    return plugin_params


def given_options(ctx: click.Context, kwargs: dict[str, Any]) -> dict[str, Any]:
    """Only the options the user set, on the command line or in the environment."""
    given = {}
    for name, value in kwargs.items():
        source = ctx.get_parameter_source(name)
        if source in (ParameterSource.COMMANDLINE, ParameterSource.ENVIRONMENT):
            given[name] = list(value) if isinstance(value, tuple) and name in (
                "metric", "plugin", "no_plugin", "plugin_module") else value
    return given


def echo(message: str, error: bool = False) -> None:
    click.echo(message, err=error)


def run_command(ctx, app: AppState, kwargs: dict[str, Any], component_options: set[str],
                plugin_params: dict[str, tuple[str, str]]) -> None:
    """Turn the arguments into a config layer, run a Session, map its outcome to an exit code."""
    from trainkit.session.session import Session

    given = given_options(ctx, kwargs)
    layer = config_layer(app, given, component_options, plugin_params)
    # An environment variable is ambient: set for every run of the shell, it is no mistake when
    # the run does not use its component or plugin (TRAINKIT_DATA_DIR with a dataset that reads
    # no folder); the same value typed on the command line is.
    ambient = {name for name in given
               if ctx.get_parameter_source(name) is ParameterSource.ENVIRONMENT}
    session = Session(layer, config_file=kwargs.get("config"), resume=kwargs.get("resume"),
                      overwrite=bool(kwargs.get("overwrite")), pm=app.pm, registry=app.registry,
                      report=echo, ambient=ambient & component_options, verbose=app.verbose)
    with cli_errors(app.verbose):
        run = session.resolve()
        for param_name, (plugin, _) in plugin_params.items():
            if param_name in given and param_name not in ambient and plugin not in run.plugins:
                raise ConfigError(f"{flag_of(param_name)} is an option of plugin {plugin!r}, "
                                  f"which is off; turn it on with --plugin {plugin}", param_name)
        if kwargs.get("print_config"):
            from trainkit.session.tomlio import dump_toml

            click.echo(dump_toml(session.effective_config()), nl=False)
            return
        outcome = session.fit()
    if outcome.status == "interrupted":
        ctx.exit(EXIT_INTERRUPTED)
    if kwargs.get("profile_hooks") and outcome.trainer.context.is_main_process:
        click.echo(outcome.trainer.profiler.table(outcome.trainer.loop_seconds))
    if outcome.status == "nan":
        raise click.ClickException(outcome.message)


def session_of(app: AppState, run: click.Command, given: dict[str, Any],
               config_file: Any) -> Any:
    """A Session of the options ``given`` to a command that takes ``run``'s (``summary``,
    ``lr-find``): the run it would train, nothing resumed."""
    from trainkit.session.config import component_option_owners
    from trainkit.session.session import Session

    owners = set(component_option_owners(app.registry))
    layer = config_layer(app, given, owners, plugin_options(app, list(run.params)))
    return Session(layer, config_file=config_file, pm=app.pm, registry=app.registry)


def config_layer(app: AppState, given: dict[str, Any], component_options: set[str],
                 plugin_params: dict[str, tuple[str, str]]) -> dict[str, Any]:
    """The options given on the command line (or in the environment) as a config layer."""
    layer: dict[str, Any] = {}
    for name, value in given.items():
        if name in CORE_OPTIONS or name in component_options:
            layer[name] = value
        elif name in plugin_params:
            plugin, option = plugin_params[name]
            layer.setdefault(plugin, {})[option] = value
    for name in given:  # the option named after a plugin turns it on: --lr-schedule cosine
        if name in plugin_params and name == plugin_params[name][0].replace("-", "_"):
            layer.setdefault("plugin", []).append(plugin_params[name][0])
    for name in app.blocked:  # -p no:NAME also turns a run plugin of that name off
        if name in app.registry.components["plugin"]:
            layer.setdefault("no_plugin", []).append(name)
    return layer
