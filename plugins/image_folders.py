"""``--dataset folder``: images in one subfolder per class, as Keras' ``image_dataset_from_directory``
and torchvision's ``ImageFolder`` read them.

``DIR/train/<class>/`` holds the training images and ``DIR/test/<class>/`` (when it exists) the
test images; otherwise a seeded share of the training images is held out. Class names are the
folder names, sorted. PNG, JPEG, BMP and GIF files are decoded with Pillow
(``pip install 'trainkit[images]'``), in grayscale or RGB, resized with ``--image-size``
(otherwise every image must have the first one's size). Decoded images are cached under the
cache folder, keyed by the files' names, sizes and modification times and the options, so a
second run decodes nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

from trainkit import hookimpl
from trainkit.errors import DataError
from trainkit.lazy import lazy_import

np = lazy_import("numpy")


class ImageFolder:
    """Images in DIR/train/<class>/ (and DIR/test/<class>/), one subfolder per class.

    Args:
        data_dir: the folder that holds train/ (and test/).
        color_mode: grayscale or rgb.
        image_size: HEIGHT,WIDTH to resize every image to (empty: all the first one's size).
        test_split: the share of training images held out when there is no test/ folder.
        split_seed: the seed of that split.
    """

    def __init__(self, data_dir: Path | None = None,
                 color_mode: Literal["grayscale", "rgb"] = "grayscale", image_size: str = "",
                 test_split: float = 0.2, split_seed: int = 0) -> None:
        from trainkit.data.images import parse_size

        self.data_dir = Path(data_dir) if data_dir is not None else None
        self.color_mode, self.size = color_mode, parse_size(image_size)
        self.test_split, self.split_seed = test_split, split_seed

    def load(self):
        from trainkit.data import DatasetSplits
        from trainkit.data.targets import split_rows

        if self.data_dir is None:
            raise DataError("dataset folder needs --data-dir DIR, holding DIR/train/<class>/")
        train_dir, test_dir = self.data_dir / "train", self.data_dir / "test"
        if not train_dir.is_dir():
            where = "does not exist" if not self.data_dir.is_dir() else "has no train/ folder"
            raise DataError(f"{self.data_dir}: {where}; put the images in "
                            f"{train_dir}/<class>/")
        classes = sorted(p.name for p in train_dir.iterdir() if p.is_dir())
        if len(classes) < 2:
            raise DataError(f"{train_dir}: needs a subfolder per class, found "
                            f"{len(classes)}")
        x_train, y_train = self.read_split(train_dir, classes)
        if test_dir.is_dir():
            x_test, y_test = self.read_split(test_dir, classes, expected=x_train.shape[1:])
        else:
            train, test = split_rows(len(y_train), self.test_split, self.split_seed,
                                     str(train_dir))
            x_train, y_train, x_test, y_test = (x_train[train], y_train[train], x_train[test],
                                                y_train[test])
        return DatasetSplits("folder", x_train, y_train, x_test, y_test, len(classes),
                             tuple(classes),
                             preprocessing={"kind": "images", "color_mode": self.color_mode,
                                            "image_size": list(self.size) if self.size else None})

    def read_split(self, folder: Path, classes: list[str], expected=None):
        """``(images, labels)`` of ``folder``'s class subfolders, from the cache when the files
        are those it was made of."""
        from trainkit.data.images import image_files, read_images

        unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes)
        if unknown:
            raise DataError(f"{folder / unknown[0]}: a class the training images do not have")
        files, labels = [], []
        for label, name in enumerate(classes):
            if not (folder / name).is_dir():
                continue
            found = image_files(folder / name)
            if not found:
                raise DataError(f"{folder / name}: no image in this class folder (PNG, JPEG, "
                                f"BMP or GIF)")
            files += found
            labels += [label] * len(found)
        if not files:
            raise DataError(f"{folder}: no image in its class folders")
        key = self.cache_key(files)
        cached = cache_path(key)
        if cached.is_file():
            with np.load(cached, allow_pickle=False) as saved:
                return saved["images"], saved["labels"]
        images = read_images(files, self.color_mode, self.size, expected)
        labels_array = np.asarray(labels, np.intp)
        save_cache(cached, images, labels_array)
        return images, labels_array

    def cache_key(self, files: list[Path]) -> str:
        listing = [(str(p.resolve()), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
        options = [self.color_mode, self.size]
        return hashlib.sha256(json.dumps([listing, options]).encode()).hexdigest()


def cache_path(key: str) -> Path:
    from trainkit.persist.cache import default_cache_dir

    return default_cache_dir() / "image-folders" / f"{key[:32]}.npz"


def save_cache(path: Path, images, labels) -> None:
    """Best effort: a cache that cannot be written costs the next run a decode, nothing else."""
    import io

    from trainkit.persist.atomic import atomic_write

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        np.savez(buffer, images=images, labels=labels)
        atomic_write(path, buffer.getvalue())
    except OSError:
        pass


@hookimpl
def register_datasets(register):
    register("folder", ImageFolder)
