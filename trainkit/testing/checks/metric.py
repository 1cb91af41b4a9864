"""``check_metric``: an epoch value independent of batches, states that add up across ranks, a
name that tells the direction."""

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
    name_of,
)


def check_metric(factory: Callable[..., Any], *, num_classes: int = 4, samples: int = 97,
                 seed: int = 0, name: str | None = None, **options: Any) -> list[str]:
    """Check the metric ``factory(**options)`` (what ``register_metrics`` registers): the epoch
    value independent of batch size and order, two ranks' summed states worth one process's,
    and a name that tells early stopping which way is better."""
    from trainkit.loop.metrics import as_metric, logged
    from trainkit.loop.monitor import direction

    findings = Findings("metric", name_of(factory, name))
    with findings.check("building it"):
        metric = as_metric(factory(**options))
    if findings.problems:
        return findings.done()
    rng = np.random.default_rng(seed)
    tasks = getattr(metric, "tasks", ("classification",))
    if "classification" not in tasks and "binary" in tasks:  # one logit, classes 0 and 1
        num_classes = 1
    outputs = rng.standard_normal((samples, num_classes)).astype(np.float32)
    if "classification" in tasks or "binary" in tasks:
        targets = rng.integers(0, max(num_classes, 2), samples)
    else:  # real values, one per output
        targets = (outputs + rng.standard_normal(outputs.shape)).astype(np.float32)
    if getattr(metric, "gathered", False):
        return check_gathered(findings, metric, outputs, targets, rng)
    metric_name = metric.name if hasattr(metric, "name") else None  # the metric protocol's
    if not isinstance(metric_name, str) or not metric_name:
        findings.problem("has no name (the key it logs under, such as f1)")
        return findings.done()
    if logged(metric) and direction(metric_name) is None:
        findings.problem(f"its name {metric_name!r} does not say whether higher is better, so "
                         f"early stopping and best.npz cannot watch it without --*-mode: name it "
                         f"like acc, f1, auc, ..._error or ..._loss")

    def value(order, sizes) -> Any:
        state = np.zeros(int(metric.state_size(num_classes)))
        start = 0
        for size in sizes:
            rows = order[start:start + size]
            metric.update(state, outputs[rows], targets[rows])
            start += size
        return metric.compute(state, float(samples)), state

    order = np.arange(samples)
    with findings.check("the epoch value"):
        whole, whole_state = value(order, [samples])
        if logged(metric) and not (isinstance(whole, float) and math.isfinite(whole)):
            findings.problem(f"a logged metric's value is {whole!r}, expected a finite float")
        for label, o, sizes in (("batches of 10", order, [10] * 9 + [7]),
                                ("batches of 32", order, [32, 32, 33]),
                                ("another order", rng.permutation(samples), [samples])):
            other, _ = value(o, sizes)
            if not np.allclose(other, whole, rtol=1e-9, atol=1e-12):
                findings.problem(f"its epoch value is {whole} in one batch and {other} in "
                                 f"{label}; expected the same: keep counts in the state and "
                                 f"compute the value from them at the end")
                break
    with findings.check("two ranks"):
        half = samples // 2
        first, _ = value(order[:half], [half])
        state_a = np.zeros(int(metric.state_size(num_classes)))
        state_b = np.zeros_like(state_a)
        metric.update(state_a, outputs[:half], targets[:half])
        metric.update(state_b, outputs[half:], targets[half:])
        summed = metric.compute(state_a + state_b, float(samples))
        if not np.allclose(summed, whole, rtol=1e-9, atol=1e-12):
            findings.problem(f"two ranks' states added up give {summed}, one process's "
                             f"{whole}; expected the same (data parallelism sums the states)")
    return findings.done()


def check_gathered(findings: Findings, metric: Any, outputs: np.ndarray, targets: np.ndarray,
                   rng: np.random.Generator) -> list[str]:
    """A gathered metric (every score of a pass, ``rows`` and ``compute_gathered``): the same
    value whatever the batches and their order."""
    def value(order: np.ndarray, sizes: list[int]) -> Any:
        kept, start = [], 0
        for size in sizes:
            rows = order[start:start + size]
            kept.append(metric.rows(outputs[rows], targets[rows]))
            start += size
        return metric.compute_gathered(np.concatenate(kept))

    samples = len(outputs)
    with findings.check("the epoch value"):
        whole = value(np.arange(samples), [samples])
        if not (isinstance(whole, float) and math.isfinite(whole)):
            findings.problem(f"its value is {whole!r}, expected a finite float")
        other = value(rng.permutation(samples), [samples // 2, samples - samples // 2])
        if not np.allclose(other, whole, rtol=1e-9, atol=1e-12):
            findings.problem(f"its value is {whole} in one batch and {other} in two shuffled "
                             f"ones; expected the same")
    return findings.done()
