"""What the online modes keep for any spelling of a step, what they refuse, and how (float64, against BPTT)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import plastix
import plastix.online as po
from plastix.neurons import lif_step, make_spike

N, M, T = 4, 3, 12
SPIKE = make_spike("fast_sigmoid", 4.0)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def mse(out, target):
    return jnp.sum((out - target) ** 2)


def data(seed=0):
    k = jax.random.split(jax.random.PRNGKey(seed), 2)
    return jax.random.normal(k[0], (T, M)), jax.random.normal(k[1], (T, N))


def weights(seed, shape):
    return jax.random.normal(jax.random.PRNGKey(seed), shape) / np.sqrt(shape[-1])


def assert_matches_bptt(step, params, s0, modes=("rtrl", "diagonal", "eprop"), atol=1e-8, seed=0):
    xs, ts = data(seed)
    ref_loss, ref = po.value_and_grad(step, mse, "bptt")(params, s0, xs, ts)
    assert any(float(jnp.abs(g).max()) > 0 for g in jax.tree.leaves(ref))
    for mode in modes:
        loss, grads = po.value_and_grad(step, mse, mode)(params, s0, xs, ts)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-10)
        for (path, g), r in zip(jax.tree.flatten_with_path(grads)[0], jax.tree.leaves(ref)):
            np.testing.assert_allclose(g, r, atol=atol, rtol=1e-6, err_msg=f"{mode} {jax.tree_util.keystr(path)}")


DRIVES = {
    "cond": lambda p, x: lax.cond(x.sum() > 0, lambda: p["W"] @ x, lambda: -p["W"] @ x),
    "layernorm": lambda p, x: jax.nn.standardize(p["W"] @ x),
    "softmax": lambda p, x: jax.nn.softmax(p["W"] @ x),
    "conv1d": lambda p, x: jnp.convolve(x, p["k"], mode="full")[:N] + p["W"] @ x,
    "fused-split": lambda p, x: jnp.prod(jnp.stack(jnp.split(p["W2"] @ x, 2)), axis=0),
    "low-rank": lambda p, x: p["A"] @ (p["B"] @ x),
    "inner-fori": lambda p, x: lax.fori_loop(0, 3, lambda i, d: 0.5 * d + jnp.tanh(p["W"] @ x), jnp.zeros(N)),
}


@pytest.mark.parametrize("name", list(DRIVES))
def test_a_feedforward_layer_is_exact_however_its_drive_is_written(name):
    """The issue's reproducer and its relatives: a single leaky layer whose drive mixes neurons within the step
    (normalisation, convolution, fused weights, a low-rank product) or passes through control flow. Theory: each
    neuron's state depends only on its own past, so every mode equals BPTT."""
    drive = DRIVES[name]

    def step(p, h, x):
        h = 0.9 * h + drive(p, x)
        return h, jnp.tanh(h)

    params = {"W": weights(1, (N, M)), "W2": weights(2, (2 * N, M)), "A": weights(3, (N, 2)), "B": weights(4, (2, M)),
              "k": jnp.array([0.5, -1.0, 0.3])}
    assert_matches_bptt(step, params, jnp.zeros(N))


def test_compartments_of_one_neuron_in_one_leaf_are_kept_together():
    """A (n, 2) leaf: soma and dendrite of each neuron, coupled by a 2x2 matrix per neuron."""
    def step(p, s, x):
        drive = jnp.stack([jnp.zeros(N), p["W"] @ x], axis=-1)
        s = s @ p["A"].T + drive
        z = SPIKE(s[:, 0] - 0.5)
        return s.at[:, 0].add(-lax.stop_gradient(z) * 0.5), p["Wo"] @ z

    params = {"W": 2.0 * weights(5, (N, M)), "A": jnp.array([[0.8, 0.3], [0.0, 0.7]]), "Wo": weights(6, (N, N))}
    xs, _ = data()
    _, zs = lax.scan(lambda s, x: (step(params, s, x)[0], (s[:, 0] > 0.5).mean()), jnp.zeros((N, 2)), xs)
    assert 0.01 < float(zs.mean()) < 0.9
    assert_matches_bptt(step, params, jnp.zeros((N, 2)))
    plan = po.plan_traces(step, params, jnp.zeros((N, 2)), xs[0], "diagonal")
    assert {(0, 0), (0, 1)} <= set(plan.blocks)


