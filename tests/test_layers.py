"""Layers: float64 finite-difference gradient checks, float32 in normal use."""

from __future__ import annotations

import numpy as np
import pytest

from trainkit.nn import Linear, ReLU, Sequential, Sigmoid, Tanh


def to_float64(module) -> None:
    """Swap a module's parameters for float64 copies so the check runs in double precision."""
    for p in module.parameters():
        p.data = p.data.astype(np.float64)
        p.grad = np.zeros_like(p.data)


def numeric_grad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    grad = np.zeros_like(x)
    flat, gflat = x.reshape(-1), grad.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + eps
        up = f()
        flat[i] = old - eps
        down = f()
        flat[i] = old
        gflat[i] = (up - down) / (2 * eps)
    return grad


def check_module(module, x: np.ndarray, rng) -> None:
    """d(sum(forward(x) * w))/d(x and every parameter) against central differences."""
    weights = rng.normal(size=module.forward(x.copy()).shape)

    def objective() -> float:
        return float(np.sum(module.forward(x.copy()) * weights))

    module.forward(x.copy())
    grad_x = module.backward(weights.copy())
    analytic = {id(p): p.grad.copy() for p in module.parameters()}
    if grad_x is not None:
        np.testing.assert_allclose(grad_x, numeric_grad(objective, x), rtol=1e-6, atol=1e-8)
    for p in module.parameters():
        np.testing.assert_allclose(analytic[id(p)], numeric_grad(objective, p.data),
                                   rtol=1e-6, atol=1e-8, err_msg=p.name)


@pytest.mark.parametrize("layer", [Sigmoid, ReLU, Tanh])
def test_activation_gradients(layer):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5))
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU away from its kink
    check_module(layer(), x, rng)


def test_linear_gradients():
    rng = np.random.default_rng(1)
    layer = Linear(5, 3, rng)
    to_float64(layer)
    check_module(layer, rng.normal(size=(4, 5)), rng)


def test_mlp_gradients_through_all_layers():
    rng = np.random.default_rng(2)
    model = Sequential(Linear(6, 5, rng), Tanh(), Linear(5, 4, rng), Sigmoid(), Linear(4, 3, rng))
    to_float64(model)
    check_module(model, rng.normal(size=(3, 6)), rng)


def test_first_layer_skips_the_input_gradient():
    rng = np.random.default_rng(3)
    layer = Linear(4, 2, rng, input_grad=False)
    layer.forward(np.ones((2, 4), np.float32))
    assert layer.backward(np.ones((2, 2), np.float32)) is None
    assert layer.weight.grad.any()


def test_sequential_parameters_are_views_of_one_flat_float32_buffer():
    rng = np.random.default_rng(4)
    model = Sequential(Linear(784, 100, rng), Sigmoid(), Linear(100, 10, rng))
    assert model.params.dtype == np.float32 and model.params.size == 79_510
    model.params[:] = 0.5
    assert all((p.data == 0.5).all() for p in model.parameters())
    x = np.ones((8, 784), np.float32)
    out = model.forward(x)
    model.backward(np.ones_like(out))
    assert out.dtype == np.float32 and model.grads.dtype == np.float32
    assert model.grads.any()
    state = model.state_dict()
    assert sorted(state) == ["0.bias", "0.weight", "2.bias", "2.weight"]
    with pytest.raises(ValueError, match="shape"):
        model.load_state_dict({**state, "0.weight": np.zeros((3, 3), np.float32)})


def test_sigmoid_is_stable_for_huge_inputs():
    x = np.array([[-1000.0, 0.0, 1000.0]], dtype=np.float32)
    out = Sigmoid().forward(x.copy())
    np.testing.assert_allclose(out, [[0.0, 0.5, 1.0]])
    assert np.isfinite(out).all()


def test_the_mlps_activation_choices_are_the_activation_layers():
    # plugins/models.py spells the choices out (importing trainkit.nn there would load numpy at
    # start-up); this keeps the two lists one
    import typing

    from trainkit.nn.layers import ACTIVATIONS
    from trainkit.plugin.options import option_specs
    from trainkit.plugins.models import MLP

    spec = next(s for s in option_specs(MLP) if s.name == "activation")
    assert spec.choices == tuple(ACTIVATIONS)
    assert typing.get_args(typing.get_type_hints(MLP.__init__)["activation"]) == tuple(ACTIVATIONS)
