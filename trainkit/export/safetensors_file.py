"""A trained model's weights as a ``.safetensors`` file, for the Hugging Face world and PyTorch.

The tensors are the model's ``state_dict``: parameters and buffers (batch norm's running
statistics) under their names (``"0.weight"``, ``"1.running_mean"``), float32, in trainkit's
layouts; the metadata holds the trainkit config, the classes, the input and those layouts, so
that another framework can rebuild the model (``examples/torch_from_safetensors.py`` rebuilds
the default convnet in PyTorch). ``safetensors.numpy.load_file`` reads it back.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from trainkit.errors import ExportError
from trainkit.export import metadata, missing_extra

#: How trainkit lays its arrays out, for whoever rebuilds the model elsewhere.
LAYOUTS = ("images channels-last (N, H, W, C); conv2d weight (k, k, C_in, C_out); dense weight "
           "(in_features, out_features), y = x @ W + b; flatten in (H, W, C) order; batch norm "
           "running_var is the unbiased variance, as PyTorch's")


def to_bytes(trained: Any, **_: Any) -> bytes:
    try:
        from safetensors.numpy import save
    except ImportError as e:
        raise missing_extra("safetensors", "safetensors", e) from None
    state_dict = getattr(trained.model, "state_dict", None)
    if state_dict is None:
        raise ExportError(f"{trained.source}: the model ({type(trained.model).__name__}) has no "
                          f"state_dict() to export")
    tensors = {name: np.ascontiguousarray(value, dtype=np.float32)
               for name, value in state_dict().items()}
    from trainkit.nn.summary import describe

    layers = [describe(layer) for layer in getattr(trained.model, "layers", [])]
    return save(tensors, metadata={**metadata(trained), "layers": json.dumps(layers),
                                   "layouts": LAYOUTS})