def test_an_integer_refractory_counter_is_carried_without_a_tangent():
    def step(p, state, x):
        u, count = state
        u = jnp.where(count > 0, 0.0, 0.9 * u + p["W"] @ x)
        fired = u > 0.8
        count = jnp.where(fired, 2, jnp.maximum(count - 1, 0))
        return (u, count), jnp.tanh(u)

    s0 = (jnp.zeros(N), jnp.zeros(N, jnp.int32))
    assert_matches_bptt(step, {"W": 2.0 * weights(7, (N, M))}, s0)
    text = po.describe(step, {"W": weights(7, (N, M))}, s0, jnp.ones(M), "diagonal", file=open("/dev/null", "w"))
    assert "int32 (not differentiated)" in text


def test_dtypes_follow_jax_promotion():
    def step(p, h, x):
        h = 0.9 * h + p["W"] @ x
        return h, jnp.tanh(h)

    assert_matches_bptt(step, {"W": weights(8, (N, M)).astype(jnp.float32)}, jnp.zeros(N), atol=1e-5)
    xs, ts = data()
    loss, grads = po.value_and_grad(step, mse, "diagonal")({"W": weights(8, (N, M)).astype(jnp.bfloat16)},
                                                         jnp.zeros(N, jnp.float32), xs.astype(jnp.float32), ts)
    assert grads["W"].dtype == jnp.bfloat16 and bool(jnp.isfinite(loss))


def two_layers():
    def step(p, s, x):
        u1, u2 = s
        u1, z1 = lif_step({"W": p["W1"]}, u1, x, spike_fn=SPIKE)
        u2 = 0.9 * u2 + jax.nn.standardize(p["W2"] @ z1 + p["b"])
        z2 = SPIKE(u2 - 1.0)
        u2 = u2 - lax.stop_gradient(z2)
        return (u1, u2), p["Wo"] @ z2

    params = {"W1": 3.0 * weights(9, (N, M)), "W2": 3.0 * weights(10, (N + 1, N)), "b": jnp.linspace(-1, 1, N + 1),
              "Wo": weights(11, (N, N + 1))}
    return step, params, (jnp.zeros(N), jnp.zeros(N + 1))


def test_cross_layer_paths_are_left_to_the_learning_signal_and_described():
    """W1 reaches the second layer only through the first layer's neurons: a cross-layer path, not traced in
    diagonal/eprop (by the mode's definition); W2 and the bias b, whose paths run through a normalisation across
    the second layer's neurons, keep their traces and their exact gradients."""
    step, params, s0 = two_layers()
    x = jnp.ones(M)
    for mode in ("diagonal", "eprop"):
        plan = po.plan_traces(step, params, s0, x, mode)
        assert set(plan.blocks) == {(0, 0), (1, 1), (1, 3)}, plan.blocks  # W1, W2, b (Wo is index 2)
    assert (1, 0) in po.plan_traces(step, params, s0, x, "rtrl").blocks
    assert_matches_bptt(step, params, s0, modes=("rtrl",))
    xs, ts = data(3)
    _, ref = po.value_and_grad(step, mse, "bptt")(params, s0, xs, ts)
    _, got = po.value_and_grad(step, mse, "diagonal")(params, s0, xs, ts)
    for name in ("W2", "b", "Wo"):
        np.testing.assert_allclose(got[name], ref[name], atol=1e-8, rtol=1e-6, err_msg=name)


