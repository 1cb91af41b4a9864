"""Losses: cross-entropy from logits, binary cross-entropy from logits, and for regression mean
squared error, mean absolute error and Huber.

Each keeps forward and backward side by side. ``forward`` returns the mean loss over the batch as a
Python float and remembers what ``backward`` needs; ``backward`` returns d(loss)/d(outputs).
Targets are integer class labels (the losses that need one-hot targets build them), or a
regression's real values.
"""

from __future__ import annotations

from trainkit import hookimpl
from trainkit.lazy import lazy_import

np = lazy_import("numpy")


def check_labels(labels: np.ndarray, num_classes: int) -> None:
    """A one-line ``DataError`` for a label that is no class of the model's outputs. numpy would
    raise an IndexError for 10 of 10 classes, and silently take -1 as the last class."""
    if len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        from trainkit.errors import DataError

        bad = int(labels.min()) if labels.min() < 0 else int(labels.max())
        raise DataError(f"label {bad} is outside the model's {num_classes} classes (labels must "
                        f"be 0 to {num_classes - 1})")


def one_hot(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """float32 one-hot rows for integer ``labels``."""
    check_labels(labels, num_classes)
    out = np.zeros((len(labels), num_classes), dtype=np.float32)
    out[np.arange(len(labels)), labels] = 1.0
    return out


class CrossEntropy:
    """Softmax cross-entropy from logits: the mean over samples of ``-log softmax(z)[y]``.

    The softmax is taken row by row, with the row maximum subtracted first (log-sum-exp), so any
    finite logit is safe: ``loss_i = log(sum_j exp(z_ij - m_i)) - (z_iy - m_i)``. The gradient is
    ``(softmax(z) - onehot(y)) / N``. The logits are left untouched (metrics read them next); the
    work happens in one buffer that ``backward`` returns.

    PyTorch's ``label_smoothing`` and ``weight``: with smoothing ``e`` over ``K`` classes and
    class weights ``w``, ``loss_i = (1-e) w_y (-log p_y) + e/K sum_k w_k (-log p_k)``, and the
    mean divides by ``sum_i w_(y_i)``.

    Args:
        label_smoothing: share of the target spread evenly over every class (0: none).
        class_weights: one weight per class, comma-separated (empty: all 1), as PyTorch's
            weight=.
    """

    tasks = ("classification",)

    def __init__(self, label_smoothing: float = 0.0, class_weights: str = "") -> None:
        from trainkit.nn.optim import check_range

        check_range("label_smoothing", label_smoothing, 0.0, 1.0, high_open=False)
        self.label_smoothing = float(label_smoothing)
        self.class_weights = parse_weights(class_weights)
        self._buffers: dict[tuple[tuple[int, ...], str], tuple[np.ndarray, ...]] = {}

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        if self.label_smoothing or self.class_weights is not None:
            return self._general_forward(logits, targets)
        self._general = None
        key = (logits.shape, logits.dtype.char)
        buffers = self._buffers.get(key)
        if buffers is None:
            n = len(logits)
            buffers = self._buffers[key] = (np.empty_like(logits), np.empty((n, 1), logits.dtype),
                                            np.empty(n, logits.dtype), np.empty(n, logits.dtype),
                                            np.arange(n))
        work, row_max, sums, losses, rows = buffers
        check_labels(targets, logits.shape[1])
        # ufunc reductions with out= skip numpy's Python-level wrappers (a few us per call)
        np.maximum.reduce(logits, axis=1, keepdims=True, out=row_max)
        np.subtract(logits, row_max, out=work)
        picked = work[rows, targets]
        np.exp(work, out=work)
        np.add.reduce(work, axis=1, out=sums)
        np.log(sums, out=losses)
        losses -= picked
        self._work, self._sums, self._rows, self._targets = work, sums, rows, targets
        return float(np.add.reduce(losses)) / len(losses)

    def _general_forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        """With smoothing or class weights: PyTorch's formula, written out."""
        k = logits.shape[1]
        check_labels(targets, k)
        w = np.ones(k, np.float32) if self.class_weights is None else self.class_weights
        if len(w) != k:
            from trainkit.errors import ConfigError

            raise ConfigError(f"class_weights has {len(w)} weights for the model's {k} classes",
                              "class_weights")
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        rows, e = np.arange(len(targets)), np.float32(self.label_smoothing)
        w_y = w[targets]
        losses = (1 - e) * w_y * -log_p[rows, targets] + e / k * (-log_p * w).sum(axis=1)
        self._general = (np.exp(log_p), targets, w, w_y, float(w_y.sum()))
        return float(losses.sum()) / self._general[4]

    def backward(self) -> np.ndarray:
        if self._general is not None:
            p, targets, w, w_y, total = self._general
            e, k = np.float32(self.label_smoothing), p.shape[1]
            grad = (1 - e) * w_y[:, None] * p
            grad[np.arange(len(targets)), targets] -= (1 - e) * w_y
            grad += e / k * (w.sum() * p - w)
            grad *= grad.dtype.type(1.0 / total)
            return grad
        grad = self._work
        grad /= self._sums[:, None]  # softmax
        grad[self._rows, self._targets] -= 1.0
        grad *= grad.dtype.type(1.0 / len(self._targets))
        return grad


def parse_weights(text: str) -> np.ndarray | None:
    """``"1,2.5,1"`` as float32 weights; empty: ``None``."""
    text = str(text or "").strip()
    if not text:
        return None
    try:
        weights = np.array([float(v) for v in text.split(",")], np.float32)
    except ValueError:
        weights = np.array([-1.0], np.float32)
    if (weights < 0).any() or not np.isfinite(weights).all() or not weights.sum() > 0:
        from trainkit.errors import ConfigError

        raise ConfigError(f"class_weights must be numbers >= 0, comma-separated, got {text!r}",
                          "class_weights")
    return weights


def targets_like(outputs: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The targets as the outputs' float32 array: a regression's real values as they are
    (``(N,)`` for one output), a classification's integer labels one-hot."""
    if np.issubdtype(targets.dtype, np.floating):
        return np.reshape(targets, outputs.shape).astype(outputs.dtype, copy=False)
    return one_hot(targets, outputs.shape[1])


class MeanSquaredError:
    """Mean over all elements of ``(outputs - t)**2``, where ``t`` are a regression's targets
    (or one-hot classes); gradient ``2 (outputs - t) / size``."""

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        self._diff = outputs - targets_like(outputs, targets)
        return float(np.mean(self._diff * self._diff))

    def backward(self) -> np.ndarray:
        return self._diff * self._diff.dtype.type(2.0 / self._diff.size)


class MeanAbsoluteError:
    """Mean over all elements of ``|outputs - t|``; gradient ``sign(outputs - t) / size``
    (0 where they are equal, as PyTorch's ``L1Loss``)."""

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        self._diff = outputs - targets_like(outputs, targets)
        return float(np.mean(np.abs(self._diff)))

    def backward(self) -> np.ndarray:
        return np.sign(self._diff) * self._diff.dtype.type(1.0 / self._diff.size)


class Huber:
    """PyTorch's ``HuberLoss``: per element ``e**2 / 2`` where ``|e| < delta``, else
    ``delta (|e| - delta / 2)``, the mean over all elements; quadratic near the target, linear
    (robust to outliers) far from it.

    Args:
        delta: where the loss turns from quadratic to linear.
    """

    def __init__(self, delta: float = 1.0) -> None:
        from trainkit.nn.optim import check_range

        check_range("delta", delta, 0.0, low_open=True)
        self.delta = float(delta)

    def forward(self, outputs: np.ndarray, targets: np.ndarray) -> float:
        e = self._diff = outputs - targets_like(outputs, targets)
        small = np.abs(e) < self.delta
        loss = np.where(small, 0.5 * e * e, self.delta * (np.abs(e) - 0.5 * self.delta))
        return float(np.mean(loss))

    def backward(self) -> np.ndarray:
        e = self._diff
        grad = np.clip(e, -self.delta, self.delta)
        grad *= grad.dtype.type(1.0 / grad.size)
        return grad


class BinaryCrossEntropy:
    """Binary cross-entropy from logits, one sigmoid per output, mean over all elements. With
    one output (a binary task) the targets are the classes 0 and 1; with several, one-hot.

    ``max(z, 0) - z t + log(1 + exp(-|z|))`` is stable for any logit; the gradient is
    ``(sigmoid(z) - t) / size``.
    """

    tasks = ("binary", "classification")

    def forward(self, logits: np.ndarray, targets: np.ndarray) -> float:
        if logits.shape[1] == 1:  # the binary task: the output is class 1's logit
            check_labels(targets, 2)
            t = np.reshape(targets, logits.shape).astype(logits.dtype)
        else:
            t = one_hot(targets, logits.shape[1])
        loss = np.maximum(logits, 0) - logits * t + np.log1p(np.exp(-np.abs(logits)))
        self._logits, self._t = logits, t
        return float(loss.mean())

    def backward(self) -> np.ndarray:
        from scipy.special import expit

        grad = expit(self._logits) - self._t
        grad *= grad.dtype.type(1.0 / grad.size)
        return grad


class TaskLoss:
    """The loss the dataset's task calls for: cross-entropy for classes, binary-cross-entropy
    for a yes or no, mse for real values (the default)."""

    CHOICE = {"classification": "cross-entropy", "binary": "binary-cross-entropy",
              "regression": "mse"}

    def choose(self, task: str) -> str:
        return self.CHOICE[task]


@hookimpl
def register_losses(register):
    register("auto", TaskLoss)
    register("cross-entropy", CrossEntropy)
    register("mse", MeanSquaredError)
    register("mae", MeanAbsoluteError)
    register("huber", Huber)
    register("binary-cross-entropy", BinaryCrossEntropy)
    register("bce", BinaryCrossEntropy)
