"""check_layer, check_loss, check_optimizer, check_metric and check_dataset: every built-in
passes, and the notebook's own bugs, written as plugin components, are each caught in a line
that names the component and the quantity."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit, log_softmax

from trainkit.loop.metrics import Metric
from trainkit.nn import Module, ReLU
from trainkit.nn.optim import Optimizer, check_range
from trainkit.plugin.manager import get_plugin_manager
from trainkit.plugin.registry import Registry
from trainkit.plugins.losses import one_hot
from trainkit.testing import (
    ComponentCheckError,
    check_dataset,
    check_layer,
    check_loss,
    check_metric,
    check_optimizer,
)

REGISTRY = Registry.collect(get_plugin_manager(autoload=False))
LAYER_SHAPES = {"dense": ((5,), {"units": 3}), "conv2d": ((5, 5, 2), {"channels": 3}),
                "max-pool": ((4, 4, 2), {}), "avg-pool": ((4, 4, 2), {}),
                "flatten": ((3, 3, 2), {}), "dropout": ((6,), {}),
                "batch-norm": ((3, 3, 2), {}), "relu": ((6,), {}), "sigmoid": ((6,), {}),
                "tanh": ((6,), {}), "leaky-relu": ((6,), {}), "gelu": ((6,), {}),
                "softmax": ((6,), {})}


def own_arrays(folder):
    rng = np.random.default_rng(0)
    np.savez(folder / "data.npz", x=rng.random((60, 5), dtype=np.float32),
             y=rng.integers(0, 3, 60))
    return {"data_file": folder / "data.npz"}


def own_table(folder):
    rows = ["a,b,colour,target"] + [f"{i % 7},{i * 0.5},{'red' if i % 3 else 'blue'},{i % 2}"
                                    for i in range(60)]
    (folder / "t.csv").write_text("\n".join(rows) + "\n")
    return {"data_file": folder / "t.csv", "target": "target"}


def own_images(folder):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (folder / "pics" / "train" / label).mkdir(parents=True)
        for i in range(12):
            Image.fromarray(rng.integers(0, 255, (6, 6), dtype=np.uint8)).save(
                folder / "pics" / "train" / label / f"{i}.png")
    return {"data_dir": folder / "pics"}


#: The datasets of your own data, with the small files their check reads.
OWN_DATA = {"arrays": own_arrays, "csv": own_table, "folder": own_images}


def builtins(kind):
    return sorted(REGISTRY.components[kind].items())


def test_every_builtin_layer_type_is_covered():
    assert set(LAYER_SHAPES) == set(REGISTRY.components["layer"])


@pytest.mark.parametrize("kind,name", [(kind, name) for kind in ("layer", "loss", "optimizer",
                                                                  "metric", "dataset")
                                       for name in REGISTRY.components[kind]])
def test_every_builtin_component_passes_its_check(kind, name, synthetic_dir, data_root,
                                                  tmp_path):
    factory = REGISTRY.components[kind][name].factory
    chooses = getattr(factory(), "choose", None) if kind in ("loss", "metric") else None
    if chooses is not None:  # "auto" stands for the task's own components, checked by name
        for task in ("classification", "binary", "regression"):
            chosen = chooses(task)
            for chosen_name in [chosen] if isinstance(chosen, str) else chosen:
                assert chosen_name in REGISTRY.components[kind]
        return
    if kind == "layer":
        shape, options = LAYER_SHAPES[name]
        ran = check_layer(factory, shape, name=name, **options)
        assert "gradients in evaluation mode" in ran and "threads" in ran
    elif kind == "dataset":
        options = {"data_dir": synthetic_dir if name == "idx" else data_root / name}
        if name in OWN_DATA:
            options = OWN_DATA[name](tmp_path)
        assert "load()" in check_dataset(factory, name=name, **options)
    else:
        check = {"loss": check_loss, "optimizer": check_optimizer, "metric": check_metric}[kind]
        assert check(factory, name=name)


def caught(check, *args, **kwargs) -> list[str]:
    with pytest.raises(ComponentCheckError) as raised:
        check(*args, **kwargs)
    return str(raised.value).splitlines()


# ------------------------------------------------------------------ the notebook's own bugs


class WholeBatchSoftmaxLoss:
    """The notebook's softmax: ``np.exp(x - np.max(x)) / np.sum(...)`` over the whole batch."""

    def forward(self, logits, targets):
        e = np.exp(logits - logits.max())
        self.p, self.t = e / e.sum(), one_hot(targets, logits.shape[1])
        return float(-np.sum(self.t * np.log(self.p)) / len(targets))

    def backward(self):  # the gradient of what forward computes: only the value is wrong
        return (self.p * len(self.t) - self.t) / len(self.t)


