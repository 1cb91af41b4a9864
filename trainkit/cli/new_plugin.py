"""``trainkit new-plugin NAME``: a complete plugin package to start from."""

from __future__ import annotations

from pathlib import Path

import click

from trainkit.cli.app import AppState
from trainkit.cli.errors import cli_errors
from trainkit.cli.plugin_template import KINDS


@click.command("new-plugin", short_help="Write a plugin package that installs and passes its tests.")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(path_type=Path, file_okay=False),
              default=Path("."), show_default=True, help="Where the package's folder goes.")
@click.option("--kind", type=click.Choice(KINDS),
              default="run", show_default=True,
              help="What the plugin adds: a run plugin (hooks), or a component whose tests call "
                   "its trainkit.testing check (check_layer, check_loss, ...).")
@click.pass_obj
def new_plugin_command(app: AppState, name: str, parent: Path, kind: str) -> None:
    """Write a plugin package NAME (such as trainkit-demo) into a new folder: pyproject.toml with
    the entry point, a run plugin with an option and checkpointed state, tests using trainkit's
    fixtures and check_plugin, tox.ini and a README. It installs and passes its tests at once."""
    from trainkit.cli.plugin_template import names_for, write_package

    with cli_errors(app.verbose if app else False):
        names = names_for(name)
        refuse_a_taken_name(names["plugin"], app, kind)
        folder = write_package(name, parent, kind)
    click.echo(f"trainkit: wrote {folder}: {kind} plugin {names['plugin']!r} in "
               f"{names['module']}/__init__.py, tests in tests/\n"
               f"  cd {folder} && pip install -e '.[test]' && pytest\n"
               f"  {run_line(kind, names['plugin'])}")


def run_line(kind: str, plugin: str) -> str:
    """How a run uses what the package adds."""
    from trainkit.cli.component_templates import USAGE

    return f"trainkit run --plugin {plugin}" if kind == "run" else USAGE[kind].format(
        plugin=plugin)


def refuse_a_taken_name(plugin: str, app: AppState | None, kind: str = "run") -> None:
    """The plugin name a package would declare must be no installed plugin's, and no run
    plugin's or component's of its kind: an entry point named like another is not loaded, and
    a component named like another is refused."""
    from trainkit.errors import ConfigError
    from trainkit.plugin.entry_points import installed
    from trainkit.plugin.manager import ENTRY_POINT_GROUP

    owners = {ep.name: ep.dist_name for ep in installed(ENTRY_POINT_GROUP)}
    if app is not None:
        registered = "plugin" if kind == "run" else kind
        owners.update({name: app.pm.info(component.plugin).distribution or component.plugin
                       for name, component in app.registry.components[registered].items()
                       if name not in owners})
    if plugin in owners:
        owner = owners[plugin]
        whose = "trainkit's built-in" if owner == "trainkit" else f"{owner}'s"
        what = "plugin" if kind == "run" or plugin not in (
            app.registry.components[kind] if app is not None else {}) else kind
        raise ConfigError(f"{what} name {plugin!r} is already {whose}: a package declaring it "
                          f"would not be loaded; choose another name, such as trainkit-my-{plugin}")
