"""Checks for the components a plugin registers: ``check_layer``, ``check_loss``,
``check_optimizer``, ``check_metric`` and ``check_dataset`` (in ``trainkit.testing``).

``check_plugin`` takes a run plugin through runs; these take a component through what trainkit
will do with it: the maths against central finite differences in float64, float32 in a training
step, the state a checkpoint must carry, the contract with the threads and with data
parallelism. Each runs every check, then raises one ``ComponentCheckError`` (an
``AssertionError``, so pytest shows a failed test) listing every problem, one line each, naming
the component, the quantity, what was expected and what was received::

    from trainkit.testing import check_layer

    def test_my_layer():
        check_layer(my_layer, (6, 6, 2), channels=3)   # the factory register_layers registers

The notebook trainkit grew out of had the bugs these catch: a softmax over the whole batch, a
cross-entropy divided by the class count, a binary cross-entropy missing a term, an Adam whose
``beta1`` defaulted to 0 (tests/test_component_checks.py writes each as a plugin).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trainkit.lazy import lazy_import
from trainkit.plugin import contract

if TYPE_CHECKING:
    import numpy as np
else:  # trainkit.testing (a pytest plugin) imports this module at start-up
    np = lazy_import("numpy")

__all__ = ["ComponentCheckError", "check_dataset", "check_layer", "check_loss", "check_metric",
           "check_optimizer"]

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


# ------------------------------------------------------------------------------------ layers


def to_float64(layer: Any) -> None:
    """The layer's parameters as float64 copies, so that its maths runs in double precision."""
    for p in layer.parameters():
        p.data = p.data.astype(np.float64)
        p.grad = np.zeros_like(p.data)


def check_layer(factory: Callable[..., Any], input_shape: tuple[int, ...], *, batch: int = 3,
                seed: int = 0, name: str | None = None, **options: Any) -> list[str]:
    """Check the layer ``factory(input_shape, rng, **options)`` (what ``register_layers``
    registers) on random inputs of ``input_shape`` (one sample, no batch axis; keep it small:
    every input and parameter is perturbed twice). Returns what ran; raises
    ``ComponentCheckError`` naming every problem."""
    findings = Findings("layer", name_of(factory, name))
    input_shape = tuple(int(d) for d in input_shape)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, *input_shape)).astype(np.float32)

    def build():
        return factory(input_shape, np.random.default_rng(seed), **options)

    with findings.check("building it"):
        layer = build()
    if findings.problems:
        return findings.done()
    with findings.check("output_shape"):
        out_shape = tuple(layer.output_shape(input_shape))
    with findings.check("a training step in float32"):
        check_float32_step(findings, build(), x, out_shape if "out_shape" in locals() else None)
    with findings.check("samples independent in evaluation mode"):
        check_independent_samples(findings, build(), x)
    for training in (False, True):
        with findings.check(f"gradients in {'training' if training else 'evaluation'} mode"):
            check_layer_gradients(findings, build, x.astype(np.float64), training, rng)
    with findings.check("impossible input shapes"):
        check_shape_errors(findings, build(), input_shape)
    with findings.check("a checkpoint round trip"):
        check_layer_round_trip(findings, build, input_shape, x)
    with findings.check("threads"):
        check_layer_threads(findings, build, input_shape, seed)
    return findings.done()


def check_float32_step(findings: Findings, layer, x: np.ndarray, out_shape) -> None:
    layer.train(True)
    y = layer.forward(x.copy())
    if y.dtype != np.float32:
        findings.problem(f"forward of float32 inputs gives {y.dtype}, expected float32 (no hidden "
                         f"float64 in a training step)")
    if out_shape is not None and tuple(y.shape[1:]) != out_shape:
        findings.problem(f"forward gives samples of shape {tuple(y.shape[1:])}; output_shape "
                         f"says {out_shape}")
    upstream = np.ones_like(y)
    grad_x = layer.backward(upstream)
    if grad_x is not None and (grad_x.dtype != np.float32 or grad_x.shape != x.shape):
        findings.problem(f"backward gives an input gradient of {grad_x.dtype} {grad_x.shape}, "
                         f"expected float32 {x.shape}")
    for p in layer.parameters():
        if p.grad.dtype != np.float32 or p.data.dtype != np.float32:
            findings.problem(f"parameter {p.name or '?'} is {p.data.dtype} with a {p.grad.dtype} "
                             f"gradient, expected float32")


