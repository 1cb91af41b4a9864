"""Packaging: every built-in plugin is declared in the entry-point group, like a third party's."""

from __future__ import annotations

import sys
from importlib.metadata import entry_points
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent


def declared() -> dict[str, str]:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    return data["project"]["entry-points"]["trainkit"]


def test_every_module_in_plugins_is_declared_as_an_entry_point():
    modules = {p.stem for p in (REPO / "plugins").glob("*.py") if p.stem != "__init__"}
    targets = {value.removeprefix("trainkit.plugins.") for value in declared().values()}
    assert modules == targets
    assert all(value.startswith("trainkit.plugins.") for value in declared().values())


def test_the_installed_entry_points_match_pyproject():
    installed = {ep.name: ep.value for ep in entry_points(group="trainkit")
                 if ep.dist is not None and ep.dist.metadata["Name"] == "trainkit"}
    assert installed == declared(), "reinstall with: pip install -e '.[dev]'"


def test_no_code_imports_the_top_level_name_plugins():
    for path in [*REPO.glob("trainkit/**/*.py"), *REPO.glob("plugins/*.py"),
                 *REPO.glob("tests/*.py")]:
        for line in path.read_text().splitlines():
            stripped = line.strip()
            assert not stripped.startswith(("from plugins", "import plugins")), path


def test_importing_trainkit_loads_nothing_numeric():
    import subprocess

    code = "import sys, trainkit; print('numpy' in sys.modules, 'scipy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_the_wheel_ships_plugins_as_trainkit_plugins_and_nothing_top_level(tmp_path):
    import shutil
    import subprocess
    import zipfile

    source = tmp_path / "src"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    for folder in ("trainkit", "plugins"):
        shutil.copytree(REPO / folder, source / folder,
                        ignore=shutil.ignore_patterns("__pycache__"))
    built = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-index",
                            "--no-build-isolation", "-q", "-w", str(tmp_path / "dist"),
                            str(source)], capture_output=True, text=True, timeout=300)
    assert built.returncode == 0, built.stderr
    wheel = next((tmp_path / "dist").glob("trainkit-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {name.split("/")[0] for name in names}
    assert top_level <= {"trainkit", f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info"}
    assert "trainkit/plugins/checkpoint.py" in names and "trainkit/cli/run.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[trainkit]" in text and "checkpoint = trainkit.plugins.checkpoint" in text
    assert "trainkit = trainkit.cli:main" in text


def test_every_package_of_trainkit_is_in_pyprojects_list():
    """The list is explicit (plugins/ is mapped to trainkit.plugins): a package left out of it
    is missing from the wheel, though every test passes in an editable install."""
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    declared = set(pyproject["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts)
             for p in (REPO / "trainkit").rglob("__init__.py")}
    assert found | {"trainkit.plugins"} == declared
