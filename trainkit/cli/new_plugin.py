"""``trainkit new-plugin NAME``: a complete plugin package to start from."""

from __future__ import annotations

from pathlib import Path

import click

from trainkit.cli.app import AppState
from trainkit.cli.errors import cli_errors


@click.command("new-plugin", short_help="Write a plugin package that installs and passes its tests.")
@click.argument("name")
@click.option("--dir", "parent", type=click.Path(path_type=Path, file_okay=False),
              default=Path("."), show_default=True, help="Where the package's folder goes.")
@click.pass_obj
def new_plugin_command(app: AppState, name: str, parent: Path) -> None:
    """Write a plugin package NAME (such as trainkit-demo) into a new folder: pyproject.toml with
    the entry point, a run plugin with an option and checkpointed state, tests using trainkit's
    fixtures and check_plugin, tox.ini and a README. It installs and passes its tests at once."""
    from trainkit.plugin_template import names_for, write_package

    with cli_errors(app.verbose if app else False):
        names = names_for(name)
        refuse_a_taken_name(names["plugin"], app)
        folder = write_package(name, parent)
    click.echo(f"trainkit: wrote {folder}: plugin {names['plugin']!r} in "
               f"{names['module']}/__init__.py, tests in tests/\n"
               f"  cd {folder} && pip install -e '.[test]' && pytest\n"
               f"  trainkit run --plugin {names['plugin']}")


def refuse_a_taken_name(plugin: str, app: AppState | None) -> None:
    """The plugin name a package would declare must be no installed plugin's and no run
    plugin's: an entry point named like another is not loaded."""
    from trainkit.entry_points import installed
    from trainkit.errors import ConfigError
    from trainkit.plugin_manager import ENTRY_POINT_GROUP

    owners = {ep.name: ep.dist_name for ep in installed(ENTRY_POINT_GROUP)}
    if app is not None:
        owners.update({name: owners.get(name) or component.plugin for name, component
                       in app.registry.components["plugin"].items() if name not in owners})
    if plugin in owners:
        owner = owners[plugin]
        whose = "trainkit's built-in" if owner == "trainkit" else f"{owner}'s"
        raise ConfigError(f"plugin name {plugin!r} is already {whose}: a package declaring it "
                          f"would not be loaded; choose another name, such as trainkit-my-{plugin}")
