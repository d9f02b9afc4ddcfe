"""Online gradients against BPTT (jax.value_and_grad through lax.scan), in float64, with live spikes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import plastix.online as po
from plastix.neurons import lif_step, make_spike

T, N, M, C = 24, 7, 5, 3
SPIKE = make_spike("fast_sigmoid", 4.0)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def mse(out, target):
    return jnp.sum((out - target) ** 2)


def data(seed=0, p_in=0.4, batch=None):
    k = jax.random.split(jax.random.PRNGKey(seed), 2)
    lead = (T,) if batch is None else (T, batch)
    xs = (jax.random.uniform(k[0], lead + (M,)) < p_in).astype(jnp.float64)
    return xs, jax.random.normal(k[1], lead + (C,))


def weights(seed, *shapes, scale=1.0):
    keys = jax.random.split(jax.random.PRNGKey(100 + seed), len(shapes))
    return [scale * jax.random.normal(k, s) / np.sqrt(s[-1]) for k, s in zip(keys, shapes)]


def spike_rate(step, params, state0, xs, pick):
    def body(state, x):
        state, _ = step(params, state, x)
        return state, pick(state)

    _, zs = lax.scan(body, state0, xs)
    return float(jnp.mean(zs))


def assert_close(got, ref, atol=1e-6):
    for path, g in jax.tree.flatten_with_path(got)[0]:
        r = ref
        for key in path:
            r = r[key.key if hasattr(key, "key") else key.idx]
        np.testing.assert_allclose(g, r, atol=atol, rtol=1e-6, err_msg=jax.tree_util.keystr(path))


def cosine(a, b):
    a, b = jnp.ravel(a), jnp.ravel(b)
    return float(jnp.vdot(a, b) / (jnp.linalg.norm(a) * jnp.linalg.norm(b)))


# ----------------------------------------------------------------------------- feed-forward models
def lif_model(reset, detach, trainable):
    def step(params, u, x):
        beta = params["beta"] if trainable else 0.9
        threshold = params["threshold"] if trainable else 1.0
        u, z = lif_step(params, u, x, beta=beta, threshold=threshold, reset=reset, spike_fn=SPIKE,
                        detach_reset=detach)
        return u, params["Wo"] @ z

    W, Wo = weights(0, (N, M), (C, N), scale=2.5)
    params = {"W": W, "Wo": Wo}
    if trainable:
        params |= {"beta": jnp.asarray(0.85), "threshold": jnp.linspace(0.8, 1.2, N)}
    return step, params, jnp.zeros(N)


def lif_spike_rate(step, params, u0, xs):
    """The spike rate of :func:`lif_model`'s neurons over ``xs`` (spikes are not part of its state)."""
    threshold = params.get("threshold", 1.0)

    def body(u, x):
        z = (params.get("beta", 0.9) * u + params["W"] @ x > threshold).astype(jnp.float64)
        return step(params, u, x)[0], z

    return float(jnp.mean(lax.scan(body, u0, xs)[1]))


@pytest.mark.parametrize("mode", ["diagonal", "eprop", "rtrl"])
@pytest.mark.parametrize("reset", ["subtract", "zero"])
@pytest.mark.parametrize("detach", [True, False])
@pytest.mark.parametrize("trainable", [False, True])
def test_feedforward_lif_is_exact(mode, reset, detach, trainable):
    step, params, u0 = lif_model(reset, detach, trainable)
    xs, ts = data()
    rate = lif_spike_rate(step, params, u0, xs)
    assert 0.01 <= rate <= 0.6, rate
    ref_loss, ref = po.value_and_grad(step, mse, "bptt")(params, u0, xs, ts)
    loss, grads = jax.jit(po.value_and_grad(step, mse, mode))(params, u0, xs, ts)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
    assert_close(grads, ref)


