"""Read TOML config files (tomllib, or tomli on Python 3.10) and write the small subset we emit."""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any

from trainkit.errors import ConfigError


def read_toml(path: Path) -> dict[str, Any]:
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found", "config") from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot read config file ({e.strerror})", "config") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: invalid TOML: {e}", "config") from None
    config: dict[str, Any] = {}
    for key, value in data.items():  # batch-size and batch_size both work
        if isinstance(value, dict):  # a plugin's table keeps the plugin's name
            config[key] = {k.replace("-", "_"): v for k, v in value.items()}
        else:
            config[key.replace("-", "_")] = value
    return config


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):  # an inline table, such as one layer of a sequential model
        return "{" + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + "}"
    return json.dumps(str(value))  # a JSON string is a valid TOML basic string


def _key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def dump_toml(config: dict[str, Any]) -> str:
    """Top-level scalars first (``None`` values commented out), then one table per dict."""
    lines = []
    for key, value in config.items():
        if isinstance(value, dict):
            continue
        lines.append(f"# {key} = (unset)" if value is None else f"{key} = {_value(value)}")
    for key, table in config.items():
        if not isinstance(table, dict):
            continue
        lines.append("")
        lines.append(f"[{_key(key)}]")
        for sub, value in table.items():
            lines.append(f"# {sub} = (unset)" if value is None else f"{sub} = {_value(value)}")
    return "\n".join(lines) + "\n"
