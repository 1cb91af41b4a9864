"""The DataLoader: seeded reshuffling every epoch, float32 batches made one at a time.

Images stay in memory as they were read (uint8 for MNIST) and each batch is gathered and converted
to float32 in [0, 1] on its own, so the full float32 dataset never exists.

For exact resume the loader remembers the state of its random generator at the start of the
current epoch: restoring that state and redrawing gives the same permutation.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

Batch = tuple[np.ndarray, np.ndarray]


#: What a model learns from a dataset: one of ``num_classes`` integer classes (its outputs are
#: the classes' logits), a yes or no (``binary``: classes 0 and 1, one output, a logit), or real
#: values (``regression``: the targets' width of outputs).
TASKS = ("classification", "binary", "regression")


@dataclass
class DatasetSplits:
    """A dataset's train and test arrays. Inputs are ``(N, ...)``; targets (``*_labels``) are
    integer classes, or for ``task="regression"`` real values ``(N,)`` or ``(N, outputs)``."""

    name: str
    train_images: np.ndarray
    train_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    num_classes: int
    #: what each class is, in label order (MNIST: "0".."9"; Fashion-MNIST: "T-shirt/top", ...)
    class_names: tuple[str, ...] | None = None
    task: str = "classification"
    #: how raw inputs become the model's (a table's schema, ``trainkit.data.tables``): JSON,
    #: kept in checkpoints so that ``predict`` transforms new inputs the same way
    preprocessing: dict | None = None

    def __post_init__(self) -> None:
        from trainkit.errors import DataError

        if self.task not in TASKS:
            raise DataError(f"dataset {self.name}: task {self.task!r} is none of "
                            f"{', '.join(TASKS)}")
        if self.task == "binary":
            self.num_classes = 2
        if self.task == "regression":
            self.num_classes, self.class_names = 0, ()
        if self.class_names is None:
            self.class_names = tuple(str(i) for i in range(self.num_classes))
        self.check_labels()

    @property
    def outputs(self) -> int:
        """How many numbers the model gives per sample for this task."""
        if self.task == "binary":
            return 1
        if self.task == "regression":
            return 1 if np.ndim(self.train_labels) == 1 else int(np.shape(self.train_labels)[1])
        return self.num_classes

    def check_labels(self) -> None:
        """Every label must be an integer class from 0 to ``num_classes - 1`` (a regression's
        targets: finite numbers): checked once, here, so that a label outside them is a
        one-line error naming the dataset and the value, never an IndexError from the loss in
        the middle of the first epoch."""
        from trainkit.errors import DataError

        for split, labels in (("training", self.train_labels), ("test", self.test_labels)):
            labels = np.asarray(labels)
            if not labels.size:
                continue
            if self.task == "regression":
                if not np.issubdtype(labels.dtype, np.number) or labels.ndim > 2:
                    raise DataError(f"dataset {self.name}: its {split} targets are "
                                    f"{labels.dtype} of shape {labels.shape}, not numbers "
                                    f"(N,) or (N, outputs)")
                if not np.isfinite(labels).all():
                    row = int(np.flatnonzero(~np.isfinite(labels).reshape(len(labels), -1)
                                             .all(axis=1))[0])
                    raise DataError(f"dataset {self.name}: {split} target of sample {row} is "
                                    f"not a finite number")
                continue
            if not np.issubdtype(labels.dtype, np.integer):
                raise DataError(f"dataset {self.name}: its {split} labels are {labels.dtype}, "
                                f"not integer classes")
            low, high = int(labels.min()), int(labels.max())
            if low < 0 or high >= self.num_classes:
                bad = low if low < 0 else high
                raise DataError(
                    f"dataset {self.name}: {split} label {bad} is outside its "
                    f"{self.num_classes} classes (labels must be 0 to {self.num_classes - 1}; "
                    f"labels found: {low} to {high})")

    @property
    def input_size(self) -> int:
        return int(np.prod(self.train_images.shape[1:]))

    @property
    def input_range(self) -> tuple[float, float]:
        """The range of the training inputs as the model sees them: uint8 pixels are scaled to
        [0, 1]; float inputs are taken as they are. ``predict`` checks new inputs against it."""
        images = self.train_images
        if images.dtype == np.uint8 or not images.size:
            return (0.0, 1.0)
        if isinstance(images, np.memmap) and is_whole_file(images):
            return file_range(images)
        return (float(np.min(images)), float(np.max(images)))

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """One sample's shape as a model sees it: images ``(H, W)`` become channels-last
        ``(H, W, 1)``; ``(H, W, C)`` and flat ``(F,)`` samples stay as they are."""
        shape = tuple(int(d) for d in self.train_images.shape[1:])
        return (*shape, 1) if len(shape) == 2 else shape


def is_whole_file(images: np.memmap) -> bool:
    """Whether ``images`` maps the whole of its .npy file's data (not a slice of it)."""
    import os

    return images.filename is not None and images.flags.c_contiguous and \
        images.offset + images.nbytes == os.path.getsize(images.filename)


