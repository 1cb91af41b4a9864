"""``check_dataset``: what ``load()`` gives, the same every time, with nothing unpickled."""

from __future__ import annotations

import contextlib
import sys
import threading
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from trainkit.lazy import lazy_import

if TYPE_CHECKING:
    import numpy as np
else:  # trainkit.testing (a pytest plugin) imports this module at start-up
    np = lazy_import("numpy")
from trainkit.testing.checks.findings import (
    Findings,
    name_of,
)

_WATCH = threading.local()
_AUDITING = False


def _refuse_unpickling(event: str, args: tuple) -> None:
    if event == "pickle.find_class" and getattr(_WATCH, "on", False):
        raise RuntimeError("it unpickled a file (pickle can run any code: store arrays with "
                           "np.save and np.load(..., allow_pickle=False))")


@contextlib.contextmanager
def no_unpickling() -> Iterator[None]:
    """Any unpickling while the dataset loads is an error: Python's audit hook sees every
    unpickler look up a class (``pickle.find_class``), whichever module called it. The hook
    stays for the process (audit hooks cannot be removed) and acts only inside this block."""
    global _AUDITING
    if not _AUDITING:
        sys.addaudithook(_refuse_unpickling)
        _AUDITING = True
    _WATCH.on = True
    try:
        yield
    finally:
        _WATCH.on = False


def check_dataset(factory: Callable[..., Any], *, name: str | None = None,
                  **options: Any) -> list[str]:
    """Check the dataset ``factory(**options)`` (what ``register_datasets`` registers): what
    ``load()`` gives (shapes, dtypes, labels within the classes, class names), the same arrays
    on every load (so a seed gives the same validation split), and nothing unpickled."""
    from trainkit.data import DatasetSplits

    findings = Findings("dataset", name_of(factory, name))
    with findings.check("loading it"), no_unpickling():
        splits = factory(**options).load()
        again = factory(**options).load()
    if findings.problems:
        return findings.done()
    if not isinstance(splits, DatasetSplits):
        findings.problem(f"load() gives {type(splits).__name__}, expected trainkit.data."
                         f"DatasetSplits")
        return findings.done()
    for part in ("train", "test"):
        images, labels = getattr(splits, f"{part}_images"), getattr(splits, f"{part}_labels")
        if images.dtype not in (np.uint8, np.float32):
            findings.problem(f"its {part} inputs are {images.dtype}, expected uint8 pixels or "
                             f"float32")
        if len(images) != len(labels):
            findings.problem(f"{len(images)} {part} inputs for {len(labels)} labels")
    if splits.train_images.shape[1:] != splits.test_images.shape[1:]:
        findings.problem(f"train samples are {splits.train_images.shape[1:]}, test samples "
                         f"{splits.test_images.shape[1:]}: expected one shape")
    if len(splits.class_names or ()) != splits.num_classes:
        findings.problem(f"{len(splits.class_names or ())} class names for "
                         f"{splits.num_classes} classes")
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        if not np.array_equal(getattr(splits, field), getattr(again, field)):
            findings.problem(f"two loads give other {field}: expected the same arrays every time "
                             f"(the same seed must give the same validation split)")
    findings.ran.append("load()")
    return findings.done()