def check_independent_samples(findings: Findings, layer, x: np.ndarray) -> None:
    layer.train(False)
    whole = layer.forward(x.copy()).copy()
    for i in range(len(x)):
        alone = layer.forward(x[i:i + 1].copy()).copy()
        if not np.allclose(whole[i], alone[0], rtol=1e-4, atol=1e-5 * largest(whole)):
            findings.problem(f"in evaluation mode, sample {i}'s output depends on the other "
                             f"samples of the batch (alone it differs by "
                             f"{float(np.abs(whole[i] - alone[0]).max()):.3g}): a value over the "
                             f"whole batch where one per sample was meant?")
            return


def check_layer_gradients(findings: Findings, build, x: np.ndarray, training: bool, rng) -> None:
    layer = build()
    to_float64(layer)
    for p in layer.parameters():  # off their initial values: ones and zeros hide bugs
        p.data += rng.standard_normal(p.data.shape) * 0.5
    layer.train(training)
    if training and not np.array_equal(layer.forward(x.copy()), layer.forward(x.copy())):
        findings.ran.append("(training mode is random: its gradients are checked in evaluation "
                            "mode)")
        return
    weights = rng.standard_normal(layer.forward(x.copy()).shape)

    def objective() -> float:
        return float(np.sum(layer.forward(x.copy()) * weights))

    layer.forward(x.copy())
    grad_x = layer.backward(weights.copy())
    grad_x = None if grad_x is None else np.array(grad_x, np.float64)
    analytic = [(p.name or str(i), p.grad.copy()) for i, p in enumerate(layer.parameters())]
    mode = "training" if training else "evaluation"
    if grad_x is not None:
        compare_gradient(findings, f"the input gradient ({mode} mode)", grad_x,
                         numeric_gradient(objective, x))
    for (pname, grad), p in zip(analytic, layer.parameters()):
        compare_gradient(findings, f"the gradient of parameter {pname} ({mode} mode)", grad,
                         numeric_gradient(objective, p.data))


def check_shape_errors(findings: Findings, layer, input_shape: tuple[int, ...]) -> None:
    """An input shape the layer cannot take must be a ``ShapeError``, which names the layer in a
    one-line error; any other exception would end a run in a traceback."""
    from trainkit.nn import ShapeError

    odd = [(), (1,), (*input_shape, 1), (1,) * (len(input_shape) + 2), (0, *input_shape[1:])]
    for shape in odd:
        try:
            layer.output_shape(shape)
        except ShapeError:
            pass
        except Exception as e:  # noqa: BLE001 (the point: which exception it is)
            findings.problem(f"output_shape({shape}) raised {type(e).__name__}: {e}; an input "
                             f"it cannot take must raise trainkit.nn.ShapeError")


def check_layer_round_trip(findings: Findings, build, input_shape, x: np.ndarray) -> None:
    """State arrays and extra state (running statistics, a random generator) through a real
    checkpoint file: the restored layer computes the same bits in both modes."""
    from trainkit.nn import Sequential
    from trainkit.persist.checkpoint_io import load_checkpoint, save_checkpoint

    model = Sequential(build(), input_shape=input_shape)
    model.train(True)
    for _ in range(2):  # move the running statistics and random generators on
        model.forward(x.copy())
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "layer.npz"
        save_checkpoint(path, model.state_dict(), {"extra": model.extra_state()})
        manifest, arrays = load_checkpoint(path)
    restored = Sequential(build(), input_shape=input_shape)
    restored.load_state_dict(arrays)
    restored.load_extra_state(json.loads(json.dumps(manifest["extra"])))
    for mode in (False, True):
        model.train(mode)
        restored.train(mode)
        a, b = model.forward(x.copy()).copy(), restored.forward(x.copy()).copy()
        if not np.array_equal(a, b):
            findings.problem(f"after a checkpoint round trip its {'training' if mode else 'evaluation'}"
                             f"-mode output differs (by {float(np.abs(a - b).max()):.3g}): state "
                             f"it keeps outside state_arrays() and extra_state() is lost")
            return


