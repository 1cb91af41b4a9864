"""trainkit: a plugin-based trainer for neural networks in plain numpy.

The public API for plugin authors and Python users::

    from trainkit import hookimpl, Trainer, DataLoader, get_plugin_manager

Heavy modules load only when used: ``import trainkit`` imports pluggy and nothing numeric.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from trainkit.errors import (
    CheckpointError,
    ConfigError,
    DataError,
    PluginError,
    RegistrationError,
    TrainkitError,
)
from trainkit.markers import hookimpl, hookspec

__version__ = "0.1.0"

__all__ = [
    "CheckpointError",
    "ConfigError",
    "DataError",
    "DataLoader",
    "EpochLog",
    "History",
    "PluginError",
    "RegistrationError",
    "Trainer",
    "TrainkitError",
    "__version__",
    "get_plugin_manager",
    "hookimpl",
    "hookspec",
    "load_checkpoint",
    "save_checkpoint",
]

_LAZY = {
    "Trainer": "trainkit.trainer",
    "EpochLog": "trainkit.trainer",
    "History": "trainkit.trainer",  # deprecated: EpochLog
    "DataLoader": "trainkit.data.loader",
    "get_plugin_manager": "trainkit.plugin_manager",
    "load_checkpoint": "trainkit.checkpoint_io",
    "save_checkpoint": "trainkit.checkpoint_io",
}

if TYPE_CHECKING:
    from trainkit.checkpoint_io import load_checkpoint, save_checkpoint
    from trainkit.data.loader import DataLoader
    from trainkit.plugin_manager import get_plugin_manager
    from trainkit.trainer import EpochLog, Trainer


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainkit' has no attribute {name!r}")