class CrossEntropyOverClasses:
    """The notebook's cross-entropy: the mean over samples, then divided by the class count."""

    def forward(self, logits, targets):
        self.z, self.t = logits, one_hot(targets, logits.shape[1])
        picked = log_softmax(logits, axis=1)[np.arange(len(targets)), targets]
        return float(-picked.mean() / logits.shape[1])

    def backward(self):
        p = np.exp(log_softmax(self.z, axis=1))
        return ((p - self.t) / len(self.t)).astype(self.z.dtype)


class BinaryCrossEntropyMissingATerm:
    """The notebook's binary cross-entropy: ``-mean(t log p)``, without ``(1 - t) log(1 - p)``."""

    def forward(self, logits, targets):
        self.z, self.t = logits, one_hot(targets, logits.shape[1])
        return float(-np.mean(self.t * np.log(expit(logits) + 1e-7)))

    def backward(self):
        return ((expit(self.z) - self.t) / self.z.size).astype(self.z.dtype)


class NotebookAdam(Optimizer):
    """Adam, as the notebook wrote its defaults.

    Args:
        lr: the step size.
        beta1: decay of the first-moment estimate.
        beta2: decay of the second-moment estimate.
    """

    state_names = ("m", "v")
    elementwise = True

    def __init__(self, lr: float = 1e-3, beta1: float = 0.0, beta2: float = 0.999) -> None:
        super().__init__(lr)
        check_range("beta1", beta1, 0.0, 1.0)
        check_range("beta2", beta2, 0.0, 1.0)
        self.beta1, self.beta2 = beta1, beta2

    def update(self, t):
        self.m += (1 - self.beta1) * (self.grads - self.m)
        self.v += (1 - self.beta2) * (self.grads ** 2 - self.v)
        step = self.lr * np.sqrt(1 - self.beta2 ** t) / (1 - self.beta1 ** t)
        self.params -= (step * self.m / (np.sqrt(self.v) + 1e-7)).astype(np.float32)


class LeakyBackwardReLU(ReLU):
    """A ReLU whose backward passes the gradients of negative inputs through."""

    def forward(self, x):
        return np.maximum(x, 0)

    def backward(self, grad_output):
        return grad_output


def leaky_backward_relu(input_shape, rng):
    return LeakyBackwardReLU()


def test_the_whole_batch_softmax_is_caught():
    lines = caught(check_loss, WholeBatchSoftmaxLoss, name="notebook-ce")
    assert any(line.startswith("loss 'notebook-ce': the value of a batch is ") and
               "expected the same: a mean over samples" in line for line in lines), lines


def test_the_cross_entropy_divided_by_the_class_count_is_caught():
    lines = caught(check_loss, CrossEntropyOverClasses, name="notebook-ce")
    assert any(line.startswith("loss 'notebook-ce': the gradient of the value with respect to "
                               "the outputs differs from central finite differences")
               for line in lines), lines


def test_the_binary_cross_entropy_missing_a_term_is_caught():
    lines = caught(check_loss, BinaryCrossEntropyMissingATerm, name="notebook-bce")
    assert any(line.startswith("loss 'notebook-bce': the gradient of the value") for line in lines)


def test_adam_with_beta1_zero_is_caught_against_its_documented_default():
    lines = caught(check_optimizer, NotebookAdam, name="adam")
    assert "optimizer 'adam': beta1 defaults to 0.0; the documented default of this optimizer " \
           "(the paper's, PyTorch's, Keras') is 0.9" in lines


def test_a_default_that_contradicts_the_docstring_is_caught():
    class Documented(NotebookAdam):
        """Adam.

        Args:
            beta1: decay of the first-moment estimate (default 0.9).
        """

    lines = caught(check_optimizer, Documented, name="my-adam")
    assert "optimizer 'my-adam': beta1 defaults to 0.0; its docstring says 0.9" in lines


def test_a_relu_that_passes_negative_inputs_gradients_is_caught():
    lines = caught(check_layer, leaky_backward_relu, (6,), name="relu")
    assert any(line.startswith("layer 'relu': the input gradient (evaluation mode) differs from "
                               "central finite differences") for line in lines), lines


# ------------------------------------------------------------------------ the other checks


class BatchStandardise(Module):
    """Subtracts the batch mean in evaluation mode too: samples depend on each other."""

    def forward(self, x):
        self.n = len(x)
        return x - x.mean(axis=0)

    def backward(self, g):
        return g - g.mean(axis=0)


class Forgetful(Module):
    """Counts its calls in an attribute no checkpoint holds, and scales by it."""

    calls = 0

    def forward(self, x):
        if self.training:
            self.calls += 1
        return x * np.float32(1 + self.calls)

    def backward(self, g):
        return g * np.float32(1 + self.calls)


def test_a_layer_whose_samples_depend_on_each_other_is_caught():
    lines = caught(check_layer, lambda shape, rng: BatchStandardise(), (4,), name="standardise")
    assert any("in evaluation mode, sample 0's output depends on the other samples" in line
               for line in lines), lines