def check_layer_threads(findings: Findings, build, input_shape, seed: int) -> None:
    """In a sequential model on one thread and on a convnet's two: the model's fused run and
    layer-by-layer calls give the same bits, and the thread counts agree to float32 rounding."""
    from trainkit.nn import ReLU, Sequential, parallel

    x = np.random.default_rng(seed + 1).standard_normal((8, *input_shape)).astype(np.float32)
    saved = {k: getattr(parallel, k) for k in ("MIN_VALUES", "MIN_MULTIPLY_ADDS", "MIN_SAMPLES")
             if hasattr(parallel, k)}
    results = {}
    try:
        for name in saved:  # split even this small batch's work
            setattr(parallel, name, 0 if name != "MIN_SAMPLES" else 1)
        for threads in (1, 2):
            for fused in (True, False):
                results[threads, fused] = split_step(
                    lambda: Sequential(build(), ReLU(), input_shape=input_shape), threads, x,
                    fused)
    finally:
        for name, value in saved.items():
            setattr(parallel, name, value)
    for threads in (1, 2):
        for a, b, what in zip(results[threads, True], results[threads, False],
                              ("output", "input gradient", "parameter gradients", "states")):
            if a is not None and not np.array_equal(a, b):
                findings.problem(f"on {threads} thread(s), a model's run and layer-by-layer calls "
                                 f"give other {what} (by {largest(a - b):.3g}): its "
                                 f"steps read values before they are computed")
                return
    for a, b, what in zip(results[1, True], results[2, True],
                          ("output", "input gradient", "parameter gradients", "states")):
        if a is not None and not np.allclose(a, b, rtol=1e-4, atol=1e-5 * largest(a)):
            findings.problem(f"on 2 threads its {what} differs from 1 thread's by "
                             f"{largest(a - b):.3g}, more than float32 rounding")
            return


def split_step(model_factory, threads: int, x: np.ndarray, fused: bool = True):
    """One forward and backward pass on ``threads`` threads, as a convnet's run makes it."""
    from trainkit.nn import parallel

    previous, previous_split = parallel.set_threads(threads), parallel.split_batch(True)
    try:
        model = model_factory()
        if fused:
            out = model.forward(x.copy()).copy()
        else:
            out = x.copy()
            for layer in model.layers:
                out = layer.forward(out)
            out = out.copy()
        upstream = np.random.default_rng(3).standard_normal(out.shape).astype(np.float32)
        if fused:
            grad_x = model.backward(upstream)
        else:
            grad_x = upstream
            for layer in reversed(model.layers):
                grad_x = layer.backward(grad_x)
        grad_x = None if grad_x is None else np.array(grad_x)
        return out, grad_x, model.grads.copy(), model.states.copy()
    finally:
        parallel.set_threads(previous)
        parallel.split_batch(previous_split)


# ------------------------------------------------------------------------------------ losses


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


# -------------------------------------------------------------------------------- optimizers

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


def run_steps(optimizer, params, grads, first: int, last: int, size: int, seed: int) -> None:
    for step in range(first, last):
        grads[...] = gradient_at(step, size, seed) + 0.1 * params
        optimizer.step()


def check_optimizer_resume(findings: Findings, factory, options, size, steps, seed) -> None:
    whole, params, grads = bound_optimizer(factory, options, size, seed)
    run_steps(whole, params, grads, 0, steps, size, seed)
    first, params1, grads1 = bound_optimizer(factory, options, size, seed)
    half = steps // 2
    run_steps(first, params1, grads1, 0, half, size, seed)
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
    run_steps(resumed, params2, grads2, half, steps, size, seed)
    if not np.array_equal(params, params2):
        findings.problem(f"{steps - half} steps after a resume from state_dict() the parameters "
                         f"differ from an uninterrupted run's (by "
                         f"{float(np.abs(params - params2).max()):.3g}): state_dict() leaves out "
                         f"state update() uses")


def check_lr_change(findings: Findings, factory, options, size, seed) -> None:
    a, params_a, grads_a = bound_optimizer(factory, options, size, seed)
    b, params_b, grads_b = bound_optimizer(factory, options, size, seed)
    run_steps(a, params_a, grads_a, 0, 2, size, seed)
    run_steps(b, params_b, grads_b, 0, 2, size, seed)
    before = params_b.copy()
    b.lr = a.lr * 0.5
    run_steps(a, params_a, grads_a, 2, 3, size, seed)
    run_steps(b, params_b, grads_b, 2, 3, size, seed)
    if np.array_equal(params_a, params_b) or np.array_equal(params_b, before):
        findings.problem("an lr changed between two steps (as a schedule changes it) is not "
                         "applied on the next step: read self.lr in update(), every step")