# ----------------------------------------------------------------------------------- recurrent LIF
def rlif_model():
    def step(params, state, x):
        u, z = state
        u = 0.9 * u + params["W"] @ x + params["R"] @ z
        z = SPIKE(u - 1.0)
        u = u - lax.stop_gradient(z)
        return (u, z), params["Wo"] @ z

    W, R, Wo = weights(1, (N, M), (N, N), (C, N), scale=2.5)
    return step, {"W": W, "R": 0.5 * R, "Wo": Wo}, (jnp.zeros(N), jnp.zeros(N))


def test_recurrent_lif_rtrl_is_exact_and_approximations_are_reported():
    step, params, s0 = rlif_model()
    xs, ts = data(1)
    rate = spike_rate(step, params, s0, xs, lambda s: s[1])
    assert 0.01 <= rate <= 0.6, rate
    _, ref = po.value_and_grad(step, mse, "bptt")(params, s0, xs, ts)
    _, exact = jax.jit(po.value_and_grad(step, mse, "rtrl"))(params, s0, xs, ts)
    assert_close(exact, ref)
    for mode in ("diagonal", "eprop"):
        _, approx = jax.jit(po.value_and_grad(step, mse, mode))(params, s0, xs, ts)
        np.testing.assert_allclose(approx["Wo"], ref["Wo"], atol=1e-6)
        sims = {k: cosine(approx[k], ref[k]) for k in ("W", "R")}
        print(f"recurrent LIF, {mode}: cosine to BPTT {sims}")
        assert all(0.0 < s < 1.0 - 1e-6 for s in sims.values()), sims


def test_linear_recurrence_matches_hand_computed_truncations():
    """h_t = (λI + R) h_{t-1} + W x_t, loss c·h_T only.

    Exact: dL/dW = Σ_t (Aᵀ)^{T-t} c x_tᵀ with A = λI + R. The online rule differentiates the last step
    exactly (dℓ_T/dθ = l·(∂out_T/∂θ + ∂out_T/∂h_{T-1}·G_{T-1})) and carries G with the kept part of H. With R
    zero on its diagonal, D-RTRL and e-prop keep only λI, so both give
    c x_Tᵀ + Σ_{t<T} λ^{T-1-t} (Aᵀc) x_tᵀ, whatever R is.
    """
    lam, steps = 0.8, 6
    R = jnp.array([[0.0, 0.3, -0.2], [0.1, 0.0, 0.4], [-0.3, 0.2, 0.0]])
    W = jnp.array([[0.5, -0.1], [0.2, 0.3], [-0.4, 0.6]])
    c = jnp.array([1.0, -2.0, 0.5])
    xs = jax.random.normal(jax.random.PRNGKey(3), (steps, 2))
    ts = jnp.concatenate([jnp.zeros(steps - 1), jnp.ones(1)])

    def step(params, h, x):
        h = lam * h + params["R"] @ h + params["W"] @ x
        return h, c @ h

    loss = lambda out, t: out * t
    params = {"W": W, "R": R}
    A = lam * jnp.eye(3) + R
    exact = sum(jnp.outer(jnp.linalg.matrix_power(A.T, steps - 1 - t) @ c, xs[t]) for t in range(steps))
    truncated = jnp.outer(c, xs[-1]) + sum(lam ** (steps - 2 - t) * jnp.outer(A.T @ c, xs[t])
                                           for t in range(steps - 1))
    _, ref = po.value_and_grad(step, loss, "bptt")(params, jnp.zeros(3), xs, ts)
    np.testing.assert_allclose(ref["W"], exact, atol=1e-12)
    _, got = po.value_and_grad(step, loss, "rtrl")(params, jnp.zeros(3), xs, ts)
    np.testing.assert_allclose(got["W"], exact, atol=1e-12)
    for mode in ("diagonal", "eprop"):
        _, got = po.value_and_grad(step, loss, mode)(params, jnp.zeros(3), xs, ts)
        np.testing.assert_allclose(got["W"], truncated, atol=1e-12)
        np.testing.assert_allclose(cosine(got["W"], ref["W"]), cosine(truncated, exact), atol=1e-12)


