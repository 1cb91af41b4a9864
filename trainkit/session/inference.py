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

    @property
    def input_shape(self) -> tuple[int, ...]:
        """One input's shape as the dataset stored it (``(28, 28)`` for MNIST)."""
        return self.image_shape

    def predict(self, x: Any, batch_size: int = 256, assume_scaled: bool = False) -> np.ndarray:
        """The class index of every input in ``x`` (``class_names[i]`` names it): uint8 pixels,
        or floats in the range training saw (``assume_scaled`` takes them as they are)."""
        return self.logits(x, batch_size, assume_scaled).argmax(axis=1)

    def predict_proba(self, x: Any, batch_size: int = 256,
                      assume_scaled: bool = False) -> np.ndarray:
        """Every class's probability for every input in ``x``, ``(N, classes)`` float32."""
        return softmax(self.logits(x, batch_size, assume_scaled))

    def logits(self, x: Any, batch_size: int = 256, assume_scaled: bool = False) -> np.ndarray:
        """The model's outputs for the inputs in ``x``, checked and scaled as in training."""
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
    if not data.get("image_shape") or not data.get("class_names"):
        raise CheckpointError(f"{source}: written before checkpoints recorded the input shape "
                              f"and classes; score it with `trainkit evaluate` instead")
    image_shape = tuple(int(d) for d in data["image_shape"])
    class_names = [str(n) for n in data["class_names"]]
    empty = np.empty((0, *image_shape), np.uint8)
    shape_only = DatasetSplits(str(run.config.get("dataset")), empty, np.empty(0, np.intp), empty,
                               np.empty(0, np.intp), len(class_names), tuple(class_names))
    layer_types = {name: c.factory for name, c in registry.components["layer"].items()}
    model = assembly.build_model(run.model_factory, shape_only, np.random.default_rng(0),
                               layer_types)
    restore_model(model, manifest, arrays, source)
    if hasattr(model, "train"):
        model.train(False)
    low, high = data.get("input_range") or (0.0, 1.0)
    return TrainedModel(model, image_shape, class_names, source, manifest,
                        (float(low), float(high)))


def read_inputs(path: Path, image_shape: tuple[int, ...],
                input_range: tuple[float, float] | None = (0.0, 1.0)
                ) -> tuple[np.ndarray, list[str]]:
    """``(images as float32 scaled like training, one name per input)`` from an IDX file, a
    ``.npy`` array or a folder of PNGs; the inputs' shape, dtype and (for floats) range are
    checked (``input_range=None``: the range is not)."""
    path = Path(path)
    if path.is_dir():
        raw, names = read_png_folder(path, image_shape)
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


def read_png_folder(folder: Path, image_shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
    """Every ``*.png`` in ``folder`` (sorted by name) as uint8 pixels, grayscale unless the model
    was trained on 3 channels. Needs Pillow (it comes with ``trainkit[plot]``)."""
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"{folder}: reading PNG images needs Pillow: pip install "
                        f"'trainkit[plot]'") from None
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".png")
    if not files:
        raise DataError(f"{folder}: no .png file in this folder")
    mode = "RGB" if len(image_shape) == 3 and image_shape[-1] == 3 else "L"
    height, width = image_shape[0], image_shape[1] if len(image_shape) > 1 else 1
    images = []
    for file in files:
        try:
            with Image.open(file) as image:
                if image.size != (width, height):
                    raise DataError(f"{file}: an image of {image.size[0]}x{image.size[1]} "
                                    f"pixels; the model was trained on {width}x{height}")
                if image.mode not in ("L", "LA", "RGB", "RGBA", "P", "1"):
                    raise DataError(f"{file}: a {image.mode} image; the model takes 8-bit "
                                    f"grayscale or color PNGs")
                images.append(np.asarray(image.convert(mode), dtype=np.uint8))
        except OSError as e:
            raise DataError(f"{file}: not a readable PNG ({e})") from None
    return np.stack(images), [p.name for p in files]
