"""augment: random shifts, small rotations and scalings, and random erasing of training images,
on the batch, in numpy.

Each training batch (never validation or test) is changed in place before its forward pass:
every image is, with ``probability``, moved by an affine map (a rotation within ``rotate``
degrees, a scaling within ``1 +- scale``, a shift within ``shift`` of its size; bilinear or
nearest, zero outside, as Keras' ``RandomRotation``/``RandomZoom``/``RandomTranslation`` with
constant fill and their ``interpolation``; nearest with no rotation or scaling moves an image
by whole pixels and keeps it sharp, as torchvision's ``RandomCrop`` with padding), then with
``erase`` a rectangle of it is set to zero (timm's ``RandomErasing``, 2-20% of the image,
aspect ratio 0.3-3.3), and with ``flip`` it is mirrored left to right (off by default: a
mirrored digit is another glyph; clothes stay clothes). The draws come from a generator seeded
by the run's seed and the global step, so a resumed run draws what an uninterrupted one would.
Under ddp the draws are made for the global batch and each rank applies its own rows' draws,
so 2 ranks of 32 augment as 1 process of 64 does.
"""

from __future__ import annotations

import math
from typing import Literal

from trainkit import hookimpl
from trainkit.lazy import lazy_import

np = lazy_import("numpy")


class Augment:
    """Randomly shift, rotate, scale and erase the training images.

    Args:
        probability: the chance that an image is moved (shifted, rotated and scaled).
        shift: the largest shift, as a share of the image's side.
        rotate: the largest rotation, in degrees.
        scale: the largest change of size, as a share (0.1: 90% to 110%).
        erase: the chance that a rectangle of an image is set to zero.
        flip: the chance that an image is mirrored left to right (for clothes or photos, not
            for digits or letters).
        interpolation: how a moved image is resampled: bilinear (smooth) or nearest (whole
            pixels: with no rotation or scaling, a sharp shift).
    """

    def __init__(self, probability: float = 0.5, shift: float = 0.1, rotate: float = 10.0,
                 scale: float = 0.1, erase: float = 0.0, flip: float = 0.0,
                 interpolation: Literal["bilinear", "nearest"] = "bilinear") -> None:
        from trainkit.nn.optim import check_range

        check_range("probability", probability, 0.0, 1.0, high_open=False)
        check_range("shift", shift, 0.0, 0.5, high_open=False)
        check_range("rotate", rotate, 0.0, 180.0, high_open=False)
        check_range("scale", scale, 0.0, 1.0)
        check_range("erase", erase, 0.0, 1.0, high_open=False)
        check_range("flip", flip, 0.0, 1.0, high_open=False)
        self.name = "augment"
        self.probability, self.shift, self.rotate, self.scale = probability, shift, rotate, scale
        self.erase, self.flip, self.interpolation = erase, flip, interpolation
        self.seed = 0
        self.workspace = Workspace()

    @hookimpl
    def on_fit_start(self, trainer):
        self.seed = int(trainer.context.config.get("seed") or 0)

    @hookimpl
    def on_batch_start(self, trainer, batch):
        images = batch[0]
        shape = tuple(trainer.context.image_shape or ())
        if images.ndim == 2 and len(shape) in (2, 3):  # an MLP's rows of image pixels
            images = images.reshape(len(images), *shape)
        if images.ndim not in (3, 4):  # feature rows: nothing to move
            return
        rng = np.random.default_rng([self.seed, trainer.state.global_step, 0x5EED])
        loader = trainer.train_loader
        rows = loader.local_rows()  # this process's rows of the global batch
        part = (rows.start, loader.global_batch_size)
        if rows.stop - rows.start != len(images):  # a batch that is not the loader's
            part = None
        transform(images, rng, self.probability, self.shift, self.rotate, self.scale, part,
                  self.interpolation, self.workspace)
        if self.erase:
            erase(images, rng, self.erase, part)
        if self.flip:
            mirror(images, rng, self.flip, part)


def drawn_for(part: tuple[int, int] | None, images) -> tuple[int, int]:
    """(draws to make, the first of them that is ``images[0]``'s): ``part`` is ``(first row,
    rows in all)`` when ``images`` are rows of a larger batch, ``None`` when they are all."""
    return (len(images), 0) if part is None else (part[1], part[0])


