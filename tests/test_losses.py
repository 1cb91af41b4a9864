"""Losses: float64 finite-difference checks, plus tests that catch the notebook's bugs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainkit.plugins.losses import BinaryCrossEntropy, CrossEntropy, MeanSquaredError

from .test_layers import numeric_grad


@pytest.mark.parametrize("loss_cls", [CrossEntropy, MeanSquaredError, BinaryCrossEntropy])
def test_loss_gradient_matches_finite_differences(loss_cls):
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(5, 4)) * 3
    targets = rng.integers(0, 4, size=5)
    loss = loss_cls()
    loss.forward(logits.copy(), targets)
    analytic = loss.backward().copy()
    numeric = numeric_grad(lambda: loss_cls().forward(logits.copy(), targets), logits)
    np.testing.assert_allclose(analytic, numeric, rtol=1e-6, atol=1e-9)


def test_cross_entropy_softmax_is_per_row_not_over_the_whole_batch():
    # The notebook normalised the softmax over the whole batch: a sample's loss then depended on
    # the other samples in its batch.
    a = np.array([[1.0, 2.0, 3.0]], dtype=np.float32)
    b = np.array([[100.0, -5.0, 0.0]], dtype=np.float32)
    alone = CrossEntropy().forward(a.copy(), np.array([2]))
    together = CrossEntropy().forward(np.vstack([a, a]), np.array([2, 2]))
    mixed = CrossEntropy()
    mixed_loss = mixed.forward(np.vstack([a, b]), np.array([2, 0]))
    assert together == pytest.approx(alone, rel=1e-6)
    assert mixed_loss == pytest.approx(alone / 2, rel=1e-5)  # b's loss is ~0
    np.testing.assert_allclose(mixed.backward().sum(axis=1), 0.0, atol=1e-7)  # rows sum to 0


def test_cross_entropy_gradient_uses_probabilities_not_logits():
    logits = np.array([[2.0, 0.0, -1.0]], dtype=np.float32)
    loss = CrossEntropy()
    loss.forward(logits.copy(), np.array([0]))
    probs = np.exp(logits) / np.exp(logits).sum()
    expected = probs - np.array([[1.0, 0.0, 0.0]])
    np.testing.assert_allclose(loss.backward(), expected, rtol=1e-6)


def test_cross_entropy_is_the_mean_over_samples_not_divided_by_classes():
    # Uniform logits over C classes give exactly log(C) per sample.
    for classes in (2, 10):
        loss = CrossEntropy().forward(np.zeros((7, classes), np.float32), np.zeros(7, int))
        assert loss == pytest.approx(math.log(classes), rel=1e-6)


def test_cross_entropy_is_finite_for_extreme_logits_and_stays_float32():
    logits = np.array([[1e4, -1e4, 0.0]], dtype=np.float32)
    loss = CrossEntropy()
    value = loss.forward(logits.copy(), np.array([1]))
    assert math.isfinite(value) and value == pytest.approx(2e4, rel=1e-6)
    assert loss.backward().dtype == np.float32


def test_bce_is_stable_for_extreme_logits():
    loss = BinaryCrossEntropy()
    value = loss.forward(np.array([[1e4, -1e4]], np.float32), np.array([0]))
    assert math.isfinite(value) and value == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("name", ["cross-entropy", "mse", "bce"])
@pytest.mark.parametrize("bad", [10, -1])
def test_a_label_outside_the_classes_is_a_one_line_error_not_an_index_or_a_wrap(name, bad):
    """A Trainer fed by the user's own loader meets the same check as a dataset."""
    from trainkit.errors import DataError
    from trainkit.plugins import losses

    loss = {"cross-entropy": losses.CrossEntropy, "mse": losses.MeanSquaredError,
            "bce": losses.BinaryCrossEntropy}[name]()
    logits = np.zeros((3, 10), np.float32)
    with pytest.raises(DataError, match=rf"^label {bad} is outside the model's 10 classes "
                                        rf"\(labels must be 0 to 9\)$"):
        loss.forward(logits, np.array([0, bad, 3]))
