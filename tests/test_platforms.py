"""trainkit on a Python without the POSIX-only modules and calls: what Windows lacks.

The machines here run Linux, so Windows is approximated: a subprocess in which ``fcntl``,
``resource``, ``pwd`` and ``termios`` cannot be imported and the ``os`` and ``signal`` names that
Windows' Python does not have are gone, imports every module of trainkit and its built-in plugins,
then trains a short run with a run folder and checkpoints, and resumes it. (filelock, imported
without ``fcntl``, takes its soft lock here; on Windows it takes ``msvcrt``'s.)
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

WINDOWS_LIKE = textwrap.dedent('''
    import importlib.abc, os, signal, sys

    BLOCKED = {"fcntl", "resource", "pwd", "grp", "termios", "tty", "pty"}

    class NoPosix(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    for name in BLOCKED:
        sys.modules.pop(name, None)
    sys.meta_path.insert(0, NoPosix())
    # third-party libraries pick their code by sys.platform when imported (numpy reads os.uname
    # on Linux): they are loaded first, so that only trainkit's own code meets the missing names
    import click, filelock, numpy, pluggy, scipy.special, threadpoolctl, tqdm  # noqa: F401
    for name in ("fork", "forkpty", "register_at_fork", "sched_getaffinity", "pread", "pwrite",
                 "getuid", "geteuid", "getpgid", "killpg", "uname", "getloadavg", "sync"):
        if hasattr(os, name):
            delattr(os, name)
    for name in ("SIGKILL", "SIGPIPE", "SIGHUP", "SIGALRM", "SIGUSR1", "SIGUSR2", "SIGQUIT"):
        if hasattr(signal, name):
            delattr(signal, name)
''')

RUN = textwrap.dedent('''
    import importlib, json, pkgutil, sys
    import trainkit, trainkit.plugins

    imported = []
    for package in (trainkit, trainkit.plugins):
        for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
            importlib.import_module(module.name)
            imported.append(module.name)

    from click.testing import CliRunner
    from trainkit.cli import make_cli

    data, out = sys.argv[1], sys.argv[2]
    common = ["--dataset", "idx", "--data-dir", data, "--limit-batches", "3"]
    first = CliRunner().invoke(make_cli(), ["run", *common, "--epochs", "1", "--out", out,
                                            "--plugin", "history"])
    second = CliRunner().invoke(make_cli(), ["run", "--resume", out, "--epochs", "2", *common])
    blocked = [name for name in ("fcntl", "resource", "pwd", "termios") if name in sys.modules]
    print(json.dumps({"imported": imported, "blocked_but_loaded": blocked,
                      "codes": [first.exit_code, second.exit_code],
                      "output": first.output + second.output}))
''')


@pytest.fixture(scope="module")
def windows_like_run(synthetic_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("windows-like") / "run"
    # from a folder of its own: `python -c` puts the working folder first on sys.path, and the
    # repository's trainkit/ (without plugins/) would shadow the installed package under tox
    done = subprocess.run([sys.executable, "-c", WINDOWS_LIKE + RUN, str(synthetic_dir), str(out)],
                          capture_output=True, text=True, timeout=300, cwd=out.parent)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1]), out


def test_every_module_imports_without_posix_only_modules(windows_like_run):
    result, _ = windows_like_run
    assert "trainkit.session.run_lock" in result["imported"]
    assert "trainkit.plugins.checkpoint" in result["imported"]
    assert len(result["imported"]) > 50
    assert result["blocked_but_loaded"] == []


def test_a_run_with_a_run_folder_trains_and_resumes_without_them(windows_like_run):
    result, out = windows_like_run
    assert result["codes"] == [0, 0], result["output"]
    assert "Traceback" not in result["output"]
    assert json.loads((out / "run.json").read_text(encoding="utf-8"))["status"] == "completed"
    assert (out / "last.npz").exists() and (out / "history.csv").exists()
    assert not (out / ".trainkit.owner").exists()  # released cleanly


def test_ddp_without_mpi_names_what_to_install_on_each_platform(monkeypatch):
    from trainkit.errors import ConfigError
    from trainkit.plugins import ddp

    monkeypatch.setitem(sys.modules, "mpi4py", None)  # not installed
    with pytest.raises(ConfigError, match=r"needs mpi4py: pip install 'trainkit\[mpi\]'"):
        ddp.DDP()
    monkeypatch.setattr(sys, "platform", "win32")
    with pytest.raises(ConfigError, match="needs Microsoft MPI on Windows: install MS-MPI"):
        ddp.DDP()


def test_the_mpi_extra_brings_mpich_only_where_its_wheels_exist():
    from importlib.metadata import requires

    from packaging.requirements import Requirement

    mpi = [Requirement(r) for r in requires("trainkit") if "extra == \"mpi\"" in r]

    def installed_on(platform):
        return sorted(r.name for r in mpi
                      if r.marker.evaluate({"extra": "mpi", "sys_platform": platform}))

    assert installed_on("linux") == installed_on("darwin") == ["mpi4py", "mpich"]
    assert installed_on("win32") == ["mpi4py"]


def test_a_checkpoint_replace_waits_for_a_windows_reader_to_close_the_file(tmp_path,
                                                                           monkeypatch):
    from trainkit.persist import atomic

    target = tmp_path / "last.npz"
    target.write_bytes(b"old")
    real_replace, refusals = atomic.os.replace, []

    def held_open_twice(source, destination):  # Windows, while a reader holds the file
        if len(refusals) < 2:
            refusals.append(destination)
            raise PermissionError(13, "The process cannot access the file")
        real_replace(source, destination)

    monkeypatch.setattr(atomic.os, "replace", held_open_twice)
    monkeypatch.setattr(atomic, "REPLACE_WAITS", (0.0,) * 6)
    monkeypatch.setattr(sys, "platform", "win32")
    atomic.atomic_write(target, b"new")
    assert target.read_bytes() == b"new" and len(refusals) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["last.npz"]  # no temporary file left

    monkeypatch.setattr(sys, "platform", "linux")  # elsewhere the error is real at once
    refusals.clear()
    with pytest.raises(PermissionError):
        atomic.atomic_write(target, b"newer")
    assert target.read_bytes() == b"new" and len(refusals) == 1
