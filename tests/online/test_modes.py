"""Modes as data: the registry, its errors, and a new mode added as one entry (docs/architecture.md)."""

import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plastix.online as po


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def test_registry_holds_the_four_modes_in_order():
    assert list(po.MODES) == ["bptt", "rtrl", "diagonal", "eprop"]
    assert [m.online for m in po.MODES.values()] == [False, True, True, True]
    assert [m.exact for m in po.MODES.values()] == [True, True, False, False]
    assert all(isinstance(m, po.Mode) and m.summary for m in po.MODES.values())


@pytest.mark.parametrize("bad", ["diag", "", None, 3])
def test_unknown_mode_is_one_line(bad):
    with pytest.raises(ValueError, match=r"unknown mode .*; expected one of bptt, rtrl, diagonal, eprop$"):
        po.value_and_grad(lambda p, s, x: (s, s), lambda o, t: jnp.sum(o), bad)


def test_online_entry_points_refuse_bptt_by_name_and_by_record():
    step, loss = (lambda p, s, x: (s, s)), (lambda o, t: jnp.sum(o))
    for mode in ("bptt", po.MODES["bptt"]):
        with pytest.raises(ValueError, match="Stream: mode 'bptt' keeps no traces"):
            po.Stream(step, loss, mode)
        with pytest.raises(ValueError, match="Learner: mode 'bptt' keeps no traces"):
            po.Learner(step, loss, None, mode)


def memoryless(params, state, x):
    """A step whose new state does not depend on the old one: every trace is just F_t."""
    v = jnp.tanh(params["W"] @ x + params["b"])
    return v, params["V"] @ v


def mse(out, target):
    return 0.5 * jnp.sum((out - target) ** 2)


def no_recurrence(jac):
    return [[None] * len(jac.H) for _ in jac.H]


def test_a_new_mode_is_one_entry(monkeypatch):
    """A mode that keeps no part of H, added to the registry, runs through value_and_grad, Stream and describe;
    on a memoryless step its definition is exact, so it equals BPTT."""
    monkeypatch.setitem(po.MODES, "instant", po.Mode("instant", no_recurrence, layered=True, exact=False,
                                                     summary="no recurrence in the traces (G_t = F_t)"))
    k = jax.random.split(jax.random.PRNGKey(0), 4)
    params = {"W": jax.random.normal(k[0], (5, 3)), "b": jnp.zeros(5), "V": jax.random.normal(k[1], (2, 5))}
    xs, ts = jax.random.normal(k[2], (7, 3)), jax.random.normal(k[3], (7, 2))
    s0 = jnp.zeros(5)
    ref_loss, ref = po.value_and_grad(memoryless, mse, "bptt")(params, s0, xs, ts)
    loss, grads = po.value_and_grad(memoryless, mse, "instant", chunk=3)(params, s0, xs, ts)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    for name in params:
        np.testing.assert_allclose(grads[name], ref[name], rtol=1e-10, atol=1e-12)
    stream = po.Stream(memoryless, mse, "instant")
    carry = stream.update(params, stream.init(params, s0, xs[0], ts[0]), xs, ts)
    np.testing.assert_allclose(carry.grads["W"], ref["W"], rtol=1e-10)
    text = po.describe(memoryless, params, s0, xs[0], "instant", file=io.StringIO())
    assert "traces in mode 'instant'" in text


def test_learner_and_stream_are_pure_records():
    """init/update pairs: nothing is set on the object, a carry from one instance serves an equal one."""
    import dataclasses

    import optax

    step = lambda p, s, x: (0.9 * s + p["W"] @ x, s)
    learner = po.Learner(step, mse, optax.sgd(0.1), "diagonal")
    with pytest.raises(dataclasses.FrozenInstanceError):
        learner.mode = "eprop"
    params = {"W": jnp.ones((4, 3))}
    carry = learner.init(params, jnp.zeros((2, 4)), jnp.ones((2, 3)))
    again = po.Learner(step, mse, optax.sgd(0.1), "diagonal")
    carry, metrics = again.update(carry, jnp.ones((2, 3)), jnp.zeros((2, 4)))
    assert metrics["out"].shape == (2, 4)
    with pytest.raises(TypeError, match="carry must be the LearnerState returned by Learner.init"):
        learner.update(None, jnp.ones((2, 3)), jnp.zeros((2, 4)))
