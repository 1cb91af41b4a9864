"""Checks for the components a plugin registers: ``check_layer``, ``check_loss``,
``check_optimizer``, ``check_metric`` and ``check_dataset`` (in ``trainkit.testing``).

``check_plugin`` takes a run plugin through runs; these take a component through what trainkit
will do with it: the maths against central finite differences in float64, float32 in a training
step, the state a checkpoint must carry, the contract with the threads and with data
parallelism. Each runs every check, then raises one ``ComponentCheckError`` (an
``AssertionError``, so pytest shows a failed test) listing every problem, one line each, naming
the component, the quantity, what was expected and what was received::

    from trainkit.testing import check_layer

    def test_my_layer():
        check_layer(my_layer, (6, 6, 2), channels=3)   # the factory register_layers registers

The notebook trainkit grew out of had the bugs these catch: a softmax over the whole batch, a
cross-entropy divided by the class count, a binary cross-entropy missing a term, an Adam whose
``beta1`` defaulted to 0 (tests/test_component_checks.py writes each as a plugin).
"""

from trainkit.testing.checks.dataset import check_dataset
from trainkit.testing.checks.findings import ComponentCheckError
from trainkit.testing.checks.layer import check_layer, split_step
from trainkit.testing.checks.loss import check_loss
from trainkit.testing.checks.metric import check_metric
from trainkit.testing.checks.optimizer import check_optimizer

__all__ = ["ComponentCheckError", "check_dataset", "check_layer", "check_loss", "check_metric",
           "check_optimizer", "split_step"]
