"""Every deprecation is in trainkit/deprecated.py with the version that removes it, and each old
module path of 0.1.0 still imports, as the new module, with a warning naming both."""

from __future__ import annotations

import importlib
import sys
import warnings

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


def test_a_layer_written_with_0_1_0s_steps_still_runs_with_a_warning():
    """A 0.1.0 layer cut its batch itself: ``Parts(bounds, work(part, lo, hi))``."""
    import numpy as np

    from trainkit.nn import Module, Sequential, parallel, schedule

    class Double(Module):
        def forward_steps(self, x):
            def work(_, lo, hi):
                x[lo:hi] *= 2

            yield parallel.Parts(parallel.value_parts(len(x), x.size), work)
            return x

        def backward_steps(self, grad_output):
            grad_output = (yield from parallel.contiguous(grad_output.T)).T
            yield parallel.RUN
            return grad_output * 2

    x = np.arange(64, dtype=np.float32).reshape(16, 4)
    for threads in (1, 2):
        with schedule.planned(threads, split_batch=True, split_small=True), \
                warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = Sequential(Double(), Double())
            out = model.forward(x.copy())
            grad = model.backward(np.ones_like(x))
        np.testing.assert_array_equal(out, 4 * x)
        np.testing.assert_array_equal(grad, np.full_like(x, 4))
        said = {str(w.message).split(" is deprecated")[0] for w in caught
                if w.category is DeprecationWarning}
        assert said == {"Parts(bounds, work)", "parallel.batch_parts, parallel.value_parts",
                        "parallel.RUN"}


def test_a_plugins_old_thread_preference_is_still_read_with_a_warning():
    from trainkit.plugin import contract

    class OldDdp:
        preferred_blas_threads = 3

    with pytest.warns(DeprecationWarning, match=r"^preferred_blas_threads is deprecated: use "
                                                r"preferred_threads"):
        assert contract.read(OldDdp(), "preferred_threads") == 3
