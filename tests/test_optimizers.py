"""Optimizers: the first steps against their closed forms, in place and in float32."""

from __future__ import annotations

import math

import numpy as np
import pytest

from trainkit.errors import ConfigError
from trainkit.plugins.optimizers import SGD, Adam, AdamW, Momentum


def bound(optimizer, p0=(1.0, -2.0, 3.0), g=(0.5, -0.25, 2.0)):
    params = np.array(p0, dtype=np.float32)
    grads = np.array(g, dtype=np.float32)
    optimizer.bind(params, grads)
    return params, grads


def test_sgd_step():
    opt = SGD(lr=0.1)
    params, grads = bound(opt)
    expected = params - 0.1 * grads
    opt.step()
    np.testing.assert_allclose(params, expected, rtol=1e-6)


@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_first_three_steps(nesterov):
    opt = Momentum(lr=0.1, momentum=0.9, nesterov=nesterov)
    params, grads = bound(opt)
    g = grads.astype(np.float64)
    expected = params.astype(np.float64)
    v = np.zeros(3)
    for _ in range(3):  # constant gradient: v_t = sum of 0.9^k g
        v = 0.9 * v + g
        expected -= 0.1 * (g + 0.9 * v if nesterov else v)
        opt.step()
    np.testing.assert_allclose(params, expected, rtol=1e-5)


def test_adam_steps_are_lr_times_sign_for_a_constant_gradient():
    # With bias correction and a constant g: m_hat = g and v_hat = g^2 exactly, so each step is
    # lr * g / (|g| + eps). The notebook's beta1=0 hid a missing momentum term behind this, so the
    # state is checked too.
    opt = Adam(lr=0.01)
    params, grads = bound(opt)
    start = params.copy()
    for t in range(1, 4):
        opt.step()
        step = 0.01 * grads / (np.abs(grads) + 1e-8)
        np.testing.assert_allclose(params, start - t * step, rtol=1e-5)
        # the moments m = (1 - 0.9^t) g and v = (1 - 0.999^t) g^2, kept without their (1 - b)
        np.testing.assert_allclose(opt.m_sum * 0.1, (1 - 0.9**t) * grads, rtol=1e-5)
        np.testing.assert_allclose(opt.v_sum * 0.001, (1 - 0.999**t) * grads**2, rtol=1e-4)


def test_adam_defaults_are_the_papers():
    opt = Adam()
    assert (opt.lr, opt.beta1, opt.beta2, opt.eps) == (1e-3, 0.9, 0.999, 1e-8)


def test_adam_second_step_with_a_changing_gradient():
    opt = Adam(lr=0.1, beta1=0.9, beta2=0.999, eps=1e-8)
    params, grads = bound(opt, p0=(0.0,), g=(1.0,))
    opt.step()
    grads[:] = 3.0
    opt.step()
    m = 0.9 * 0.1 * 1 + 0.1 * 3
    v = 0.999 * 0.001 * 1 + 0.001 * 9
    m_hat, v_hat = m / (1 - 0.9**2), v / (1 - 0.999**2)
    expected = -0.1 - 0.1 * m_hat / (math.sqrt(v_hat) + 1e-8)
    assert params[0] == pytest.approx(expected, rel=1e-5)


def test_adamw_decays_weights_before_the_adam_step():
    opt = AdamW(lr=0.01, weight_decay=0.1)
    params, grads = bound(opt)
    start = params.astype(np.float64)
    opt.step()
    expected = start * (1 - 0.01 * 0.1) - 0.01 * np.sign(grads)
    np.testing.assert_allclose(params, expected, rtol=1e-5)


@pytest.mark.parametrize("opt_cls", [SGD, Momentum, Adam, AdamW])
def test_steps_stay_float32_and_in_place(opt_cls):
    opt = opt_cls()
    params, grads = bound(opt)
    before = params.__array_interface__["data"][0]
    for _ in range(3):
        opt.step()
    assert params.dtype == np.float32
    assert params.__array_interface__["data"][0] == before
    for value in opt.state_dict().values():
        if isinstance(value, np.ndarray):
            assert value.dtype == np.float32


@pytest.mark.parametrize("kwargs,option", [({"lr": -1}, "lr"), ({"lr": 0}, "lr"),
                                            ({"beta1": 1.0}, "beta1"), ({"eps": 0}, "eps")])
def test_bad_hyperparameters_name_the_option(kwargs, option):
    with pytest.raises(ConfigError) as info:
        Adam(**kwargs)
    assert info.value.option == option


def test_state_dict_round_trip_continues_identically():
    a, b = Adam(lr=0.01), Adam(lr=0.01)
    pa, ga = bound(a)
    pb, gb = bound(b)
    a.step()
    b.load_state_dict(a.state_dict())
    pb[:] = pa
    a.step()
    b.step()
    np.testing.assert_array_equal(pa, pb)


def test_a_state_without_the_optimizers_buffers_is_refused_by_name():
    # e.g. a checkpoint whose Adam state still holds the scaled moments m and v
    opt = Adam()
    bound(opt)
    state = {"iterations": 3, "lr": 1e-3, "m": np.zeros(3, np.float32), "v": np.zeros(3, np.float32)}
    with pytest.raises(ValueError, match="Adam needs optimizer state m_sum, v_sum, the checkpoint "
                                         "holds m, v"):
        opt.load_state_dict(state)
    assert opt.iterations == 0


def test_state_dict_round_trip_restores_the_updates_exactly():
    a, b = Adam(lr=0.01), Adam(lr=0.01)
    params_a, _ = bound(a)
    a.step()
    params_b, _ = bound(b)
    params_b[...] = params_a
    b.load_state_dict(a.state_dict())
    a.step()
    b.step()
    np.testing.assert_array_equal(params_a, params_b)


@pytest.mark.parametrize("opt_cls,kwargs", [(SGD, {}), (Momentum, {"nesterov": True}),
                                            (Adam, {}), (AdamW, {})])
def test_a_convnets_threads_split_the_update_without_changing_a_bit(opt_cls, kwargs,
                                                                     monkeypatch):
    from trainkit.nn import schedule

    monkeypatch.setattr(schedule, "MIN_VALUES", 0)
    rng = np.random.default_rng(0)
    start, gradients = rng.normal(size=1000).astype(np.float32), [
        rng.normal(size=1000).astype(np.float32) for _ in range(4)]

    def train(threads):
        with schedule.planned(threads, split_batch=True):
            opt = opt_cls(**kwargs)
            params, grads = start.copy(), np.empty_like(start)
            opt.bind(params, grads)
            for step, g in enumerate(gradients):
                grads[...] = g
                opt.lr *= 0.5 if step == 2 else 1.0  # as an lr schedule changes it
                opt.step()
            return params, opt.state_dict()

    (one, one_state), (three, three_state) = train(1), train(3)
    np.testing.assert_array_equal(one, three)
    assert one_state.keys() == three_state.keys()
    for name, value in one_state.items():
        np.testing.assert_array_equal(value, three_state[name])
    assert not np.array_equal(one, start)
