"""``check_layer``: a layer against finite differences, in float32, through a checkpoint file and on
a convnet's threads."""

from __future__ import annotations

import json
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
    compare_gradient,
    largest,
    name_of,
    numeric_gradient,
)


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
    from trainkit.nn import ReLU, Sequential

    x = np.random.default_rng(seed + 1).standard_normal((8, *input_shape)).astype(np.float32)
    results = {}
    for threads in (1, 2):
        for fused in (True, False):
            results[threads, fused] = split_step(  # split even this small batch's work
                lambda: Sequential(build(), ReLU(), input_shape=input_shape), threads, x, fused,
                split_small=True)
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


def split_step(model_factory, threads: int, x: np.ndarray, fused: bool = True,
               split_small: bool = False):
    """One forward and backward pass on ``threads`` threads, as a convnet's run makes it."""
    from trainkit.nn import schedule

    with schedule.planned(threads, split_batch=True, split_small=split_small):
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

