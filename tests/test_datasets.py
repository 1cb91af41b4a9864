"""Where the data comes from: never a hard-coded path (the notebook read from a fixed Windows
folder), always --data-dir, TRAINKIT_DATA_DIR, or a per-user cache."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainkit.data.download import default_cache_dir
from trainkit.errors import DataError
from trainkit.plugins.datasets import MNIST, FashionMNIST

from .conftest import write_dataset


def test_data_dir_argument_environment_and_dataset_subfolder(tmp_path, monkeypatch):
    write_dataset(tmp_path / "flat", n_train=20, n_test=10)
    write_dataset(tmp_path / "root" / "fashion-mnist", n_train=30, n_test=10)
    assert len(MNIST(data_dir=tmp_path / "flat").load().train_labels) == 20
    monkeypatch.setenv("TRAINKIT_DATA_DIR", str(tmp_path / "root"))
    assert len(FashionMNIST().load().train_labels) == 30  # found in DIR/fashion-mnist


def test_uncompressed_files_are_read_too(tmp_path):
    import gzip

    folder = write_dataset(tmp_path / "d", n_train=12, n_test=6)
    for gz in folder.glob("*.gz"):
        gz.with_suffix("").write_bytes(gzip.decompress(gz.read_bytes()))
        gz.unlink()
    assert MNIST(data_dir=folder).load().test_images.shape == (6, 28, 28)


def test_the_cache_follows_the_user_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAINKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "trainkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "trainkit"


def test_labels_that_do_not_fit_the_images_are_refused(tmp_path):
    from trainkit.data import write_idx

    folder = write_dataset(tmp_path / "d", n_train=12, n_test=6)
    import numpy as np

    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(DataError, match="11 labels for 12 images"):
        MNIST(data_dir=folder).load()
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.full(12, 10, np.uint8))
    with pytest.raises(DataError, match="classes 0..9"):
        MNIST(data_dir=folder).load()
