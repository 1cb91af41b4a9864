"""Every deprecation is in trainkit/deprecated.py with the version that removes it, and each old
module path of 0.1.0 still imports, as the new module, with a warning naming both."""

from __future__ import annotations

import importlib
import sys

import pytest

from trainkit.deprecated import DEPRECATIONS, MOVED_MODULES


@pytest.mark.parametrize("old,new", sorted(MOVED_MODULES.items()))
def test_an_old_module_path_is_the_new_module_with_a_warning(old, new):
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=rf"^{old} is now {new}; the old path stops "
                                                rf"working in trainkit 0\.3\.0$"):
        module = importlib.import_module(old)
    assert module is importlib.import_module(new)


def test_a_plugin_written_for_0_1_0_still_loads(tmp_path, monkeypatch):
    (tmp_path / "old_style_plugin.py").write_text(
        "from trainkit.optim import Optimizer, check_range\n"
        "from trainkit.metrics import Metric\n"
        "class Mine(Optimizer):\n"
        "    def update(self, t):\n"
        "        self.params -= self.lr * self.grads\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("trainkit.optim", "trainkit.metrics"):
        sys.modules.pop(name, None)
    with pytest.warns(DeprecationWarning):
        module = importlib.import_module("old_style_plugin")
    from trainkit.nn.optim import Optimizer

    assert issubclass(module.Mine, Optimizer)


def test_every_deprecation_names_the_version_that_removes_it():
    import trainkit

    current = tuple(int(n) for n in trainkit.__version__.split(".")[:2])
    for deprecation in DEPRECATIONS:
        removed = tuple(int(n) for n in deprecation.removed_in.split("."))[:2]
        assert removed > current, f"{deprecation.old} was to be removed in " \
                                  f"{deprecation.removed_in}: remove it now"


def test_the_trainers_views_of_its_context_still_work_with_a_warning(tmp_path):
    import numpy as np

    from trainkit.loop.trainer import Trainer
    from trainkit.plugins.losses import CrossEntropy
    from trainkit.plugins.models import MLP
    from trainkit.plugins.optimizers import SGD

    model = MLP(hidden=(4,)).build(4, 2, np.random.default_rng(0))
    trainer = Trainer(model, CrossEntropy(), SGD(), run_dir=tmp_path)
    with pytest.warns(DeprecationWarning, match=r"^trainer\.run_dir is now trainer\.context\."
                                                r"run_dir .*stops working in trainkit 0\.3\.0$"):
        assert trainer.run_dir == tmp_path == trainer.context.run_dir
    with pytest.warns(DeprecationWarning, match=r"^trainer\.config is now"):
        trainer.config = {"lr": 0.5}
    assert trainer.context.config == {"lr": 0.5}


def test_trainkit_run_of_0_1_0_still_has_its_names():
    sys.modules.pop("trainkit.run", None)
    with pytest.warns(DeprecationWarning, match="trainkit.run is now trainkit.session.run"):
        run = importlib.import_module("trainkit.run")
    from trainkit.session.assembly import resolve
    from trainkit.session.config import merge_configs
    from trainkit.session.status import write_status

    assert (run.merge_configs, run.resolve, run.write_status) == (merge_configs, resolve,
                                                                   write_status)
