"""Where trainkit keeps what it can rebuild: downloaded datasets, their verified checksums, and
the entry-point cache."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$TRAINKIT_CACHE_DIR``, else ``$XDG_CACHE_HOME/trainkit``, else ``~/.cache/trainkit``."""
    if os.environ.get("TRAINKIT_CACHE_DIR"):
        return Path(os.environ["TRAINKIT_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "trainkit"
