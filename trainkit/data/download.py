"""Download dataset files into a cache, verified by SHA-256, trying each mirror in turn.

A file is streamed into a temporary file in the cache folder while its hash is computed, and is
moved into place with ``os.replace`` only when the hash matches, so a partial or corrupt download
is never used. Each socket read has a timeout, so a stalled server fails instead of hanging.
"""

from __future__ import annotations

import hashlib
import http.client
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from trainkit.errors import DataError
from trainkit.persist.atomic import atomic_file

CHUNK = 1 << 16


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def fetch(
    filename: str,
    sha256: str,
    mirrors: Sequence[str],
    cache_dir: Path,
    *,
    timeout: float = 30.0,
    progress: bool | None = None,
) -> Path:
    """Return the verified cached copy of ``filename``, downloading it first if needed."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    target = cache_dir / filename
    if target.exists() and sha256_of(target) == sha256:
        return target
    failures = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        try:
            _download(url, target, sha256, timeout, progress)
            return target
        except _MirrorFailed as e:
            failures.append(f"{url} ({e})")
    tried = "; ".join(failures) or "no mirrors configured"
    raise DataError(
        f"could not download {filename}: {tried}. Download the files yourself and pass "
        f"--data-dir DIR (or set TRAINKIT_DATA_DIR) to use them"
    )


class _MirrorFailed(Exception):
    pass


def _download(url: str, target: Path, sha256: str, timeout: float, progress: bool | None) -> None:
    from tqdm import tqdm

    with atomic_file(target) as out:  # the target appears only once complete and verified
        digest = hashlib.sha256()
        try:
            response = urllib.request.urlopen(url, timeout=timeout)
        except (urllib.error.URLError, OSError, ValueError) as e:
            raise _MirrorFailed(_reason(e)) from None
        with response:
            total = int(response.headers.get("Content-Length") or 0) or None
            show = sys.stderr.isatty() if progress is None else progress
            with tqdm(total=total, unit="B", unit_scale=True, desc=target.name,
                      disable=not show, leave=False) as bar:
                received = 0
                try:
                    while chunk := response.read(CHUNK):
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        bar.update(len(chunk))
                except (OSError, http.client.HTTPException) as e:  # timeouts are OSErrors
                    raise _MirrorFailed(_reason(e)) from None
            if total is not None and received != total:
                raise _MirrorFailed(f"truncated: got {received} of {total} bytes")
        if digest.hexdigest() != sha256:
            raise _MirrorFailed(f"SHA-256 mismatch: got {digest.hexdigest()[:12]}...")


def _reason(error: BaseException) -> str:
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code}"
    if isinstance(error, urllib.error.URLError):
        return str(error.reason)
    if isinstance(error, TimeoutError) or "timed out" in str(error):
        return "timed out"
    return str(error) or type(error).__name__
