"""``--dataset arrays``: your own numpy arrays, from a ``.npz`` file or a folder of ``.npy`` files.

The arrays are ``x_train, y_train, x_test, y_test``, or ``x, y`` and a seeded test split. Inputs
may be images ``(N, H, W)`` or ``(N, H, W, C)`` (uint8 pixels are scaled to [0, 1], as for
MNIST) or feature rows ``(N, F)`` of floats, taken as they are. Targets decide the task
(``trainkit.data.targets``) unless ``--task`` says it. Nothing is ever unpickled. ``.npy`` files
are memory-mapped: an epoch reads only its batches, so a dataset larger than memory trains with
bounded memory (give ``x_train.npy`` and ``x_test.npy`` then: a split of ``x.npy`` copies it).
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Literal

from trainkit import hookimpl
from trainkit.errors import DataError
from trainkit.lazy import lazy_import

np = lazy_import("numpy")

NAMES = ("x_train", "y_train", "x_test", "y_test")


class Arrays:
    """Your own arrays: x_train, y_train, x_test, y_test (or x, y and a seeded test split).

    Args:
        data_file: a .npz file, or a folder of .npy files (x_train.npy, y_train.npy, ...).
        task: auto (from the targets), classification, binary or regression.
        test_split: the share held out for testing when there is no x_test.
        split_seed: the seed of that split.
    """

    def __init__(self, data_file: Path | None = None,
                 task: Literal["auto", "classification", "binary", "regression"] = "auto",
                 test_split: float = 0.2, split_seed: int = 0) -> None:
        self.data_file = Path(data_file) if data_file is not None else None
        self.task, self.test_split, self.split_seed = task, test_split, split_seed
        #: arrays in memory (``Session(data=...)``), read instead of a file
        self.arrays: dict | None = None

    @property
    def source(self) -> str:
        return str(self.data_file) if self.data_file is not None else "the arrays given"

    def load(self):
        from trainkit.data import DatasetSplits
        from trainkit.data.targets import split_rows, targets_for

        if self.arrays is not None:
            found = self.arrays
        elif self.data_file is None:
            raise DataError("dataset arrays needs --data-file: a .npz file or a folder of .npy "
                            "files")
        else:
            found = read_arrays(self.data_file)
        if {"x_train", "y_train", "x_test", "y_test"} <= found.keys():
            x_train, y_train = found["x_train"], found["y_train"]
            x_test, y_test = found["x_test"], found["y_test"]
        elif {"x", "y"} <= found.keys():
            x, y = found["x"], found["y"]
            check_lengths(x, y, "x", "y", self.source)
            train, test = split_rows(len(x), self.test_split, self.split_seed, self.source)
            x_train, y_train, x_test, y_test = x[train], y[train], x[test], y[test]
        else:
            raise DataError(f"{self.source}: holds {', '.join(sorted(found)) or 'no array'}; "
                            f"give x_train, y_train, x_test, y_test (or x and y)")
        check_lengths(x_train, y_train, "x_train", "y_train", self.source)
        check_lengths(x_test, y_test, "x_test", "y_test", self.source)
        for name, x in (("x_train", x_train), ("x_test", x_test)):
            if x.dtype != np.uint8 and not np.issubdtype(x.dtype, np.floating):
                raise DataError(f"{self.source}: {name} is {x.dtype}; inputs must be uint8 "
                                f"pixels or floats")
        if x_train.shape[1:] != x_test.shape[1:]:
            raise DataError(f"{self.source}: x_train's samples are {x_train.shape[1:]}, "
                            f"x_test's {x_test.shape[1:]}")
        both = np.concatenate([np.asarray(y_train), np.asarray(y_test)])
        task, targets, names = targets_for(both, self.task, self.source)
        return DatasetSplits("arrays", x_train, targets[:len(y_train)], x_test,
                             targets[len(y_train):], len(names), names or None, task=task)


def read_arrays(path: Path) -> dict:
    """The arrays of a .npz file or of a folder's .npy files (memory-mapped), never unpickled."""
    if path.is_dir():
        files = {p.stem: p for p in path.glob("*.npy")}
        if not files:
            raise DataError(f"{path}: no .npy file in this folder")
        return {name: load_npy(file) for name, file in files.items()
                if name in (*NAMES, "x", "y")}
    if not path.is_file():
        raise DataError(f"{path}: file not found (from --data-file)")
    if path.suffix == ".npy":
        raise DataError(f"{path}: give the folder that holds x_train.npy, y_train.npy, ... "
                        f"(or x.npy and y.npy), or a .npz file")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {name: archive[name] for name in archive.files}
    except ValueError as e:  # an object array: it would need unpickling
        raise DataError(f"{path}: holds an array that only pickle can read ({e}); save plain "
                        f"numeric arrays") from None
    except (OSError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a .npz file of arrays ({e})") from None


def load_npy(path: Path):
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as e:
        raise DataError(f"{path}: holds an array that only pickle can read ({e}); save plain "
                        f"numeric arrays") from None
    except OSError as e:
        raise DataError(f"{path}: not a .npy array ({e})") from None
    random_access(array)
    return array


def random_access(array) -> None:
    """Tell the kernel that batches read scattered rows: without it each page fault reads ahead
    128 KB around the row, and 200 batches of a 2 GB file kept 1.3 GB resident."""
    import mmap

    mapped = getattr(array, "_mmap", None)
    if mapped is not None and hasattr(mapped, "madvise") and hasattr(mmap, "MADV_RANDOM"):
        mapped.madvise(mmap.MADV_RANDOM)


def check_lengths(x, y, x_name: str, y_name: str, source: str) -> None:
    if len(x) != len(y):
        raise DataError(f"{source}: {x_name} has {len(x)} samples, {y_name} {len(y)}")
    if not len(x):
        raise DataError(f"{source}: {x_name} is empty")


@hookimpl
def register_datasets(register):
    register("arrays", Arrays)
