"""grad-clip: clip the gradients before every optimizer step, as PyTorch's
``clip_grad_norm_`` (the default: the global L2 norm of every gradient at most ``max``) or
``clip_grad_value_`` (every gradient within ``[-max, max]``).

It runs after every other plugin's ``on_before_optimizer_step`` (ddp has summed the gradients
by then), and logs each epoch's mean norm before clipping as ``grad_norm``.
"""

from __future__ import annotations

from typing import Literal

from trainkit import hookimpl
from trainkit.lazy import lazy_import

np = lazy_import("numpy")


class GradClip:
    """Clip the gradients by their global norm (or by value) before each optimizer step.

    Args:
        clip: norm (scale every gradient down so that their global L2 norm is at most max) or
            value (clip each gradient to [-max, max]).
        max: the largest norm, or value, let through.
    """

    def __init__(self, clip: Literal["norm", "value"] = "norm", max: float = 1.0) -> None:
        from trainkit.errors import ConfigError

        if clip not in ("norm", "value"):
            raise ConfigError(f"clip must be norm or value, got {clip!r}", "clip")
        if not max > 0:
            raise ConfigError(f"max must be above 0, got {max}", "max")
        self.name, self.clip, self.max = "grad-clip", clip, float(max)
        self.norm_sum, self.steps = 0.0, 0

    @hookimpl
    def on_epoch_start(self, trainer):
        if not trainer.state.step_in_epoch:  # a resumed epoch keeps its sums
            self.norm_sum, self.steps = 0.0, 0

    @hookimpl(trylast=True)  # after ddp has summed the gradients
    def on_before_optimizer_step(self, trainer):
        grads = trainer.model.grads
        norm = float(np.linalg.norm(grads))
        self.norm_sum, self.steps = self.norm_sum + norm, self.steps + 1
        if self.clip == "value":
            np.clip(grads, -self.max, self.max, out=grads)
            return
        scale = self.max / (norm + 1e-6)  # PyTorch's clip_grad_norm_
        if scale < 1.0:
            grads *= np.float32(scale)

    @hookimpl(tryfirst=True)  # before the console, history and checkpoint read the logs
    def on_epoch_end(self, logs):
        if self.steps:
            logs["grad_norm"] = self.norm_sum / self.steps

    @hookimpl
    def on_save_checkpoint(self, state):
        state[self.name] = {"norm_sum": self.norm_sum, "steps": self.steps}

    @hookimpl
    def on_load_checkpoint(self, state):
        saved = state.get(self.name)
        if saved:
            self.norm_sum, self.steps = float(saved["norm_sum"]), int(saved["steps"])


@hookimpl
def register_run_plugins(register):
    register("grad-clip", GradClip)
