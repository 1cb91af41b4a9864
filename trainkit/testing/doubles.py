"""The plugins ``check_plugin`` runs beside the plugin under test: one that watches it, one that
presses Ctrl+C, one that fails, one that registers it as its package would."""

from __future__ import annotations

import copy
import json
from typing import Any

from trainkit.markers import hookimpl


class Observer:
    """Keeps the plugin's attributes and the history as they are when ``fit`` ends."""

    name = "check-observer"

    def __init__(self, plugin: str) -> None:
        self.plugin, self.found = plugin, False
        self.state: dict[str, Any] = {}

    @hookimpl(trylast=True)
    def on_fit_end(self, trainer):
        instance = trainer.plugins.get(self.plugin)
        self.found = instance is not None
        if instance is not None:
            self.state = plain_attributes(instance)


class InterruptAt:
    """As if Ctrl+C was pressed at a global step."""

    name = "check-interrupt"

    def __init__(self, step: int) -> None:
        self.step = step

    @hookimpl
    def on_batch_end(self, trainer):
        if trainer.state.global_step == self.step:
            trainer.request_interrupt()


class FailsAtEpoch2:
    """Another plugin that fails."""

    name = "check-fails"

    @hookimpl
    def on_epoch_end(self, epoch):
        if epoch == 2:
            raise RuntimeError("check_plugin's failing plugin failed on purpose")


class Registers:
    """Registers the plugin under test, as its package's entry point would."""

    def __init__(self, name: str, factory: Any) -> None:
        self.plugin, self.factory = name, factory
        self.name = f"check-registers-{name}"

    @hookimpl
    def register_run_plugins(self, register):
        register(self.plugin, self.factory)


def plain_attributes(instance: Any) -> dict[str, Any]:
    """The plugin's public attributes that are plain data (numbers, strings, lists, dicts,
    arrays). An attribute whose name starts with ``_`` is the process's own (a timer, a count of
    this session's calls): it is not expected to survive a resume."""
    out = {}
    for key, value in vars(instance).items():
        if key.startswith("_"):
            continue
        if hasattr(value, "tolist") and hasattr(value, "dtype"):
            value = value.tolist()
        try:
            json.dumps(value, allow_nan=True)
        except (TypeError, ValueError):
            continue
        out[key] = copy.deepcopy(value)
    return out
