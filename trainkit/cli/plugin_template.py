"""What ``trainkit new-plugin NAME`` writes: a complete plugin package that installs, shows in
``trainkit plugins``, and passes its own tests (fixtures and ``check_plugin``) at once."""

from __future__ import annotations

import keyword
import re
from pathlib import Path

from trainkit.errors import ConfigError

#: PEP 508's name rule: letters, digits, and . _ - inside
DISTRIBUTION_NAME = re.compile(r"^([A-Z0-9]|[A-Z0-9][A-Z0-9._-]*[A-Z0-9])$", re.IGNORECASE)


def names_for(name: str) -> dict[str, str]:
    """The distribution, module, plugin and class names for ``name`` (``trainkit-demo`` ->
    ``trainkit_demo``, plugin ``demo``, class ``Demo``), or a one-line error."""
    if not DISTRIBUTION_NAME.match(name):
        raise ConfigError(f"{name!r} is not a valid package name: use letters, digits and - _ . "
                          f"(not at either end), such as trainkit-demo")
    module = re.sub(r"[-_.]+", "_", name).lower()
    if not module.isidentifier() or keyword.iskeyword(module) or module[0].isdigit():
        raise ConfigError(f"{name!r} gives the module name {module!r}, which Python cannot "
                          f"import: start with a letter, such as trainkit-{module}")
    plugin = re.sub(r"^trainkit[-_.]", "", name.lower()).replace("_", "-").replace(".", "-")
    if plugin == "trainkit":
        plugin = "plugin"
    cls = "".join(word.capitalize() for word in plugin.split("-"))
    if not cls.isidentifier():
        cls = "Plugin" + cls
    return {"distribution": name, "module": module, "plugin": plugin, "class": cls}


#: What ``new-plugin --kind`` writes: a run plugin (the default) or a component.
KINDS = ("run", "layer", "loss", "optimizer", "metric", "dataset")


def write_package(name: str, parent: Path, kind: str = "run") -> Path:
    """Write the package ``name`` of ``kind`` into ``parent / name``; refuse a folder that
    exists."""
    from trainkit import __version__
    from trainkit.cli import component_templates as components

    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}", "kind")
    n = names_for(name)
    folder = parent / name
    if folder.exists():
        raise ConfigError(f"{folder} already exists: choose another name or folder")
    version = __version__.split("+")[0]
    if kind == "run":
        module, tests, readme, summary = MODULE, TESTS, README, "a run plugin"
    else:
        module, tests, summary = components.MODULES[kind], components.TESTS[kind], \
            components.SUMMARIES[kind]
        usage = components.USAGE[kind].format(**n)
        readme = components.README.replace("{usage}", usage.replace("{", "{{").replace("}", "}}"))
    n = {**n, "kind": kind, "summary": summary}
    files = {
        "pyproject.toml": PYPROJECT,
        f"{n['module']}/__init__.py": module,
        f"tests/test_{n['module']}.py": tests,
        "tox.ini": TOX,
        "README.md": readme,
        ".gitignore": "__pycache__/\n*.egg-info/\n.tox/\nruns/\nbuild/\n",
    }
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text.format(**n, version=version), encoding="utf-8")
    return folder


PYPROJECT = '''\
[build-system]
requires = ["setuptools>=68"]
build-backend = "setuptools.build_meta"

[project]
name = "{distribution}"
version = "0.1.0"
description = "A trainkit plugin: {summary} ({plugin})."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["trainkit>={version}"]

[project.optional-dependencies]
test = ["pytest>=7.4"]

# trainkit finds the plugin through this entry point, as it finds its own built-ins
[project.entry-points.trainkit]
{plugin} = "{module}"

[tool.setuptools]
packages = ["{module}"]
'''

MODULE = '''\
"""{plugin}: a trainkit run plugin.

    trainkit run --plugin {plugin} --{plugin}-every 2

It counts the run's optimizer steps and adds the total to the epoch's logs as ``steps`` (every
``every`` epochs), so it shows on the console and in history.csv. The count is kept in
checkpoints: a resumed run goes on counting where it stopped.
"""

from __future__ import annotations

from trainkit import hookimpl
from trainkit.errors import ConfigError


class {class}:
    """Count optimizer steps and log the total as ``steps``.

    Args:
        every: log the count every this many epochs.
    """

    name = "{plugin}"

    def __init__(self, every: int = 1) -> None:
        if every < 1:
            raise ConfigError(f"every must be at least 1, got {{every}}", "every")
        self.every = every
        self.steps = 0

    @hookimpl
    def on_batch_end(self):
        self.steps += 1

    @hookimpl
    def on_epoch_end(self, epoch, logs):
        if epoch % self.every == 0:
            logs["steps"] = self.steps

    @hookimpl
    def on_save_checkpoint(self, state):
        state[self.name] = {{"steps": self.steps}}

    @hookimpl
    def on_load_checkpoint(self, state):
        self.steps = state.get(self.name, {{}}).get("steps", 0)


@hookimpl
def register_run_plugins(register):
    register("{plugin}", {class})
'''

TESTS = '''\
"""Tests of the {plugin} plugin, with trainkit's fixtures (trainkit.testing): ``trainkit_cli``
runs the CLI in-process on the synthetic ``tiny`` dataset (9 steps an epoch at batch 32)."""

from trainkit.testing import check_plugin

from {module} import {class}


def test_it_conforms():
    # a full run, Ctrl+C and resume, another plugin failing, options three ways (and ddp
    # where MPI is installed): one line
    check_plugin({class})


def test_it_logs_the_step_count(trainkit_cli):
    result = trainkit_cli(["run", "--plugin", "{plugin}", "--epochs", "2", "--batch-size", "32"])
    assert result.exit_code == 0, result.output
    assert [row["steps"] for row in result.history] == [9, 18]


def test_every_is_an_option(trainkit_cli):
    result = trainkit_cli(["run", "--plugin", "{plugin}", "--{plugin}-every", "2", "--epochs", "2",
                           "--batch-size", "32"])
    assert result.exit_code == 0, result.output
    assert [row.get("steps") for row in result.history] == [None, 18]


def test_a_bad_value_is_one_line(trainkit_cli):
    result = trainkit_cli(["run", "--plugin", "{plugin}", "--{plugin}-every", "0"])
    assert result.exit_code == 2 and "every must be at least 1" in result.output
'''

TOX = '''\
[tox]
env_list = py310, py311, py312, py313

[testenv]
extras = test
commands = pytest {{posargs}}
'''

README = '''\
# {distribution}

A [trainkit](https://pypi.org/project/trainkit/) run plugin, `{plugin}`: it counts the run's
optimizer steps and logs the total as `steps`, keeping the count in checkpoints.

```bash
pip install -e .
trainkit plugins                          # lists {plugin}, from {distribution} 0.1.0
trainkit run --plugin {plugin} --{plugin}-every 2
```

## Tests

```bash
pip install -e '.[test]'
pytest                                    # or tox, for Python 3.10 to 3.13
```

The tests use trainkit's pytest fixtures (`trainkit_cli`, `tiny_dataset`, `hook_recorder`,
installed with trainkit) and `check_plugin`, which takes the plugin through a full run, an
interrupted run and its resume, a run where another plugin fails, and its options given three
ways. Keep your plugin's state in `on_save_checkpoint` / `on_load_checkpoint`, or `check_plugin`
will say what a resume lost.
'''
