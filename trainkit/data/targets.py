"""Your own data's targets: which task they are, as classes or values, and a seeded test split.

A dataset of your own (arrays, a table, image folders) hands its targets to ``targets_for`` and
gets the task and the targets as trainkit trains on them:

- real values, or integers with many distinct values (more than ``MAX_CLASSES``): regression,
  float32 targets;
- two classes (0/1, or two names): a binary task, targets 0 and 1, one output;
- more classes: classification, integer targets 0..k-1.

Class names are the values themselves, sorted (``"benign", "malignant"``; ``"0", "1", "2"``).
``task`` other than ``auto`` chooses instead, and says why it cannot when the targets do not fit.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from trainkit.errors import DataError

Task = Literal["auto", "classification", "binary", "regression"]

#: Integer targets with more distinct values than this are taken as real values (ages, prices).
MAX_CLASSES = 50


def targets_for(values: np.ndarray, task: str, source: str
                ) -> tuple[str, np.ndarray, tuple[str, ...]]:
    """``(task, targets, class names)`` for raw target ``values`` (numbers or strings) of
    ``source`` (the file, for errors)."""
    values = np.asarray(values)
    numeric = np.issubdtype(values.dtype, np.number) or np.issubdtype(values.dtype, np.bool_)
    if task not in ("auto", "classification", "binary", "regression"):
        raise DataError(f"{source}: task {task!r} is none of auto, classification, binary, "
                        f"regression")
    if task == "regression" or (task == "auto" and numeric and is_continuous(values)):
        if not numeric:
            raise DataError(f"{source}: regression needs numeric targets, got "
                            f"{describe_values(values)}")
        if values.ndim > 2:
            raise DataError(f"{source}: regression targets must be (N,) or (N, outputs), got "
                            f"shape {values.shape}")
        return "regression", values.astype(np.float32), ()
    if values.ndim != 1:
        raise DataError(f"{source}: class targets must be one per sample, (N,), got shape "
                        f"{values.shape}")
    names, classes = np.unique(values, return_inverse=True)
    if numeric and np.issubdtype(values.dtype, np.floating) and \
            not np.array_equal(names, np.round(names)):
        raise DataError(f"{source}: {task} needs class targets, got real values such as "
                        f"{names[0]!r}: use --task regression")
    if numeric and len(names) and names.min() >= 0 and names.max() < max(len(names), 2) + 0:
        # classes numbered 0..k-1 keep their numbers, even when one is missing from the data
        classes = values.astype(np.intp)
        names = np.arange(int(names.max()) + 1)
    labels = tuple(str(n.item() if hasattr(n, "item") else n) for n in names)
    if task == "binary" or (task == "auto" and len(labels) == 2):
        if len(labels) != 2:
            raise DataError(f"{source}: a binary task needs two classes, the targets have "
                            f"{len(labels)}")
        return "binary", classes.astype(np.intp), labels
    if len(labels) < 2:
        raise DataError(f"{source}: the targets hold one class only ({labels[0] if labels else 'none'})")
    return "classification", classes.astype(np.intp), labels


def is_continuous(values: np.ndarray) -> bool:
    """Numbers that are not classes: any fraction, or more than ``MAX_CLASSES`` distinct
    integers, or several columns."""
    if values.ndim > 1:
        return True
    finite = values[np.isfinite(values)] if np.issubdtype(values.dtype, np.floating) else values
    if not np.array_equal(finite, np.round(finite)):
        return True
    return len(np.unique(finite)) > MAX_CLASSES


def describe_values(values: np.ndarray) -> str:
    sample = ", ".join(repr(v) for v in np.unique(values)[:3].tolist())
    return f"{values.dtype} values such as {sample}"


def split_rows(n: int, test_split: float, seed: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Row indices ``(train, test)`` of a seeded split holding ``test_split`` of ``n`` rows
    out (each part in file order)."""
    if not 0 < test_split < 1:
        raise DataError(f"{source}: test_split must be a fraction in (0, 1), got {test_split}")
    held = int(round(n * test_split))
    if held < 1 or held >= n:
        raise DataError(f"{source}: {n} samples are too few to hold {test_split:g} of them out "
                        f"for testing")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[held:]), np.sort(order[:held])
