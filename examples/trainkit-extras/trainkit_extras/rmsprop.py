"""RMSprop (Hinton, 2012): divide the gradient by a running average of its recent magnitude."""

from __future__ import annotations

import numpy as np

from trainkit import hookimpl
from trainkit.nn.optim import Optimizer, check_range


class RMSprop(Optimizer):
    """RMSprop: ``v = rho v + (1 - rho) g^2``, then ``p -= lr g / (sqrt(v) + eps)``.

    Args:
        lr: learning rate.
        rho: decay of the running average of squared gradients.
        eps: added to the denominator for stability.
    """

    state_names = ("square_avg",)

    def __init__(self, lr: float = 1e-3, rho: float = 0.9, eps: float = 1e-8) -> None:
        super().__init__(lr)
        check_range("rho", rho, 0.0, 1.0)
        check_range("eps", eps, 0.0, low_open=True, high=None)
        self.rho, self.eps = float(rho), float(eps)

    def update(self, t: int) -> None:
        v, g, s = self.square_avg, self.grads, self._scratch
        v *= self.rho
        np.multiply(g, g, out=s)
        s *= 1.0 - self.rho
        v += s
        np.sqrt(v, out=s)
        s += self.eps
        np.divide(g, s, out=s)
        s *= self.lr
        self.params -= s


@hookimpl
def register_optimizers(register):
    register("rmsprop", RMSprop)