# ------------------------------------------------------------------------------------- two layers
def two_layer_model():
    def step(params, state, x):
        u1, u2 = state
        u1, z1 = lif_step({"W": params["W1"]}, u1, x, spike_fn=SPIKE)
        u2, z2 = lif_step({"W": params["W2"]}, u2, z1, beta=0.8, spike_fn=SPIKE)
        return (u1, u2), params["Wo"] @ z2

    W1, W2, Wo = weights(2, (N, M), (N, N), (C, N), scale=3.0)
    return step, {"W1": W1, "W2": W2, "Wo": Wo}, (jnp.zeros(N), jnp.zeros(N))


def test_two_layer_stack():
    step, params, s0 = two_layer_model()
    xs, ts = data(2, p_in=0.5)
    threshold = 1.0

    def body(state, x):
        new, _ = step(params, state, x)
        return new, (0.9 * state[0] + params["W1"] @ x > threshold)

    _, z1 = lax.scan(body, s0, xs)
    assert 0.01 <= float(z1.mean()) <= 0.6
    _, ref = po.value_and_grad(step, mse, "bptt")(params, s0, xs, ts)
    assert float(jnp.abs(ref["W1"]).max()) > 0, "no gradient reaches the first layer"
    _, exact = jax.jit(po.value_and_grad(step, mse, "rtrl"))(params, s0, xs, ts)
    assert_close(exact, ref)
    _, diag = jax.jit(po.value_and_grad(step, mse, "diagonal"))(params, s0, xs, ts)
    assert_close({"W2": diag["W2"], "Wo": diag["Wo"]}, {"W2": ref["W2"], "Wo": ref["Wo"]})
    sim = cosine(diag["W1"], ref["W1"])
    print(f"two-layer LIF, diagonal: first-layer cosine to BPTT {sim:.4f}")
    assert 0.0 < sim < 1.0


# ------------------------------------------------------------------------------------------- batched
@pytest.mark.parametrize("model, mode", [("rlif", "diagonal"), ("rlif", "eprop"), ("rlif", "rtrl"), ("rlif", "bptt"),
                                         ("lif", "diagonal")])
def test_batched_equals_vmap_then_sum(model, mode):
    """``batched=True`` contracts each step's gradient over the batch; it must equal vmap + sum exactly."""
    step, params, s0 = rlif_model() if model == "rlif" else lif_model("zero", False, True)
    batch = 3
    xs, ts = data(2, batch=batch)
    s0b = jax.tree.map(lambda v: jnp.broadcast_to(v, (batch,) + v.shape), s0)
    pick = (lambda s: s[1]) if model == "rlif" else (lambda u: u)
    if model == "rlif":
        rate = float(np.mean([spike_rate(step, params, s0, xs[:, b], pick) for b in range(batch)]))
        assert 0.01 <= rate <= 0.6, rate
    feedback = po.random_feedback(jax.random.PRNGKey(3), params, lambda path: "Wo" in path) if model == "lif" else None
    per_example = jax.vmap(po.value_and_grad(step, mse, mode, feedback=feedback), in_axes=(None, 0, 1, 1))
    ref_loss, ref = jax.jit(per_example)(params, s0b, xs, ts)
    loss, grads = jax.jit(po.value_and_grad(step, mse, mode, feedback=feedback, batched=True))(params, s0b, xs, ts)
    np.testing.assert_allclose(loss, jnp.sum(ref_loss), rtol=1e-12)
    assert_close(grads, jax.tree.map(lambda g: jnp.sum(g, axis=0), ref), atol=1e-10)


def single_state_rlif(skip: bool = False):
    """Recurrent LIF with one state per neuron; ``skip`` adds a readout path from W that bypasses the state."""
    def step(params, v, x):
        z = SPIKE(v - 1.0)
        v = 0.9 * (v - lax.stop_gradient(z)) + params["W"] @ x + params["R"] @ z
        out = params["Wo"] @ SPIKE(v - 1.0)
        return v, out + params["W"][:C] @ x if skip else out

    W, R, Wo = weights(1, (N, M), (N, N), (C, N), scale=2.5)
    return step, {"W": W, "R": 0.5 * R, "Wo": Wo}, jnp.zeros(N)