def test_a_layer_state_outside_its_checkpoint_is_caught():
    lines = caught(check_layer, lambda shape, rng: Forgetful(), (4,), name="forgetful")
    assert any("after a checkpoint round trip its" in line and "state_arrays() and extra_state()"
               in line for line in lines), lines


def test_a_layer_computing_in_float64_is_caught():
    class Upcast(Module):
        def forward(self, x):
            return x * 2.0 + np.zeros(1)  # float64

        def backward(self, g):
            return g * 2.0

    lines = caught(check_layer, lambda shape, rng: Upcast(), (4,), name="upcast")
    assert any("forward of float32 inputs gives float64, expected float32" in line
               for line in lines), lines


def test_an_optimizer_with_state_outside_state_dict_is_caught():
    class Hidden(Optimizer):
        def __init__(self, lr: float = 0.1) -> None:
            super().__init__(lr)
            self.velocity = None

        def update(self, t):
            if self.velocity is None:
                self.velocity = np.zeros_like(self.params)
            self.velocity = 0.9 * self.velocity + self.grads
            self.params -= self.lr * self.velocity

    lines = caught(check_optimizer, Hidden, name="hidden")
    assert any("after a resume from state_dict() the parameters differ" in line
               for line in lines), lines


def test_an_optimizer_that_takes_a_bad_lr_is_caught():
    class Lax(Optimizer):
        def __init__(self, lr: float = 0.1) -> None:
            self.lr, self.iterations = lr, 0

        def update(self, t):
            self.params -= self.lr * self.grads

    lines = caught(check_optimizer, Lax, name="lax")
    assert "optimizer 'lax': lr=0.0 was taken; expected a ConfigError naming lr" in lines


def test_a_batch_mean_f1_is_caught_depending_on_the_batch_size():
    from trainkit.loop.metrics import BatchMean

    def f1_of_a_batch(outputs, targets):
        predicted = outputs.argmax(axis=1)
        scores = []
        for c in range(outputs.shape[1]):
            tp = np.sum((predicted == c) & (targets == c))
            denominator = np.sum(predicted == c) + np.sum(targets == c)
            scores.append(2 * tp / denominator if denominator else 0.0)
        return float(np.mean(scores))

    lines = caught(check_metric, lambda: BatchMean(f1_of_a_batch, "f1"), name="f1")
    assert any(line.startswith("metric 'f1': its epoch value is ") for line in lines), lines


def test_a_metric_whose_name_hides_its_direction_is_caught():
    class Score(Metric):
        name = "score"

        def update(self, state, outputs, targets):
            state[0] += np.sum(outputs.argmax(axis=1) == targets)

        def compute(self, state, samples):
            return float(state[0] / samples)

    lines = caught(check_metric, Score, name="score")
    assert lines == ["metric 'score': its name 'score' does not say whether higher is better, "
                     "so early stopping and best.npz cannot watch it without --*-mode: name it "
                     "like acc, f1, auc, ..._error or ..._loss"]


def test_a_dataset_that_unpickles_is_caught(tmp_path):
    import pickle

    from trainkit.data import DatasetSplits

    stored = tmp_path / "data.pkl"
    images = np.zeros((4, 2, 2), np.uint8)
    stored.write_bytes(pickle.dumps((images, np.zeros(4, np.int64))))

    class Pickled:
        def load(self):
            x, y = pickle.loads(stored.read_bytes())
            return DatasetSplits("pickled", x, y, x, y, 2)

    lines = caught(check_dataset, Pickled, name="pickled")
    assert lines[0].startswith("dataset 'pickled': loading it raised RuntimeError: it unpickled "
                               "a file")


def test_a_dataset_whose_loads_differ_is_caught():
    from trainkit.data import DatasetSplits

    class Shuffling:
        def load(self):
            rng = np.random.default_rng()  # unseeded: another order every load
            x = rng.integers(0, 255, (20, 3, 3), dtype=np.uint8)
            y = rng.integers(0, 2, 20)
            return DatasetSplits("shuffling", x, y, x, y, 2)

    lines = caught(check_dataset, Shuffling, name="shuffling")
    assert "dataset 'shuffling': two loads give other train_images: expected the same arrays " \
           "every time (the same seed must give the same validation split)" in lines


def test_every_problem_is_said_not_only_the_first():
    class Forgets(NotebookAdam):  # the notebook's default, and a state_dict without m and v
        state_names = ()

        def bind(self, params, grads):
            super().bind(params, grads)
            self.m, self.v = np.zeros_like(params), np.zeros_like(params)

    lines = caught(check_optimizer, Forgets, name="adam")
    assert any("beta1 defaults to 0.0" in line for line in lines)
    assert any("after a resume from state_dict() the parameters differ" in line for line in lines)


def test_a_bad_hyperparameter_in_the_options_is_a_problem_not_a_crash():
    lines = caught(check_optimizer, NotebookAdam, name="nb", beta1=2.0)
    assert lines == ["optimizer 'nb': building it raised ConfigError: beta1 must be in [0.0, "
                     "1.0), got 2.0"]
