"""tox's inline plugin for this project: find the Pythons pyenv installed.

tox looks for ``python3.10`` ... ``python3.13`` on PATH, and pyenv puts only the active
version's executables there, so on a pyenv machine ``tox`` alone used to fail with "could not
find python interpreter matching py310". When pyenv is installed, this adds the ``bin`` folder
of every CPython it installed to the end of PATH (after everything already there, so an
activated virtualenv or a system Python still wins), which is what interpreter discovery needs.
Without pyenv it does nothing.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

from tox.plugin import impl


def pyenv_bin_dirs() -> list[str]:
    if shutil.which("pyenv") is None:
        return []
    try:
        root = subprocess.run(["pyenv", "root"], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return []
    versions = Path(root) / "versions"
    if not versions.is_dir():
        return []
    found = sorted((v for v in versions.iterdir() if re.fullmatch(r"3\.\d+\.\d+", v.name)),
                   key=lambda v: tuple(map(int, v.name.split("."))), reverse=True)
    return [str(v / "bin") for v in found if (v / "bin").is_dir()]


@impl
def tox_add_core_config(core_conf, state) -> None:  # noqa: ARG001 (tox's hook signature)
    path = os.environ.get("PATH", "").split(os.pathsep)
    extra = [folder for folder in pyenv_bin_dirs() if folder not in path]
    if extra:
        os.environ["PATH"] = os.pathsep.join([*path, *extra])
