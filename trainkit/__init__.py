"""trainkit: a plugin-based trainer for neural networks in plain numpy.

The public API for plugin authors and Python users::

    from trainkit import hookimpl, Trainer, DataLoader, get_plugin_manager
    model = trainkit.load("runs/mnist")  # a trained model: model.predict(images)

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

__version__ = "0.2.0"

from trainkit import deprecated as _deprecated  # noqa: E402 (after the names it may warn about)

_deprecated.install()  # the module paths of 0.1.0, with a warning until 0.3.0

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
    "load",
    "load_checkpoint",
    "save_checkpoint",
]

_LAZY = {
    "Trainer": "trainkit.loop.trainer",
    "EpochLog": "trainkit.loop.state",
    "History": "trainkit.loop.state",  # deprecated: EpochLog
    "DataLoader": "trainkit.data.loader",
    "get_plugin_manager": "trainkit.plugin.manager",
    "load": "trainkit.session.inference",
    "load_checkpoint": "trainkit.persist.checkpoint_io",
    "save_checkpoint": "trainkit.persist.checkpoint_io",
}

if TYPE_CHECKING:
    from trainkit.data.loader import DataLoader
    from trainkit.loop.trainer import EpochLog, Trainer
    from trainkit.persist.checkpoint_io import load_checkpoint, save_checkpoint
    from trainkit.plugin.manager import get_plugin_manager
    from trainkit.session.inference import load


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'trainkit' has no attribute {name!r}")
