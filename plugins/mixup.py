"""mixup: train on mixed pairs of images, mixup or cutmix, with the loss on the mixed targets
(timm's ``Mixup``, fastai's ``MixUp``/``CutMix``).

For each training batch a partner is drawn for every image (a permutation of the batch) and a
share ``lam ~ Beta(alpha, alpha)``: mixup blends the images, ``lam x + (1 - lam) x'``; cutmix
pastes a box of the partner, ``1 - lam`` of the image's area, and ``lam`` becomes the share left
(Yun et al., 2019). The loss is the cross-entropy against the mixed targets, ``lam`` of the
image's class and ``1 - lam`` of its partner's (written as soft targets, which is the same
value and gradient as ``lam CE(y) + (1 - lam) CE(y')``). The training metrics count the
class with the larger share (Keras' accuracy on mixed labels), so a training accuracy reads as
it does without mixing. Validation and test are never mixed. The draws come from the run's
seed and the global step, so a resume is exact. Under ddp each rank pairs the images of its
own part of the global batch (a partner on another rank would cost an exchange of images every
step), so 2 ranks of 32 mix differently from 1 process of 64: the same technique, other draws.
"""

from __future__ import annotations

import math
from typing import Literal

from trainkit import hookimpl
from trainkit.lazy import lazy_import

np = lazy_import("numpy")


class MixedTargets:
    """The run's cross-entropy, against the mixed targets of the batch being trained (a plain
    cross-entropy in every other pass)."""

    def __init__(self, loss) -> None:
        self.loss, self.mixing = loss, None

    def __getattr__(self, name):  # tasks, and anything else plugins read from the loss
        return getattr(self.loss, name)

    def forward(self, logits, targets) -> float:
        if self.mixing is None:
            self._soft = None
            return self.loss.forward(logits, targets)
        partner, lam = self.mixing
        soft = np.zeros(logits.shape, logits.dtype)
        rows = np.arange(len(targets))
        soft[rows, targets] += lam
        soft[rows, targets[partner]] += 1 - lam
        smoothing = np.float32(getattr(self.loss, "label_smoothing", 0.0))
        if smoothing:  # PyTorch's label smoothing of soft targets
            soft = (1 - smoothing) * soft + smoothing / logits.shape[1]
        shifted = logits - logits.max(axis=1, keepdims=True)
        log_p = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
        self._soft, self._p = soft, np.exp(log_p)
        return float(-(soft * log_p).sum()) / len(targets)

    def backward(self):
        if self._soft is None:
            return self.loss.backward()
        grad = self._p - self._soft
        grad *= grad.dtype.type(1.0 / len(grad))
        return grad


class Mixup:
    """Mix pairs of training images (mixup or cutmix); the loss follows the mixed targets.

    Args:
        mode: mixup (blend the images), cutmix (paste a box of the partner) or both (one of
            the two per batch, at random).
        alpha: the Beta(alpha, alpha) the share is drawn from.
        probability: the chance that a batch is mixed at all.
    """

    def __init__(self, mode: Literal["mixup", "cutmix", "both"] = "mixup", alpha: float = 0.2,
                 probability: float = 1.0) -> None:
        from trainkit.errors import ConfigError

        if mode not in ("mixup", "cutmix", "both"):
            raise ConfigError(f"mode must be mixup, cutmix or both, got {mode!r}", "mode")
        if not alpha > 0:
            raise ConfigError(f"alpha must be above 0, got {alpha}", "alpha")
        if not 0 <= probability <= 1:
            raise ConfigError(f"probability must be in [0, 1], got {probability}",
                              "probability")
        self.name, self.mode, self.alpha, self.probability = "mixup", mode, alpha, probability
        self.seed, self.targets = 0, None

    @hookimpl
    def on_fit_start(self, trainer):
        from trainkit.errors import ConfigError

        self.seed = int(trainer.context.config.get("seed") or 0)
        if isinstance(trainer.loss, MixedTargets):
            self.targets = trainer.loss
            return
        if type(trainer.loss).__name__ != "CrossEntropy" or \
                getattr(trainer.loss, "class_weights", None) is not None:
            raise ConfigError(f"mixup mixes classes: it needs the cross-entropy loss without "
                              f"class weights, the run has {type(trainer.loss).__name__}",
                              "loss")
        self.targets = trainer.loss = MixedTargets(trainer.loss)

    @hookimpl
    def on_batch_start(self, trainer, batch):
        x, y = batch
        rng = np.random.default_rng([self.seed, trainer.state.global_step, 0x313C])
        self.targets.mixing = None
        if rng.random() >= self.probability or len(y) < 2:
            return
        partner = rng.permutation(len(y))
        lam = float(rng.beta(self.alpha, self.alpha))
        cut = self.mode == "cutmix" or (self.mode == "both" and rng.random() < 0.5)
        shape = tuple(trainer.context.image_shape or ())
        images = x.reshape(len(x), *shape) if x.ndim == 2 and len(shape) >= 2 else x
        if cut and images.ndim >= 3:
            lam = paste_box(images, partner, lam, rng)
        else:
            # x = lam * x + (1 - lam) * x[partner], in place (the same products and sum)
            other = x.take(partner, axis=0)
            other *= 1 - lam
            x *= lam
            x += other
        if lam < 0.5:  # the batch's labels become the larger share's: the metrics count them
            y[...] = y[partner]
            partner, lam = np.argsort(partner), 1 - lam  # the same mixed targets
        self.targets.mixing = (partner, np.float32(lam))

    @hookimpl
    def on_batch_end(self):
        self.targets.mixing = None  # validation and test see the plain loss


def paste_box(images, partner, lam: float, rng) -> float:
    """cutmix: a box of ``1 - lam`` of the area from each image's partner, in place; returns the
    share of the image left (the box is clipped at the borders)."""
    n, h, w = images.shape[:3]
    cut_h, cut_w = int(h * math.sqrt(1 - lam)), int(w * math.sqrt(1 - lam))
    cy, cx = int(rng.integers(h)), int(rng.integers(w))
    top, bottom = max(cy - cut_h // 2, 0), min(cy + cut_h // 2, h)
    left, right = max(cx - cut_w // 2, 0), min(cx + cut_w // 2, w)
    source = images[partner, top:bottom, left:right].copy()
    images[:, top:bottom, left:right] = source
    return 1 - (bottom - top) * (right - left) / (h * w)


@hookimpl
def register_run_plugins(register):
    register("mixup", Mixup)
