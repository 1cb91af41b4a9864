"""How logged values are shown: the console line, the last line of a run, ``evaluate``."""

from __future__ import annotations

from typing import Any


def format_value(value: Any, digits: int = 3) -> str:
    """An integer (a count a plugin logs) as it is, any other number to ``digits`` decimals."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    try:
        return f"{value:.{digits}f}"
    except (TypeError, ValueError):
        return str(value)
