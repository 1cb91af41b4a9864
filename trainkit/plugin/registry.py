"""The registry of named components that plugins register through the ``register_*`` hooks.

Each registration hook implementation is called on its own with a ``register`` callback that knows
which plugin is calling, so a duplicate name is an error naming both plugins and a plugin that fails
while registering can be skipped without losing the others.
"""

from __future__ import annotations

import inspect
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from trainkit.errors import ConfigError, PluginProblem, RegistrationError
from trainkit.plugin.dispatch import call_impl
from trainkit.plugin.options import SUPPORTED_TYPES, OptionSpec, option_specs, unsupported_options

#: Component kind -> the registration hook that provides it.
KINDS: dict[str, str] = {
    "optimizer": "register_optimizers",
    "loss": "register_losses",
    "metric": "register_metrics",
    "dataset": "register_datasets",
    "model": "register_models",
    "layer": "register_layers",
    "plugin": "register_run_plugins",
}
#: Old hook names that still register a kind, with a DeprecationWarning.
DEPRECATED_HOOKS: dict[str, str] = {"register_plugins": "plugin"}


@dataclass(frozen=True)
class Component:
    """A named factory registered by a plugin."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    default: bool = False

    @property
    def summary(self) -> str:
        doc = inspect.getdoc(self.factory) or ""
        return doc.strip().splitlines()[0] if doc.strip() else ""

    @property
    def options(self) -> tuple[OptionSpec, ...]:
        return option_specs(self.factory)


@dataclass
class Registry:
    """Every component by kind and name."""

    components: dict[str, dict[str, Component]] = field(
        default_factory=lambda: {kind: {} for kind in KINDS}
    )

    @classmethod
    def collect(cls, pm, *, strict: bool = False) -> Registry:
        """Call every plugin's registration hooks and gather what they register."""
        registry = cls()
        for kind, hook_name in KINDS.items():
            impls = getattr(pm.hook, hook_name).get_hookimpls()  # in registration order
            for old_name in [old for old, k in DEPRECATED_HOOKS.items() if k == kind]:
                for impl in getattr(pm.hook, old_name).get_hookimpls():
                    warnings.warn(f"plugin {impl.plugin_name!r} implements {old_name}, now called "
                                  f"{hook_name}", DeprecationWarning, stacklevel=2)
                    impls.append(impl)
            # trainkit's own first: a third-party plugin that takes a built-in's name is the
            # one refused
            impls.sort(key=lambda impl: pm.info(impl.plugin_name).source != "built-in")
            for impl in impls:
                registry._call(pm, impl, kind, strict)
        return registry

    def _call(self, pm, impl, kind: str, strict: bool) -> None:
        added: list[str] = []
        builtin = pm.info(impl.plugin_name).source == "built-in"

        def register(name: str, factory: Callable[..., Any], *, default: bool = False) -> None:
            unparsable = unsupported_options(factory)
            if unparsable:
                raise PluginProblem(f"{kind} {name!r}: {'; '.join(unparsable)}; the supported "
                                    f"types are {SUPPORTED_TYPES}")
            if kind == "plugin":  # a run plugin is checked now, not when a run registers it
                errors, cautions = pm.hook_problems(factory, run_plugin=True)
                if errors:
                    raise PluginProblem(f"run plugin {name!r}: {'; '.join(errors)}")
                for problem in cautions:
                    pm.caution(impl.plugin_name, f"run plugin {name!r} {problem}"
                               if problem.startswith("implements") else
                               f"run plugin {name!r}: {problem}", strict=strict)
            self.add(Component(kind, name, factory, impl.plugin_name, default))
            added.append(name)

        try:
            call_impl(impl, register=register)
        except Exception as e:
            if builtin:
                raise
            if isinstance(e, RegistrationError):
                e = PluginProblem(str(e))
            pm.skip(impl.plugin_name, e, strict=strict, doing=KINDS[kind])
            self.forget(impl.plugin_name)  # a skipped plugin registers nothing and runs no hook
            plugin = pm.get_plugin(impl.plugin_name)
            if plugin is not None:
                pm.unregister(plugin)

    def forget(self, plugin: str) -> None:
        """Drop every component ``plugin`` registered."""
        for components in self.components.values():
            for name in [n for n, c in components.items() if c.plugin == plugin]:
                del components[name]

    def add(self, component: Component) -> None:
        existing = self.components[component.kind].get(component.name)
        if existing is not None:
            raise RegistrationError(
                f"{component.kind} {component.name!r} is registered already, by plugin "
                f"{existing.plugin!r}")
        self.components[component.kind][component.name] = component

    def names(self, kind: str) -> list[str]:
        return sorted(self.components[kind])

    def get(self, kind: str, name: str) -> Component:
        try:
            return self.components[kind][name]
        except KeyError:
            known = ", ".join(self.names(kind)) or "none registered"
            raise ConfigError(f"unknown {kind} {name!r}; choose from: {known}", kind) from None

    def defaults(self) -> list[str]:
        """The run plugins that are on unless turned off."""
        return [c.name for c in self.components["plugin"].values() if c.default]

    def model_plugins(self) -> dict[str, list[str]]:
        """Model name -> the run plugins it turns on by default (``default_run_plugins``)."""
        return {c.name: list(plugins) for c in self.components["model"].values()
                if (plugins := getattr(c.factory, "default_run_plugins", ()))}

    def all(self) -> list[Component]:
        return [c for kind in KINDS for c in self.components[kind].values()]
