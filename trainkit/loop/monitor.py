"""One shared helper for watching a metric: used by early stopping, checkpointing and LR schedules.

``mode="auto"`` knows which way the usual metrics go: accuracy (``acc``, ``top5_acc``),
precision, recall, F1, AUC and the like are maximised, losses and errors minimised, with or
without a ``val_``/``test_`` prefix. Any other name needs ``mode="min"`` or ``"max"``: guessing
would silently minimise a score (Keras refuses to guess too).

One rule decides what counts as an improvement, for every value and every plugin:

- a value that is not finite (NaN, inf) never improves on anything: a diverged epoch is never
  the best one;
- the first finite value is the best so far;
- after that a value improves when it is better than the best by at least ``min_delta``
  (``threshold_mode="abs"``) or by at least ``min_delta`` times the best (``"rel"``, as PyTorch's
  ``threshold_mode``); with ``min_delta`` 0, by anything at all (a tie is no improvement). "At
  least" is taken to twelve significant digits of the values, so that a step of exactly 0.01 in
  ``val_acc`` (0.4997 to 0.5097) counts whatever its last binary digit, where a bare float64
  ``value > best + min_delta`` counts 248 of 9,901 such steps and refuses the rest.

A ``baseline`` does not change which value is the best: it is a second bar that a value must
also clear (by the same rule) for the watcher to reset its patience. Early stopping uses it;
``best_epoch`` stays the best epoch seen, so restoring the best weights restores those.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from typing import Any

from trainkit.errors import ConfigError

#: Name patterns (after any val_/test_ prefix) of metrics that improve upwards or downwards.
MAXIMISED = re.compile(r"(top\d+_)?acc(uracy)?|(balanced_)?accuracy|precision|recall|f1|f\d+|"
                       r"(roc_|pr_)?auc|ap|map|iou|miou|dice|r2|kappa|mcc|specificity|"
                       r"sensitivity|(macro|micro|weighted)_\w+")
MINIMISED = re.compile(r"(\w+_)?loss|(\w+_)?error|err|mae|mse|rmse|msle|nll|perplexity|ce|"
                       r"bce|(\w+_)?entropy|lr")
#: How closely "at least min_delta" is read: to twelve significant digits of the values.
DIGITS = 1e-12


def direction(metric: str) -> str | None:
    """``"max"`` or ``"min"`` for a metric whose name says which way is better, else ``None``."""
    name = re.sub(r"^(val|test|train)_", "", metric)
    if MAXIMISED.fullmatch(name):
        return "max"
    if MINIMISED.fullmatch(name):
        return "min"
    return None


def better_by(value: float, reference: float, mode: str, min_delta: float,
              threshold_mode: str = "abs") -> bool:
    """True when ``value`` is better than ``reference`` by at least ``min_delta`` (see the
    module's docstring for the exact rule)."""
    if not (math.isfinite(value) and math.isfinite(reference)):
        return False
    change = value - reference if mode == "max" else reference - value
    needed = min_delta * abs(reference) if threshold_mode == "rel" else min_delta
    if needed == 0:
        return change > 0
    return change >= needed - DIGITS * max(abs(value), abs(reference), needed)


class Monitor:
    """Tracks the best value of ``metric`` and says whether a new value improves on it."""

    def __init__(self, metric: str, mode: str = "auto", min_delta: float = 0.0,
                 baseline: float | None = None, threshold_mode: str = "abs") -> None:
        if mode not in ("auto", "min", "max"):
            raise ConfigError(f"mode must be auto, min or max, got {mode!r}", "mode")
        if threshold_mode not in ("abs", "rel"):
            raise ConfigError(f"threshold_mode must be abs or rel, got {threshold_mode!r}",
                              "threshold_mode")
        self.natural = direction(metric)
        chosen = self.natural if mode == "auto" else mode
        if chosen is None:
            raise ConfigError(f"cannot tell whether {metric!r} is better higher or lower: set "
                              f"mode to max or min", "mode")
        self.metric, self.mode, self.min_delta = metric, chosen, abs(min_delta)
        self.threshold_mode = threshold_mode
        self.baseline = baseline
        self.best: float | None = None
        self.best_epoch: int | None = None

    def against_its_name(self) -> bool:
        """True when ``mode`` was set against the direction the metric's name says (maximising
        a loss): allowed, and worth a warning."""
        return self.natural is not None and self.mode != self.natural

    def value(self, logs: dict[str, float]) -> float:
        if self.metric not in logs:
            raise ConfigError(self.not_logged(logs), "monitor")
        return float(logs[self.metric])

    def not_logged(self, names: Iterable[str]) -> str:
        """The one-line error for a metric the run does not log, with a did-you-mean."""
        import difflib

        names = list(names)
        close = difflib.get_close_matches(self.metric, names, n=1, cutoff=0.7)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        return f"monitored metric {self.metric!r} is not logged{hint}; logged: {', '.join(names)}"

    def is_improvement(self, value: float) -> bool:
        """True when ``value`` would be the new best."""
        if self.best is None:
            return math.isfinite(value)
        return better_by(value, self.best, self.mode, self.min_delta, self.threshold_mode)

    def beats_baseline(self, value: float) -> bool:
        """True when there is no baseline, or ``value`` clears it."""
        if self.baseline is None:
            return math.isfinite(value)
        return better_by(value, self.baseline, self.mode, self.min_delta, self.threshold_mode)

    def update(self, logs: dict[str, float], epoch: int | None = None) -> bool:
        """Record ``logs``; True when the monitored value improved (and is now the best)."""
        value = self.value(logs)
        if self.is_improvement(value):
            self.best, self.best_epoch = value, epoch
            return True
        return False

    def describe_best(self) -> str:
        """``best 0.123 at epoch 4``, or what there is to say when no epoch had a finite value."""
        if self.best is None:
            return f"no epoch had a finite {self.metric}"
        where = f" at epoch {self.best_epoch}" if self.best_epoch is not None else ""
        text = f"best {self.best:.4g}{where}"
        if self.baseline is not None and not self.beats_baseline(self.best):
            text += f", short of the baseline {self.baseline:.4g}"
        return text

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best = state.get("best")
        self.best_epoch = state.get("best_epoch")
        if self.best_epoch is None and self.best is not None and self.best == self.baseline:
            self.best = None  # saved by trainkit <= 0.1.0, which started the best at the baseline


def check_monitors(plugins: Mapping[str, Any], logged: Iterable[str]) -> None:
    """Before the first batch: every run plugin's ``monitor`` (a ``Monitor``) must watch a name
    the run logs, else a one-line ``ConfigError`` with a did-you-mean, naming the plugin's
    ``--<plugin>-monitor`` option, instead of a failure after the first epoch."""
    from trainkit.plugin.options import plugin_option_param

    logged = list(logged)
    for name, plugin in plugins.items():
        monitor = getattr(plugin, "monitor", None)
        if isinstance(monitor, Monitor) and monitor.metric not in logged:
            raise ConfigError(f"plugin {name!r}: {monitor.not_logged(logged)}",
                              plugin_option_param(name, "monitor"))