def transform(images, rng, probability: float, shift: float, rotate: float,
              scale: float, part: tuple[int, int] | None = None,
              interpolation: str = "bilinear", workspace: Workspace | None = None) -> None:
    """Move the chosen images of ``(N, H, W[, C])`` (``part`` of a batch) in place by
    random affine maps about their centres (``bilinear`` or ``nearest``; zero outside). The
    warp is numpy on whole arrays, so the run's threads can share a batch large enough to gain
    from it (scipy's ``affine_transform`` holds the GIL: it cost a convnet epoch 13%);
    ``workspace`` keeps its scratch arrays."""
    (total, first), (n, h, w) = drawn_for(part, images), images.shape[:3]
    chosen = rng.random(total) < probability
    angle = np.radians(rng.uniform(-rotate, rotate, total))
    zoom = rng.uniform(1 - scale, 1 + scale, total)
    dy, dx = rng.uniform(-shift, shift, (2, total)) * np.array([[h], [w]])
    ours = slice(first, first + n)
    chosen, angle, zoom, dy, dx = chosen[ours], angle[ours], zoom[ours], dy[ours], dx[ours]
    picked = np.flatnonzero(chosen)
    if not len(picked):
        return
    # where each output pixel reads from: source = A (output - centre - shift) + centre
    cos, sin = np.cos(angle) / zoom, np.sin(angle) / zoom
    inverse = np.stack([np.stack([cos, -sin], 1), np.stack([sin, cos], 1)], 1)  # (n, 2, 2)
    centre = np.array([(h - 1) / 2, (w - 1) / 2])
    offsets = centre - np.einsum("nij,nj->ni", inverse, centre + np.stack([dy, dx], 1))
    planes = images.reshape(n, h, w, -1)
    from trainkit.nn.schedule import Plan, current_plan
    from trainkit.nn.workers import on_threads

    threads = current_plan().threads
    # cut over the run's threads only where there is enough of it (element-wise work's rule,
    # ``Plan.bounds``): 32 MNIST images warp in 0.37 ms on one thread and 0.72 on two, 32
    # images of 32 x 32 x 3 in 1.33 and 1.13, of 64 x 64 x 3 in 5.3 and 3.0
    bounds = Plan(threads, split_batch=True).bounds(len(picked),
                                                    values=len(picked) * planes[0].size)
    on_threads(bounds, lambda _, lo, hi: warp(planes, picked[lo:hi], inverse, offsets,
                                              interpolation, workspace))


class Workspace:
    """Owner of the warp's scratch arrays, which each thread reuses from batch to batch: fresh
    temporaries of a batch's size cost page faults on every call, twice the arithmetic. The
    plugin keeps one for its run."""


