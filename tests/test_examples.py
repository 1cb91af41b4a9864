"""The examples: the Python-API script, and the plugin package installed into a fresh venv offline."""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
EXTRAS = REPO / "examples" / "trainkit-extras"


def test_python_api_example_trains_with_a_custom_plugin(synthetic_dir):
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "python_api.py"), "--epochs", "2", "--dataset",
         "idx"],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "TRAINKIT_DATA_DIR": str(synthetic_dir)})
    assert result.returncode == 0, result.stderr
    assert "gradient norm over the last" in result.stdout
    assert "final test accuracy" in result.stdout and "[  2/2]" in result.stdout


def test_session_example_resumes_from_python_bit_exactly(synthetic_dir, tmp_path):
    result = subprocess.run(
        [sys.executable, str(REPO / "examples" / "session_api.py"), "--dataset", "idx", "--out",
         str(tmp_path / "demo")], capture_output=True, text=True, timeout=300,
        env={**os.environ, "TRAINKIT_DATA_DIR": str(synthetic_dir)})
    assert result.returncode == 0, result.stderr
    assert "resumed run: completed, 4 epochs counted in all; run.json says completed" \
        in result.stdout
    assert "resumed weights equal the uninterrupted run's, bit for bit: True" in result.stdout


@pytest.fixture(scope="module")
def venv_python(tmp_path_factory) -> Path:
    """A fresh venv that sees this environment's packages (trainkit and its dependencies, pip,
    setuptools) and gets trainkit-extras installed offline, with no index and no build isolation."""
    root = tmp_path_factory.mktemp("venv")
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                             capture_output=True, text=True, check=True).stdout.strip()
    parents = dict.fromkeys([sysconfig.get_path("purelib"), sysconfig.get_path("platlib"),
                             *site.getsitepackages()])
    lines = [f"import site; site.addsitedir({p!r})" for p in parents if Path(p).is_dir()]
    (Path(purelib) / "_parent_environment.pth").write_text("\n".join(lines) + "\n")
    source = root / "trainkit-extras"  # build from a copy: the build leaves files behind
    shutil.copytree(EXTRAS, source, ignore=shutil.ignore_patterns("build", "*.egg-info"))
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--no-index", "--no-build-isolation", "--no-deps",
         "--quiet", str(source)], capture_output=True, text=True, timeout=300,
        env={**os.environ, "PIP_NO_INDEX": "1"})
    assert install.returncode == 0, install.stderr
    return python


def trainkit_in(python: Path, *args, **env):
    return subprocess.run([str(python), "-m", "trainkit", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, **env})


def test_installed_plugin_package_is_listed_with_its_distribution(venv_python):
    result = trainkit_in(venv_python, "plugins", "--all")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.split()[:3] == ["optimizer", "adagrad", "adagrad"] for line in lines)
    assert any(line.split()[:3] == ["plugin", "confused-pairs", "confused-pairs"]
               for line in lines)
    assert "adagrad  [entry point, trainkit-extras 0.1.0]  hooks: register_optimizers" in result.stdout
    assert "--confused-pairs-top = 3" in result.stdout
    assert "registers: plugin confused-pairs" in result.stdout


def test_installed_plugin_options_show_in_run_help(venv_python):
    result = trainkit_in(venv_python, "run", "--help")
    text = " ".join(result.stdout.split())
    assert "Plugin confused-pairs (--plugin confused-pairs, from plugin confused-pairs):" \
        in text
    assert "--confused-pairs-top" in text
    assert "[default: 0.0; adagrad from plugin adagrad]" in text  # --lr-decay: from where


def test_installed_plugins_train_and_their_hooks_run(venv_python, synthetic_dir, tmp_path):
    result = trainkit_in(venv_python, "run", "--dataset", "idx", "--data-dir", str(synthetic_dir),
                         "--epochs", "2",
                         "--optimizer", "adagrad", "--lr-decay", "0.001", "--plugin", "confused-pairs",
                         "--confused-pairs-top", "2", "--out", str(tmp_path / "run"))
    assert result.returncode == 0, result.stderr
    assert "with adagrad" in result.stdout
    assert "confused-pairs: per-class accuracy: 0:" in result.stdout
    assert "confused-pairs: most confused:" in result.stdout
    assert (tmp_path / "run" / "confusion.csv").read_text().count("\n") == 10


def test_autoload_off_leaves_the_third_party_plugins_out(venv_python):
    result = trainkit_in(venv_python, "plugins", TRAINKIT_DISABLE_PLUGIN_AUTOLOAD="1")
    assert result.returncode == 0 and "adagrad" not in result.stdout and "adam" in result.stdout


def test_the_example_packages_own_tests_pass_with_the_fixtures():
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(EXTRAS), *filter(None, [os.environ.get("PYTHONPATH")])])}
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             str(EXTRAS / "tests")], cwd=EXTRAS, env=env, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout
