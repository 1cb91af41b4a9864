"""What ``trainkit new-plugin NAME --kind layer|loss|optimizer|metric|dataset`` writes: a
component that works, and tests that call its ``trainkit.testing`` check and train with it.

Each is a format string over the names of ``plugin_template.names_for`` (``{plugin}``,
``{module}``, ``{class}``); literal braces are doubled. The run plugin's templates stay in
``plugin_template``.
"""

from __future__ import annotations

#: What each kind's module is, for pyproject's description and the README.
SUMMARIES = {
    "layer": "a layer type for the sequential model: a learned scale per feature",
    "loss": "a loss: softmax cross-entropy with label smoothing",
    "optimizer": "an optimizer: SGD with decoupled weight decay",
    "metric": "a metric: balanced accuracy, the mean of the per-class recalls",
    "dataset": "a dataset: seeded synthetic 8x8 images of 4 classes",
}

#: How a run uses the component, for the README.
USAGE = {
    "layer": ("""trainkit run --model sequential --layers '["flatten", {{"type": "{plugin}"}}, """
              """{{"type": "dense", "units": 10}}]'"""),
    "loss": "trainkit run --loss {plugin} --smoothing 0.1",
    "optimizer": "trainkit run --optimizer {plugin} --lr 0.5 --weight-decay 0.0001",
    "metric": "trainkit run --metric accuracy --metric {plugin}",
    "dataset": "trainkit run --dataset {plugin}",
}

MODULES = {}
TESTS = {}

MODULES["layer"] = '''\
"""{plugin}: a trainkit layer type, a learned scale per feature (the last axis):
``y = x * w``, with ``w`` starting at 1. Forward and backward side by side, in float32."""

from __future__ import annotations

import numpy as np

from trainkit import hookimpl
from trainkit.nn import Module, Parameter, ShapeError


class {class}(Module):
    """``y = x * w``: one learned weight per feature (the last axis: features, or channels)."""

    def __init__(self, features: int, init: float = 1.0) -> None:
        if features < 1:
            raise ShapeError(f"needs at least one feature, got {{features}}")
        self.weight = Parameter(np.full(features, init, np.float32), "weight")

    def parameters(self):
        yield self.weight

    def output_shape(self, input_shape):
        if not input_shape or input_shape[-1] != self.weight.data.size:
            raise ShapeError(f"scales {{self.weight.data.size}} features; got input of shape "
                             f"{{input_shape}}")
        return input_shape

    def forward(self, x):
        self.x = x
        return x * self.weight.data

    def backward(self, grad_output):
        axes = tuple(range(grad_output.ndim - 1))
        self.weight.grad[...] = np.sum(grad_output * self.x, axis=axes)
        return grad_output * self.weight.data


def {module}(input_shape, rng, init: float = 1.0):
    """A learned scale per feature.

    Args:
        init: the weights' starting value.
    """
    if not input_shape:
        raise ShapeError("needs input with a feature axis")
    return {class}(input_shape[-1], init)


@hookimpl
def register_layers(register):
    register("{plugin}", {module})
'''

TESTS["layer"] = '''\
"""Tests of the {plugin} layer: trainkit's check_layer, and a run with it."""

import json

from trainkit.testing import check_layer

from {module} import {module}


def test_it_passes_check_layer_on_features_and_on_images():
    check_layer({module}, (5,))
    check_layer({module}, (4, 4, 3), init=0.5)


def test_a_sequential_model_trains_with_it(trainkit_cli):
    layers = ["flatten", {{"type": "{plugin}"}}, {{"type": "dense", "units": 10}}]
    result = trainkit_cli(["run", "--model", "sequential", "--layers", json.dumps(layers),
                           "--epochs", "2", "--lr", "0.01"])
    assert result.exit_code == 0, result.output
    assert result.history[-1]["val_acc"] > 0.5
'''

MODULES["loss"] = '''\
"""{plugin}: a trainkit loss, softmax cross-entropy from logits with label smoothing.

The targets are ``(1 - smoothing)`` on the true class and ``smoothing / classes`` everywhere;
the loss is the mean over samples of ``-sum(targets * log_softmax(z))``, its gradient
``(softmax(z) - targets) / N``."""

from __future__ import annotations

import numpy as np
from scipy.special import log_softmax

from trainkit import hookimpl
from trainkit.errors import ConfigError


class {class}:
    """Cross-entropy with label smoothing.

    Args:
        smoothing: the share of each target spread over every class.
    """

    def __init__(self, smoothing: float = 0.0) -> None:
        if not 0 <= smoothing < 1:
            raise ConfigError(f"smoothing must be in [0, 1), got {{smoothing}}", "smoothing")
        self.smoothing = smoothing

    def forward(self, logits, targets):
        n, classes = logits.shape
        smooth = np.full((n, classes), self.smoothing / classes, logits.dtype)
        smooth[np.arange(n), targets] += 1 - self.smoothing
        log_p = log_softmax(logits, axis=1)
        self.p, self.targets = np.exp(log_p), smooth
        return float(-np.sum(smooth * log_p) / n)

    def backward(self):
        return ((self.p - self.targets) / len(self.p)).astype(self.p.dtype)


@hookimpl
def register_losses(register):
    register("{plugin}", {class})
'''

TESTS["loss"] = '''\
"""Tests of the {plugin} loss: trainkit's check_loss, and a run with it."""

from trainkit.testing import check_loss

from {module} import {class}


def test_it_passes_check_loss():
    check_loss({class})
    check_loss({class}, smoothing=0.1)


def test_a_run_trains_with_it(trainkit_cli):
    result = trainkit_cli(["run", "--loss", "{plugin}", "--smoothing", "0.1", "--epochs", "2",
                           "--lr", "0.01"])
    assert result.exit_code == 0, result.output
    assert result.history[-1]["val_acc"] > 0.5
'''

MODULES["optimizer"] = '''\
"""{plugin}: a trainkit optimizer, SGD with decoupled weight decay:
``p -= lr * (g + weight_decay * p)``, value by value on the flat buffers."""

from __future__ import annotations

import numpy as np

from trainkit import hookimpl
from trainkit.nn.optim import Optimizer, check_range


class {class}(Optimizer):
    """SGD with decoupled weight decay.

    Args:
        lr: the learning rate (default 0.01).
        weight_decay: how much of each parameter is taken off every step, times the lr.
    """

    elementwise = True  # each value's update reads only that value: threads may split it

    def __init__(self, lr: float = 0.01, weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        check_range("weight_decay", weight_decay, 0.0, 1.0)
        self.weight_decay = float(weight_decay)

    def update(self, t):
        step = self._scratch
        np.multiply(self.params, np.float32(self.weight_decay), out=step)
        step += self.grads
        step *= np.float32(self.lr)
        self.params -= step


@hookimpl
def register_optimizers(register):
    register("{plugin}", {class})
'''

TESTS["optimizer"] = '''\
"""Tests of the {plugin} optimizer: trainkit's check_optimizer, and a run with it."""

from trainkit.testing import check_optimizer

from {module} import {class}


def test_it_passes_check_optimizer():
    check_optimizer({class})
    check_optimizer({class}, weight_decay=0.01)


def test_a_run_trains_with_it(trainkit_cli):
    result = trainkit_cli(["run", "--optimizer", "{plugin}", "--lr", "2", "--epochs", "3",
                           "--batch-size", "32"])
    assert result.exit_code == 0, result.output
    assert result.history[-1]["val_loss"] < result.history[0]["val_loss"]
    assert result.history[-1]["val_acc"] > 0.5
'''

