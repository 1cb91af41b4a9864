"""``check_optimizer``: documented defaults, refused hyperparameters, a bit-exact resume, a changed
lr applied, element-wise updates on slices."""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainkit.lazy import lazy_import

if TYPE_CHECKING:
    import numpy as np
else:  # trainkit.testing (a pytest plugin) imports this module at start-up
    np = lazy_import("numpy")
from trainkit.testing.checks.findings import (
    Findings,
    name_of,
)

#: The defaults the literature and every framework document, for optimizers named after them.
KNOWN_DEFAULTS = {
    "adam": {"beta1": 0.9, "beta2": 0.999}, "adamw": {"beta1": 0.9, "beta2": 0.999},
    "momentum": {"momentum": 0.9}, "nesterov": {"momentum": 0.9},
}
DOCUMENTED_DEFAULT = re.compile(r"^\s*(\w+)\s*:.*?(?:\(default:?\s*|\[default:\s*|defaults to\s+)"
                                r"([-+0-9.eE]+)", re.M)


def documented_defaults(factory: Any) -> dict[str, float]:
    """``{option: value}`` for docstring lines such as ``beta1: ... (default 0.9)``."""
    doc = inspect.getdoc(factory) or ""
    found = {}
    for option, value in DOCUMENTED_DEFAULT.findall(doc):
        with contextlib.suppress(ValueError):
            found[option] = float(value.rstrip("."))
    return found


def check_optimizer(factory: Callable[..., Any], *, size: int = 64, steps: int = 6,
                    seed: int = 0, name: str | None = None, **options: Any) -> list[str]:
    """Check the optimizer ``factory(**options)`` (what ``register_optimizers`` registers):
    its defaults as documented, bad hyperparameters refused, a resume mid-run bit-exact, a
    changed lr applied on the next step, an element-wise update the same on slices."""
    findings = Findings("optimizer", name_of(factory, name))
    with findings.check("building it"):
        factory(**options)
    if findings.problems:
        return findings.done()
    with findings.check("documented defaults"):
        check_defaults(findings, factory, name)
    with findings.check("bad hyperparameters"):
        check_refused_hyperparameters(findings, factory, options)
    with findings.check("a resume mid-run"):
        check_optimizer_resume(findings, factory, options, size, steps, seed)
    with findings.check("a changed lr"):
        check_lr_change(findings, factory, options, size, seed)
    with findings.check("an element-wise update on slices"):
        check_slices(findings, factory, options, size, seed)
    return findings.done()


def check_defaults(findings: Findings, factory, name: str | None) -> None:
    signature = inspect.signature(factory)
    defaults = {k: p.default for k, p in signature.parameters.items()
                if p.default is not inspect.Parameter.empty}
    for option, documented in documented_defaults(factory).items():
        if option in defaults and isinstance(defaults[option], (int, float)) and \
                not math.isclose(float(defaults[option]), documented):
            findings.problem(f"{option} defaults to {defaults[option]}; its docstring says "
                             f"{documented:g}")
    known = KNOWN_DEFAULTS.get((name or getattr(factory, "__name__", "") or "").lower(), {})
    for option, value in known.items():
        if option in defaults and defaults[option] != value:
            findings.problem(f"{option} defaults to {defaults[option]}; the documented default "
                             f"of this optimizer (the paper's, PyTorch's, Keras') is {value}")


def check_refused_hyperparameters(findings: Findings, factory, options) -> None:
    from trainkit.errors import TrainkitError

    parameters = inspect.signature(factory).parameters
    bad = [("lr", 0.0), ("lr", -1.0)] if "lr" in parameters else []
    bad += [(k, float("nan")) for k, p in parameters.items()
            if isinstance(p.default, float) and not isinstance(p.default, bool)]
    for option, value in bad:
        try:
            factory(**{**options, option: value})
        except TrainkitError:
            continue
        except Exception as e:  # noqa: BLE001
            findings.problem(f"{option}={value} raised {type(e).__name__}: {e}; expected a "
                             f"trainkit ConfigError naming the option (a one-line usage error)")
            continue
        findings.problem(f"{option}={value} was taken; expected a ConfigError naming {option}")


def bound_optimizer(factory, options, size: int, seed: int):
    params = np.random.default_rng(seed).standard_normal(size).astype(np.float32)
    grads = np.zeros_like(params)
    optimizer = factory(**options)
    optimizer.bind(params, grads)
    return optimizer, params, grads


def gradient_at(step: int, size: int, seed: int) -> np.ndarray:
    return np.random.default_rng([seed, step]).standard_normal(size).astype(np.float32)


def train_steps(optimizer, params, grads, first: int, last: int, size: int, seed: int) -> None:
    for step in range(first, last):
        grads[...] = gradient_at(step, size, seed) + 0.1 * params
        optimizer.step()


def check_optimizer_resume(findings: Findings, factory, options, size, steps, seed) -> None:
    whole, params, grads = bound_optimizer(factory, options, size, seed)
    train_steps(whole, params, grads, 0, steps, size, seed)
    first, params1, grads1 = bound_optimizer(factory, options, size, seed)
    half = steps // 2
    train_steps(first, params1, grads1, 0, half, size, seed)
    with tempfile.TemporaryDirectory() as folder:  # through a file, as a checkpoint does
        path = Path(folder) / "state.npz"
        state = first.state_dict()
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in state.items()}
        np.savez(path, params=params1, **arrays)
        with np.load(path, allow_pickle=False) as saved:
            loaded = {k: saved[k] for k in saved.files}
    resumed, params2, grads2 = bound_optimizer(factory, options, size, seed)
    params2[...] = loaded.pop("params")
    resumed.load_state_dict({k: (v.item() if v.ndim == 0 else v) for k, v in loaded.items()})
    train_steps(resumed, params2, grads2, half, steps, size, seed)
    if not np.array_equal(params, params2):
        findings.problem(f"{steps - half} steps after a resume from state_dict() the parameters "
                         f"differ from an uninterrupted run's (by "
                         f"{float(np.abs(params - params2).max()):.3g}): state_dict() leaves out "
                         f"state update() uses")


def check_lr_change(findings: Findings, factory, options, size, seed) -> None:
    a, params_a, grads_a = bound_optimizer(factory, options, size, seed)
    b, params_b, grads_b = bound_optimizer(factory, options, size, seed)
    train_steps(a, params_a, grads_a, 0, 2, size, seed)
    train_steps(b, params_b, grads_b, 0, 2, size, seed)
    before = params_b.copy()
    b.lr = a.lr * 0.5
    train_steps(a, params_a, grads_a, 2, 3, size, seed)
    train_steps(b, params_b, grads_b, 2, 3, size, seed)
    if np.array_equal(params_a, params_b) or np.array_equal(params_b, before):
        findings.problem("an lr changed between two steps (as a schedule changes it) is not "
                         "applied on the next step: read self.lr in update(), every step")


def check_slices(findings: Findings, factory, options, size, seed) -> None:
    whole, params, grads = bound_optimizer(factory, options, size, seed)
    if not getattr(whole, "elementwise", False):
        return
    from trainkit.nn import schedule

    parts, params_p, grads_p = bound_optimizer(factory, options, size, seed)
    for step in range(3):
        grads[...] = gradient_at(step, size, seed)
        grads_p[...] = grads
        whole.step()
        with schedule.planned(3, split_batch=True, split_small=True):  # as a convnet's threads
            parts.step()
    if not np.array_equal(params, params_p):
        findings.problem("it declares elementwise = True, but updating slices of the flat arrays "
                         "gives other values than one whole update (as a convnet's threads do): "
                         "it reads across values, so elementwise must be False")