@pytest.mark.parametrize("mode, skip, feedback", [("diagonal", False, False), ("eprop", False, False),
                                                  ("diagonal", True, False), ("diagonal", False, True)])
def test_chunked_traces_equal_step_by_step(mode, skip, feedback):
    """Chunks of at most 5 over 24 steps (5 chunks of 5, the last one masking a step the previous one took) and
    of 6 (4 chunks, no mask) give the step-by-step result; the plan finds
    the per-neuron blocks (W and R of the single-state recurrent LIF) and folds their within-step gradient into
    the chunk, also with a readout path that bypasses the state (``skip``); fixed feedback for W keeps W's exact
    within-step gradient out of the chunk."""
    step, params, v0 = single_state_rlif(skip)
    xs, ts = data(3, batch=2)
    rate = float(np.mean([spike_rate(step, params, v0, xs[:, b], lambda v: v > 1.0) for b in range(2)]))
    assert 0.01 <= rate <= 0.6, rate
    plan = po.plan_traces(step, params, v0, xs[0, 0], mode)
    assert len(plan.chunks) == 2, plan.chunks
    assert plan.folds == frozenset(p for _, p in plan.chunks)
    fb = po.random_feedback(jax.random.PRNGKey(0), params, lambda path: "W'" in path) if feedback else None
    v0b = jnp.zeros((2, N))
    vg = lambda chunk: jax.jit(po.value_and_grad(step, mse, mode, batched=True, chunk=chunk, feedback=fb))
    ref_loss, ref = vg(1)(params, v0b, xs, ts)
    for chunk in (5, 6) if mode == "diagonal" and not (skip or feedback) else (5,):
        loss, grads = vg(chunk)(params, v0b, xs, ts)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
        assert_close(grads, ref, atol=1e-10)
    if not feedback:
        _, exact = po.value_and_grad(step, mse, "bptt", batched=True)(params, v0b, xs, ts)
        np.testing.assert_allclose(grads["Wo"], exact["Wo"], atol=1e-8)


# -------------------------------------------------------------------------------------- streamed segments
def run_stream(stream, params, s0, xs, ts, lengths):
    update = jax.jit(stream.update)
    carry = stream.init(params, s0, xs[0], ts[0])
    start = 0
    for k in lengths:
        carry = update(params, carry, xs[start:start + k], ts[start:start + k])
        start += k
    assert start == xs.shape[0]
    return carry


@pytest.mark.parametrize("mode", ["diagonal", "eprop", "rtrl"])
def test_stream_in_segments_equals_bptt(mode):
    """A feed-forward LIF (exact in every mode) fed in segments of 7, 1 and 16 steps with chunks of 4 (a masked
    last window, a single step, several chunks) gives BPTT's loss and gradient over all 24 steps."""
    step, params, u0 = lif_model("subtract", False, True)
    xs, ts = data(4)
    rate = lif_spike_rate(step, params, u0, xs)
    assert 0.01 <= rate <= 0.6, rate
    ref_loss, ref = po.value_and_grad(step, mse, "bptt")(params, u0, xs, ts)
    carry = run_stream(po.Stream(step, mse, mode, chunk=4), params, u0, xs, ts, (7, 1, 16))
    np.testing.assert_allclose(carry.total, ref_loss, rtol=1e-12)
    assert_close(carry.grads, ref)
    np.testing.assert_allclose(carry.state[0], lax.scan(lambda u, x: (step(params, u, x)[0], None), u0, xs)[0],
                               atol=1e-12)