MODULES["metric"] = '''\
"""{plugin}: a trainkit metric, balanced accuracy: the mean over classes of each class's recall.

Its state holds counts (per class: samples, and samples predicted right), which add up across
batches and data-parallel processes; the value is computed once, from the whole epoch's."""

from __future__ import annotations

import numpy as np

from trainkit import hookimpl
from trainkit.loop.metrics import Metric


class {class}(Metric):
    """Balanced accuracy: the mean of the per-class recalls (classes seen in the epoch)."""

    name = "balanced_accuracy"  # the key it logs under; its name says higher is better

    def state_size(self, num_classes):
        return 2 * num_classes

    def update(self, state, outputs, targets):
        classes = outputs.shape[1]
        right = outputs.argmax(axis=1) == targets
        state[:classes] += np.bincount(targets, minlength=classes)
        state[classes:] += np.bincount(targets[right], minlength=classes)

    def compute(self, state, samples):
        classes = len(state) // 2
        seen = state[:classes] > 0
        return float(np.mean(state[classes:][seen] / state[:classes][seen]))


@hookimpl
def register_metrics(register):
    register("{plugin}", {class})
'''

TESTS["metric"] = '''\
"""Tests of the {plugin} metric: trainkit's check_metric, and a run that logs it."""

from trainkit.testing import check_metric

from {module} import {class}


def test_it_passes_check_metric():
    check_metric({class})


def test_a_run_logs_it(trainkit_cli):
    result = trainkit_cli(["run", "--metric", "accuracy", "--metric", "{plugin}", "--epochs",
                           "2", "--lr", "0.01"])
    assert result.exit_code == 0, result.output
    assert 0.5 < result.history[-1]["val_balanced_accuracy"] <= 1.0
'''

MODULES["dataset"] = '''\
"""{plugin}: a trainkit dataset, seeded synthetic images: class ``k`` of 4 lights up row
``2 k`` of 8x8 uint8 images, over noise. Replace ``load`` with reading your own files (arrays
with ``np.load(..., allow_pickle=False)``, never a pickle)."""

from __future__ import annotations

import numpy as np

from trainkit import hookimpl
from trainkit.data import DatasetSplits
from trainkit.errors import ConfigError


class {class}:
    """Synthetic 8x8 images of 4 classes, the same for the same seed.

    Args:
        train: training images.
        test: test images.
        variant: which set of images (the seed they are drawn with).
    """

    name = "{plugin}"

    def __init__(self, train: int = 400, test: int = 100, variant: int = 0) -> None:
        if train < 1 or test < 1:
            raise ConfigError(f"train and test must be at least 1, got {{train}} and {{test}}",
                              "train")
        self.train, self.test, self.variant = train, test, variant

    def load(self):
        rng = np.random.default_rng(self.variant)

        def images(n):
            labels = rng.integers(0, 4, n)
            x = rng.integers(0, 60, (n, 8, 8)).astype(np.uint8)
            x[np.arange(n), 2 * labels, :] = 230
            return x, labels

        train_x, train_y = images(self.train)
        test_x, test_y = images(self.test)
        return DatasetSplits(self.name, train_x, train_y, test_x, test_y, 4,
                             ("row 0", "row 2", "row 4", "row 6"))


@hookimpl
def register_datasets(register):
    register("{plugin}", {class})
'''

TESTS["dataset"] = '''\
"""Tests of the {plugin} dataset: trainkit's check_dataset, and a run on it."""

from trainkit.testing import check_dataset

from {module} import {class}


def test_it_passes_check_dataset():
    check_dataset({class})
    check_dataset({class}, train=50, test=20, variant=3)


def test_a_run_trains_on_it(trainkit_cli):
    result = trainkit_cli(["run", "--dataset", "{plugin}", "--epochs", "2", "--lr", "0.01"])
    assert result.exit_code == 0, result.output
    assert result.history[-1]["val_acc"] > 0.9
'''

README = '''\
# {distribution}

A [trainkit](https://pypi.org/project/trainkit/) plugin: {summary}.

```bash
pip install -e .
trainkit plugins --all                    # lists {plugin}, from {distribution} 0.1.0
{usage}
```

## Tests

```bash
pip install -e '.[test]'
pytest                                    # or tox, for Python 3.10 to 3.13
```

The tests call trainkit's `check_{kind}` (from `trainkit.testing`), which checks the {kind}
the way trainkit will use it and names every problem in one line each, and train a short run
with it on trainkit's synthetic `tiny` dataset (the `trainkit_cli` fixture).
'''
