"""Models that leave trainkit: ONNX (checked by ONNX Runtime) and safetensors.

``export(trained, path, format)`` writes a ``trainkit.load``-ed model atomically, as
checkpoints are written: a failure leaves nothing behind, and an existing file is replaced
only by a whole new one. Each format's library is an optional extra, imported here only when
its format is asked for.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainkit.errors import ConfigError, ExportError

__all__ = ["FORMATS", "export"]

#: Format -> (its module here, the file suffix it is written with).
FORMATS = {"onnx": ("trainkit.export.onnx_graph", ".onnx"),
           "safetensors": ("trainkit.export.safetensors_file", ".safetensors")}


def export(trained: Any, path: Path, format: str = "onnx", *, probabilities: bool = False,
           float_input: bool = False) -> Path:
    """Write ``trained`` (a ``TrainedModel``) to ``path`` as ``format``; returns ``path``. For
    ONNX, ``probabilities`` adds a softmax output and ``float_input`` takes scaled floats
    instead of uint8 pixels."""
    import importlib

    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose from "
                          f"{', '.join(sorted(FORMATS))}", "format")
    path = Path(path)
    if not path.parent.is_dir():
        raise ExportError(f"{path}: its folder {path.parent} does not exist")
    module = importlib.import_module(FORMATS[format][0])
    data = module.to_bytes(trained, probabilities=probabilities, float_input=float_input)
    from trainkit.persist.atomic import atomic_write

    atomic_write(path, data)
    return path


def metadata(trained: Any) -> dict[str, str]:
    """What both formats carry besides the numbers: the trainkit config, the classes, the input
    the model takes and how training scaled it, as strings."""
    import json

    from trainkit import __version__

    config = trained.manifest.get("config") or {}
    low, high = trained.input_range
    return {
        "trainkit_version": __version__,
        "trainkit_config": json.dumps(config, sort_keys=True),
        "class_names": json.dumps(list(trained.class_names)),
        "input_shape": json.dumps(list(trained.image_shape)),
        "input_range": json.dumps([low, high]),
        "input_scaling": ("uint8 pixels are divided by 255; float inputs are taken as they are, "
                          f"in [{low:g}, {high:g}]"),
        "task": trained.task,
        "preprocessing": json.dumps(trained.preprocessing),
    }


def missing_extra(format: str, extra: str, error: ImportError) -> ExportError:
    return ExportError(f"exporting to {format} needs the {extra} extra: "
                       f"pip install 'trainkit[{extra}]' ({error})")
