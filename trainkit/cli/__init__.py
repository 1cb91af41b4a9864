"""The ``trainkit`` command line: ``run``, ``evaluate``, ``predict``, ``summary``, ``export``,
``plugins``, and commands plugins add.

The plugin manager is built before any command is parsed (``app.py``), so that plugins can add
options and commands. Inside the library, errors are trainkit exceptions; at this boundary, and
only here, they become click errors: usage errors exit with code 2, runtime errors with code 1,
Ctrl+C with 130, and a traceback shows only with ``-v``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from trainkit import __version__
from trainkit.cli.app import EXIT_INTERRUPTED, TrainkitGroup
from trainkit.cli.evaluate import make_evaluate_command
from trainkit.cli.export import export_command
from trainkit.cli.lr_find import make_lr_find_command
from trainkit.cli.new_plugin import new_plugin_command
from trainkit.cli.options import PLUGIN_MODULE_HELP, STRICT_PLUGINS_HELP, VERBOSE_HELP
from trainkit.cli.plugins import plugins_command
from trainkit.cli.predict import predict_command
from trainkit.cli.run import make_run_command
from trainkit.cli.summary import make_summary_command
from trainkit.cli.sweep import make_sweep_command

__all__ = ["EXIT_INTERRUPTED", "main", "make_cli"]


def make_cli(plugins: Sequence[object] = ()) -> click.Group:
    """A fresh ``trainkit`` command group (plugins may add commands to it).

    ``plugins`` are extra plugin objects registered next to the installed ones, for embedding the
    CLI or testing a plugin without installing it.
    """

    @click.group(cls=TrainkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
    @click.version_option(__version__, prog_name="trainkit")
    @click.option("-p", "plugin_module", multiple=True, metavar="MODULE|no:NAME",
                  help=PLUGIN_MODULE_HELP)
    @click.option("--strict-plugins", is_flag=True, help=STRICT_PLUGINS_HELP)
    @click.option("-v", "--verbose", is_flag=True, help=VERBOSE_HELP)
    def cli(plugin_module: tuple[str, ...], strict_plugins: bool, verbose: bool) -> None:
        """trainkit: train numpy neural networks, every part a plugin."""

    cli.add_command(plugins_command)
    cli.add_command(predict_command)
    cli.add_command(export_command)
    cli.add_command(new_plugin_command)
    cli.extra_plugins = list(plugins)  # type: ignore[attr-defined]
    cli.command_factories = {  # type: ignore[attr-defined]
        "run": make_run_command, "evaluate": make_evaluate_command, "sweep": make_sweep_command,
        "summary": make_summary_command, "lr-find": make_lr_find_command}
    return cli


def main(argv: Sequence[str] | None = None) -> None:
    make_cli().main(args=list(sys.argv[1:] if argv is None else argv), prog_name="trainkit")