def test_drop_is_an_explicit_reported_opt_in():
    step, params, s0 = two_layers()
    xs, ts = data(3)
    plan = po.plan_traces(step, params, s0, xs[0], "diagonal", drop=["W2"])
    assert all(p != 1 for _, p in plan.blocks) and plan.dropped == frozenset({1})  # W2
    text = po.describe(step, params, s0, xs[0], "diagonal", drop=["W2"], file=open("/dev/null", "w"))
    assert "W2: no trace, dropped by request" in text
    _, ref = po.value_and_grad(step, mse, "bptt")(params, s0, xs, ts)
    _, got = po.value_and_grad(step, mse, "diagonal", drop=["['W2']"])(params, s0, xs, ts)
    assert not np.allclose(got["W2"], ref["W2"], atol=1e-6)
    with pytest.raises(ValueError, match=r"drop: no parameter named 'W3'; the parameters are 'W1', 'W2', 'Wo', 'b'"):
        po.value_and_grad(step, mse, "diagonal", drop=["W3"])(params, s0, xs, ts)


def test_a_trace_above_max_trace_size_is_refused_before_running_with_the_ways_out():
    def step(p, h, x):
        h = 0.9 * h + jax.nn.standardize(p["W"] @ x)
        return h, h

    xs, ts = data()
    message = (r"mode 'diagonal' needs traces of 48 numbers per example, more than max_trace_size=20 "
               r"\(largest blocks: state <state> / parameter 'W': 48 \(dense\)\); ways out: a smaller model, "
               r"mode 'bptt' \(no traces\), drop=\['W'\]")
    with pytest.raises(ValueError, match=message):
        po.value_and_grad(step, mse, "diagonal", max_trace_size=20)({"W": weights(1, (N, M))}, jnp.zeros(N), xs, ts)
    assert po.value_and_grad(step, mse, "diagonal", max_trace_size=48)({"W": weights(1, (N, M))}, jnp.zeros(N),
                                                                       xs, ts)[0] > 0


def test_misuse_gets_one_line_errors():
    params = {"W": weights(1, (N, M))}
    step = lambda p, h, x: (0.9 * h + p["W"] @ x, h)
    xs, ts = data()
    vg = po.value_and_grad(step, mse)
    cases = [
        (po.value_and_grad(lambda p, h, x: 0.9 * h + p["W"] @ x, mse), (xs, ts),
         r"step\(params, state, x\) must return a pair \(new_state, out\), got one value"),
        (vg, (xs, ts[:5]), r"xs and targets must have the same number of time steps, got xs: 12, targets: 5"),
        (vg, (xs[:0], ts[:0]), r"xs has no time steps \(T = 0\)"),
        (vg, (jnp.float64(1.0), ts), r"xs has shape \(\): expected a leading time axis \(T, \.\.\.\)"),
        (po.value_and_grad(lambda p, h, x: (h[:2], h), mse), (xs, ts), r"state leaf <state>: step returns shape"),
        (vg, (xs[:, :2], ts), r"step\(params, state, x\) failed on one step of xs"),
    ]
    for fn, (a, b), message in cases:
        with pytest.raises(ValueError, match=message):
            fn(params, jnp.zeros(N), a, b)
    batched = po.value_and_grad(step, mse, batched=True)
    with pytest.raises(ValueError, match=r"batched=True needs one batch size .*state0: 3, xs: 2"):
        batched(params, jnp.zeros((3, N)), jnp.ones((T, 2, M)), jnp.ones((T, 2, N)))
    with pytest.raises(ValueError, match="unknown mode 'diag'"):
        po.describe(step, params, jnp.zeros(N), xs[0], "diag")


def test_import_plastix_exposes_the_subpackages():
    assert plastix.online.value_and_grad is po.value_and_grad
    assert callable(plastix.neurons.lif_step) and callable(plastix.data.load_digits)
