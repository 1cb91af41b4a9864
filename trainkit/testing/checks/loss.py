"""``check_loss``: a loss's gradient against its value, a mean over samples, finite at the extremes."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from trainkit.lazy import lazy_import

if TYPE_CHECKING:
    import numpy as np
else:  # trainkit.testing (a pytest plugin) imports this module at start-up
    np = lazy_import("numpy")
from trainkit.testing.checks.findings import (
    Findings,
    compare_gradient,
    name_of,
    numeric_gradient,
)


def check_loss(factory: Callable[..., Any], *, num_classes: int = 4, batch: int = 5,
               seed: int = 0, name: str | None = None, **options: Any) -> list[str]:
    """Check the loss ``factory(**options)`` (what ``register_losses`` registers): its gradient
    against central differences of its value, the value a mean over samples, finite for
    extreme logits, float32 gradients for float32 outputs."""
    findings = Findings("loss", name_of(factory, name))
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((batch, num_classes)) * 2.0
    targets = rng.integers(0, num_classes, batch)
    with findings.check("building it"):
        loss = factory(**options)
    if findings.problems:
        return findings.done()
    with findings.check("the gradient"):
        loss.forward(logits.copy(), targets)
        analytic = np.array(loss.backward(), np.float64)
        z = logits.copy()
        numeric = numeric_gradient(lambda: float(loss.forward(z.copy(), targets)), z)
        compare_gradient(findings, "the gradient of the value with respect to the outputs",
                         analytic, numeric)
    with findings.check("a mean over samples"):
        once = float(loss.forward(logits.copy(), targets))
        twice = float(loss.forward(np.concatenate([logits, logits]),
                                   np.concatenate([targets, targets])))
        if not math.isclose(once, twice, rel_tol=1e-9, abs_tol=1e-12):
            findings.problem(f"the value of a batch is {once:.6g} and of the same batch twice "
                             f"{twice:.6g}; expected the same: a mean over samples (a value over "
                             f"the whole batch, such as a softmax across it, depends on its size)")
    with findings.check("extreme outputs"), np.errstate(all="ignore"):  # said below, if so
        for sign in (1.0, -1.0):
            extreme = (np.where(rng.random((batch, num_classes)) < 0.5, 1e4, -1e4) * sign
                       ).astype(np.float32)
            value = float(loss.forward(extreme, targets))
            grad = loss.backward()
            if not (math.isfinite(value) and np.isfinite(grad).all()):
                findings.problem(f"for outputs of +-1e4 the value is {value} and the gradient "
                                 f"{'finite' if np.isfinite(grad).all() else 'not finite'}; "
                                 f"expected both finite (a stable log-sum-exp or log1p form)")
                break
    with findings.check("float32"):
        loss.forward(logits.astype(np.float32), targets)
        grad = loss.backward()
        if np.asarray(grad).dtype != np.float32:
            findings.problem(f"the gradient of float32 outputs is {np.asarray(grad).dtype}, "
                             f"expected float32 (no hidden float64 in a training step)")
    return findings.done()
