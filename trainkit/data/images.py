"""Image files: decoded with Pillow (an optional extra), checked, resized, cached.

``read_image`` turns one PNG, JPEG, BMP or GIF into uint8 pixels, grayscale ``(H, W)`` or RGB
``(H, W, 3)``, resized when asked; a file that is not an image, is truncated, or is a
decompression bomb is a one-line ``DataError`` naming it. ``read_images`` does a list of files
and names the first whose size differs from the others when nothing resizes them.
"""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np

from trainkit.errors import DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
IMAGES_EXTRA = "pip install 'trainkit[images]'"


def pillow():
    try:
        from PIL import Image
    except ImportError:
        raise DataError(f"reading image files needs Pillow: {IMAGES_EXTRA}") from None
    return Image


def image_files(folder: Path) -> list[Path]:
    """The image files of ``folder``, sorted by name."""
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)


def parse_size(text: str, option: str = "image_size") -> tuple[int, int] | None:
    """``"28,28"`` (or ``"28"``, a square) as ``(height, width)``; empty: ``None``."""
    text = str(text or "").strip()
    if not text:
        return None
    try:
        parts = [int(p) for p in text.replace("x", ",").split(",")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts *= 2
    if len(parts) != 2 or min(parts) < 1:
        raise DataError(f"{option} must be HEIGHT,WIDTH (or one number for a square), got "
                        f"{text!r}")
    return parts[0], parts[1]


def read_image(path: Path, color_mode: str, size: tuple[int, int] | None) -> np.ndarray:
    """One image file as uint8 pixels (see the module's docstring)."""
    Image = pillow()
    mode = {"grayscale": "L", "rgb": "RGB"}.get(color_mode)
    if mode is None:
        raise DataError(f"color_mode must be grayscale or rgb, got {color_mode!r}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                image = image.convert(mode)
                if size is not None and image.size != (size[1], size[0]):
                    image = image.resize((size[1], size[0]), Image.Resampling.BILINEAR)
                return np.asarray(image, dtype=np.uint8)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise DataError(f"{path}: refused as a decompression bomb ({e})") from None
    except Image.UnidentifiedImageError:
        raise DataError(f"{path}: not an image Pillow can read") from None
    except (OSError, SyntaxError, ValueError) as e:  # truncated or broken data
        raise DataError(f"{path}: a broken or truncated image ({e})") from None


def read_images(files: list[Path], color_mode: str, size: tuple[int, int] | None,
                expected: tuple[int, ...] | None = None) -> np.ndarray:
    """Every file as uint8 pixels stacked ``(N, H, W[, 3])``; without ``size`` each must have
    the first one's (or ``expected``) shape."""
    images: list[np.ndarray] = []
    for path in files:
        pixels = read_image(path, color_mode, size)
        want = expected if expected is not None else (images[0].shape if images else None)
        if want is not None and pixels.shape != tuple(want):
            first = f"the model's {describe(tuple(want))}" if expected is not None else \
                f"the first image's ({files[0].name}) {describe(images[0].shape)}"
            raise DataError(f"{path}: an image of {describe(pixels.shape)}, {first}: pass "
                            f"--image-size HEIGHT,WIDTH to resize them all")
        images.append(pixels)
    return np.stack(images)


def describe(shape: tuple[int, ...]) -> str:
    return f"{shape[1]}x{shape[0]} pixels" + (f", {shape[2]} channels" if len(shape) > 2 else "")