@pytest.mark.parametrize("mode", ["diagonal", "eprop"])
def test_stream_of_a_recurrent_batch_equals_one_pass(mode):
    """Segments of 11 and 13 steps of a recurrent LIF batch (chunked blocks W and R, chunks of 5) resume the
    traces exactly: the result equals one step-by-step pass over the 24 steps."""
    step, params, v0 = single_state_rlif()
    xs, ts = data(5, batch=2)
    rate = float(np.mean([spike_rate(step, params, v0, xs[:, b], lambda v: v > 1.0) for b in range(2)]))
    assert 0.01 <= rate <= 0.6, rate
    v0b = jnp.zeros((2, N))
    ref_loss, ref = jax.jit(po.value_and_grad(step, mse, mode, batched=True, chunk=1))(params, v0b, xs, ts)
    carry = run_stream(po.Stream(step, mse, mode, batched=True, chunk=5), params, v0b, xs, ts, (11, 13))
    np.testing.assert_allclose(carry.total, ref_loss, rtol=1e-12)
    assert_close(carry.grads, ref, atol=1e-10)


def test_stream_errors_are_named():
    step, params, u0 = lif_model("zero", True, False)
    with pytest.raises(ValueError, match="needs the whole sequence"):
        po.Stream(step, mse, "bptt")
    with pytest.raises(ValueError, match="chunk must be a positive"):
        po.Stream(step, mse, chunk=0)
    xs, ts = data(0)
    stream = po.Stream(step, mse)
    with pytest.raises(TypeError, match="carry must be the StreamCarry returned by Stream.init"):
        stream.update(params, None, xs, ts)
    with pytest.raises(ValueError, match="max_trace_size"):
        po.Stream(step, mse, "rtrl", max_trace_size=1).init(params, u0, xs[0], ts[0])
    with pytest.raises(ValueError, match="scalar"):
        po.Stream(step, lambda out, t: out - t).init(params, u0, xs[0], ts[0])


def test_split_step_is_exact():
    """The step split at its new state reproduces ``out``, and the chain rule through the two pieces gives
    ``jax.grad`` of the whole step: a state leaf passed through unchanged, one computed inside a ``jax.jit``
    together with the output, one that the output never reads."""
    from plastix.online._jacobians import split_step

    @jax.jit
    def inner(w, a, x):
        a = jnp.tanh(w @ x + a)
        return a, jnp.sum(a) * jnp.sum(x)

    def step(params, state, x):
        a, b, c = state
        a, y = inner(params["W"], a, x)
        return (a, b, c * 0.5 + 1.0), y + jnp.sum(b * a) + params["v"] @ a

    (W,) = weights(4, (N, M))
    params = {"W": W, "v": jnp.linspace(-1.0, 1.0, N)}
    state = (jnp.linspace(0.0, 1.0, N), jnp.linspace(1.0, 2.0, N), jnp.ones(N))
    x = jnp.linspace(-1.0, 1.0, M)
    new_state_fn, readout = split_step(step, params, state, x)
    new_state = new_state_fn(params, state, x)
    np.testing.assert_allclose(readout(params, state, x, new_state), step(params, state, x)[1], rtol=1e-14)
    ref_p, ref_s = jax.grad(lambda p, s: step(p, s, x)[1], argnums=(0, 1))(params, state)
    direct_p, direct_s, delta = jax.grad(lambda p, s, n: readout(p, s, x, n), argnums=(0, 1, 2))(
        params, state, new_state)
    _, pullback = jax.vjp(lambda p, s: new_state_fn(p, s, x), params, state)
    through_p, through_s = pullback(delta)
    assert_close(jax.tree.map(jnp.add, direct_p, through_p), ref_p, atol=1e-12)
    assert_close(jax.tree.map(jnp.add, direct_s, through_s), ref_s, atol=1e-12)


# --------------------------------------------------------------------------------- memory and errors
def test_trace_memory_does_not_grow_with_sequence_length():
    step, params, u0 = lif_model("subtract", True, False)
    temps = {}
    # multiples of the chunk (128), at least two chunks: a remainder chunk, or a single chunk that XLA unrolls,
    # changes the (constant) buffers
    for steps in (256, 4096):
        xs, ts = jnp.ones((steps, M)), jnp.ones((steps, C))
        compiled = jax.jit(po.value_and_grad(step, mse, "diagonal")).lower(params, u0, xs, ts).compile()
        temps[steps] = compiled.memory_analysis().temp_size_in_bytes
    assert temps[4096] <= 1.1 * temps[256], temps


