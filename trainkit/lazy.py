"""A module imported on first use, so that ``trainkit --help``, ``--version`` and ``plugins``
never import numpy.

``np = lazy_import("numpy")`` binds a stand-in module; the first attribute read imports numpy
and copies its namespace into the stand-in, so every later ``np.x`` is an ordinary module
attribute lookup, as fast as with ``import numpy as np``. Plugin modules (loaded to build the
command line) and the few core modules they import use it; everything imported only when a run
starts imports numpy normally.
"""

from __future__ import annotations

import importlib
import types
from typing import Any


class LazyModule(types.ModuleType):
    def __getattr__(self, name: str) -> Any:
        module = importlib.import_module(self.__name__)
        self.__dict__.update(module.__dict__)
        return getattr(module, name)


def lazy_import(name: str) -> Any:
    """A stand-in for module ``name`` that imports it on first attribute access."""
    return LazyModule(name)
