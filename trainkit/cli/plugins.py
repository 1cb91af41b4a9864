"""``trainkit plugins``: where every plugin came from, what it implements and registers."""

from __future__ import annotations

import click

from trainkit.cli.app import AppState
from trainkit.cli.options import describe_default, flag_of


def run_plugin_hooks(factory) -> list[str]:
    """The hooks a run plugin's class implements (its methods marked ``@hookimpl``)."""
    from trainkit.markers import PROJECT_NAME

    marker = f"{PROJECT_NAME}_impl"
    return sorted(name for name in dir(factory)
                  if hasattr(getattr(factory, name, None), marker))


def hook_call_order(app: AppState) -> dict[str, list[str]]:
    """Every lifecycle hook's implementations in the order pluggy calls them, with one instance
    of every run plugin that can be created with its default options registered."""
    from trainkit.plugin.dispatch import RUN_PLUGIN_PREFIX
    from trainkit.plugin.options import instantiate

    registered = []
    for name in app.registry.names("plugin"):
        try:
            plugin = instantiate(app.registry.get("plugin", name).factory, {})
        except Exception:  # e.g. plot without matplotlib: it cannot run, so it has no place
            continue
        registered.append(app.pm.register(plugin, name=RUN_PLUGIN_PREFIX + name))
    on = set(app.registry.defaults())
    try:
        order = {}
        for hook_name in lifecycle_hooks():
            impls = getattr(app.pm.hook, hook_name).get_hookimpls()
            order[hook_name] = [impl.plugin_name + (" (off)" if impl.plugin_name.startswith(
                RUN_PLUGIN_PREFIX) and impl.plugin_name.removeprefix(RUN_PLUGIN_PREFIX) not in on
                else "") for impl in reversed(impls)]
        return order
    finally:
        for name in registered:
            app.pm.unregister(name=name)


def lifecycle_hooks() -> list[str]:
    """Every hook but the registration ones, in the order hookspecs.py declares them."""
    from trainkit import hookspecs

    return list(hookspecs.RUN_HOOKS)


@click.command("plugins")
@click.option("--all", "show_all", is_flag=True, help="Also show every option and hook.")
@click.option("--hooks", "show_hooks", is_flag=True,
              help="Show the order in which plugins are called for every lifecycle hook.")
@click.pass_obj
def plugins_command(app: AppState, show_all: bool, show_hooks: bool) -> None:
    """List the plugins and the components they register."""
    from trainkit.plugin.options import plugin_option_param

    registry, pm = app.registry, app.pm
    if show_hooks:
        click.echo("Lifecycle hooks, in call order ('run:NAME' is a run plugin; '(off)' unless "
                   "turned on with --plugin NAME):")
        for hook_name, names in hook_call_order(app).items():
            click.echo(f"  {hook_name}: {' -> '.join(names) if names else '(none)'}")
        return
    rows = [(c.kind, c.name, c.plugin, c.summary) for c in registry.all()]
    width = [max(len(r[i]) for r in rows) for i in range(3)] if rows else [0, 0, 0]
    click.echo("Components:")
    for kind, name, plugin, summary in rows:
        default = " (on by default)" if kind == "plugin" and name in registry.defaults() else ""
        click.echo(f"  {kind:<{width[0]}}  {name:<{width[1]}}  {plugin:<{width[2]}}  "
                   f"{summary}{default}")
        if show_all:
            component = registry.get(kind, name)
            for spec in component.options:
                flag = flag_of(plugin_option_param(name, spec.name) if kind == "plugin"
                               else spec.name)
                click.echo(f"      {flag} = {describe_default(spec.default)}"
                           + (f"  {spec.help}" if spec.help else ""))
    click.echo("\nPlugins:")
    for name in sorted(n for n, _ in pm.list_name_plugin()):
        info = pm.info(name)
        origin = f"{info.distribution} {info.version}" if info.distribution else ""
        hooks = sorted(h.name for h in pm.get_hookcallers(pm.get_plugin(name)) or [])
        click.echo(f"  {name}  [{info.source}{', ' + origin if origin else ''}]  "
                   f"hooks: {', '.join(hooks)}")
        registers = [f"{c.kind} {c.name}" + (f" (hooks: {', '.join(run_plugin_hooks(c.factory))})"
                                             if c.kind == "plugin" else "")
                     for c in registry.all() if c.plugin == name]
        if registers:
            click.echo(f"      registers: {', '.join(registers)}")
    for name, error in pm.failures:
        click.echo(f"  {name}  [skipped]  {error}")
