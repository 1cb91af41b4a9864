"""Metrics exact over an epoch: equal to scikit-learn's on the same predictions, whatever the
batch size; the batch-mean path; states in the Trainer, in checkpoints and in evaluation."""

from __future__ import annotations

import re

import numpy as np
import pytest
from sklearn import metrics as sk

from trainkit import Trainer
from trainkit.data import DataLoader
from trainkit.loop.metrics import BatchMean, MetricSet, batch_mean, class_report
from trainkit.plugins.losses import CrossEntropy
from trainkit.plugins.metrics import F1, Accuracy, ConfusionMatrix, Precision, Recall, TopKAccuracy
from trainkit.plugins.models import MLP
from trainkit.plugins.optimizers import Adam

from .conftest import REPO, make_images

K = 6


def scored_batches(n=523, k=K, seed=0, skewed=True):
    """Outputs and targets of an imbalanced problem where one class is never predicted and one
    never occurs (the cases where averaging rules differ)."""
    rng = np.random.default_rng(seed)
    p = np.array([0.4, 0.25, 0.15, 0.1, 0.1, 0.0]) if skewed else None
    targets = rng.choice(k, size=n, p=p)
    outputs = rng.normal(size=(n, k)).astype(np.float32)
    outputs[np.arange(n), targets] += rng.uniform(0, 2.5, size=n).astype(np.float32)
    outputs[:, 4] -= 10.0  # class 4 is never predicted
    return outputs, targets


def accumulate(metric, outputs, targets, batch):
    metrics = MetricSet([metric])
    metrics.bind(outputs.shape[1])
    state = metrics.new_state()
    for start in range(0, len(targets), batch):
        metrics.update(state, outputs[start:start + batch], targets[start:start + batch], 0.0)
    return metrics.results(state)[metric.name]


SKLEARN = {
    Precision: lambda y, p, average: sk.precision_score(y, p, average=average, zero_division=0),
    Recall: lambda y, p, average: sk.recall_score(y, p, average=average, zero_division=0),
    F1: lambda y, p, average: sk.f1_score(y, p, average=average, zero_division=0),
}


@pytest.mark.parametrize("average", ["macro", "micro", "weighted"])
@pytest.mark.parametrize("kind", [Precision, Recall, F1])
@pytest.mark.parametrize("batch", [1, 7, 64, 10_000])
def test_precision_recall_f1_equal_scikit_learn_at_any_batch_size(kind, average, batch):
    outputs, targets = scored_batches()
    expected = SKLEARN[kind](targets, outputs.argmax(axis=1), average)
    assert accumulate(kind(average=average), outputs, targets, batch) == pytest.approx(
        expected, abs=1e-12)


def test_a_batch_mean_f1_would_depend_on_the_batch_size_and_the_metric_does_not():
    # the reason the protocol exists: macro F1 averaged over batches is another number
    outputs, targets = scored_batches()
    batch_means = [sk.f1_score(targets[s:s + 16], outputs[s:s + 16].argmax(1), average="macro",
                               zero_division=0) for s in range(0, len(targets), 16)]
    whole = sk.f1_score(targets, outputs.argmax(1), average="macro", zero_division=0)
    assert abs(np.average(batch_means, weights=[len(targets[s:s + 16]) for s in
                                                range(0, len(targets), 16)]) - whole) > 1e-3
    assert accumulate(F1(), outputs, targets, 16) == pytest.approx(whole, abs=1e-12)


def test_accuracy_top_k_and_the_confusion_matrix_equal_scikit_learn():
    outputs, targets = scored_batches()
    assert accumulate(Accuracy(), outputs, targets, 50) == pytest.approx(
        sk.accuracy_score(targets, outputs.argmax(1)), abs=1e-12)
    assert accumulate(TopKAccuracy(k=2), outputs, targets, 50) == pytest.approx(
        sk.top_k_accuracy_score(targets, outputs, k=2, labels=range(K)), abs=1e-12)
    matrix = accumulate(ConfusionMatrix(), outputs, targets, 50)
    assert matrix.dtype == np.int64
    np.testing.assert_array_equal(matrix, sk.confusion_matrix(targets, outputs.argmax(1),
                                                              labels=range(K)))


def test_the_class_report_equals_scikit_learns():
    outputs, targets = scored_batches()
    predicted = outputs.argmax(1)
    report = class_report(sk.confusion_matrix(targets, predicted, labels=range(K)))
    expected = sk.classification_report(targets, predicted, labels=range(K), output_dict=True,
                                         zero_division=0)
    for row in [*map(str, range(K)), "weighted avg"]:
        for key in ("precision", "recall", "f1", "support"):
            assert report[row][key] == pytest.approx(
                expected[row]["f1-score" if key == "f1" else key], abs=1e-12), (row, key)
    # macro over the classes seen in targets or predictions, as f1_score(average="macro")
    assert report["macro avg"]["f1"] == pytest.approx(
        sk.f1_score(targets, predicted, average="macro", zero_division=0), abs=1e-12)


