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
    assert len(names) == 23


def test_every_hook_spec_has_a_docstring():
    for name, function in specs():
        assert (function.__doc__ or "").strip(), name
