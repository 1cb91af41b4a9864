"""Loading the plugins for one CLI invocation, before any command is parsed.

``-p MODULE``, ``-p no:NAME``, ``--strict-plugins`` and ``-v`` are read from the raw arguments
first, as pytest does, so that plugins can add options and commands.
"""

from __future__ import annotations

import traceback
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import click

from trainkit.errors import TrainkitError


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
        from trainkit.plugin.manager import PluginWarning, get_plugin_manager
        from trainkit.plugin.registry import Registry

        modules, blocked, strict, verbose = prescan(args)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PluginWarning)
            try:
                pm = get_plugin_manager(extra_modules=(), blocked=blocked, strict=strict)
                for plugin in getattr(group, "extra_plugins", ()):
                    pm.register_given(plugin)
                for module in modules:
                    try:
                        pm.load_module(module)
                    except Exception as e:
                        raise click.UsageError(
                            f"-p {module}: cannot import plugin module: {type(e).__name__}: {e}"
                        ) from None
                registry = Registry.collect(pm, strict=strict)
                check_blocked(blocked, registry)
                add_plugin_commands(pm, group, strict)
            except (PluginError, TrainkitError) as e:
                if verbose:
                    traceback.print_exc()
                raise click.ClickException(str(e)) from None
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


def check_blocked(blocked: Sequence[str], registry) -> None:
    """``-p no:NAME`` must name a plugin module from the entry points or a run plugin."""
    if not blocked:
        return
    from trainkit.plugin.entry_points import installed

    known = {ep.name for ep in installed("trainkit")} | set(registry.names("plugin"))
    for name in blocked:
        if name not in known:
            raise click.UsageError(f"-p no:{name}: unknown plugin {name!r}; known: "
                                   f"{', '.join(sorted(known))}")


def add_plugin_commands(pm, group: click.Group, strict: bool) -> None:
    from trainkit.plugin.dispatch import each_implementation

    for impl, error in each_implementation(pm.hook.register_commands, cli=group):
        if error is not None:
            if pm.info(impl.plugin_name).source == "built-in":
                raise error
            pm.skip(impl.plugin_name, error, strict=strict, doing="register_commands")


#: The exit code of a command stopped by Ctrl+C: the shell's own (128 + SIGINT).
EXIT_INTERRUPTED = 130
RUN_SHORT_HELP = "Train a model."
EVALUATE_SHORT_HELP = "Score a checkpoint: metrics and a per-class report."
SWEEP_SHORT_HELP = "Search hyperparameters on Optuna, each trial a run."
SUMMARY_SHORT_HELP = "A model's layers: output shapes, parameters, multiply-adds."
LR_FIND_SHORT_HELP = "Sweep the learning rate and suggest one."
#: Commands whose options come from the registered components: built once the plugins are
#: loaded, by a factory ``make_cli`` sets (``command_factories``); listed with these helps.
DYNAMIC_COMMANDS = {"run": RUN_SHORT_HELP, "evaluate": EVALUATE_SHORT_HELP,
                    "sweep": SWEEP_SHORT_HELP, "summary": SUMMARY_SHORT_HELP,
                    "lr-find": LR_FIND_SHORT_HELP}


class TrainkitGroup(click.Group):
    """Loads the plugins before parsing, then builds ``run`` and ``evaluate`` from what they
    registered."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        version_only = "--version" in args and all(
            arg.startswith("-") for arg in args[:args.index("--version")])
        if ctx.obj is None and not version_only:  # --version needs no plugin
            ctx.obj = AppState.load(args, self)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """A Ctrl+C that no command handled itself (``run`` stops at a batch boundary; the
        others, ``lr-find`` among them, just end) is one line and exit code 130, not click's
        "Aborted!" and 1."""
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            if isinstance(ctx.obj, AppState) and ctx.obj.verbose:
                traceback.print_exc()
            click.echo(f"trainkit: {ctx.invoked_subcommand or 'trainkit'} interrupted "
                       f"(Ctrl+C)", err=True)
            ctx.exit(EXIT_INTERRUPTED)

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*DYNAMIC_COMMANDS, *super().list_commands(ctx)})

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        ctx.meta["trainkit.listing"] = True  # the list needs one-line helps, not the options
        try:
            super().format_commands(ctx, formatter)
        finally:
            del ctx.meta["trainkit.listing"]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in DYNAMIC_COMMANDS and ctx.meta.get("trainkit.listing"):
            return click.Command(name, short_help=DYNAMIC_COMMANDS[name])
        # set by make_cli, so that this module imports no command module (no import cycle)
        factory = getattr(self, "command_factories", {}).get(name)
        if factory is not None and isinstance(ctx.obj, AppState):
            return factory(ctx.obj)
        return super().get_command(ctx, name)
