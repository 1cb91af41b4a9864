"""Build trainkit's pluggy ``PluginManager``: hook specs, entry points, ``-p`` modules, blocking.

Plugins come from three places:

* the ``trainkit`` entry-point group, where trainkit declares its own built-ins exactly as a
  third-party package declares its plugins;
* ``-p MODULE`` on the command line (or ``extra_modules``), imported by path for one run;
* objects registered from Python with ``pm.register(obj, name=...)``.

A third-party plugin that fails to import is skipped with a warning naming it and the error, unless
``strict`` is set. ``TRAINKIT_DISABLE_PLUGIN_AUTOLOAD=1`` loads the built-ins only.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from trainkit import hookspecs
from trainkit.errors import PluginError
from trainkit.markers import PROJECT_NAME

ENTRY_POINT_GROUP = "trainkit"
BUILTIN_DISTRIBUTION = "trainkit"


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered and was skipped."""


@dataclass(frozen=True)
class PluginInfo:
    """Where a plugin came from: ``source`` is built-in, entry point, -p, or python."""

    name: str
    source: str
    distribution: str | None = None
    version: str | None = None


class PluginManager(pluggy.PluginManager):
    """pluggy's manager with trainkit's hook specs and a record of where each plugin came from."""

    def __init__(self) -> None:
        super().__init__(PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.infos: dict[str, PluginInfo] = {}
        self.failures: list[tuple[str, str]] = []

    def register(self, plugin, name: str | None = None, info: PluginInfo | None = None):
        registered = super().register(plugin, name)
        if registered is not None and registered not in self.infos:
            self.infos[registered] = info or PluginInfo(registered, "python")
        return registered

    def unregister(self, plugin=None, name=None):
        if name is None:
            name = self.get_name(plugin)
        removed = super().unregister(plugin, name)
        self.infos.pop(name, None)
        return removed

    def info(self, name: str) -> PluginInfo:
        return self.infos.get(name) or PluginInfo(name, "python")

    def skip(self, name: str, error: BaseException, *, strict: bool, doing: str) -> None:
        """Record a plugin that failed; raise when ``strict``, warn otherwise."""
        message = f"{type(error).__name__}: {error}"
        if strict:
            raise PluginError(name, doing, error) from error
        self.failures.append((name, message))
        warnings.warn(f"plugin {name!r} skipped: {doing} failed: {message}", PluginWarning,
                      stacklevel=2)

    def load_entrypoints(self, *, builtins_only: bool = False, strict: bool = False) -> None:
        from trainkit.entry_points import installed

        for ep in installed(ENTRY_POINT_GROUP):
            if self.is_blocked(ep.name) or self.has_plugin(ep.name):
                continue
            builtin = ep.dist_name == BUILTIN_DISTRIBUTION
            if builtins_only and not builtin:
                continue
            try:
                plugin = ep.load()
            except Exception as e:
                if builtin:
                    raise
                self.skip(ep.name, e, strict=strict, doing="import")
                continue
            source = "built-in" if builtin else "entry point"
            self.register(plugin, name=ep.name,
                          info=PluginInfo(ep.name, source, ep.dist_name, ep.version))

    def load_module(self, module_path: str) -> None:
        """Import ``module_path`` and register it (``-p MODULE``). Errors are the user's to see."""
        if self.has_plugin(module_path):
            return
        module = importlib.import_module(module_path)
        self.register(module, name=module_path, info=PluginInfo(module_path, "-p"))


def call_impl(impl, **kwargs: Any) -> Any:
    """Call one hook implementation with the arguments it asks for (pluggy's subset rule)."""
    return impl.function(*[kwargs[arg] for arg in impl.argnames])


def get_plugin_manager(
    *,
    autoload: bool | None = None,
    extra_modules: Iterable[str] = (),
    blocked: Iterable[str] = (),
    strict: bool = False,
) -> PluginManager:
    """A plugin manager with the entry-point plugins, minus ``blocked``, plus ``extra_modules``.

    ``autoload=None`` follows ``TRAINKIT_DISABLE_PLUGIN_AUTOLOAD``: when it is set, only trainkit's
    own built-ins are loaded from the entry points.
    """
    pm = PluginManager()
    for name in blocked:
        pm.set_blocked(name)
    if autoload is None:
        autoload = not os.environ.get("TRAINKIT_DISABLE_PLUGIN_AUTOLOAD")
    pm.load_entrypoints(builtins_only=not autoload, strict=strict)
    for module_path in extra_modules:
        pm.load_module(module_path)
    return pm