def file_range(images: np.memmap, chunk: int = 1 << 24) -> tuple[float, float]:
    """The min and max of a memory-mapped array, read from its file a chunk at a time: reading
    it through the map would keep every page of a file larger than memory in the process."""
    low, high = np.inf, -np.inf
    count = images.size
    with open(str(images.filename), "rb") as f:
        f.seek(images.offset)
        for start in range(0, count, chunk):
            part = np.fromfile(f, dtype=images.dtype, count=min(chunk, count - start))
            low, high = min(low, float(part.min())), max(high, float(part.max()))
    return (low, high)


class FileRows:
    """Rows of a memory-mapped ``.npy`` file read with ``pread``, into the batch's buffer.

    Reading them through the map keeps what it touches in the process: the kernel maps whole
    page-cache folios around each row (``MADV_RANDOM`` does not stop it), and 200 batches of
    64 random rows of a 2 GB file held 1.3 GB resident. ``pread`` copies the row and maps
    nothing: the memory is the batch."""

    def __init__(self, images: np.memmap) -> None:
        import os

        self.path, self.offset = str(images.filename), int(images.offset)
        self.row_bytes = int(images.dtype.itemsize * np.prod(images.shape[1:], dtype=np.int64))
        self._fd: int | None = None
        self._pid = os.getpid()

    def take(self, rows: np.ndarray, out: np.ndarray) -> None:
        import os

        if self._fd is None or self._pid != os.getpid():  # reopened in a forked child
            self._fd, self._pid = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0)), \
                os.getpid()
        view = memoryview(out.reshape(len(out), -1)).cast("B")  # type: ignore[arg-type]
        size = self.row_bytes
        for i, row in enumerate(rows.tolist()):
            read = os.preadv(self._fd, [view[i * size:(i + 1) * size]],
                             self.offset + row * size) if hasattr(os, "preadv") else \
                self._seek_read(row, view[i * size:(i + 1) * size])
            if read != size:
                raise OSError(f"{self.path}: row {row} is cut short (the file changed?)")

    def _seek_read(self, row: int, target: memoryview) -> int:  # Windows: no preadv
        import os

        assert self._fd is not None
        os.lseek(self._fd, self.offset + row * self.row_bytes, os.SEEK_SET)
        data = os.read(self._fd, self.row_bytes)
        target[:len(data)] = data
        return len(data)

    def __del__(self) -> None:
        import os

        if self._fd is not None and self._pid == os.getpid():
            os.close(self._fd)

    def __deepcopy__(self, memo: dict) -> FileRows:  # a copy opens its own descriptor
        other = FileRows.__new__(FileRows)
        other.path, other.offset, other.row_bytes = self.path, self.offset, self.row_bytes
        other._fd, other._pid = None, self._pid
        return other


