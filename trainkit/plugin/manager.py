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

import difflib
import importlib
import inspect
import os
import types
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import pluggy

from trainkit import hookspecs
from trainkit.errors import PluginError, PluginProblem
from trainkit.markers import PROJECT_NAME
from trainkit.plugin import contract

ENTRY_POINT_GROUP = "trainkit"
BUILTIN_DISTRIBUTION = "trainkit"


#: Hooks trainkit calls implementation by implementation (``each_implementation``,
#: ``call_impl``): a wrapper cannot wrap them, so a wrapper implementation of one is refused when
#: its plugin registers. Every other hook goes through pluggy, wrappers included (hookspecs say
#: so hook by hook).
CALLED_ONE_BY_ONE = frozenset({
    "on_exception", "on_save_checkpoint", "register_commands", "register_optimizers",
    "register_losses", "register_metrics", "register_datasets", "register_models",
    "register_layers", "register_run_plugins", "register_plugins",
})


class PluginWarning(UserWarning):
    """A plugin could not be loaded or registered and was skipped, or looks mistaken."""


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

    def fix_hint(self, name: str) -> str:
        """How a user gets rid of a broken plugin they did not write."""
        distribution = self.info(name).distribution
        hint = f"-p no:{name}"
        return hint + (f" or pip uninstall {distribution}" if distribution else "")

    def skip(self, name: str, error: BaseException, *, strict: bool, doing: str) -> None:
        """Record a plugin that failed; raise when ``strict``, warn otherwise."""
        message = str(error) if isinstance(error, PluginProblem) else \
            f"{doing} failed: {type(error).__name__}: {error}"
        if strict:
            raise PluginError(name, doing, error) from error
        self.failures.append((name, message))
        warnings.warn(f"plugin {name!r} skipped: {message} (to leave it out: "
                      f"{self.fix_hint(name)})", PluginWarning, stacklevel=2)

    def caution(self, name: str, problem: str, *, strict: bool) -> None:
        """A mistake that does not stop the plugin from loading; an error when ``strict``."""
        if strict:
            raise PluginError(name, "check", PluginProblem(problem))
        warnings.warn(f"plugin {name!r}: {problem}", PluginWarning, stacklevel=2)

    def hook_problems(self, plugin: object, *, run_plugin: bool = False
                      ) -> tuple[list[str], list[str]]:
        """What is wrong with ``plugin``'s hooks (a module, an object, or a run plugin's class),
        as (errors that stop it from loading, mistakes that only deserve a warning)."""
        errors: list[str] = []
        cautions: list[str] = []
        implemented = 0
        for attribute in sorted(dir(plugin)):
            if attribute.startswith("__"):
                continue
            try:
                opts = self.parse_hookimpl_opts(plugin, attribute)
                function = getattr(plugin, attribute)
            except Exception:  # noqa: BLE001 (a property that raises is not a hook)
                continue
            if opts is None:
                if attribute in self._spec_args() and callable(function):
                    cautions.append(f"{attribute} is named like a hook but is not marked "
                                    f"@hookimpl, so it never runs")
                continue
            implemented += 1
            hook = opts.get("specname") or attribute
            spec_args = self._spec_args().get(hook)
            if spec_args is None:
                if not opts.get("optionalhook"):
                    close = difflib.get_close_matches(hook, self._spec_args(), n=1)
                    cautions.append(f"{hook} is not a trainkit hook, so it never runs"
                                    + (f" (did you mean {close[0]}?)" if close else ""))
                continue
            if inspect.isclass(plugin) and isinstance(inspect.getattr_static(plugin, attribute),
                                                      types.FunctionType):
                function = types.MethodType(function, object())  # as on an instance: no self
            if (opts.get("wrapper") or opts.get("hookwrapper")) and hook in CALLED_ONE_BY_ONE:
                errors.append(f"hook {hook} is a wrapper, which trainkit never runs: it calls "
                              f"each {hook} implementation on its own, so that one that fails "
                              f"cannot stop the others; make it a plain @hookimpl")
                continue
            taken = pluggy.HookImpl(plugin, "check", function, opts).argnames
            unknown = [arg for arg in taken if arg not in spec_args]
            if unknown:
                errors.append(f"hook {hook} takes {', '.join(map(repr, unknown))}, which trainkit "
                              f"does not pass (it passes: {', '.join(spec_args)})")
        if run_plugin and implemented == 0:
            cautions.append("implements no hook, so it does nothing")
        return errors, cautions

    def _spec_args(self) -> dict[str, tuple[str, ...]]:
        if not hasattr(self, "_spec_args_cache"):
            self._spec_args_cache = {
                name: caller.spec.argnames for name, caller in vars(self.hook).items()
                if getattr(caller, "spec", None) is not None}
        return self._spec_args_cache

    def register_checked(self, plugin: object, name: str, info: PluginInfo, *,
                         strict: bool) -> bool:
        """Register a plugin after checking its hooks: a third-party plugin with a hook trainkit
        cannot call is skipped with a warning (an error when ``strict``), a mistake that leaves
        it working is warned about; trainkit's own built-ins must be flawless."""
        self.infos[name] = info
        errors, cautions = self.hook_problems(plugin)
        try:
            if errors:
                raise PluginProblem("; ".join(errors))
            super().register(plugin, name)
        except Exception as e:
            if self.is_registered(plugin):  # pluggy may have added some hooks already
                super().unregister(plugin)
            if info.source == "built-in":
                raise
            self.skip(name, e, strict=strict, doing="registration")
            self.infos.pop(name, None)
            return False
        for problem in cautions:
            self.caution(name, problem, strict=strict)
        return True

    def load_entrypoints(self, *, builtins_only: bool = False, strict: bool = False) -> None:
        """Load the installed plugins. A name is one plugin's: trainkit's built-in first, else
        the package found first on ``sys.path``; a later package declaring the same name is not
        loaded, with a warning naming both and the fix, never silently in the other's place."""
        from trainkit.plugin.entry_points import installed

        found = installed(ENTRY_POINT_GROUP)
        claimed: dict[str, Any] = {}
        for ep in sorted(found, key=lambda ep: ep.dist_name != BUILTIN_DISTRIBUTION):
            if self.is_blocked(ep.name):
                continue
            first = claimed.setdefault(ep.name, ep)
            if first is not ep:
                if first.dist_name != ep.dist_name:
                    self.refuse_collision(ep, first)
                continue
            if self.has_plugin(ep.name):
                continue
            builtin = ep.dist_name == BUILTIN_DISTRIBUTION
            if builtins_only and not builtin:
                continue
            info = PluginInfo(ep.name, "built-in" if builtin else "entry point", ep.dist_name,
                              ep.version)
            try:
                plugin = ep.load()
            except Exception as e:
                if builtin:
                    raise
                self.infos[ep.name] = info  # for the warning's "pip uninstall" hint
                self.skip(ep.name, e, strict=strict, doing="import")
                self.infos.pop(ep.name)
                continue
            self.register_checked(plugin, ep.name, info, strict=strict)

    @staticmethod
    def refuse_collision(ep: Any, first: Any) -> None:
        """Warn that ``ep`` is not loaded because ``first`` has its name."""
        def package(e: Any) -> str:
            return f"{e.dist_name} {e.version}" if e.version else str(e.dist_name)

        owner = ("trainkit's built-in" if first.dist_name == BUILTIN_DISTRIBUTION
                 else f"{package(first)}'s")
        module = ep.value.partition(":")[0].strip()
        warnings.warn(f"plugin name {ep.name!r} of {package(ep)} is already {owner}: "
                      f"{ep.dist_name}'s is not loaded (rename its entry point, or use it instead "
                      f"with -p no:{ep.name} -p {module})", PluginWarning, stacklevel=3)

    def load_module(self, module_path: str) -> None:
        """Import ``module_path`` and register it (``-p MODULE``). Errors are the user's to see."""
        if self.has_plugin(module_path):
            return
        try:
            module = importlib.import_module(module_path)
        except ModuleNotFoundError as e:
            # python -m puts the current folder on sys.path, the trainkit command does not: a
            # plugin module beside the user is found as python -m would find it
            import os
            import sys

            here = os.getcwd()
            if e.name != module_path.split(".")[0] or here in sys.path or \
                    not os.path.exists(os.path.join(here, e.name + ".py")) and \
                    not os.path.isdir(os.path.join(here, e.name)):
                raise
            sys.path.insert(0, here)
            module = importlib.import_module(module_path)
        self.register_given(module, module_path, PluginInfo(module_path, "-p"))

    def register_given(self, plugin: object, name: str | None = None,
                       info: PluginInfo | None = None) -> None:
        """Register a plugin handed over by the user (``-p MODULE``, ``make_cli(plugins=...)``):
        one that is installed already stays as it is, and the one given replaces an installed
        plugin of the same name (the version under test wins). Its mistakes are errors: the
        user is the one who can fix them."""
        if self.is_registered(plugin):
            return
        if name is None:
            name = plugin.__name__ if isinstance(plugin, types.ModuleType) else \
                contract.read(plugin, "name")
        if not isinstance(name, str) or not name:
            name = type(plugin).__name__
        installed = self.get_plugin(name)
        if installed is not None:
            self.unregister(installed)
        self.register_checked(plugin, name, info or PluginInfo(name, "python"), strict=True)


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
