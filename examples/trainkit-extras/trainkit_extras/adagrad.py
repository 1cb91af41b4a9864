"""Adagrad (Duchi et al., 2011): divide each step by the root of the gradient's running sum of
squares, as PyTorch's ``Adagrad``."""

from __future__ import annotations

import numpy as np

from trainkit import hookimpl
from trainkit.nn.optim import Optimizer, check_range


class Adagrad(Optimizer):
    """Adagrad: ``s += g^2``, then ``p -= lr_t g / (sqrt(s) + eps)`` with
    ``lr_t = lr / (1 + (t - 1) lr_decay)``.

    Args:
        lr: learning rate.
        lr_decay: how fast the learning rate falls with the steps.
        eps: added to the denominator for stability.
    """

    state_names = ("sum",)

    def __init__(self, lr: float = 1e-2, lr_decay: float = 0.0, eps: float = 1e-10) -> None:
        super().__init__(lr)
        check_range("lr_decay", lr_decay, 0.0, high=None)
        check_range("eps", eps, 0.0, low_open=True, high=None)
        self.lr_decay, self.eps = float(lr_decay), float(eps)

    def update(self, t: int) -> None:
        total, g, s = self.sum, self.grads, self._scratch
        np.multiply(g, g, out=s)
        total += s
        np.sqrt(total, out=s)
        s += self.eps
        np.divide(g, s, out=s)
        s *= self.lr / (1.0 + (t - 1) * self.lr_decay)
        self.params -= s


@hookimpl
def register_optimizers(register):
    register("adagrad", Adagrad)