def test_a_plain_callable_is_a_batch_mean_and_batch_mean_makes_a_factory():
    outputs, targets = scored_batches(skewed=False)

    class OldStyle:  # the protocol before stateful metrics: still accepted
        name = "acc"

        def __call__(self, outputs, targets):
            return float((outputs.argmax(1) == targets).mean())

    @batch_mean("acc")
    def accuracy(outputs, targets):
        return (outputs.argmax(axis=1) == targets).mean()

    expected = sk.accuracy_score(targets, outputs.argmax(1))
    for metric in (OldStyle(), accuracy()):
        set_ = MetricSet([metric])
        assert isinstance(set_.metrics[0], BatchMean) and set_.metrics[0].name == "acc"
        assert accumulate(set_.metrics[0], outputs, targets, 33) == pytest.approx(expected)


@pytest.mark.filterwarnings("ignore::UserWarning")  # sklearn's note on the absent class
def test_the_documented_plugin_metric_works_as_written():
    docs = (REPO / "docs" / "plugins.md").read_text()
    code = re.search(r"```python\n(import numpy as np\nimport trainkit\n.*?class "
                     r"BalancedAccuracy.*?)```", docs, re.S).group(1)
    namespace: dict = {}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)
    outputs, targets = scored_batches()
    targets[targets == 5] = 0  # one class absent: it is left out of the mean, as in sklearn
    assert accumulate(namespace["BalancedAccuracy"](), outputs, targets, 10) == pytest.approx(
        sk.balanced_accuracy_score(targets, outputs.argmax(1)), abs=1e-12)


def small_run(metrics, batch=32, seed=0):
    rng = np.random.default_rng(123)
    x, y = make_images(256, rng)
    vx, vy = make_images(96, rng)
    train = DataLoader(x, y, batch, shuffle=True, rng=np.random.default_rng(seed))
    val = DataLoader(vx, vy, 40)
    model = MLP(hidden=(16,)).build(784, 10, np.random.default_rng(seed))
    return Trainer(model, CrossEntropy(), Adam(lr=1e-2), metrics), train, val


def test_validation_metrics_are_computed_over_the_whole_split():
    trainer, train, val = small_run([F1(), Precision(average="weighted"), ConfusionMatrix()])
    logs = trainer.fit(train, val, epochs=2).rows[-1]
    trainer.model.train(False)
    predicted = np.concatenate([trainer.model.forward(x).argmax(1) for x, _ in val])
    assert logs["val_f1"] == pytest.approx(
        sk.f1_score(val.labels, predicted, average="macro", zero_division=0), abs=1e-12)
    assert logs["val_precision"] == pytest.approx(
        sk.precision_score(val.labels, predicted, average="weighted", zero_division=0), abs=1e-12)
    assert "val_confusion" not in logs  # an array: kept in results, not logged
    np.testing.assert_array_equal(trainer.results["val_confusion"],
                                  sk.confusion_matrix(val.labels, predicted, labels=range(10)))


def test_an_epochs_training_metric_covers_every_batch_of_it():
    # the training F1 is over the epoch's predictions, each made before that batch's step
    class Predictions:
        def __init__(self):
            self.seen = []

        from trainkit import hookimpl

        @hookimpl
        def on_batch_start(self, trainer, batch):
            x, y = batch
            self.seen.append((trainer.model.forward(x).argmax(1), y.copy()))

    recorder = Predictions()
    trainer, train, _ = small_run([F1()])
    trainer.plugins = {"recorder": recorder}
    logs = trainer.fit(train, None, epochs=1).rows[-1]
    predicted = np.concatenate([p for p, _ in recorder.seen])
    targets = np.concatenate([t for _, t in recorder.seen])
    assert logs["f1"] == pytest.approx(
        sk.f1_score(targets, predicted, average="macro", zero_division=0), abs=1e-12)


def test_a_plugin_can_ask_for_a_metric_in_validation_only():
    trainer, train, val = small_run([Accuracy()])
    trainer.add_evaluation_metric(ConfusionMatrix())
    trainer.add_evaluation_metric(Accuracy())  # already there: not added twice
    logs = trainer.fit(train, val, epochs=1).rows[-1]
    assert "confusion" not in trainer.results  # not computed in training steps
    matrix = trainer.results["val_confusion"]
    assert matrix.sum(axis=1).tolist() == np.bincount(val.labels, minlength=10).tolist()
    assert np.trace(matrix) == round(logs["val_acc"] * len(val.labels))


def test_a_resumed_epoch_with_stateful_metrics_logs_what_an_uninterrupted_one_would():
    from trainkit.session.snapshot import capture, restore

    def run(stop_at=None, resume_from=None):
        trainer, train, val = small_run([F1(), ConfusionMatrix()])

        class StopAt:
            from trainkit import hookimpl

            @hookimpl
            def on_batch_end(self, trainer, step):
                if step == stop_at:
                    trainer.stop("test")

        if stop_at is not None:
            trainer.plugins = {"stop": StopAt()}
        if resume_from is not None:
            restore(trainer, resume_from[1], resume_from[0])
        trainer.fit(train, val, epochs=2)
        return trainer

    whole = run()
    part = run(stop_at=3)
    assert part.state.step_in_epoch == 4
    arrays, manifest = capture(part)
    resumed = run(resume_from=(arrays, manifest))
    assert resumed.history.rows == whole.history.rows
