"""What every component check shares: the error listing every problem, the findings that
collect them one line each, and central finite differences in float64."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from trainkit.lazy import lazy_import
from trainkit.plugin import contract

if TYPE_CHECKING:
    import numpy as np
else:  # trainkit.testing (a pytest plugin) imports this module at start-up
    np = lazy_import("numpy")


#: Central differences in float64 with this step agree with a right gradient to about 1e-9; a
#: wrong one (a factor, a missing term, a sign) is off by far more than this threshold.
EPS, GRADIENT_TOLERANCE = 1e-6, 1e-4


class ComponentCheckError(AssertionError):
    """What a component check found wrong, one line per problem."""


class Findings:
    """The problems found in one component, each said in one line that names it."""

    def __init__(self, kind: str, name: str) -> None:
        self.kind, self.name = kind, name
        self.problems: list[str] = []
        self.ran: list[str] = []

    def problem(self, text: str) -> None:
        self.problems.append(f"{self.kind} {self.name!r}: {text}")

    @contextlib.contextmanager
    def check(self, what: str) -> Iterator[None]:
        """Run one check; an exception it raises is a problem of the component, not a crash."""
        try:
            yield
        except Exception as e:  # noqa: BLE001 (every check runs; each failure becomes a line)
            self.problem(f"{what} raised {type(e).__name__}: {e}")
        else:
            self.ran.append(what)

    def done(self) -> list[str]:
        if self.problems:
            raise ComponentCheckError("\n".join(self.problems))
        return self.ran


def name_of(factory: Any, name: str | None) -> str:
    """The name the checks' lines give the component: ``name``, the factory's contract name, or
    the function's or class's own."""
    return name or contract.read(factory, "name") or getattr(factory, "__name__", "component")


def worst_relative_error(analytic: np.ndarray, numeric: np.ndarray) -> tuple[float, int]:
    """The largest ``|a - n| / max(|a| + |n|, 1e-6)`` and where it is (flat index)."""
    a, n = np.asarray(analytic, np.float64).ravel(), np.asarray(numeric, np.float64).ravel()
    errors = np.abs(a - n) / np.maximum(np.abs(a) + np.abs(n), 1e-6)
    worst = int(np.argmax(errors)) if errors.size else 0
    return (float(errors[worst]) if errors.size else 0.0), worst


def numeric_gradient(objective: Callable[[], float], x: np.ndarray) -> np.ndarray:
    """d objective / d x by central differences, perturbing ``x`` in place."""
    grad = np.zeros_like(x, dtype=np.float64)
    flat, out = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + EPS
        up = objective()
        flat[i] = old - EPS
        down = objective()
        flat[i] = old
        out[i] = (up - down) / (2 * EPS)
    return grad


def largest(a: np.ndarray) -> float:
    """The largest magnitude in ``a`` (1e-6 at least, and for an empty array)."""
    return max(float(np.abs(a).max()), 1e-6) if a.size else 1e-6


def compare_gradient(findings: Findings, what: str, analytic, numeric) -> None:
    error, where = worst_relative_error(analytic, numeric)
    if not error <= GRADIENT_TOLERANCE:
        a = np.asarray(analytic).ravel()[where]
        n = np.asarray(numeric).ravel()[where]
        findings.problem(f"{what} differs from central finite differences: {a:.6g} where the "
                         f"differences give {n:.6g} (element {where}; worst relative error "
                         f"{error:.2g}, expected below {GRADIENT_TOLERANCE:g})")
