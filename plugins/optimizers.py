"""Optimizers, in order of growing complexity: SGD, momentum (with Nesterov), RMSprop, Adam,
AdamW.

Each update works in place on the flat parameter buffer in a handful of array passes.
``weight_decay`` (SGD, momentum, RMSprop, Adam) is PyTorch's L2 penalty: ``wd * p`` is added to
the gradient before the update; AdamW's is decoupled instead.
"""

from __future__ import annotations

import math

from trainkit import hookimpl
from trainkit.lazy import lazy_import
from trainkit.nn.optim import Optimizer, check_range

np = lazy_import("numpy")


def add_weight_decay(optimizer: Optimizer) -> None:
    """PyTorch's L2 penalty: ``g += wd * p``, in the gradient buffer (which the next backward
    pass overwrites); nothing at all when ``weight_decay`` is 0."""
    if optimizer.weight_decay:
        s = np.multiply(optimizer.params, optimizer.weight_decay, out=optimizer._scratch)
        optimizer.grads += s


class SGD(Optimizer):
    """Plain stochastic gradient descent: ``p -= lr * g``.

    Args:
        lr: learning rate.
        weight_decay: L2 penalty, added to the gradient as ``weight_decay * p`` (PyTorch's).
    """

    elementwise = True

    def __init__(self, lr: float = 0.01, weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        check_range("weight_decay", weight_decay, 0.0, high=None)
        self.weight_decay = float(weight_decay)

    def update(self, t: int) -> None:
        add_weight_decay(self)
        s = np.multiply(self.grads, self.lr, out=self._scratch)
        self.params -= s


class Momentum(Optimizer):
    """SGD with momentum: ``v = mu v + g``, then ``p -= lr v`` (or ``lr (g + mu v)`` with Nesterov).

    Args:
        lr: learning rate.
        momentum: the decay ``mu`` of the velocity.
        nesterov: use Nesterov's look-ahead form.
        weight_decay: L2 penalty, added to the gradient as ``weight_decay * p`` (PyTorch's).
    """

    state_names = ("velocity",)
    elementwise = True

    def __init__(self, lr: float = 0.01, momentum: float = 0.9, nesterov: bool = False,
                 weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        check_range("momentum", momentum, 0.0, 1.0)
        check_range("weight_decay", weight_decay, 0.0, high=None)
        self.momentum, self.nesterov = float(momentum), bool(nesterov)
        self.weight_decay = float(weight_decay)

    def update(self, t: int) -> None:
        add_weight_decay(self)
        v, g, s = self.velocity, self.grads, self._scratch
        v *= self.momentum
        v += g
        if self.nesterov:
            np.multiply(v, self.momentum, out=s)
            s += g
            s *= self.lr
        else:
            np.multiply(v, self.lr, out=s)
        self.params -= s


class RMSprop(Optimizer):
    """RMSprop, as PyTorch's: ``v = alpha v + (1-alpha) g^2``, then ``p -= lr g / (sqrt(v) +
    eps)`` (with momentum: ``b = mu b + g / (sqrt(v) + eps)``, ``p -= lr b``).

    Args:
        lr: learning rate.
        alpha: decay of the squared-gradient average.
        eps: added to the denominator for stability.
        momentum: momentum of the scaled step (0: none).
        weight_decay: L2 penalty, added to the gradient as ``weight_decay * p`` (PyTorch's).
    """

    state_names = ("square_avg", "momentum_buffer")
    elementwise = True

    def __init__(self, lr: float = 0.01, alpha: float = 0.99, eps: float = 1e-8,
                 momentum: float = 0.0, weight_decay: float = 0.0) -> None:
        super().__init__(lr)
        check_range("alpha", alpha, 0.0, 1.0)
        check_range("eps", eps, 0.0, low_open=True, high=None)
        check_range("momentum", momentum, 0.0, 1.0)
        check_range("weight_decay", weight_decay, 0.0, high=None)
        self.alpha, self.eps, self.momentum = float(alpha), float(eps), float(momentum)
        self.weight_decay = float(weight_decay)

    def update(self, t: int) -> None:
        add_weight_decay(self)
        v, g, s = self.square_avg, self.grads, self._scratch
        v *= self.alpha
        np.multiply(g, g, out=s)
        s *= 1.0 - self.alpha
        v += s
        np.sqrt(v, out=s)
        s += self.eps
        np.divide(g, s, out=s)  # the scaled step
        if self.momentum:
            b = self.momentum_buffer
            b *= self.momentum
            b += s
            np.multiply(b, self.lr, out=s)
        else:
            s *= self.lr
        self.params -= s


class Adam(Optimizer):
    """Adam with bias correction (Kingma & Ba, 2015).

    ``m = b1 m + (1-b1) g``, ``v = b2 v + (1-b2) g^2``,
    ``p -= lr / (1-b1^t) * m / (sqrt(v / (1-b2^t)) + eps)``.

    The state holds the moments without their ``(1-b)`` factors, ``m_sum = m / (1-b1)`` and
    ``v_sum = v / (1-b2)`` (so ``m_sum = b1 m_sum + g``), and those factors and both bias
    corrections are folded into two scalars. The update is the same value in ten array passes
    instead of twelve.

    Args:
        lr: learning rate.
        beta1: decay of the first-moment estimate.
        beta2: decay of the second-moment estimate.
        eps: added to the denominator for stability.
        weight_decay: L2 penalty, added to the gradient as ``weight_decay * p`` (PyTorch's
            Adam; for the decoupled form use adamw).
    """

    state_names = ("m_sum", "v_sum")
    elementwise = True
    weight_decay = 0.0

    def __init__(
        self, lr: float = 1e-3, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__(lr)
        check_range("beta1", beta1, 0.0, 1.0)
        check_range("beta2", beta2, 0.0, 1.0)
        check_range("eps", eps, 0.0, low_open=True, high=None)
        check_range("weight_decay", weight_decay, 0.0, high=None)
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)
        self.weight_decay = float(weight_decay)

    def decay(self) -> None:
        """The weight decay, before the moments are updated: L2 in the gradient."""
        add_weight_decay(self)

    def update(self, t: int) -> None:
        self.decay()
        b1, b2 = self.beta1, self.beta2
        m_sum, v_sum, g, s = self.m_sum, self.v_sum, self.grads, self._scratch
        m_sum *= b1
        m_sum += g
        v_sum *= b2
        np.multiply(g, g, out=s)
        v_sum += s
        # sqrt(v_hat) + eps = k (sqrt(v_sum) + eps / k), with v_hat = v_sum (1-b2) / (1-b2^t)
        k = math.sqrt((1.0 - b2) / (1.0 - b2**t))
        np.sqrt(v_sum, out=s)
        s += self.eps / k
        np.divide(m_sum, s, out=s)
        s *= self.lr * (1.0 - b1) / ((1.0 - b1**t) * k)
        self.params -= s


class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov & Hutter, 2019): ``p -= lr wd p`` first.

    Args:
        lr: learning rate.
        beta1: decay of the first-moment estimate.
        beta2: decay of the second-moment estimate.
        eps: added to the denominator for stability.
        weight_decay: decoupled decay rate, applied to every parameter.
    """

    def __init__(
        self,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        weight_decay: float = 1e-2,
    ) -> None:
        super().__init__(lr, beta1, beta2, eps, weight_decay)

    def decay(self) -> None:
        """Decoupled: the parameters shrink, the gradient is left as it is."""
        self.params *= 1.0 - self.lr * self.weight_decay


@hookimpl
def register_optimizers(register):
    register("sgd", SGD)
    register("momentum", Momentum)
    register("rmsprop", RMSprop)
    register("adam", Adam)
    register("adamw", AdamW)