def warp(planes, rows, inverse, offsets, interpolation: str = "bilinear",
         workspace: Workspace | None = None) -> None:
    """Bilinear (or nearest) resampling of ``planes[rows]`` (``(N, H, W, C)``) at
    ``inverse @ (y, x) + offset``, zero outside, in place; the temporaries are
    ``workspace``'s (a new one's without it)."""
    if not len(rows):
        return
    from trainkit.nn.schedule import scratch

    n, h, w, c = len(rows), *planes.shape[1:]
    side = w + 4
    workspace = workspace or Workspace()

    def buffer(name, dtype=np.float32, shape=(n, h, w)):
        return scratch(workspace, name, shape, dtype)

    yy, xx = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32),
                         indexing="ij")
    a = inverse[rows].astype(np.float32)
    o = offsets[rows].astype(np.float32)
    # where each output pixel reads from: a[0, 0] y + a[0, 1] x + o[0] (and the same for x),
    # computed in place in the same order as the expression would be
    term = buffer("term")
    sy, sx = buffer("sy"), buffer("sx")
    for source, row in ((sy, 0), (sx, 1)):
        np.multiply(a[:, row, 0, None, None], yy, out=source)
        np.multiply(a[:, row, 1, None, None], xx, out=term)
        source += term
        source += o[:, row, None, None]
        if interpolation == "nearest":  # the source point rounded
            source += np.float32(0.5)
    y0, x0 = np.floor(sy, out=buffer("y0")), np.floor(sx, out=buffer("x0"))
    # two zero pixels around every image: a point outside reads zeros
    padded = buffer("padded", planes.dtype, (n, h + 4, side, c))
    padded.fill(0)
    padded[:, 2:h + 2, 2:w + 2] = planes[rows]
    # each source pixel's row in the padded images' (pixels, channels) table (int32 where the
    # table has under 2**31 rows), and one index array: its neighbours are the same index
    # into the table shifted by 1, ``side`` and ``side + 1`` rows (views, not index arrays)
    rows_dtype = np.int32 if n * (h + 4) * side < 2**31 else np.intp
    at, index = buffer("at", rows_dtype), buffer("index", rows_dtype)
    for source, scale, limit in ((y0, side, h), (x0, 1, w)):
        np.copyto(index, np.clip(source, -2, limit, out=term), casting="unsafe")
        index += 2
        if scale == 1:
            at += index
        else:
            np.multiply(index, scale, out=at)
    at += (np.arange(n, dtype=rows_dtype) * ((h + 4) * side))[:, None, None]
    pixels = padded.reshape(-1, c)
    if c == 1:  # one channel: the flat table, and weights without a channel axis
        pixels = pixels[:, 0]
    shape = (n, h, w, c)
    if interpolation == "nearest":
        planes[rows] = pixels.take(at, axis=0).reshape(shape)
        return
    # the same products and sums as top * (1 - fy) + bottom * fy with top = p00 (1 - fx)
    # + p01 fx: in place, bit for bit
    fy, fx = np.subtract(sy, y0, out=sy), np.subtract(sx, x0, out=sx)
    gx = np.subtract(1, fx, out=y0)
    if c > 1:
        fy, fx, gx = fy[..., None], fx[..., None], gx[..., None]
    values = at.shape if c == 1 else shape

    def blend(first, name):  # pixels(first) (1 - fx) + pixels(first + 1) fx
        value = pixels[first:].take(at, axis=0, out=buffer(name, planes.dtype, values))
        value *= gx
        right = pixels[first + 1:].take(at, axis=0, out=buffer("right", planes.dtype, values))
        right *= fx
        value += right
        return value

    top, bottom = blend(0, "top"), blend(side, "bottom")
    top *= np.subtract(1, fy, out=x0 if c == 1 else x0[..., None])
    bottom *= fy
    top += bottom
    planes[rows] = top.reshape(shape)


def erase(images, rng, probability: float, part: tuple[int, int] | None = None) -> None:
    """timm's RandomErasing on ``(N, H, W[, C])`` (``part`` of a batch), in place: with
    ``probability`` a rectangle of 2-20% of the image, aspect ratio 0.3-3.3 (log-uniform),
    set to zero."""
    (total, first), (n, h, w) = drawn_for(part, images), images.shape[:3]
    chosen = rng.random(total) < probability
    areas = rng.uniform(0.02, 0.2, total) * h * w
    ratios = np.exp(rng.uniform(math.log(0.3), math.log(1 / 0.3), total))
    corners = rng.random((total, 2))
    for i in np.flatnonzero(chosen[first:first + n]) + first:
        eh = min(h, max(1, int(round(math.sqrt(areas[i] * ratios[i])))))
        ew = min(w, max(1, int(round(math.sqrt(areas[i] / ratios[i])))))
        top, left = int(corners[i, 0] * (h - eh + 1)), int(corners[i, 1] * (w - ew + 1))
        images[i - first, top:top + eh, left:left + ew] = 0


def mirror(images, rng, probability: float, part: tuple[int, int] | None = None) -> None:
    """Mirror each image of ``(N, H, W[, C])`` (``part`` of a batch) left to right with
    ``probability``, in place (torchvision's ``RandomHorizontalFlip``)."""
    total, first = drawn_for(part, images)
    chosen = np.flatnonzero(rng.random(total)[first:first + len(images)] < probability)
    images[chosen] = images[chosen, :, ::-1]


@hookimpl
def register_run_plugins(register):
    register("augment", Augment)
