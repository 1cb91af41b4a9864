"""The one owner of calling plugins: trainkit calls hook implementations only through here.

- ``HookCaller``: the Trainer's hooks by name. A hook nobody implements costs nothing; a failure
  names the plugin and the hook; while a profiler is set, each implementation of a timed hook is
  called here, one at a time in pluggy's order and with pluggy's argument rule, and timed.
- ``each_implementation``: every implementation on its own, so that one that fails cannot keep
  the others from running (``on_exception``, ``on_save_checkpoint``, ``register_commands``).
- ``call_impl``: one implementation with the arguments it asks for (the registry's
  ``register_*`` calls).
- Run plugins are registered for one run as ``run:<name>`` (``RUN_PLUGIN_PREFIX``), so that a
  run plugin may share its name with the module that registers it; ``plugin_name`` takes it off.

The hooks called one implementation at a time take no wrapper (``manager.CALLED_ONE_BY_ONE``
refuses one when its plugin registers); the others go through pluggy, wrappers included.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from trainkit.errors import PluginError

RUN_PLUGIN_PREFIX = "run:"


def plugin_name(impl: Any) -> str:
    """The name a user knows the implementation's plugin by (without ``run:``)."""
    return impl.plugin_name.removeprefix(RUN_PLUGIN_PREFIX)


def call_impl(impl: Any, **kwargs: Any) -> Any:
    """Call one hook implementation with the arguments it asks for (pluggy's subset rule)."""
    return impl.function(*[kwargs[arg] for arg in impl.argnames])


def each_implementation(hook: Any, **kwargs: Any) -> Iterator[tuple[Any, BaseException | None]]:
    """Call every implementation of ``hook`` on its own, in pluggy's call order, and yield each
    with the exception it raised (``None`` when it returned): one that fails cannot keep the
    others from running, and the caller knows which plugin failed."""
    for impl in reversed(hook.get_hookimpls()):
        if impl.hookwrapper or impl.wrapper:  # refused at registration; never called
            continue
        try:
            call_impl(impl, **kwargs)
        except Exception as e:  # noqa: BLE001 (handed to the caller, who decides)
            yield impl, e
        else:
            yield impl, None


class HookCaller:
    """Calls hooks by name, skips hooks nobody implements, and names the plugin that fails."""

    def __init__(self, pm: Any) -> None:
        self.pm = pm
        #: set during ``fit`` (a ``trainkit.loop.profiler.HookProfiler``): its ``hooks`` are
        #: then timed per plugin
        self.profiler: Any = None

    def caller(self, name: str) -> Callable[..., None] | None:
        """The hook's caller, or ``None`` when no plugin implements it (the cheap skip)."""
        hook = getattr(self.pm.hook, name)
        impls = hook.get_hookimpls()
        if not impls:
            return None
        if self.profiler is None or name not in self.profiler.hooks or \
                any(impl.hookwrapper or impl.wrapper for impl in impls):
            return lambda **kwargs: self.through_pluggy(hook, name, kwargs)
        plan = [(impl.function, impl.argnames, plugin_name(impl), self.profiler.stat(impl, name))
                for impl in reversed(impls)]
        clock = time.perf_counter

        def call(**kwargs: Any) -> None:
            for function, argnames, plugin, stat in plan:
                start = clock()
                try:
                    function(*[kwargs[arg] for arg in argnames])
                except PluginError:
                    raise
                except Exception as e:
                    raise PluginError(plugin, name, e) from e
                finally:
                    stat.add(clock() - start)

        return call

    def __call__(self, name: str, **kwargs: Any) -> None:
        call = self.caller(name)
        if call is not None:
            call(**kwargs)

    def each(self, name: str, **kwargs: Any) -> list[PluginError]:
        """Call every implementation on its own; returns the failures, each naming its plugin.
        For ``on_exception``: the checkpoint plugin must still get it when another plugin's
        handler breaks."""
        return [PluginError(plugin_name(impl), name, error)
                for impl, error in each_implementation(getattr(self.pm.hook, name), **kwargs)
                if error is not None]

    def message(self, message: str, level: str, **kwargs: Any) -> None:
        """Deliver a message through ``on_message`` (the first implementation that shows it
        wins), else print it, to stderr unless ``level`` is info. A reporter that fails must
        not hide the message: it is printed then."""
        import sys

        try:
            shown = self.pm.hook.on_message(message=message, level=level, **kwargs)
        except Exception:  # noqa: BLE001 (the message matters more than the reporter)
            shown = False
        if not shown:
            print(message, file=sys.stdout if level == "info" else sys.stderr, flush=True)

    def through_pluggy(self, hook: Any, name: str, kwargs: dict[str, Any]) -> None:
        try:
            hook(**kwargs)
        except PluginError:
            raise
        except Exception as e:
            raise PluginError(culprit(hook, e), name, e) from e


def culprit(hook: Any, error: BaseException) -> str:
    """The plugin whose implementation of ``hook`` raised ``error``, from its traceback."""
    codes = {}
    for impl in hook.get_hookimpls():
        function = getattr(impl.function, "__func__", impl.function)
        code = getattr(function, "__code__", None)
        if code is not None:
            codes[code] = plugin_name(impl)
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code in codes:
            return codes[tb.tb_frame.f_code]
        tb = tb.tb_next
    return "unknown"
