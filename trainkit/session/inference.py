"""A trained model on new inputs: what ``trainkit predict`` does.

The model is rebuilt from the checkpoint's manifest alone: its config names the model and its
options, and ``data`` records the shape of one input and the class names, so predicting needs no
dataset file. Inputs are an IDX file, a ``.npy`` array (never unpickled) or a folder of PNG
images; each input must have the shape the model was trained on, and is scaled as training scaled
it (uint8 pixels to [0, 1] in float32; floats are taken as they are). Float inputs must lie in the
range the training inputs had (recorded in the checkpoint; [0, 1] for every image dataset), give
or take 5% of it: float32 pixels in 0-255 are refused, not silently mistaken for scaled ones,
unless ``assume_scaled`` says the user knows better. NaN and inf are refused always.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trainkit.errors import CheckpointError, DataError

__all__ = ["TrainedModel", "load", "load_trained_model", "read_inputs", "softmax"]


@dataclass
class TrainedModel:
    """A model with its weights, in evaluation mode, and what it was trained on
    (``trainkit.load``): ``predict(x)`` gives classes, ``predict_proba(x)`` probabilities, for
    inputs checked and scaled as ``trainkit predict`` does; ``class_names``, ``input_shape``,
    ``summary()`` and ``export(path, format)`` say what it is and take it elsewhere."""

    model: Any
    image_shape: tuple[int, ...]
    class_names: list[str]
    source: str
    manifest: dict[str, Any] = field(default_factory=dict)
    #: the range of the training inputs as the model saw them (checkpoints before it: [0, 1])
    input_range: tuple[float, float] = (0.0, 1.0)
    #: classification, binary or regression
    task: str = "classification"
    #: a table's schema (``trainkit.data.tables``), to read raw rows as training did
    preprocessing: dict[str, Any] | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input's shape as the dataset stored it (``(28, 28)`` for MNIST)."""
        return self.image_shape

    def predict(self, x: Any, batch_size: int = 256, assume_scaled: bool = False) -> np.ndarray:
        """For every input in ``x``: its class index (``class_names[i]`` names it), or for a
        regression its values. ``x`` is uint8 pixels or floats in the range training saw
        (``assume_scaled`` takes them as they are), a file ``trainkit predict`` reads, or for a
        table a CSV file."""
        return predictions(self.logits(x, batch_size, assume_scaled), self.task)

    def predict_proba(self, x: Any, batch_size: int = 256,
                      assume_scaled: bool = False) -> np.ndarray:
        """Every class's probability for every input in ``x``, ``(N, classes)`` float32 (a
        binary task: ``(N, 2)``)."""
        return probabilities(self.logits(x, batch_size, assume_scaled), self.task)

    def logits(self, x: Any, batch_size: int = 256, assume_scaled: bool = False) -> np.ndarray:
        """The model's outputs for the inputs in ``x``, checked and scaled as in training."""
        if isinstance(x, (str, Path)):
            images, _ = read_inputs(Path(x), self.image_shape,
                                    None if assume_scaled else self.input_range,
                                    self.preprocessing)
            return self.scores(images, batch_size)
        if self.preprocessing is not None:
            raise DataError("a model trained on a table takes a CSV file of its feature "
                            "columns: model.predict('rows.csv')")
        raw = np.asarray(x)
        images = check_inputs(raw, self.image_shape, "the inputs")
        if raw.dtype != np.uint8:
            check_range(images, None if assume_scaled else self.input_range, "the inputs")
        return self.scores(images, batch_size)

    def export(self, path: str | Path, format: str = "onnx", *, probabilities: bool = False,
               float_input: bool = False) -> Path:
        """Write the model for use elsewhere (``trainkit.export``): ``"onnx"`` (checked with
        ``onnx.checker``) or ``"safetensors"``."""
        from trainkit.export import export

        return export(self, Path(path), format, probabilities=probabilities,
                      float_input=float_input)

    def scores(self, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """The model's outputs (logits) for ``images`` (already checked and scaled), float32."""
        shape = getattr(self.model, "input_shape", None)  # a convnet takes images, an MLP rows
        outputs = []
        for start in range(0, len(images), batch_size):
            batch = images[start:start + batch_size]
            x = batch.reshape(len(batch), *shape) if shape else batch.reshape(len(batch), -1)
            outputs.append(self.model.forward(np.ascontiguousarray(x)).copy())
        if not outputs:
            return np.empty((0, len(self.class_names)), np.float32)
        return np.concatenate(outputs)


    def summary(self, batch_size: int = 64) -> Any:
        """The model's layers (``trainkit.nn.summary``)."""
        from trainkit.nn.summary import summarize

        shape = getattr(self.model, "input_shape", None) or (int(np.prod(self.image_shape)),)
        return summarize(self.model, shape, batch_size)


def softmax(scores: np.ndarray) -> np.ndarray:
    """Class probabilities from logits, row by row (float32, stable)."""
    shifted = scores - scores.max(axis=1, keepdims=True)
    e = np.exp(shifted)
    return e / e.sum(axis=1, keepdims=True)


def predictions(scores: np.ndarray, task: str) -> np.ndarray:
    """Classes from the model's outputs (a binary logit: 1 above 0), or a regression's values
    (``(N,)`` for one output)."""
    if task == "regression":
        return scores[:, 0] if scores.shape[1] == 1 else scores
    if task == "binary":
        return (scores[:, 0] > 0).astype(np.intp)
    return scores.argmax(axis=1)


def probabilities(scores: np.ndarray, task: str) -> np.ndarray:
    """Every class's probability: a softmax, or for a binary logit ``[1 - p, p]``."""
    if task == "regression":
        raise DataError("a regression gives values, not class probabilities")
    if task == "binary":
        from scipy.special import expit

        p = expit(scores[:, 0]).astype(np.float32)
        return np.column_stack([1 - p, p])
    return softmax(scores)


def load(path: str | Path, plugins: Sequence[object] = ()) -> TrainedModel:
    """The trained model of ``path`` (a checkpoint file, a run folder, or ``"last"``: the newest
    run under ``runs/``), in evaluation mode, with the installed plugins (and ``plugins``) for
    its components."""
    from trainkit.plugin.manager import get_plugin_manager
    from trainkit.plugin.registry import Registry
    from trainkit.session.run_folder import resolve_resume_path

    pm = get_plugin_manager()
    for plugin in plugins:
        pm.register_given(plugin)
    if str(path) == "last":
        path = resolve_resume_path("last", None)
    return load_trained_model(Path(path), Registry.collect(pm), pm)


def load_trained_model(checkpoint: Path, registry, pm) -> TrainedModel:
    """The model of ``checkpoint`` (a file or a run folder), rebuilt and loaded, in eval mode."""
    from trainkit.data import DatasetSplits
    from trainkit.session import assembly, resume
    from trainkit.session.snapshot import restore_model

    checkpoint, manifest, arrays, run = resume.open_checkpoint(checkpoint, registry, pm,
                                                               ("model",))
    source = str(checkpoint)
    data = manifest.get("data") or {}
    task = data.get("task") or "classification"
    if not data.get("image_shape") or (task != "regression" and not data.get("class_names")):
        raise CheckpointError(f"{source}: written before checkpoints recorded the input shape "
                              f"and classes; score it with `trainkit evaluate` instead")
    image_shape = tuple(int(d) for d in data["image_shape"])
    class_names = [str(n) for n in data.get("class_names") or ()]
    empty = np.empty((0, *image_shape), np.uint8)
    targets = np.empty(0, np.intp)
    if task == "regression":  # as many outputs as the model's last layer gives
        outputs = int(data.get("outputs") or 1)
        targets = np.empty((0, outputs) if outputs > 1 else 0, np.float32)
    shape_only = DatasetSplits(str(run.config.get("dataset")), empty, targets, empty, targets,
                               len(class_names), tuple(class_names) or None, task=task)
    layer_types = {name: c.factory for name, c in registry.components["layer"].items()}
    model = assembly.build_model(run.model_factory, shape_only, np.random.default_rng(0),
                               layer_types)
    restore_model(model, manifest, arrays, source)
    if hasattr(model, "train"):
        model.train(False)
    low, high = data.get("input_range") or (0.0, 1.0)
    return TrainedModel(model, image_shape, class_names, source, manifest,
                        (float(low), float(high)), task, data.get("preprocessing"))


def read_inputs(path: Path, image_shape: tuple[int, ...],
                input_range: tuple[float, float] | None = (0.0, 1.0),
                preprocessing: dict[str, Any] | None = None) -> tuple[np.ndarray, list[str]]:
    """``(images as float32 scaled like training, one name per input)`` from an IDX file, a
    ``.npy`` array or a folder of PNGs; the inputs' shape, dtype and (for floats) range are
    checked (``input_range=None``: the range is not). A model trained on a table reads a CSV
    file of its feature columns, transformed as in training."""
    path = Path(path)
    if preprocessing is not None and preprocessing.get("kind") == "table":
        return read_table_rows(path, preprocessing)
    if path.is_dir():
        raw, names = read_image_folder(path, image_shape, preprocessing)
    elif path.suffix == ".npy":
        try:
            raw = np.load(path, allow_pickle=False)
        except FileNotFoundError:
            raise DataError(f"{path}: file not found") from None
        except (ValueError, OSError) as e:
            raise DataError(f"{path}: not a .npy array of images ({e})") from None
        names = [str(i) for i in range(len(raw))] if raw.ndim else []
    else:
        from trainkit.data import read_idx

        raw = read_idx(path)
        names = [str(i) for i in range(len(raw))] if raw.ndim else []
    images = check_inputs(raw, image_shape, str(path))
    if raw.dtype != np.uint8:
        check_range(images, input_range, str(path))
    if len(names) != len(images):  # a single image given without its batch axis
        names = [str(i) for i in range(len(images))]
    return images, names


def read_table_rows(path: Path, preprocessing: dict[str, Any]) -> tuple[np.ndarray, list[str]]:
    """The feature rows of a CSV file, as the table's schema made them in training (a target
    column, if there, is left out)."""
    from trainkit.data.tables import TableSchema, read_csv

    if path.suffix.lower() != ".csv":
        raise DataError(f"{path}: the model was trained on a table: give a .csv file with its "
                        f"feature columns")
    header, rows = read_csv(path)
    numbers = list(range(2, len(rows) + 2))
    features = TableSchema.from_json(preprocessing).transform(header, rows, str(path), numbers)
    return features, [str(n) for n in numbers]


def expected(image_shape: tuple[int, ...]) -> str:
    return "(N, " + ", ".join(map(str, image_shape)) + ")"


def check_inputs(raw: np.ndarray, image_shape: tuple[int, ...], source: str) -> np.ndarray:
    """``raw`` as a float32 batch of ``image_shape`` inputs, or a one-line ``DataError``."""
    want = f"uint8 pixels (0-255) or floats in [0, 1], of shape {expected(image_shape)}"
    if raw.dtype != np.uint8 and not np.issubdtype(raw.dtype, np.floating):
        raise DataError(f"{source}: inputs of dtype {raw.dtype}; the model takes {want}")
    shape = tuple(raw.shape)
    accepted = {image_shape}
    if len(image_shape) == 2:  # grayscale images, with or without their channel axis
        accepted.add((*image_shape, 1))
    if shape in accepted:  # one input, without the batch axis
        raw, shape = raw[None], (1, *shape)
    if len(shape) < 1 or shape[1:] not in accepted:
        raise DataError(f"{source}: inputs of shape {shape}; the model was trained on inputs of "
                        f"shape {image_shape}: give {want}")
    images = raw.reshape(len(raw), *image_shape)
    if images.dtype == np.uint8:
        return np.multiply(images, np.float32(1 / 255), dtype=np.float32)
    return images.astype(np.float32)


#: How far outside the training range float inputs may go, as a share of the range's width.
RANGE_SLACK = 0.05


def check_range(images: np.ndarray, trained: tuple[float, float] | None, source: str) -> None:
    """A one-line ``DataError`` when float ``images`` hold NaN or inf, or go further outside the
    ``trained`` range than float rounding or mild noise would (``None``: no range check)."""
    if not images.size:
        return
    if not np.isfinite(images).all():
        bad = int(np.count_nonzero(~np.isfinite(images).reshape(len(images), -1).all(axis=1)))
        raise DataError(f"{source}: {bad} input(s) hold NaN or inf values")
    if trained is None:
        return
    low, high = trained
    found_low, found_high = float(images.min()), float(images.max())
    slack = RANGE_SLACK * max(high - low, 1e-12)
    if found_low >= low - slack and found_high <= high + slack:
        return
    hint = (" (pixels in 0-255? divide them by 255, or give them as uint8)"
            if (low, high) == (0.0, 1.0) and found_high > 1 + slack and found_low >= -slack
            else "")
    raise DataError(f"{source}: float inputs range over [{found_low:.4g}, {found_high:.4g}]; the "
                    f"model was trained on inputs in [{low:.4g}, {high:.4g}]{hint}; scale them as "
                    f"in training, or pass --assume-scaled to predict on them as they are")


def read_image_folder(folder: Path, image_shape: tuple[int, ...],
                      preprocessing: dict[str, Any] | None = None
                      ) -> tuple[np.ndarray, list[str]]:
    """Every image file in ``folder`` (PNG, JPEG, BMP, GIF; sorted by name) as uint8 pixels,
    grayscale unless the model was trained on 3 channels, resized as training resized its
    image folder (else each must have the training images' size). Needs Pillow."""
    from trainkit.data.images import image_files, read_images

    files = image_files(folder)
    if not files:
        raise DataError(f"{folder}: no image file in this folder (PNG, JPEG, BMP or GIF)")
    color = "rgb" if len(image_shape) == 3 and image_shape[-1] == 3 else "grayscale"
    size = (preprocessing or {}).get("image_size")
    expected = None if size else (image_shape[:2] if color == "grayscale" else image_shape)
    images = read_images(files, color, tuple(size) if size else None, expected)
    return images, [p.name for p in files]
