"""Where the data comes from, and that it is the data asked for: never a hard-coded path (the
notebook read from a fixed Windows folder), always --data-dir, TRAINKIT_DATA_DIR or a per-user
cache; and every local file of a known dataset checked by SHA-256, so that one dataset's files are
never trained on under another's name."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from trainkit.cli import make_cli
from trainkit.data import write_idx
from trainkit.errors import DataError
from trainkit.persist.cache import default_cache_dir
from trainkit.plugins.datasets import MNIST, SPLIT_FILES, FashionMNIST, IDXFiles

from .conftest import write_dataset


def linked_copy(source: Path, target: Path) -> Path:
    """A folder of symbolic links to ``source``'s files (no 10 MB copies)."""
    target.mkdir(parents=True)
    for f in source.iterdir():
        (target / f.name).symlink_to(f)
    return target


def test_a_data_root_with_a_folder_per_dataset_finds_each_one(data_root, monkeypatch):
    if not (data_root / "fashion-mnist").is_dir():
        pytest.skip("no fashion-mnist beside mnist")
    for dataset in (MNIST, FashionMNIST):
        paths = dataset(data_dir=data_root).locate_all()
        assert {p.parent for p in paths.values()} == {data_root / dataset.name}
    monkeypatch.setenv("TRAINKIT_DATA_DIR", str(data_root))
    assert FashionMNIST().locate_all()["test_labels"].parent == data_root / "fashion-mnist"


def test_fashion_mnist_refuses_mnist_files_and_says_what_they_are(mnist_dir):
    with pytest.raises(DataError) as info:
        FashionMNIST(data_dir=mnist_dir).load()
    message = str(info.value)
    assert "\n" not in message
    assert "train-images-idx3-ubyte.gz: not fashion-mnist's" in message
    assert "it is mnist's train-images-idx3-ubyte.gz" in message


def test_the_cli_never_trains_fashion_mnist_on_mnist_files(mnist_dir, tmp_path):
    # TRAINKIT_DATA_DIR at the MNIST folder itself, as earlier READMEs said to set it.
    result = CliRunner().invoke(make_cli(), ["run", "--dataset", "fashion-mnist", "--out", "o"],
                                env={"TRAINKIT_DATA_DIR": str(mnist_dir)})
    assert result.exit_code == 1
    assert "not fashion-mnist's" in result.output and "mnist's" in result.output
    assert "training" not in result.output and not (tmp_path / "o").exists()


def test_a_modified_file_is_refused_naming_the_file(mnist_dir, tmp_path):
    folder = linked_copy(mnist_dir, tmp_path / "mnist")
    labels = folder / "train-labels-idx1-ubyte.gz"
    data = bytearray(gzip.decompress(labels.read_bytes()))
    data[-1] = (data[-1] + 1) % 10
    labels.unlink()
    labels.write_bytes(gzip.compress(bytes(data)))
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte.gz: not mnist's .* no file "
                                        r"trainkit knows .* --dataset idx"):
        MNIST(data_dir=folder).load()


def test_uncompressed_files_are_verified_too(mnist_dir, tmp_path):
    folder = linked_copy(mnist_dir, tmp_path / "mnist")
    gz = folder / "t10k-labels-idx1-ubyte.gz"
    raw = folder / "t10k-labels-idx1-ubyte"
    raw.write_bytes(gzip.decompress(gz.read_bytes()))
    gz.unlink()
    assert MNIST(data_dir=folder).locate_all()["test_labels"] == raw
    raw.write_bytes(raw.read_bytes()[:-1] + b"\x00")
    with pytest.raises(DataError, match="not mnist's t10k-labels-idx1-ubyte"):
        MNIST(data_dir=folder).locate_all()


def test_verification_is_remembered_until_the_file_changes(mnist_dir, tmp_path, monkeypatch):
    from trainkit.data import verify

    folder = linked_copy(mnist_dir, tmp_path / "mnist")
    (folder / "t10k-labels-idx1-ubyte.gz").unlink()
    shutil.copy(mnist_dir / "t10k-labels-idx1-ubyte.gz", folder)
    hashed = []
    real = verify.sha256_of
    monkeypatch.setattr(verify, "sha256_of", lambda p: hashed.append(p.name) or real(p))
    MNIST(data_dir=folder).locate_all()
    MNIST(data_dir=folder).locate_all()
    assert sorted(hashed) == sorted(SPLIT_FILES.values())  # each file once, then remembered
    copy = folder / "t10k-labels-idx1-ubyte.gz"
    os.utime(copy, ns=(1, 1))  # touched: hashed again
    MNIST(data_dir=folder).locate_all()
    assert hashed.count("t10k-labels-idx1-ubyte.gz") == 2


