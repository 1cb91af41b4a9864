"""trainkit new-plugin: the package it writes installs with pip, shows in `trainkit plugins` and
passes its own tests at once; bad names and existing folders are one line."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli


def new_plugin(*args):
    return CliRunner().invoke(make_cli(), ["new-plugin", *map(str, args)])


def venv_with(package: Path, venv: Path) -> Path:
    """The python of a fresh environment that sees this one's packages (trainkit, pytest)
    through a .pth, with ``package`` pip-installed (editable) into it."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()"
                                              "['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    outer = sysconfig.get_paths()["purelib"]
    with open(f"{site}/outer.pth", "w") as f:
        f.write(f"import site; site.addsitedir({outer!r})\n")
    install = subprocess.run([str(python), "-m", "pip", "install", "--no-deps",
                              "--no-build-isolation", "--no-index", "-e", str(package)],
                             capture_output=True, text=True, timeout=300)
    assert install.returncode == 0, install.stdout + install.stderr
    return python


def test_the_package_installs_lists_and_passes_its_own_tests(tmp_path):
    made = new_plugin("trainkit-demo", "--dir", tmp_path)
    assert made.exit_code == 0, made.output
    package = tmp_path / "trainkit-demo"
    python = venv_with(package, tmp_path / "venv")
    listed = subprocess.run([str(python), "-m", "trainkit", "plugins"], capture_output=True,
                            text=True, timeout=120)
    assert "demo  [entry point, trainkit-demo 0.1.0]" in listed.stdout, listed.stdout
    # this borrowed environment sees mpi4py but not the MPI library beside it: no ddp check
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep)
                           if not (Path(p) / "mpiexec").exists())
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=package, capture_output=True, text=True, timeout=600,
                           env={**os.environ, "PATH": path})
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "4 passed" in tests.stdout


@pytest.mark.parametrize("name,expected", [("bad name", "not a valid package name"),
                                           ("-demo", "not a valid package name"),
                                           ("9lives", "cannot import")])
def test_a_bad_name_is_one_line(tmp_path, name, expected):
    parent = tmp_path / "plugins"
    parent.mkdir()
    result = new_plugin("--dir", parent, "--", name)
    assert result.exit_code == 2 and expected in result.output
    assert "Traceback" not in result.output
    assert not any(parent.iterdir())


def test_an_existing_folder_is_refused(tmp_path):
    (tmp_path / "trainkit-demo").mkdir()
    result = new_plugin("trainkit-demo", "--dir", tmp_path)
    assert result.exit_code == 2 and "already exists" in result.output
    assert not any((tmp_path / "trainkit-demo").iterdir())


@pytest.mark.parametrize("name,owner", [("trainkit-checkpoint", "trainkit's built-in"),
                                        ("trainkit-history", "trainkit's built-in"),
                                        ("plot", "trainkit's built-in")])
def test_new_plugin_refuses_a_name_that_an_installed_plugin_has(tmp_path, name, owner):
    result = CliRunner().invoke(make_cli(), ["new-plugin", name, "--dir", str(tmp_path / "pkgs")])
    assert result.exit_code == 2 and not (tmp_path / "pkgs").exists()
    plugin = name.removeprefix("trainkit-")
    assert f"plugin name '{plugin}' is already {owner}: a package declaring it would not be " \
           f"loaded; choose another name, such as trainkit-my-{plugin}" in result.output


def test_an_installed_package_declaring_checkpoint_leaves_the_builtin_in_place(synthetic_dir,
                                                                               tmp_path):
    """The package new-plugin wrote for trainkit-checkpoint before it refused the name,
    pip-installed: the built-in checkpoint plugin still keeps the model, and a warning names
    the package."""
    from trainkit.cli.plugin_template import write_package

    package = write_package("trainkit-checkpoint", tmp_path)
    python = venv_with(package, tmp_path / "venv")
    out = tmp_path / "run"
    run = subprocess.run([str(python), "-m", "trainkit", "run", "--dataset", "idx", "--data-dir",
                          str(synthetic_dir), "--epochs", "1", "--out", str(out)],
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert (out / "last.npz").exists() and (out / "final.npz").exists()
    assert "plugin name 'checkpoint' of trainkit-checkpoint 0.1.0 is already trainkit's " \
           "built-in: trainkit-checkpoint's is not loaded" in run.stderr


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["layer", "loss", "optimizer", "metric", "dataset"])
def test_each_component_kinds_package_installs_and_passes_its_own_tests(kind, tmp_path):
    made = new_plugin(f"trainkit-demo-{kind}", "--kind", kind, "--dir", tmp_path)
    assert made.exit_code == 0, made.output
    assert f"{kind} plugin 'demo-{kind}'" in made.output
    package = tmp_path / f"trainkit-demo-{kind}"
    python = venv_with(package, tmp_path / "venv")
    source = (package / "tests" / f"test_trainkit_demo_{kind}.py").read_text()
    assert f"check_{kind}(" in source  # its tests call the component's check
    tests = subprocess.run([str(python), "-m", "pytest", "-q", "-p", "no:cacheprovider"],
                           cwd=package, capture_output=True, text=True, timeout=600)
    assert tests.returncode == 0, tests.stdout + tests.stderr
    assert "2 passed" in tests.stdout


@pytest.mark.parametrize("name,kind,what", [("trainkit-dense", "layer", "layer"),
                                            ("trainkit-adam", "optimizer", "optimizer"),
                                            ("trainkit-f1", "metric", "metric"),
                                            ("trainkit-mse", "loss", "loss"),
                                            ("trainkit-fashion-mnist", "dataset", "dataset")])
def test_a_component_named_like_a_builtin_one_is_refused(tmp_path, name, kind, what):
    result = new_plugin(name, "--kind", kind, "--dir", tmp_path / "pkgs")
    assert result.exit_code == 2 and not (tmp_path / "pkgs").exists()
    component = name.removeprefix("trainkit-")
    assert f"{what} name '{component}' is already trainkit's built-in" in result.output