@pytest.mark.parametrize("detach, w_size", [(True, M), (False, N * M)])
def test_trace_layout_is_compact(detach, w_size):
    """A detached reset makes du'/dW the same for every neuron: the trace is the filtered input (m numbers);
    through the reset the trace is per synapse (n·m). Per-neuron and shared parameters get n numbers."""
    step, params, u0 = lif_model("subtract", detach, True)
    plan = po.plan_traces(step, params, u0, jnp.ones(M), "diagonal")
    names = [jax.tree_util.keystr(path) for path, _ in jax.tree.flatten_with_path(params)[0]]
    sizes = {names[p]: t.stored_size for (a, p), t in plan.templates.items()}
    assert sizes == {"['W']": w_size, "['beta']": N, "['threshold']": N}


def test_bad_inputs_are_named():
    step, params, u0 = lif_model("subtract", True, False)
    xs, ts = data()
    with pytest.raises(ValueError, match="unknown mode 'fast'"):
        po.value_and_grad(step, mse, "fast")
    with pytest.raises(ValueError, match=r"state leaf.*shape \(3,\)"):
        po.value_and_grad(lambda p, u, x: (u[:3], p["Wo"] @ u), mse)(params, u0, xs, ts)
    with pytest.raises(ValueError, match="scalar"):
        po.value_and_grad(step, lambda o, t: (o - t) ** 2)(params, u0, xs, ts)
    with pytest.raises(ValueError, match="plan_traces: mode 'bptt' keeps no traces"):
        po.plan_traces(step, params, u0, xs[0], "bptt")
    with pytest.raises(ValueError, match="chunk must be a positive number of steps, got 0"):
        po.value_and_grad(step, mse, "diagonal", chunk=0)
    with pytest.raises(ValueError, match=r"needs traces of 5 numbers.*max_trace_size=3"):
        po.value_and_grad(step, mse, "diagonal", max_trace_size=3)(params, u0, xs, ts)


@pytest.mark.parametrize("spelling", ["zero-reset", "reset-through", "where-reset"])
def test_traces_through_a_reset_are_chunked_exactly(spelling):
    """Textbook spellings whose F is a per-neuron factor times the input (``u·(1 - z)``, a reset that is not
    detached, ``jnp.where``) get the scaled chunk layout; chunks of 5 and 7 (T = 24 not a multiple) equal the
    step-by-step update and BPTT."""
    def step(params, u, x):
        u = 0.95 * u + x @ params["W"].T
        z = SPIKE(u - 1.0)
        if spelling == "zero-reset":
            u = u * (1.0 - z)
        elif spelling == "reset-through":
            u = u - z
        else:
            u = jnp.where(u > 1.0, 0.0, u) + 0.0 * z
        return u, params["Wo"] @ z

    W, Wo = weights(5, (N, M), (C, N), scale=2.5)
    params, v0 = {"W": W, "Wo": Wo}, jnp.zeros((2, N))
    xs, ts = data(6, batch=2)
    def fired(u, x):
        pre = 0.95 * u + x @ params["W"].T
        return step(params, u, x)[0], (pre > 1.0).mean()

    rate = float(np.mean([lax.scan(fired, v0[0], xs[:, b])[1].mean() for b in range(2)]))
    assert 0.01 <= rate <= 0.6, rate
    plan = po.plan_traces(step, params, v0[0], xs[0, 0], "diagonal")
    assert [layout.scaled for layout in plan.chunks.values()] == [True], plan.chunks
    _, ref = po.value_and_grad(step, mse, "bptt", batched=True)(params, v0, xs, ts)
    for chunk in (1, 5, 7):
        _, grads = jax.jit(po.value_and_grad(step, mse, "diagonal", batched=True, chunk=chunk))(params, v0, xs, ts)
        assert_close(grads, ref, atol=1e-8)


