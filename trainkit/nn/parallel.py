"""0.1.0's names for a layer's steps, kept until 0.3.0 (``trainkit.deprecated``).

The schedule is ``trainkit.nn.schedule`` now, and a layer hands it work with
``self.over_batch(...)`` and ``self.wait()`` from plain ``forward``/``backward`` methods.
"""

from __future__ import annotations

from typing import Any

from trainkit.nn.schedule import (  # noqa: F401 (re-exported for 0.1.0's layers)
    WAIT,
    Parts,
    Steps,
    batch_parts,
    value_parts,
)
from trainkit.nn.schedule import contiguous_steps as contiguous  # noqa: F401


def __getattr__(name: str) -> Any:
    if name == "RUN":  # 0.1.0's name for WAIT
        from trainkit.deprecated import warn

        warn("parallel.RUN")
        return WAIT
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
