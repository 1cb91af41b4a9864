"""Options from typed signatures: a component's keyword parameters are its options.

``Checkpoint(every: int = 1, keep: int = 3)`` declares the options ``every`` and ``keep``; the CLI
turns them into ``--checkpoint-every`` and ``--checkpoint-keep``, config files set them by name, and
``trainkit plugins`` lists them. Help text comes from the ``Args:`` section of the docstring.

Supported annotations: ``bool``, ``int``, ``float``, ``str``, ``pathlib.Path``, ``Literal[...]``,
``tuple[int, ...]`` (written ``256,128``), ``list`` (a TOML array in a config file, JSON on the
command line) and ``X | None``.
"""

from __future__ import annotations

import inspect
import re
import types
import typing
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from trainkit.errors import ConfigError

NoneType = type(None)


@dataclass(frozen=True)
class OptionSpec:
    """One option of a component: its parameter name, base type, default and help."""

    name: str
    type: Any
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    optional: bool = False
    #: the annotation as written, when it is a type the command line cannot parse
    unparsable: str | None = None

    @property
    def is_flag(self) -> bool:
        return self.type is bool

    def resolve(self, values: dict[str, Any]) -> Any:
        """This option's value in ``values`` (converted), or its default when unset."""
        value = values.get(self.name)
        return self.default if value is None else self.convert(value)

    def convert(self, value: Any, where: str = "") -> Any:
        """Coerce ``value`` (from a config file, the environment or Python) to this option's type."""
        if value is None and (self.optional or self.default is None):
            return None
        try:
            if self.choices is not None:
                for choice in self.choices:
                    if value == choice or str(value) == str(choice):
                        return choice
                raise ValueError(f"must be one of {', '.join(map(str, self.choices))}")
            if self.type is bool:
                if isinstance(value, str):
                    lowered = value.strip().lower()
                    if lowered in ("1", "true", "yes", "on"):
                        return True
                    if lowered in ("0", "false", "no", "off"):
                        return False
                    raise ValueError("must be true or false")
                if isinstance(value, bool):
                    return value
                raise ValueError("must be true or false")
            if self.type is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError("must be an integer")
                return int(value)
            if self.type is float:
                if isinstance(value, bool):
                    raise ValueError("must be a number")
                return float(value)
            if self.type is Path:
                return Path(value)
            if self.type is tuple:
                return parse_int_tuple(value)
            if self.type is list:
                return parse_list(value)
            return str(value)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{where or self.name}: {value!r} is invalid: {e}", self.name) from None


def parse_list(value: Any) -> list[Any]:
    """A list as it is (from a config file), or written as JSON (on the command line)."""
    if isinstance(value, str):
        import json

        try:
            value = json.loads(value)
        except ValueError as e:
            raise ValueError(f"must be a list written as JSON ({e})") from None
    if not isinstance(value, (list, tuple)):
        raise ValueError("must be a list")
    return list(value)


def parse_int_tuple(value: Any) -> tuple[int, ...]:
    """``"256,128"`` or ``[256, 128]`` or ``100`` -> ``(256, 128)`` / ``(100,)``."""
    if isinstance(value, (list, tuple)):
        items = list(value)
    elif isinstance(value, int) and not isinstance(value, bool):
        items = [value]
    else:
        text = str(value).replace(" ", "")
        items = text.split(",") if text else []
        if "" in items and items != [""]:
            raise ValueError("has an empty entry: write comma-separated integers such as 256,128")
        items = [item for item in items if item]
    try:
        result = tuple(int(item) for item in items)
    except (TypeError, ValueError):
        raise ValueError("must be comma-separated integers such as 256,128") from None
    if not result:
        raise ValueError("must name at least one size")
    if any(size < 1 for size in result):
        raise ValueError("sizes must be positive integers")
    return result


