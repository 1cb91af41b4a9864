"""The CLI boundary: trainkit's exceptions become click errors here, and only here."""

from __future__ import annotations

import traceback

import click

from trainkit.cli.options import flag_of
from trainkit.errors import ConfigError, TrainkitError


class cli_errors:
    """Turn trainkit's exceptions into click errors at the CLI boundary."""

    def __init__(self, verbose: bool) -> None:
        self.verbose = verbose

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type, exc, tb) -> bool:  # type: ignore[exit-return]
        if exc is None or not isinstance(exc, (TrainkitError, OSError)):
            return False
        if self.verbose:
            traceback.print_exception(exc_type, exc, tb)
        if getattr(exc, "reported_elsewhere", False):  # rank 0 says it for the job
            raise click.exceptions.Exit(getattr(exc, "exit_code", 1))
        if isinstance(exc, OSError):  # a disk or system failure nobody anticipated
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(f"{where}{exc.strerror or exc}") from None
        if isinstance(exc, ConfigError):
            if not exc.option:  # not an option's fault (a file's key, an argument): one line
                raise click.UsageError(str(exc)) from None
            raise click.BadParameter(str(exc), param_hint=f"'{flag_of(exc.option)}'") from None
        raise click.ClickException(str(exc)) from None
