"""Is this local file the one a dataset expects? SHA-256 checks, remembered by size and mtime.

Hashing MNIST's files takes a few tens of milliseconds, Fashion-MNIST's a little more; the answer is
remembered in ``<cache>/verified.json`` keyed by the file's absolute path, size and modification
time, so a run that starts on files already checked hashes nothing. A file that changes in place
gets a new mtime (or size) and is hashed again.
"""

from __future__ import annotations

import json
from pathlib import Path

from trainkit.data.download import sha256_of
from trainkit.persist.atomic import atomic_write
from trainkit.persist.cache import default_cache_dir

CACHE_NAME = "verified.json"


def cached_sha256(path: Path) -> str:
    """The SHA-256 of ``path``, from the cache when its size and mtime are unchanged."""
    path = Path(path).resolve()
    stat = path.stat()
    key, stamp = str(path), [stat.st_size, stat.st_mtime_ns]
    cache_file = default_cache_dir() / CACHE_NAME
    try:
        cache = json.loads(cache_file.read_text(encoding="utf-8"))
        if not isinstance(cache, dict):
            cache = {}
    except (OSError, ValueError):
        cache = {}
    entry = cache.get(key)
    if isinstance(entry, list) and len(entry) == 3 and entry[:2] == stamp:
        return str(entry[2])
    digest = sha256_of(path)
    cache[key] = [*stamp, digest]
    try:  # a cache that cannot be written only costs the next run a few milliseconds
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_file, json.dumps(cache, indent=0, sort_keys=True))
    except OSError:
        pass
    return digest
