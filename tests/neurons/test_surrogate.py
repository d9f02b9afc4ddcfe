import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plastix.neurons import SURROGATES, heaviside, make_spike, surrogate_derivative

X = jnp.linspace(-0.3, 0.3, 61)


def analytic(name, x, s):
    """Independent transcription of the documented pseudo-derivatives."""
    x = np.asarray(x, np.float64)
    if name == "sigmoid":
        sig = 1 / (1 + np.exp(-s * x))
        return s * sig * (1 - sig)
    if name == "fast_sigmoid":
        return s / (2 * (1 + s * np.abs(x)) ** 2)
    if name == "triangle":
        return s * np.maximum(0, 1 - s * np.abs(x))
    if name == "arctan":
        return s / 2 / (1 + (math.pi / 2 * s * x) ** 2)
    raise AssertionError(name)


def test_names():
    assert set(SURROGATES) == {"sigmoid", "fast_sigmoid", "triangle", "arctan"}


@pytest.mark.parametrize("name", SURROGATES)
def test_forward_is_heaviside(name):
    spike = make_spike(name, slope=5.0)
    x = jnp.array([-2.0, -1e-6, 0.0, 1e-6, 3.0])
    np.testing.assert_array_equal(spike(x), [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(heaviside(x), [0, 0, 0, 1, 1])
    assert spike(x).dtype == x.dtype


@pytest.mark.parametrize("slope", [1.0, 10.0, 25.0])
@pytest.mark.parametrize("name", SURROGATES)
def test_grad_is_analytic_surrogate(name, slope):
    spike = make_spike(name, slope=slope)
    grads = jax.jit(jax.vmap(jax.grad(spike)))(X)
    np.testing.assert_allclose(grads, analytic(name, X, slope), rtol=2e-4, atol=1e-6)
    direct = jax.jit(surrogate_derivative(name, slope))(X)
    np.testing.assert_allclose(direct, analytic(name, X, slope), rtol=2e-4, atol=1e-6)


@pytest.mark.parametrize("name", SURROGATES)
def test_jvp_and_jit(name):
    spike = make_spike(name, slope=10.0)
    x, dx = jnp.array([-0.05, 0.0, 0.02]), jnp.array([1.0, 2.0, -1.0])
    y, dy = jax.jvp(spike, (x,), (dx,))
    np.testing.assert_array_equal(y, [0, 0, 1])
    np.testing.assert_allclose(dy, analytic(name, x, 10.0) * np.asarray(dx), rtol=1e-5)
    np.testing.assert_allclose(jax.jit(jax.grad(lambda v: spike(v).sum()))(x), analytic(name, x, 10.0), rtol=1e-5)


@pytest.mark.parametrize("name", SURROGATES)
def test_pseudo_derivative_integrates_to_one(name):
    x = np.linspace(-200, 200, 800001)
    area = np.trapezoid(np.asarray(surrogate_derivative(name, 25.0)(jnp.asarray(x))), x)
    assert area == pytest.approx(1.0, abs=2e-3)


def test_chain_rule_through_threshold():
    spike = make_spike("fast_sigmoid", slope=25.0)
    g = jax.jit(jax.grad(lambda u: spike(2.0 * u - 1.0)))(0.5)
    assert g == pytest.approx(2.0 * analytic("fast_sigmoid", 0.0, 25.0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown surrogate 'relu'.*'sigmoid'"):
        make_spike("relu")
    for slope in (0.0, -1.0, float("nan"), "5"):
        with pytest.raises(ValueError, match="slope"):
            make_spike("sigmoid", slope=slope)
