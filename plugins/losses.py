"""Losses: cross-entropy from logits, mean squared error and binary cross-entropy.

Each keeps forward and backward side by side. ``forward`` returns the mean loss over the batch as a
Python float and remembers what ``backward`` needs; ``backward`` returns d(loss)/d(outputs).
Targets are integer class labels; the losses that need one-hot targets build them.
"""

from __future__ import annotations

import numpy as np

from trainkit import hookimpl


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 one-hot rows for integer ``labels``."""
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


class CrossEntropy:
    """Softmax cross-entropy from logits: the mean over samples of ``-log softmax(z)[y]``.

    The softmax is taken row by row (``scipy.special.log_softmax`` along axis 1) and the gradient is
    ``(softmax(z) - onehot(y)) / N``.
    """

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        from scipy.special import log_softmax

        log_probs = log_softmax(logits, axis=1)
        rows = np.arange(len(targets))
        self._log_probs, self._rows, self._targets = log_probs, rows, targets
        return -float(log_probs[rows, targets].mean())

    def backward(self) -> np.ndarray:
        grad = np.exp(self._log_probs, out=self._log_probs)  # softmax, in place
        grad[self._rows, self._targets] -= 1.0
        grad *= np.float32(1.0 / len(self._targets))
        return grad


class MeanSquaredError:
    """Mean over all elements of ``(outputs - onehot(y))**2``; gradient ``2 (outputs - t) / size``."""

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        self._diff = outputs - one_hot(targets, outputs.shape[1])
        return float(np.mean(self._diff * self._diff))

    def backward(self) -> np.ndarray:
        return self._diff * np.float32(2.0 / self._diff.size)


class BinaryCrossEntropy:
    """Binary cross-entropy from logits, one sigmoid per output, mean over all elements.

    ``max(z, 0) - z t + log(1 + exp(-|z|))`` is stable for any logit; the gradient is
    ``(sigmoid(z) - t) / size``.
    """

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        t = one_hot(targets, logits.shape[1])
        loss = np.maximum(logits, 0) - logits * t + np.log1p(np.exp(-np.abs(logits)))
        self._logits, self._t = logits, t
        return float(loss.mean())

    def backward(self) -> np.ndarray:
        from scipy.special import expit

        grad = expit(self._logits) - self._t
        grad *= np.float32(1.0 / grad.size)
        return grad


@hookimpl
def register_losses(register):
    register("cross-entropy", CrossEntropy)
    register("mse", MeanSquaredError)
    register("bce", BinaryCrossEntropy)