class DataLoader:
    """Batches of ``(float32 inputs (B, features), integer labels (B,))``.

    ``shuffle=True`` draws a new permutation every epoch from ``rng`` (a seeded
    ``np.random.Generator``). The last batch may be smaller unless ``drop_last=True``.
    With ``sample_shape`` (``(28, 28, 1)`` for a convnet) the inputs come as ``(B, *sample_shape)``:
    a view of the same buffer, so shaping costs no copy. With ``subset`` (indices into ``images``)
    the loader serves only those samples, without copying them: a validation split and the
    training part of the same file share one array.
    """

    def __init__(
        self,
        images: np.ndarray,
        labels: np.ndarray,
        batch_size: int,
        *,
        shuffle: bool = False,
        rng: np.random.Generator | None = None,
        drop_last: bool = False,
        sample_shape: tuple[int, ...] | None = None,
        subset: np.ndarray | None = None,
    ) -> None:
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.subset = None if subset is None else np.asarray(subset, dtype=np.intp)
        self._file_labels = labels  # indexed like images, for part()
        if self.subset is not None:
            labels = labels[self.subset]
        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self.images = images.reshape(len(images), -1)
        #: a memory-mapped .npy file is read row by row with pread (``FileRows``)
        self._rows = FileRows(images) if isinstance(images, np.memmap) and \
            is_whole_file(images) else None
        if sample_shape is not None and int(np.prod(sample_shape)) != self.images.shape[1]:
            raise ValueError(f"samples of {self.images.shape[1]} values cannot take the shape "
                             f"{sample_shape}")
        self.sample_shape = tuple(sample_shape) if sample_shape is not None else None
        # classes as indices; a regression's targets as float32, as the outputs they meet
        kind = np.float32 if np.issubdtype(labels.dtype, np.floating) else np.intp
        self.labels = labels.astype(kind, copy=False)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.rng = rng if rng is not None else np.random.default_rng(0)
        self.drop_last = drop_last
        self.scale = np.float32(1 / 255) if images.dtype == np.uint8 else None
        self._buffers: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self.rank, self.world = 0, 1
        #: at most this many batches (global ones, when sharded) an epoch, for smoke runs
        self.limit_batches: int | None = None
        self.global_batch_size = 0
        self.epoch_rng_state: dict[str, Any] = copy.deepcopy(dict(self.rng.bit_generator.state))

    def shard(self, rank: int, world: int) -> None:
        """Data parallelism: every epoch's order is cut into global batches of
        ``batch_size * world`` samples, the same on every process, and this process (``rank``)
        takes its own slice of each. A last global batch with fewer samples than processes is
        dropped; a short last batch is split as evenly as possible."""
        if not 0 <= rank < world:
            raise ValueError(f"rank {rank} is not in 0..{world - 1}")
        self.rank, self.world = rank, world

    def local_rows(self) -> slice:
        """Where this process's part of the current global batch lies in it (all of it without
        sharding): the rows ``batches`` takes, and where per-sample random draws made for the
        global batch are cut, so that they are the same whatever the number of processes. A
        short last batch is split as evenly as possible (``np.array_split``)."""
        total = self.global_batch_size
        if self.world == 1:
            return slice(0, total)
        if total == self.batch_size * self.world:
            return slice(self.rank * self.batch_size, (self.rank + 1) * self.batch_size)
        sizes = [len(part) for part in np.array_split(np.arange(total), self.world)]
        start = sum(sizes[:self.rank])
        return slice(start, start + sizes[self.rank])

    def __len__(self) -> int:
        """Batches per epoch (global batches, when sharded)."""
        return self.batches_left(0)

    def batches_left(self, first_sample: int) -> int:
        """Batches (global, when sharded) an epoch still has from sample ``first_sample`` on."""
        size = self.batch_size * self.world
        full, rest = divmod(max(len(self.labels) - first_sample, 0), size)
        left = full + (1 if rest >= self.world and not self.drop_last else 0)
        if self.limit_batches is not None:
            done = -(-first_sample // size)
            left = min(left, max(self.limit_batches - done, 0))
        return left

    def new_epoch(self) -> np.ndarray:
        """Remember the generator's state, then draw this epoch's sample order."""
        self.epoch_rng_state = copy.deepcopy(dict(self.rng.bit_generator.state))
        if self.shuffle:
            return self.rng.permutation(len(self.labels))
        return np.arange(len(self.labels))

    def resume_epoch(self, epoch_rng_state: dict[str, Any]) -> np.ndarray:
        """Redraw the order of an epoch that started with the generator in ``epoch_rng_state``."""
        self.rng.bit_generator.state = copy.deepcopy(epoch_rng_state)
        return self.new_epoch()

    def batches(self, order: np.ndarray, first_sample: int = 0) -> Iterator[Batch]:
        """Yield the batches of ``order`` from sample ``first_sample`` on. A resumed epoch starts
        at a sample, not a batch index: after the number of processes changed mid-epoch, the old
        global batches no longer line up with the new ones."""
        size = self.batch_size * self.world
        offset = first_sample
        for _ in range(self.batches_left(offset)):
            index = order[offset : offset + size]
            offset += size
            self.global_batch_size = len(index)
            if self.world > 1:
                index = index[self.local_rows()]
            yield self.make_batch(index)

    def make_batch(self, index: np.ndarray) -> Batch:
        """Gather and convert one batch into buffers reused by the next batch of the same size."""
        size = len(index)
        buffers = self._buffers.get(size)
        if buffers is None:
            features = self.images.shape[1]
            buffers = self._buffers[size] = (np.empty((size, features), self.images.dtype),
                                             np.empty((size, features), np.float32))
        raw, x = buffers
        rows = index if self.subset is None else self.subset[index]
        if self._rows is not None:
            self._rows.take(rows, raw)
        else:
            np.take(self.images, rows, axis=0, out=raw)
        if self.scale is not None:
            np.multiply(raw, self.scale, out=x)
        else:
            x[...] = raw
        if self.sample_shape is not None:
            return x.reshape(size, *self.sample_shape), self.labels[index]
        return x, self.labels[index]

    def part(self, start: int, stop: int) -> DataLoader:
        """A loader over samples ``start:stop`` of this one (in its order), unshuffled."""
        rows = np.arange(start, stop) if self.subset is None else self.subset[start:stop]
        return DataLoader(self.images, self._file_labels, self.batch_size,
                          sample_shape=self.sample_shape, subset=rows)

    def __iter__(self) -> Iterator[Batch]:
        return self.batches(self.new_epoch())
