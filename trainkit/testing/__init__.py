"""``trainkit.testing``: pytest fixtures for plugin authors, installed with trainkit.

trainkit registers this module as a pytest plugin (the ``pytest11`` entry point), so a plugin
package's tests can use, with nothing to import:

- ``tiny_dataset``: a small synthetic image-classification dataset registered like a real one
  (``--dataset tiny``): 320 training and 80 test images of 8x8 pixels, 10 classes; a 3-epoch
  run takes a fraction of a second (and reaches 100% with ``--lr 0.01``).
- ``trainkit_cli``: runs the CLI in-process with extra plugin objects or modules, in the test's
  folder, and returns a :class:`CliResult`: exit code, output, run folder, history, checkpoints.
- ``hook_recorder``: a plugin object that records every lifecycle hook trainkit calls, in order,
  with its arguments.

and :func:`trainkit.testing.conformance.check_plugin`, the one-line conformance check of a run plugin,
with ``check_layer``, ``check_loss``, ``check_optimizer``, ``check_metric`` and
``check_dataset`` (:mod:`trainkit.testing.checks`) for the other components. Nothing here
imports numpy or the CLI until a fixture is used: a pytest session that never asks for them pays
nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from trainkit.testing.checks import (
    ComponentCheckError,
    check_dataset,
    check_layer,
    check_loss,
    check_metric,
    check_optimizer,
)
from trainkit.testing.harness import CliResult, HookRecorder, TinyDataset, TinyDatasetPlugin, run_cli

__all__ = ["CliResult", "ComponentCheckError", "HookRecorder", "TinyDataset",
           "TinyDatasetPlugin", "check_dataset", "check_layer", "check_loss", "check_metric",
           "check_optimizer", "check_plugin", "run_cli"]




def check_plugin(*args: Any, **kwargs: Any):
    """See :func:`trainkit.testing.conformance.check_plugin`."""
    from trainkit.testing.conformance import check_plugin as check

    return check(*args, **kwargs)


# --------------------------------------------------------------------------- pytest fixtures


@pytest.fixture
def tiny_dataset() -> TinyDataset:
    """The synthetic ``tiny`` dataset (``--dataset tiny`` in ``trainkit_cli`` runs)."""
    return TinyDataset()


@pytest.fixture
def trainkit_cli(tmp_path):
    """``trainkit_cli(["run", "--epochs", "2"], plugins=[MyPlugin()])`` -> CliResult, in the
    test's temporary folder, with the ``tiny`` dataset registered."""

    def invoke(args: list[str], *, plugins: Sequence[Any] = (), modules: Sequence[str] = (),
               env: dict[str, str] | None = None) -> CliResult:
        return run_cli(list(args), plugins=list(plugins), modules=list(modules), cwd=tmp_path,
                       env=env)

    return invoke


@pytest.fixture
def hook_recorder() -> HookRecorder:
    """A fresh HookRecorder: pass it in ``plugins=[...]`` and read ``.calls`` afterwards."""
    return HookRecorder()
