"""Shared fixtures: small synthetic IDX datasets, the real MNIST in ../shared, a CLI runner."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from trainkit.data import write_idx

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
DATA_DIR_FROM_ENV = os.environ.get("TRAINKIT_DATA_DIR")


@pytest.fixture(autouse=True)
def ctrl_c_reaches_the_process():
    """Tests press Ctrl+C with a real SIGINT; a shell's background job starts with SIGINT
    ignored (``cmd &`` without job control), and so would every run under it. Give the test
    Python's own handler, as a terminal would."""
    if signal.getsignal(signal.SIGINT) is not signal.SIG_IGN:
        yield
        return
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_images(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Learnable 28x28 uint8 images: class k lights up row band k, plus noise."""
    labels = rng.integers(0, 10, size=n).astype(np.uint8)
    images = rng.integers(0, 60, size=(n, 28, 28)).astype(np.uint8)
    for i, k in enumerate(labels):
        images[i, 2 * k + 4 : 2 * k + 6, :] = 230
    return images, labels


def write_dataset(folder: Path, n_train: int = 512, n_test: int = 256, seed: int = 0) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    train_x, train_y = make_images(n_train, rng)
    test_x, test_y = make_images(n_test, rng)
    write_idx(folder / "train-images-idx3-ubyte.gz", train_x)
    write_idx(folder / "train-labels-idx1-ubyte.gz", train_y)
    write_idx(folder / "t10k-images-idx3-ubyte.gz", test_x)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", test_y)
    return folder


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory) -> Path:
    """A folder holding a tiny learnable MNIST-shaped dataset as the four IDX .gz files."""
    return write_dataset(tmp_path_factory.mktemp("synthetic-mnist"))


def real_dataset_dir(name: str) -> Path:
    """The folder holding the real ``name`` files: TRAINKIT_DATA_DIR/<name> (or the variable's
    folder itself), else ../shared/data/<name>; the test is skipped when none holds them."""
    roots = [Path(p) for p in [DATA_DIR_FROM_ENV] if p] + [SHARED_DATA]
    for folder in [c for root in roots for c in (root / name, root)]:
        if (folder / "train-images-idx3-ubyte.gz").exists():
            return folder
    pytest.skip(f"real {name} not found: set TRAINKIT_DATA_DIR or provide ../shared/data/{name}")


@pytest.fixture
def mnist_dir() -> Path:
    """The folder of the real MNIST files."""
    return real_dataset_dir("mnist")


@pytest.fixture(scope="session")
def mnist_dir_once() -> Path:
    """The folder of the real MNIST files, for module-scoped fixtures."""
    return real_dataset_dir("mnist")


@pytest.fixture
def data_root() -> Path:
    """A folder with a subfolder per real dataset (mnist/, fashion-mnist/), as the README sets
    TRAINKIT_DATA_DIR."""
    return real_dataset_dir("mnist").parent


@pytest.fixture(autouse=True)
def _isolate(monkeypatch, tmp_path):
    """Tests never read the developer's data dir, cache or TRAINKIT_* settings by accident."""
    for key in list(os.environ):
        if key.startswith("TRAINKIT_") and key != "TRAINKIT_DATA_DIR":
            monkeypatch.delenv(key)
    monkeypatch.delenv("TRAINKIT_DATA_DIR", raising=False)
    monkeypatch.setenv("TRAINKIT_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