def test_your_own_idx_files_are_read_as_they_are(tmp_path, monkeypatch):
    folder = write_dataset(tmp_path / "mine", n_train=20, n_test=10)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.arange(20, dtype=np.uint8) % 4)
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", np.arange(10, dtype=np.uint8) % 3)
    splits = IDXFiles(data_dir=folder).load()
    assert splits.num_classes == 4 and len(splits.train_labels) == 20
    monkeypatch.setenv("TRAINKIT_DATA_DIR", str(folder))
    assert IDXFiles().load().test_images.shape == (10, 28, 28)
    monkeypatch.delenv("TRAINKIT_DATA_DIR")
    with pytest.raises(DataError, match="give --data-dir"):
        IDXFiles().load()


def test_labels_that_do_not_fit_the_images_are_refused(tmp_path):
    folder = write_dataset(tmp_path / "d", n_train=12, n_test=6)
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros(11, np.uint8))
    with pytest.raises(DataError, match="11 labels for 12 images"):
        IDXFiles(data_dir=folder).load()
    write_idx(folder / "train-labels-idx1-ubyte.gz", np.zeros((12, 2), np.uint8))
    with pytest.raises(DataError, match="1-D array"):
        IDXFiles(data_dir=folder).load()


def test_a_failed_download_names_every_file_and_the_cache_and_leaves_no_folder(monkeypatch):
    monkeypatch.setattr(MNIST, "mirrors", ("http://127.0.0.1:9/",))  # nothing listens there
    with pytest.raises(DataError) as info:
        MNIST().load()
    message = str(info.value)
    cache = default_cache_dir() / "mnist"
    assert str(cache) in message and "--data-dir" in message
    assert all(name in message for name in SPLIT_FILES.values())
    assert not cache.exists()


def test_the_cache_follows_the_user_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("TRAINKIT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_dir() == tmp_path / "xdg" / "trainkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "trainkit"



def test_labels_outside_the_classes_are_one_line_errors_naming_the_dataset_and_value(tmp_path):
    """From the CLI, a Session and a Trainer alike: the check is the dataset's own."""
    import textwrap

    from click.testing import CliRunner

    from trainkit.cli import make_cli

    module = tmp_path / "shifted_labels.py"
    module.write_text(textwrap.dedent('''
        import numpy as np
        from trainkit import hookimpl
        from trainkit.data import DatasetSplits

        def shifted():
            rng = np.random.default_rng(0)
            images = rng.integers(0, 256, (64, 28, 28), dtype=np.uint8)
            labels = rng.integers(1, 11, 64)  # 1-10, as a user's own labels may be
            return DatasetSplits("shifted", images, labels, images[:16], labels[:16], 10)

        @hookimpl
        def register_datasets(register):
            register("shifted", shifted)
    '''))
    import sys

    sys.path.insert(0, str(tmp_path))
    try:
        result = CliRunner().invoke(make_cli(), ["-p", "shifted_labels", "run", "--dataset",
                                                 "shifted", "--epochs", "1", "--out",
                                                 str(tmp_path / "run")])
    finally:
        sys.path.remove(str(tmp_path))
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: dataset shifted: training label 10 is outside its 10 classes (labels must be 0 "
        "to 9; labels found: 1 to 10)"]


def test_float_labels_and_negative_labels_are_refused():
    import numpy as np

    from trainkit.data import DatasetSplits
    from trainkit.errors import DataError

    images = np.zeros((4, 2, 2), np.uint8)
    with pytest.raises(DataError, match="dataset d: its training labels are float64, not "
                                        "integer classes"):
        DatasetSplits("d", images, np.zeros(4), images, np.zeros(4, int), 3)
    with pytest.raises(DataError, match="dataset d: test label -1 is outside its 3 classes"):
        DatasetSplits("d", images, np.zeros(4, int), images, np.array([0, 1, -1, 2]), 3)