@pytest.mark.parametrize("batched", [False, True])
def test_has_aux_sums_the_aux_over_time_in_every_mode(batched):
    """``has_aux=True``: the loss's aux (here log-probabilities) comes back summed over time, per example, equal to
    a separate forward pass, and the gradient is unchanged."""
    step, params, u0 = lif_model("zero", True, False)
    xs, _ = data(3, batch=4 if batched else None)
    labels = jnp.arange(xs.shape[1] if batched else 1) % C
    targets = jnp.broadcast_to(labels, xs.shape[:2]) if batched else jnp.broadcast_to(labels[0], xs.shape[:1])
    state0 = jnp.zeros((xs.shape[1], N)) if batched else u0

    def nll(out, label):
        logp = jax.nn.log_softmax(out)
        return -logp[label], logp

    forward = jax.vmap(step, in_axes=(None, 0, 0)) if batched else step
    _, outs = lax.scan(lambda s, x: forward(params, s, x), state0, xs)
    expected = jnp.sum(jax.nn.log_softmax(outs), axis=0)
    plain = lambda out, label: nll(out, label)[0]
    for mode in po.MODES:
        (total, logp), grads = po.value_and_grad(step, nll, mode, has_aux=True, batched=batched, chunk=5)(
            params, state0, xs, targets)
        ref_total, ref = po.value_and_grad(step, plain, mode, batched=batched, chunk=5)(params, state0, xs, targets)
        np.testing.assert_allclose(logp, expected, rtol=1e-10, err_msg=mode)
        np.testing.assert_allclose(total, ref_total, rtol=1e-12, err_msg=mode)
        assert_close(grads, ref, atol=1e-12)
    with pytest.raises(ValueError, match=r"has_aux=True, loss\(out, target\) must return a pair"):
        po.value_and_grad(step, plain, "diagonal", has_aux=True, batched=batched)(params, state0, xs, targets)


@pytest.mark.parametrize("recurrent, detach", [(False, True), (False, False), (True, True)])
def test_coupled_traces_of_two_state_leaves_are_chunked_exactly(recurrent, detach):
    """ALIF's membrane and adaptation traces of one weight form a 2 × 2 recurrence per neuron: both advance in
    chunks together (chunks of 5 and 7, T = 24 not a multiple), equal to step by step, and to BPTT without
    recurrent weights (diagonal and eprop are exact there)."""
    from plastix.neurons import alif_step

    def step(params, state, x):
        u, a = state
        drive = jnp.concatenate([x, a]) if recurrent else x  # recurrent: every adaptation drives every neuron
        (u, a), z = alif_step({"W": params["W"]}, (u, a), drive, spike_fn=SPIKE, detach_reset=detach)
        return (u, a), params["Wo"] @ z

    W, Wo = weights(7, (N, M + (N if recurrent else 0)), (C, N), scale=3.0)
    params = {"W": W, "Wo": Wo}
    s0 = (jnp.zeros((2, N)), jnp.zeros((2, N)))
    xs, ts = data(8, batch=2)
    plan = po.plan_traces(step, params, (jnp.zeros(N), jnp.zeros(N)), xs[0, 0], "diagonal")
    assert sorted(plan.chunks) == [(0, 0), (1, 0)] and len(set(plan.chunks.values())) == 1, plan.unchunked
    assert plan.folds == {0}
    forward = jax.vmap(lambda s, x: step(params, s, x), in_axes=(0, 0))
    _, outs = lax.scan(lambda s, x: (lambda r: (r[0], r[0][1]))(forward(s, x)), s0, xs)
    assert float(jnp.mean(outs != 0)) > 0.05  # the adaptation moved: spikes occurred
    for mode in ("diagonal", "eprop"):
        vg = lambda chunk, mode=mode: jax.jit(po.value_and_grad(step, mse, mode, batched=True, chunk=chunk))
        ref_loss, ref = vg(1)(params, s0, xs, ts)
        for chunk in (5, 7):
            loss, grads = vg(chunk)(params, s0, xs, ts)
            np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
            assert_close(grads, ref, atol=1e-10)
        if not recurrent:
            _, exact = po.value_and_grad(step, mse, "bptt", batched=True)(params, s0, xs, ts)
            assert_close(grads, exact, atol=1e-8)
