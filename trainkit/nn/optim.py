"""The optimizer base class. The optimizers themselves live in ``trainkit.plugins.optimizers``.

An optimizer updates the model's flat float32 parameter buffer in place from the flat gradient
buffer, using preallocated state buffers of the same size and a scratch buffer, so a step allocates
nothing. Hyperparameters are Python floats, which keep float32 arithmetic in float32.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING

from trainkit.errors import ConfigError
from trainkit.lazy import lazy_import

if TYPE_CHECKING:
    import numpy as np

    from trainkit.nn import schedule
else:  # plugin modules import this module at start-up, before numpy is needed
    np = lazy_import("numpy")
    schedule = lazy_import("trainkit.nn.schedule")


def check_range(name: str, value: float, low: float, high: float | None = None, *,
                low_open: bool = False, high_open: bool = True) -> None:
    """Raise ``ConfigError`` naming option ``name`` when ``value`` is outside the range."""
    too_low = value <= low if low_open else value < low
    too_high = high is not None and (value >= high if high_open else value > high)
    if too_low or too_high or value != value:
        lo = f"{'(' if low_open else '['}{low}"
        hi = f"{high if high is not None else 'inf'}{')' if high_open or high is None else ']'}"
        raise ConfigError(f"{name} must be in {lo}, {hi}, got {value}", option=name)


class Optimizer:
    """Base class: subclasses set ``state_names`` and implement ``update(t)``.

    ``state_names`` lists per-parameter buffers (``("m_sum", "v_sum")`` for Adam); ``bind`` allocates them as
    zeros and ``state_dict`` saves them with the step count and learning rate.
    """

    state_names: tuple[str, ...] = ()
    #: Whether ``update`` works value by value on the flat arrays (``params``, ``grads``,
    #: ``_scratch`` and the ``state_names`` buffers), as every built-in optimizer does: the
    #: schedule may then cut them (``trainkit.nn.schedule``), each thread updating a slice, and
    #: every value is computed as it would be on one thread.
    elementwise: bool = False

    def __init__(self, lr: float) -> None:
        check_range("lr", lr, 0.0, low_open=True, high=None)
        self.lr = float(lr)
        self.iterations = 0

    def bind(self, params: np.ndarray, grads: np.ndarray) -> None:
        """Attach to the flat parameter and gradient buffers and allocate the state."""
        self.params, self.grads = params, grads
        self.iterations = 0
        self._scratch = np.empty_like(params)
        for name in self.state_names:
            setattr(self, name, np.zeros_like(params))

    def step(self) -> None:
        """Apply one update in place."""
        self.iterations += 1
        if not self.elementwise:
            self.update(self.iterations)
            return
        t, names = self.iterations, ("params", "grads", "_scratch", *self.state_names)

        def update(*arrays: np.ndarray) -> None:  # the same update on some of the values
            part = self
            if arrays[0] is not self.params:
                part = copy.copy(self)  # today's hyperparameters, on these values
                for name, array in zip(names, arrays):
                    setattr(part, name, array)
            part.update(t)

        schedule.over_batch(None, update, *(getattr(self, name) for name in names),
                            values=self.params.size)

    def update(self, t: int) -> None:
        raise NotImplementedError

    def state_dict(self) -> dict[str, np.ndarray | float | int]:
        state: dict[str, np.ndarray | float | int] = {"iterations": self.iterations, "lr": self.lr}
        for name in self.state_names:
            state[name] = getattr(self, name).copy()
        return state

    def load_state_dict(self, state: dict) -> None:
        missing = [name for name in self.state_names if name not in state]
        if missing:
            found = sorted(k for k, v in state.items() if isinstance(v, np.ndarray)) or ["none"]
            raise ValueError(
                f"{type(self).__name__} needs optimizer state {', '.join(missing)}, the checkpoint "
                f"holds {', '.join(found)} (made with another optimizer, or an older trainkit)"
            )
        self.iterations = int(state["iterations"])
        self.lr = float(state["lr"])
        for name in self.state_names:
            buffer = getattr(self, name)
            value = np.asarray(state[name])
            if value.shape != buffer.shape:
                raise ValueError(
                    f"optimizer state {name!r} has shape {value.shape}, expected {buffer.shape}"
                )
            buffer[...] = value
