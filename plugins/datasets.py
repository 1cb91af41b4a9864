"""Datasets: MNIST and Fashion-MNIST, from a local folder or downloaded and verified.

With ``--data-dir DIR`` (or ``TRAINKIT_DATA_DIR``) the four IDX files are read from ``DIR`` (or from
``DIR/<dataset name>``) and nothing is downloaded. Otherwise they are downloaded once into the cache
(``TRAINKIT_CACHE_DIR``, default ``~/.cache/trainkit``), trying each mirror in turn and checking the
SHA-256 of every file.
"""

from __future__ import annotations

import os
from pathlib import Path

from trainkit import hookimpl
from trainkit.errors import DataError

SPLIT_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "test_images": "t10k-images-idx3-ubyte.gz",
    "test_labels": "t10k-labels-idx1-ubyte.gz",
}


class IDXDataset:
    """A dataset stored as the four canonical IDX files.

    Args:
        data_dir: a folder that already holds the files; nothing is downloaded.
    """

    name = ""
    sha256: dict[str, str] = {}
    mirrors: tuple[str, ...] = ()
    num_classes = 10

    def __init__(self, data_dir: Path | None = None) -> None:
        env = os.environ.get("TRAINKIT_DATA_DIR")
        self.data_dir = Path(data_dir) if data_dir else (Path(env) if env else None)

    def load(self):
        from trainkit.data import DatasetSplits, read_idx

        paths = {split: self.locate(filename) for split, filename in SPLIT_FILES.items()}
        arrays = {split: read_idx(path) for split, path in paths.items()}
        for part in ("train", "test"):
            images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
            if len(images) != len(labels):
                raise DataError(
                    f"{paths[f'{part}_labels']}: {len(labels)} labels for {len(images)} images "
                    f"in {paths[f'{part}_images']}"
                )
            if labels.ndim != 1 or (len(labels) and labels.max() >= self.num_classes):
                raise DataError(
                    f"{paths[f'{part}_labels']}: labels must be a 1-D array of classes "
                    f"0..{self.num_classes - 1}"
                )
        return DatasetSplits(name=self.name, num_classes=self.num_classes, **arrays)

    def locate(self, filename: str) -> Path:
        if self.data_dir is None:
            from trainkit.data.download import default_cache_dir, fetch

            return fetch(filename, self.sha256[filename], self.mirrors,
                         default_cache_dir() / self.name)
        for folder in (self.data_dir, self.data_dir / self.name):
            for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
                if candidate.is_file():
                    return candidate
        if not self.data_dir.is_dir():
            raise DataError(f"{self.data_dir}: data folder does not exist (from --data-dir)")
        raise DataError(
            f"{self.data_dir}: {filename} not found (looked in {self.data_dir} and "
            f"{self.data_dir / self.name}); it must hold the four {self.name} IDX files"
        )


class MNIST(IDXDataset):
    """Handwritten digits: 60,000 training and 10,000 test images of 28x28 pixels.

    Args:
        data_dir: a folder that already holds the files; nothing is downloaded.
    """

    name = "mnist"
    mirrors = (
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    )
    sha256 = {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    }


class FashionMNIST(IDXDataset):
    """Zalando's clothing images, a drop-in replacement for MNIST with the same layout.

    Args:
        data_dir: a folder that already holds the files; nothing is downloaded.
    """

    name = "fashion-mnist"
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    sha256 = {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    }


@hookimpl
def register_datasets(register):
    register("mnist", MNIST)
    register("fashion-mnist", FashionMNIST)
