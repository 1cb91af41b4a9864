"""click options made from typed component options, and ``--help`` grouped by component."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click


class GroupedOption(click.Option):
    """An option that knows which heading of ``--help`` it belongs under."""

    def __init__(self, *args: Any, group: str = "Run options", default_text: str | None = None,
                 **kwargs: Any) -> None:
        if default_text is not None:  # shown as is (click's show_default adds parentheses)
            kwargs["help"] = f"{kwargs.get('help', '')}  [default: {default_text}]".strip()
        kwargs.setdefault("show_envvar", True)  # every TRAINKIT_* variable is in --help
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
        from trainkit.plugin.options import parse_int_tuple

        try:
            return parse_int_tuple(value)
        except ValueError as e:
            self.fail(f"{value!r} {e}", param, ctx)


class ThreadsType(click.ParamType):
    name = "N|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str | None:
        if value in (None, "auto") or isinstance(value, int) and value > 0:
            return value
        try:
            count = int(value)
        except ValueError:
            self.fail(f"{value!r} is not a positive integer or 'auto'", param, ctx)
        if count < 1:
            self.fail(f"{value!r} is not a positive integer or 'auto'", param, ctx)
        return count


class LrType(click.ParamType):
    """``--lr``: a learning rate, or ``auto``: the lr finder's suggestion for the run."""

    name = "FLOAT|auto"

    def convert(self, value: Any, param: Any, ctx: Any) -> float | str:
        if str(value).strip().lower() == "auto":
            return "auto"
        try:
            return float(value)
        except ValueError:
            self.fail(f"{value!r} is not a number or 'auto'", param, ctx)


class LimitBatchesType(click.ParamType):
    """``--limit-batches N``; ``all`` (or 0) lifts a limit, a resumed smoke run's too."""

    name = "N|all"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if str(value).strip().lower() == "all":
            return 0
        try:
            count = int(value)
        except ValueError:
            count = -1
        if count < 0:
            self.fail(f"{value!r} is not a number of batches or 'all'", param, ctx)
        return count


class JSONList(click.ParamType):
    name = "JSON"

    def convert(self, value: Any, param: Any, ctx: Any) -> list[Any]:
        from trainkit.plugin.options import parse_list

        try:
            return parse_list(value)
        except ValueError as e:
            self.fail(f"{value!r} {e}", param, ctx)


def click_type(spec) -> Any:
    if spec.choices is not None:
        return click.Choice([str(c) for c in spec.choices])
    return {int: click.INT, float: click.FLOAT, Path: click.Path(path_type=Path),
            tuple: IntTuple(), list: JSONList()}.get(spec.type, click.STRING)


#: The help of the options the group and ``run`` share (``trainkit -v run`` = ``trainkit run -v``).
PLUGIN_MODULE_HELP = "Load a plugin module by import path, or block a plugin (no:NAME)."
STRICT_PLUGINS_HELP = "Fail when a plugin cannot be loaded instead of skipping it."
VERBOSE_HELP = "Show tracebacks of errors (and, training, the model's summary)."


def flag_of(name: str) -> str:
    return "--" + name.replace("_", "-")


def envvar_of(name: str) -> str:
    return "TRAINKIT_" + name.upper().replace("-", "_")


def spec_option(param_name: str, spec, help_text: str, group: str,
                hidden: bool = False, param_type: Any = None) -> GroupedOption:
    flag = flag_of(param_name)
    decls = [f"{flag}/--no-{flag[2:]}"] if spec.is_flag else [flag]
    if param_type is None and not spec.is_flag:
        param_type = click_type(spec)
    return GroupedOption([*decls, param_name], type=param_type,
                         default=None, help=help_text, envvar=envvar_of(param_name), group=group,
                         hidden=hidden)


def describe_default(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(map(str, value))
    return str(value)
