"""Every deprecation of trainkit in one place, with the version that removes it (as pytest's
``deprecated.py``). A deprecated name keeps working, with a ``DeprecationWarning`` that says
what to use instead, until that version.

Modules that moved when ``trainkit/`` became packages by layer (0.2.0) are aliases: importing
the old path gives the new module, once, with the warning. ``install`` puts the finder that does
it on ``sys.meta_path``; ``import trainkit`` calls it.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Deprecation:
    old: str
    new: str
    since: str
    removed_in: str


#: Modules moved into the packages by layer: old import path -> new one.
MOVED_MODULES = {
    "trainkit.atomic": "trainkit.persist.atomic",
    "trainkit.cache": "trainkit.persist.cache",
    "trainkit.checkpoint_io": "trainkit.persist.checkpoint_io",
    "trainkit.contract": "trainkit.plugin.contract",
    "trainkit.options": "trainkit.plugin.options",
    "trainkit.entry_points": "trainkit.plugin.entry_points",
    "trainkit.plugin_manager": "trainkit.plugin.manager",
    "trainkit.registry": "trainkit.plugin.registry",
    "trainkit.trainer": "trainkit.loop.trainer",
    "trainkit.context": "trainkit.loop.context",
    "trainkit.metrics": "trainkit.loop.metrics",
    "trainkit.monitor": "trainkit.loop.monitor",
    "trainkit.profiler": "trainkit.loop.profiler",
    "trainkit.curves": "trainkit.loop.curves",
    "trainkit.formatting": "trainkit.loop.formatting",
    "trainkit.run": "trainkit.session.run",
    "trainkit.run_folder": "trainkit.session.run_folder",
    "trainkit.run_lock": "trainkit.session.run_lock",
    "trainkit.threads": "trainkit.session.threads",
    "trainkit.snapshot": "trainkit.session.snapshot",
    "trainkit.evaluation": "trainkit.session.evaluation",
    "trainkit.inference": "trainkit.session.inference",
    "trainkit.tomlio": "trainkit.session.tomlio",
    "trainkit.optim": "trainkit.nn.optim",
    "trainkit.harness": "trainkit.testing.harness",
    "trainkit.conformance": "trainkit.testing.conformance",
    "trainkit.plugin_template": "trainkit.cli.plugin_template",
}

#: Every deprecation: the moved modules, and the names and hooks renamed before them.
DEPRECATIONS = [
    *(Deprecation(old, new, "0.2.0", "0.3.0") for old, new in MOVED_MODULES.items()),
    Deprecation("trainkit.History, trainkit.loop.trainer.History", "EpochLog", "0.1.0", "0.3.0"),
    Deprecation("trainkit.plugins.history.History", "HistoryFiles", "0.1.0", "0.3.0"),
    Deprecation("hook register_plugins", "register_run_plugins", "0.1.0", "0.3.0"),
    Deprecation("--lr-schedule-schedule", "--lr-schedule", "0.1.0", "0.3.0"),
    Deprecation("trainer.run_dir and the other RunContext views on the Trainer",
                "trainer.context.run_dir, or the hook's context argument", "0.2.0", "0.3.0"),
    Deprecation("preferred_blas_threads", "preferred_threads (the plugin attribute)", "0.2.0",
                "0.3.0"),
    Deprecation("Parts(bounds, work)", "Module.over_batch(work, *arrays, values=...) (the "
                "schedule cuts the batch; work gets the arrays' parts)", "0.2.0", "0.3.0"),
    Deprecation("parallel.RUN", "parallel.WAIT", "0.2.0", "0.3.0"),
    Deprecation("parallel.batch_parts, parallel.value_parts", "Module.over_batch(work, "
                "*arrays, values=...)", "0.2.0", "0.3.0"),
]


def removal(old: str) -> str:
    """The version that removes ``old``."""
    return next(d.removed_in for d in DEPRECATIONS if d.old == old)


def warn(old: str, stacklevel: int = 3) -> None:
    """The ``DeprecationWarning`` for a use of ``old``, saying what to use instead."""
    deprecation = next(d for d in DEPRECATIONS if d.old == old)
    warnings.warn(f"{old} is deprecated: use {deprecation.new}; it stops working in trainkit "
                  f"{deprecation.removed_in}", DeprecationWarning, stacklevel=stacklevel)


class MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old module path and hands over the new module under it, with a warning."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None):
        if fullname in MOVED_MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        new = MOVED_MODULES[spec.name]
        warnings.warn(f"{spec.name} is now {new}; the old path stops working in trainkit "
                      f"{removal(spec.name)}", DeprecationWarning, stacklevel=3)
        return importlib.import_module(new)

    def exec_module(self, module) -> None:
        """The module is the new one, already executed."""


def install() -> None:
    if not any(isinstance(f, MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.append(MovedModuleFinder())