@cache
def option_specs(factory: Any) -> tuple[OptionSpec, ...]:
    """The options a factory (class or function) declares through its keyword parameters."""
    target = factory.__init__ if inspect.isclass(factory) else factory
    if target is object.__init__:  # a class without an __init__ of its own takes no options
        return ()
    try:
        signature = inspect.signature(target)
        hints = typing.get_type_hints(target)
    except (TypeError, ValueError, NameError):
        return ()
    docs = _docstring_args(inspect.getdoc(factory) or "")
    specs = []
    for param in signature.parameters.values():
        if param.name == "self" or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        if param.default is inspect.Parameter.empty:
            continue  # a required parameter is not an option; the caller supplies it
        base, choices, optional = _describe(hints.get(param.name, type(param.default)))
        unparsable = None
        if param.name in hints and not _parsable(hints[param.name]):
            written = param.annotation  # as in the source, under postponed annotations
            unparsable = written if isinstance(written, str) else \
                written.__name__ if isinstance(written, type) else str(written)
        specs.append(OptionSpec(param.name, base, param.default, docs.get(param.name, ""),
                                choices, optional, unparsable))
    return tuple(specs)


SUPPORTED_TYPES = ("bool, int, float, str, pathlib.Path, Literal[...] (a choice), "
                   "tuple[int, ...] (256,128), list (a JSON list), and X | None")


def unsupported_options(factory: Any) -> list[str]:
    """The options of ``factory`` whose annotated type the command line cannot parse."""
    return [f"option {spec.name!r} is typed {spec.unparsable}, which the command line cannot "
            f"parse" for spec in option_specs(factory) if spec.unparsable]


def _parsable(annotation: Any) -> bool:
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not NoneType]
        return len(args) == 1 and _parsable(args[0])
    if origin is typing.Literal:
        return True
    if origin is tuple:
        return typing.get_args(annotation) in ((int, ...), ())
    if origin is list or annotation in (list, tuple):
        return True
    return annotation in (bool, int, float, str, Path)


def _describe(annotation: Any) -> tuple[Any, tuple[Any, ...] | None, bool]:
    optional = False
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        args = [a for a in typing.get_args(annotation) if a is not NoneType]
        optional = len(args) < len(typing.get_args(annotation))
        annotation = args[0] if len(args) == 1 else str
        origin = typing.get_origin(annotation)
    if origin is typing.Literal:
        choices = typing.get_args(annotation)
        return type(choices[0]), choices, optional
    if origin is tuple:
        return tuple, None, optional
    if origin is list or annotation is list:
        return list, None, optional
    if annotation in (bool, int, float, str, Path):
        return annotation, None, optional
    return str, None, optional


def _docstring_args(doc: str) -> dict[str, str]:
    """Parse a Google-style ``Args:`` section into ``{name: its description}``; an entry's
    continuation lines (indented deeper than its name) belong to it."""
    result: dict[str, str] = {}
    in_args, name, name_indent = False, None, 0
    for line in doc.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if stripped in ("Args:", "Arguments:", "Options:", "Parameters:"):
            in_args, name = True, None
            continue
        if not in_args:
            continue
        if name is not None and stripped and indent > name_indent:
            result[name] += " " + stripped.replace("``", "")
            continue
        match = re.match(r"^(\w+)(?:\s*\([^)]*\))?:\s*(.*)$", stripped)
        if match:
            name, name_indent = match.group(1), indent
            result[name] = match.group(2).replace("``", "")
        elif stripped and not line.startswith((" ", "\t")):
            in_args, name = False, None
    return result


def plugin_option_param(plugin: str, option: str) -> str:
    """The parameter name of a run plugin's option; its flag is ``--<plugin>-<option>``, except
    for the option that names what the plugin does (``schedule`` of ``lr-schedule``): that one
    is the plugin's own name, ``--lr-schedule cosine``, and giving it turns the plugin on."""
    if plugin.replace("-", "_") == option.replace("-", "_") or plugin.endswith("-" + option):
        return plugin.replace("-", "_")
    return f"{plugin}_{option}".replace("-", "_")


def instantiate(factory: Any, values: dict[str, Any], *, where: str = "") -> Any:
    """Call ``factory`` with the options in ``values`` it declares (``None`` means its default)."""
    kwargs = {}
    for spec in option_specs(factory):
        if values.get(spec.name) is not None:
            kwargs[spec.name] = spec.convert(values[spec.name], where=where or spec.name)
    return factory(**kwargs)