def check_slices(findings: Findings, factory, options, size, seed) -> None:
    whole, params, grads = bound_optimizer(factory, options, size, seed)
    if not getattr(whole, "elementwise", False):
        return
    parts, params_p, grads_p = bound_optimizer(factory, options, size, seed)
    cut = size // 3
    for step in range(3):
        grads[...] = gradient_at(step, size, seed)
        grads_p[...] = grads
        whole.step()
        parts.iterations += 1
        for lo, hi in ((0, cut), (cut, size)):
            parts._slice(lo, hi).update(parts.iterations)
    if not np.array_equal(params, params_p):
        findings.problem("it declares elementwise = True, but updating slices of the flat arrays "
                         "gives other values than one whole update (as a convnet's threads do): "
                         "it reads across values, so elementwise must be False")


# ----------------------------------------------------------------------------------- metrics


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
    outputs = rng.standard_normal((samples, num_classes)).astype(np.float32)
    targets = rng.integers(0, num_classes, samples)
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


# ---------------------------------------------------------------------------------- datasets


_WATCH = threading.local()
_AUDITING = False


def _refuse_unpickling(event: str, args: tuple) -> None:
    if event == "pickle.find_class" and getattr(_WATCH, "on", False):
        raise RuntimeError("it unpickled a file (pickle can run any code: store arrays with "
                           "np.save and np.load(..., allow_pickle=False))")


@contextlib.contextmanager
def no_unpickling() -> Iterator[None]:
    """Any unpickling while the dataset loads is an error: Python's audit hook sees every
    unpickler look up a class (``pickle.find_class``), whichever module called it. The hook
    stays for the process (audit hooks cannot be removed) and acts only inside this block."""
    global _AUDITING
    if not _AUDITING:
        sys.addaudithook(_refuse_unpickling)
        _AUDITING = True
    _WATCH.on = True
    try:
        yield
    finally:
        _WATCH.on = False


def check_dataset(factory: Callable[..., Any], *, name: str | None = None,
                  **options: Any) -> list[str]:
    """Check the dataset ``factory(**options)`` (what ``register_datasets`` registers): what
    ``load()`` gives (shapes, dtypes, labels within the classes, class names), the same arrays
    on every load (so a seed gives the same validation split), and nothing unpickled."""
    from trainkit.data import DatasetSplits

    findings = Findings("dataset", name_of(factory, name))
    with findings.check("loading it"), no_unpickling():
        splits = factory(**options).load()
        again = factory(**options).load()
    if findings.problems:
        return findings.done()
    if not isinstance(splits, DatasetSplits):
        findings.problem(f"load() gives {type(splits).__name__}, expected trainkit.data."
                         f"DatasetSplits")
        return findings.done()
    for part in ("train", "test"):
        images, labels = getattr(splits, f"{part}_images"), getattr(splits, f"{part}_labels")
        if images.dtype not in (np.uint8, np.float32):
            findings.problem(f"its {part} inputs are {images.dtype}, expected uint8 pixels or "
                             f"float32")
        if len(images) != len(labels):
            findings.problem(f"{len(images)} {part} inputs for {len(labels)} labels")
    if splits.train_images.shape[1:] != splits.test_images.shape[1:]:
        findings.problem(f"train samples are {splits.train_images.shape[1:]}, test samples "
                         f"{splits.test_images.shape[1:]}: expected one shape")
    if len(splits.class_names or ()) != splits.num_classes:
        findings.problem(f"{len(splits.class_names or ())} class names for "
                         f"{splits.num_classes} classes")
    for field in ("train_images", "train_labels", "test_images", "test_labels"):
        if not np.array_equal(getattr(splits, field), getattr(again, field)):
            findings.problem(f"two loads give other {field}: expected the same arrays every time "
                             f"(the same seed must give the same validation split)")
    findings.ran.append("load()")
    return findings.done()
