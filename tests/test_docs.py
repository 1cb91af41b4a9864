"""docs/plugins.md documents every hook spec with its exact signature."""

from __future__ import annotations

import inspect
from pathlib import Path

from trainkit import hookspecs

DOC = (Path(__file__).resolve().parent.parent / "docs" / "plugins.md").read_text()


def specs():
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction):
        if hasattr(function, "trainkit_spec"):
            yield name, function


def test_every_hook_spec_is_documented_with_its_exact_signature():
    names = []
    for name, function in specs():
        signature = f"### `{name}({', '.join(inspect.signature(function).parameters)})`"
        assert signature in DOC, f"docs/plugins.md lacks {signature}"
        names.append(name)
    assert len(names) == 26


def test_every_hook_spec_has_a_docstring():
    for name, function in specs():
        assert (function.__doc__ or "").strip(), name


def test_the_readmes_sequential_example_builds_a_network_for_mnist():
    import re

    import numpy as np

    from trainkit.data import DatasetSplits
    from trainkit.plugin.manager import get_plugin_manager
    from trainkit.plugin.registry import Registry
    from trainkit.session import assembly
    from trainkit.session.tomlio import read_toml

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    example = re.search(r"```toml\n(model = \"sequential\".*?)```", readme, re.S).group(1)
    path = Path("example.toml")
    path.write_text(example)
    registry = Registry.collect(get_plugin_manager())
    run = assembly.resolve(read_toml(path), registry)
    images = np.zeros((2, 28, 28), np.uint8)
    splits = DatasetSplits("mnist", images, np.zeros(2, np.intp), images, np.zeros(2, np.intp), 10)
    layer_types = {name: c.factory for name, c in registry.components["layer"].items()}
    model = assembly.build_model(run.model_factory, splits, np.random.default_rng(0), layer_types)
    assert model.forward(np.zeros((2, 28, 28, 1), np.float32)).shape == (2, 10)


def test_the_readme_sets_up_training_without_the_test_tooling():
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    setup = readme.split("## Set up", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", setup, re.S)
    train, test = blocks[0].splitlines(), blocks[1].splitlines()
    assert train[-2:] == ["pip install -e .", "trainkit run --optimizer adam --plugin checkpoint"]
    assert test == ["pip install -e '.[dev]'", "tox"]
    assert "**Platforms:** Linux, macOS and Windows" in readme


def test_every_schedule_and_early_stopping_option_is_in_the_reference_table():
    from trainkit.plugin.options import option_specs
    from trainkit.plugins.early_stopping import EarlyStopping
    from trainkit.plugins.lr_schedule import LRSchedule

    table = DOC.split("## The built-in schedules and early stopping, against PyTorch and Keras")[1]
    for plugin, factory in (("lr-schedule", LRSchedule), ("early-stopping", EarlyStopping)):
        for spec in option_specs(factory):
            name = "" if spec.name == "schedule" else "-" + spec.name.replace("_", "-")
            assert f"`--{plugin}{name}" in table, f"--{plugin}{name}"


def test_the_readmes_recipe_commands_are_valid_runs():
    import shlex

    from click.testing import CliRunner

    from trainkit.cli import make_cli

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    recipe = readme.split("### A recipe", 1)[1].split("```", 2)[1]
    commands = recipe.replace("\\\n", " ").strip().splitlines()
    assert len(commands) == 2
    for command in commands:
        args = shlex.split(command)
        assert args[:2] == ["trainkit", "run"]
        result = CliRunner().invoke(make_cli(), [*args[1:], "--print-config"])
        assert result.exit_code == 0, result.output
        assert "label_smoothing = 0.1" in result.output and '"ema"' in result.output
