"""Datasets: MNIST and Fashion-MNIST, verified by SHA-256, and your own IDX files.

With ``--data-dir DIR`` (or ``TRAINKIT_DATA_DIR``) the four IDX files are read from ``DIR/<dataset
name>`` (so one folder can hold ``mnist/`` and ``fashion-mnist/`` side by side), or from ``DIR``
itself, and nothing is downloaded. Every file is checked against the SHA-256 the dataset knows
(remembered by size and mtime, see ``trainkit.data.verify``), so ``--dataset fashion-mnist`` can never
train on MNIST's files: it refuses them and says what they are. Without a data folder the files are
downloaded once into the cache (``TRAINKIT_CACHE_DIR``, default ``~/.cache/trainkit``), trying each
mirror in turn. ``--dataset idx`` reads any four IDX files in MNIST's layout, unchecked.
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

    Subclasses set ``name``, ``mirrors`` and the SHA-256 of each file, compressed (``sha256``) and
    uncompressed (``sha256_raw``). A dataset without checksums reads whatever files it is given.

    Args:
        data_dir: a folder that already holds the files; nothing is downloaded.
    """

    name = ""
    sha256: dict[str, str] = {}
    sha256_raw: dict[str, str] = {}
    mirrors: tuple[str, ...] = ()
    num_classes: int | None = 10
    #: what each class is, in label order (``None``: the labels' numbers)
    class_names: tuple[str, ...] | None = None

    def __init__(self, data_dir: Path | None = None) -> None:
        env = os.environ.get("TRAINKIT_DATA_DIR")
        self.data_dir = Path(data_dir) if data_dir else (Path(env) if env else None)

    def load(self):
        from trainkit.data import DatasetSplits, read_idx

        paths = self.locate_all()
        arrays = {split: read_idx(path) for split, path in paths.items()}
        num_classes = self.num_classes
        if num_classes is None:  # your own files: as many classes as the labels name
            num_classes = int(max((a.max() for k, a in arrays.items()
                                   if k.endswith("labels") and a.size), default=0)) + 1
        for part in ("train", "test"):
            images, labels = arrays[f"{part}_images"], arrays[f"{part}_labels"]
            if len(images) != len(labels):
                raise DataError(
                    f"{paths[f'{part}_labels']}: {len(labels)} labels for {len(images)} images "
                    f"in {paths[f'{part}_images']}"
                )
            if labels.ndim != 1 or (len(labels) and labels.max() >= num_classes):
                raise DataError(
                    f"{paths[f'{part}_labels']}: labels must be a 1-D array of classes "
                    f"0..{num_classes - 1}"
                )
        names = self.class_names or tuple(str(i) for i in range(num_classes))
        return DatasetSplits(name=self.name, num_classes=num_classes, class_names=names,
                             **arrays)

    def locate_all(self) -> dict[str, Path]:
        """Every split's file, found and verified (or downloaded)."""
        if self.data_dir is None:
            return self.download_all()
        return {split: self.verify(self.locate(filename), filename)
                for split, filename in SPLIT_FILES.items()}

    def locate(self, filename: str) -> Path:
        """``filename`` (or its uncompressed form) in ``DIR/<name>``, else in ``DIR``."""
        assert self.data_dir is not None
        folders = [self.data_dir / self.name, self.data_dir] if self.name else [self.data_dir]
        for folder in folders:
            for candidate in (folder / filename, folder / filename.removesuffix(".gz")):
                if candidate.is_file():
                    return candidate
        if not self.data_dir.is_dir():
            raise DataError(f"{self.data_dir}: data folder does not exist (from --data-dir)")
        looked = " and ".join(str(f) for f in folders)
        raise DataError(
            f"{self.data_dir}: {filename} not found (looked in {looked}); it must hold the four "
            f"{self.name} IDX files"
        )

    def verify(self, path: Path, filename: str) -> Path:
        """``path`` itself, once its SHA-256 is the one this dataset expects for ``filename``."""
        compressed = path.suffix == ".gz"
        expected = (self.sha256 if compressed else self.sha256_raw).get(filename)
        if expected is None:
            return path
        from trainkit.data.verify import cached_sha256

        try:
            actual = cached_sha256(path)
        except OSError as e:
            raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
        if actual == expected:
            return path
        raise DataError(f"{path}: not {self.name}'s {path.name}: it is {describe_file(actual)}")

    def download_all(self) -> dict[str, Path]:
        from trainkit.data.download import fetch
        from trainkit.persist.cache import default_cache_dir

        cache = default_cache_dir() / self.name
        existed = cache.exists()
        paths = {}
        try:
            for split, filename in SPLIT_FILES.items():
                paths[split] = fetch(filename, self.sha256[filename], self.mirrors, cache)
        except DataError as e:
            if not existed and cache.is_dir() and not any(cache.iterdir()):
                cache.rmdir()  # leave no empty folder behind
            files = ", ".join(SPLIT_FILES.values())
            raise DataError(
                f"cannot download {self.name} into {cache}: {e}. Put its four files ({files}) in "
                f"DIR/{self.name} and pass --data-dir DIR (or set TRAINKIT_DATA_DIR=DIR)"
            ) from None
        except KeyError:
            raise DataError(f"dataset {self.name!r} cannot be downloaded: give --data-dir DIR "
                            f"(or TRAINKIT_DATA_DIR), a folder that holds its four IDX "
                            f"files") from None
        return paths


def known_files() -> dict[str, str]:
    """SHA-256 -> ``"mnist's train-images-idx3-ubyte.gz"`` for every dataset that knows its files."""
    known: dict[str, str] = {}
    pending = list(IDXDataset.__subclasses__())
    while pending:
        cls = pending.pop()
        pending.extend(cls.__subclasses__())
        for table, suffix in ((cls.sha256, ""), (cls.sha256_raw, " (uncompressed)")):
            for filename, digest in table.items():
                known[digest] = f"{cls.name}'s {filename}{suffix}"
    return known


def describe_file(digest: str) -> str:
    """What a file whose SHA-256 is ``digest`` looks like, for an error message."""
    known = known_files().get(digest)
    if known is not None:
        return known
    return (f"no file trainkit knows (SHA-256 {digest[:12]}...); for your own IDX files use "
            f"--dataset idx")


class IDXFiles(IDXDataset):
    """Your own four IDX files in MNIST's layout and names, read from --data-dir as they are.

    Nothing is verified or downloaded; the number of classes is the largest label plus one.

    Args:
        data_dir: the folder that holds the four IDX files (required).
    """

    name = "idx"
    num_classes = None


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
    sha256_raw = {
        "train-images-idx3-ubyte.gz": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "train-labels-idx1-ubyte.gz": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "t10k-images-idx3-ubyte.gz": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "t10k-labels-idx1-ubyte.gz": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    }
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
    class_names = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
    mirrors = ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",)
    sha256_raw = {
        "train-images-idx3-ubyte.gz": "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
        "train-labels-idx1-ubyte.gz": "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
        "t10k-images-idx3-ubyte.gz": "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
        "t10k-labels-idx1-ubyte.gz": "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34",
    }
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
    register("idx", IDXFiles)
