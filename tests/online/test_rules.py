"""Online rules as points of a space (issue #16): :class:`plastix.online.Rule`, ``rule_cost`` and ``search_rules``.

Every rule is checked in float64, with live spikes, against a dense reference of its own definition written here
with ``jax.jacrev`` of the flattened step (as ``dense_diagonal_rule`` of ``test_outsider_models.py``): per step
``dℓ_t/dθ = ∂ℓ_t/∂θ + ∂ℓ_t/∂s · G_{t-1}`` and ``G_t = round(H̃_t G_{t-1} + F̃_t)`` where, per pair of state leaves
``(a, b)``, ``H̃[a][b]`` is all of ``H[a][b]`` (``"full"``), its entries between elements of the same neuron
(``"neuron"``), the Jacobian of the step with every cross-neuron edge cut (``"local"``: the models below mix
neurons only in ``R @ z``, which the reference's local step detaches) or zero (``"none"``); ``F̃`` is ``F`` with
the columns of untraced parameters zeroed (the models are single-layer, so the layered rules' ``F`` is ``F``);
``round`` is the stored dtype's rounding (none for ``trace_dtype=None``).
"""

from __future__ import annotations

import functools
import io
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax
from jax.flatten_util import ravel_pytree

import plastix.online as po
from plastix.ad import compose
from plastix.online._jacobians import step_jacobians

KINDS = ("full", "neuron", "local", "none")
ROUNDING = {None: 0, "bfloat16": 1, "float16": 2, "float32": 3}
RATE = (0.01, 0.7)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@jax.custom_jvp
def spike(x):
    return (x > 0).astype(x.dtype)


@spike.defjvp
def _spike_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    return spike(x), dx / (1.0 + 5.0 * jnp.abs(x)) ** 2


def cut(z, local):
    """``z`` where it enters ``R @ z``: detached in the reference's local step (the only cross-neuron edge)."""
    return lax.stop_gradient(z) if local else z


def rlif(params, state, x, local=False):
    """Recurrent LIF with the previous spikes as a state leaf: ``(u, z)``."""
    u, z = state
    u = 0.85 * u + params["W"] @ x + params["R"] @ cut(z, local)
    z = spike(u - 1.0)
    return (u - lax.stop_gradient(z), z), (params["Wo"] @ z, z)


def rsyn(params, state, x, local=False):
    """Current-based synapse and membrane, ``(i, u)``, recurrent through the spikes recomputed from ``u``."""
    i, u = state
    z_prev = spike(u - 1.0)
    i = 0.6 * i + params["W"] @ x + params["R"] @ cut(z_prev, local)
    u = 0.8 * u + i - lax.stop_gradient(z_prev)
    z = spike(u - 1.0)
    return (i, u), (params["Wo"] @ z, z)


def rlif1(params, u, x, local=False):
    """One leaf: the recurrent spikes are recomputed from ``u``, so ``H[u][u]`` has all four kinds distinct."""
    z_prev = spike(u - 1.0)
    u = 0.85 * u + params["W"] @ x + params["R"] @ cut(z_prev, local) - lax.stop_gradient(z_prev)
    z = spike(u - 1.0)
    return u, (params["Wo"] @ z, z)


def mse(out, target):
    return jnp.sum((out[0] - target) ** 2)


N, M, C, T, B = 4, 3, 2, 10, 2


def case(step, seed, leaves, gain=(2.5, 1.0)):
    k = jax.random.split(jax.random.PRNGKey(seed), 5)
    params = {"W": gain[0] * jax.random.normal(k[0], (N, M)) / math.sqrt(M),
              "R": gain[1] * jax.random.normal(k[1], (N, N)) / math.sqrt(N),
              "Wo": jax.random.normal(k[2], (C, N)) / math.sqrt(N)}
    xs = (jax.random.uniform(k[3], (T, B, M)) < 0.5).astype(jnp.float64)
    targets = jax.random.normal(k[4], (T, B, C))
    state0 = tuple(jnp.zeros((B, N)) for _ in range(leaves)) if leaves > 1 else jnp.zeros((B, N))
    return step, params, state0, xs, targets


CASES = {"rlif": functools.partial(case, rlif, 0, 2), "rsyn": functools.partial(case, rsyn, 1, 2),
         "rlif1": functools.partial(case, rlif1, 2, 1)}


def example(tree):
    return jax.tree.map(lambda v: v[0], tree)


def spike_rate(step, params, state0, xs):
    def body(state, x):
        new, (_, z) = jax.vmap(step, in_axes=(None, 0, 0))(params, state, x)
        return new, z

    return jnp.mean(lax.scan(body, state0, xs)[1] != 0)


# --------------------------------------------------------------------------------------------- the reference
def rule_arrays(rule: po.Rule, state):
    """The rule as arrays (so that one reference serves many rules under ``vmap``): per kind a 0/1 mask over
    ``(flat state, flat state)``, a 0/1 mask over the flat parameters (traced), and the rounding code."""
    sizes = [v.size for v in jax.tree.leaves(state)]
    offsets = np.cumsum([0] + sizes)
    masks = {kind: np.zeros((offsets[-1], offsets[-1])) for kind in KINDS}
    for a, b in itertools.product(range(len(sizes)), repeat=2):
        masks[rule.kind(a, b)][offsets[a]:offsets[a + 1], offsets[b]:offsets[b + 1]] = 1.0
    return masks, ROUNDING[rule.trace_dtype]


def dense_rule(step, loss, params, state0, xs, targets, masks, traced, rounding):
    """The rule's gradient for one example, written densely (see the module docstring)."""
    theta, unravel_params = ravel_pytree(params)
    s0, unravel_state = ravel_pytree(state0)
    neuron = ravel_pytree(jax.tree.map(lambda v: jnp.arange(v.shape[0], dtype=jnp.float64), state0))[0]
    same_neuron = neuron[:, None] == neuron[None, :]

    def new_state(theta, s, x, local=False):
        return ravel_pytree(step(unravel_params(theta), unravel_state(s), x, local)[0])[0]

    def step_loss(theta, s, x, target):
        return loss(step(unravel_params(theta), unravel_state(s), x)[1], target)

    def store(G):
        return lax.switch(rounding, [lambda g: g] + [lambda g, d=d: g.astype(d).astype(g.dtype)
                                                      for d in (jnp.bfloat16, jnp.float16, jnp.float32)], G)

    def body(carry, inputs):
        s, G, grad = carry
        x, target = inputs
        dl_dtheta, dl_ds = jax.grad(step_loss, argnums=(0, 1))(theta, s, x, target)
        grad = grad + dl_dtheta + dl_ds @ G
        H, F = jax.jacrev(new_state, argnums=(1, 0))(theta, s, x)
        H_local = jax.jacrev(new_state, argnums=1)(theta, s, x, True)
        kept = masks["full"] * H + masks["neuron"] * jnp.where(same_neuron, H, 0.0) + masks["local"] * H_local
        G = store(kept @ G + F * traced[None, :])
        return (new_state(theta, s, x), G, grad), None

    start = (s0, jnp.zeros((s0.size, theta.size)), jnp.zeros_like(theta))
    (_, _, grad), _ = lax.scan(body, start, (xs, targets))
    return grad


def traced_mask(rule, params):
    flat = [np.full(np.size(v), 0.0 if name in rule.untraced else 1.0)
            for name, v in zip(po.parameter_names(params), jax.tree.leaves(params))]
    return np.concatenate(flat)


def dense_rules(step, params, state0, xs, targets, rules):
    """The dense reference of every rule, summed over the batch, as flat gradients ``(rules, parameters)``."""
    arrays = [rule_arrays(rule, example(state0)) for rule in rules]
    masks = {kind: jnp.asarray(np.stack([a[0][kind] for a in arrays])) for kind in KINDS}
    traced = jnp.asarray(np.stack([traced_mask(rule, params) for rule in rules]))
    rounding = jnp.asarray([a[1] for a in arrays])

    def one_rule(masks, traced, rounding):
        per_example = jax.vmap(lambda s, x, t: dense_rule(step, mse, params, s, x, t, masks, traced, rounding),
                               in_axes=(0, 1, 1))(state0, xs, targets)
        return jnp.sum(per_example, axis=0)

    return jax.vmap(one_rule)(masks, traced, rounding)


def flat(tree):
    return ravel_pytree(jax.tree.map(lambda v: jnp.asarray(v, jnp.float64), tree))[0]


def latin(n_pairs):
    """Four rules in which every pair meets every kind once (a Latin square over pairs and kinds)."""
    pairs = list(itertools.product(range(int(math.isqrt(n_pairs))), repeat=2))
    return [po.Rule(KINDS[i], {pair: KINDS[(i + j) % 4] for j, pair in enumerate(pairs)}) for i in range(4)]


RULES = {  # every kind on every pair (the Latin squares), untraced parameters and stored dtypes
    "rlif": [po.Rule(kind) for kind in KINDS] + [po.Rule("neuron", {(0, 1): "full"}, untraced=["R"],
                                                         trace_dtype="bfloat16")],
    "rsyn": latin(4) + [po.Rule("full", {(1, 1): "local", (0, 1): "none"}, untraced="Wo", trace_dtype="float16")],
}
SLOW_RULES = {
    "rlif": latin(4) + [po.Rule("neuron", trace_dtype="bfloat16"),
                        po.Rule("local", untraced="W", trace_dtype="float32")],
    "rsyn": [po.Rule(kind) for kind in KINDS] + [po.Rule("neuron", {(0, 0): "none"}, trace_dtype="bfloat16")],
}


@pytest.mark.parametrize("name, rules", [(name, RULES[name]) for name in sorted(RULES)] + [
    pytest.param(name, SLOW_RULES[name], marks=pytest.mark.slow, id=f"{name}-more") for name in sorted(SLOW_RULES)])
def test_every_kind_and_combination_equals_its_dense_definition(name, rules):
    """Each rule's gradient equals the dense reference of its definition; the rule that claims exactness (H full)
    equals BPTT, the others do not (so the kinds are really different on these models); the losses equal BPTT's;
    the network spikes. A Stream with a rule gives the same as value_and_grad."""
    step, params, state0, xs, targets = CASES[name]()
    stream = po.Stream(step, mse, rules[-1], batched=True)
    runs = {"bptt": po.value_and_grad(step, mse, "bptt", batched=True)}
    runs |= {str(rule): po.value_and_grad(step, mse, rule, batched=True) for rule in rules}

    def together(params, state0, xs, targets):
        out = {key: f(params, state0, xs, targets) for key, f in runs.items()}
        carry = stream.update(params, stream.init(params, state0, xs[0], targets[0]), xs, targets)
        out["stream"] = (carry.total, carry.grads)
        out["dense"] = dense_rules(step, params, state0, xs, targets, rules)
        out["rate"] = spike_rate(step, params, state0, xs)
        return out

    results = jax.jit(together)(params, state0, xs, targets)
    rate = float(results["rate"])
    assert RATE[0] <= rate <= RATE[1], f"spike rate {rate:.3f}"
    ref_loss, ref = results["bptt"]
    ref = flat(ref)
    for rule, dense in zip(rules, results["dense"]):
        loss, grads = results[str(rule)]
        got = flat(grads)
        np.testing.assert_allclose(loss, ref_loss, rtol=1e-12)
        tol = dict(rtol=1e-9, atol=1e-12) if rule.trace_dtype is None else dict(rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(got, dense, **tol, err_msg=f"{name}: {rule}")
        cosine = float(got @ ref / np.linalg.norm(got) / np.linalg.norm(ref))
        print(f"{name}: {rule}: cosine to BPTT {cosine:.6f}")
        if rule.exact:
            np.testing.assert_allclose(got, ref, rtol=1e-9, atol=1e-12)
        else:
            assert not np.allclose(got, ref, rtol=1e-6, atol=1e-9), f"{rule} equals BPTT on {name}"
    np.testing.assert_allclose(flat(results["stream"][1]), flat(results[str(rules[-1])][1]), rtol=1e-12)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["rlif", "rsyn"])
def test_sampled_kind_combinations_equal_their_dense_definition(name):
    """32 of the 256 assignments of the four kinds to the four pairs (seeded), 8 per compilation (slow)."""
    step, params, state0, xs, targets = CASES[name]()
    pairs = list(itertools.product(range(2), repeat=2))
    combos = list(itertools.product(KINDS, repeat=4))
    picked = [combos[k] for k in np.random.default_rng(16).choice(len(combos), 32, replace=False)]
    rules = [po.Rule("full", dict(zip(pairs, kinds))) for kinds in picked]
    for group in (rules[k:k + 8] for k in range(0, len(rules), 8)):
        runs = [po.value_and_grad(step, mse, rule, batched=True) for rule in group]

        def together(*args, runs=runs, group=group):
            return [f(*args)[1] for f in runs], dense_rules(step, *args, group)

        got, dense = jax.jit(together)(params, state0, xs, targets)
        for rule, grads, want in zip(group, got, dense):
            np.testing.assert_allclose(flat(grads), want, rtol=1e-9, atol=1e-12, err_msg=str(rule))


def test_named_rules_are_the_modes():
    """Rule.named gives the rule of each built-in mode: the same computation (equal jaxprs) as the mode's name."""
    step, params, state0, xs, targets = CASES["rlif"]()
    for name in po.MODES:
        rule = po.Rule.named(name)
        assert rule.handmade == name and rule.name == name and po.Rule.named(po.MODES[name]) == rule
        assert (rule.exact, rule.layered, rule.online) == (po.MODES[name].exact, po.MODES[name].layered,
                                                            po.MODES[name].online)
        jaxprs = [str(jax.make_jaxpr(po.value_and_grad(step, mse, mode, batched=True))(params, state0, xs,
                                                                                          targets))
                  for mode in (name, rule)]
        assert jaxprs[0] == jaxprs[1], name
    assert [str(po.Rule.named(m)) for m in ("rtrl", "diagonal", "eprop")] == [
        "H full (= rtrl)", "H neuron (= diagonal)", "H local (= eprop)"]


def test_rule_is_a_frozen_hashable_value():
    rule = po.Rule("neuron", {(0, 1): "full", (1, 1): "neuron"}, untraced=["W", "R", "W"], trace_dtype=jnp.bfloat16)
    same = po.Rule("neuron", (((0, 1), "full"),), untraced=("R", "W"), trace_dtype="bfloat16")
    assert rule == same and hash(rule) == hash(same) and len({rule, same}) == 1
    assert rule.pairs == (((0, 1), "full"),) and rule.untraced == ("R", "W") and rule.trace_dtype == "bfloat16"
    assert str(rule) == "H neuron, s0<-s1 full; untraced R, W; traces bfloat16" == rule.name
    assert "\n" not in str(rule) and repr(rule).startswith("Rule('neuron'")
    assert isinstance(rule, po.Mode) and rule.layered and not rule.exact and rule.online
    assert rule.kind(0, 1) == "full" and rule.kind(1, 0) == "neuron"
    with pytest.raises(AttributeError):
        rule.untraced = ()
    assert rule != po.Rule("neuron", {(0, 1): "full"}, untraced=("R", "W"))
    assert rule.replace(trace_dtype=None) == po.Rule("neuron", {(0, 1): "full"}, untraced=("R", "W"))
    assert (po.Rule("full").exact, po.Rule("full", untraced="W").exact, po.Rule("full", trace_dtype="float32").exact,
            po.Rule("full", {(0, 0): "none"}).exact, po.Rule(bptt=True).exact) == (True, False, False, False, True)
    assert [po.Rule(k).layered for k in KINDS] == [False, True, True, False]
    assert po.Rule("none", {(1, 0): "local"}).layered and not po.Rule("none", {(1, 0): "full"}).layered
    assert po.Rule.named("bptt") == po.Rule(bptt=True) and not po.Rule(bptt=True).online


@pytest.mark.parametrize("kwargs, message", [
    (dict(H="diag"), r"Rule\(H='diag'\): unknown kind 'diag'; expected one of full, neuron, local, none$"),
    (dict(pairs={(0, 1): "all"}), r"unknown kind 'all'; expected one of full, neuron, local, none$"),
    (dict(pairs={(0, -1): "full"}), r"a pair is \(a, b\), two state leaf indices >= 0 .*got \(0, -1\)$"),
    (dict(pairs={0: "full"}), r"a pair is \(a, b\).*got 0$"),
    (dict(pairs=[((0, 1), "full"), ((0, 1), "none")]), r"state pair \(0, 1\) given twice"),
    (dict(untraced=[3]), r"expected parameter names .*got 3$"),
    (dict(trace_dtype="float64"), r"unknown dtype 'float64'; expected None .* or one of float32, bfloat16, "
                                  r"float16$"),
    (dict(trace_dtype="int8"), r"unknown dtype 'int8'"),
    (dict(bptt=True, H="neuron"), r"Rule\(bptt=True\) .*expected H, pairs, untraced and trace_dtype at their "
                                  r"defaults, got H='neuron'"),
])
def test_invalid_rules_are_one_line(kwargs, message):
    with pytest.raises(ValueError, match=message) as info:
        po.Rule(**kwargs)
    assert "\n" not in str(info.value)


def test_rules_that_do_not_fit_the_step_are_one_line():
    step, params, state0, xs, targets = CASES["rlif"]()
    s, x = example(state0), xs[0, 0]
    with pytest.raises(ValueError, match=r"state pair \(0, 2\) names no state leaf; the step has 2 state leaves, "
                                         r"expected indices 0..1$"):
        po.rule_cost(step, params, s, x, po.Rule("full", {(0, 2): "none"}))
    with pytest.raises(ValueError, match=r"untraced names no parameter 'V'; expected names of "
                                         r"plastix.online.parameter_names\(params\): 'R', 'W', 'Wo'$"):
        po.value_and_grad(step, mse, po.Rule("neuron", untraced=["V"]), batched=True)(params, state0, xs, targets)
    with pytest.raises(ValueError, match=r"unknown mode 'snap'; expected one of bptt, rtrl, diagonal, eprop$"):
        po.Rule.named("snap")
    with pytest.raises(ValueError, match="rule_cost: mode 'bptt' keeps no traces"):
        po.rule_cost(step, params, s, x, po.Rule.named("bptt"))


def test_a_rule_is_accepted_where_a_mode_is():
    """plan_traces, describe, Learner (its traces), Stream; untraced goes through drop's mechanism."""
    step, params, state0, xs, targets = CASES["rlif"]()
    rule = po.Rule("neuron", {(0, 1): "full"}, untraced="Wo", trace_dtype="float16")
    plan = po.plan_traces(step, params, example(state0), xs[0, 0], rule)
    assert plan.mode is rule and plan.dropped == {2}
    assert all(t.val.dtype == jnp.float16 and t.dtype == jnp.float64 for t in plan.templates.values())
    chunked = po.plan_traces(step, params, example(state0), xs[0, 0], po.Rule("neuron"))
    rounded = po.plan_traces(step, params, example(state0), xs[0, 0], po.Rule("neuron", trace_dtype="bfloat16"))
    assert chunked.chunks and not rounded.chunks and not rounded.folds
    assert all("rounded after every step" in rounded.unchunked[k] for k in chunked.chunks)
    assert plan.blocks == po.plan_traces(step, params, example(state0), xs[0, 0], rule.replace(untraced=()),
                                         drop=["Wo"]).blocks
    text = po.describe(step, params, example(state0), xs[0, 0], rule, file=io.StringIO())
    assert f"traces in mode '{rule}'" in text and f"Wo: no trace, untraced by the rule {rule}" in text
    learner = po.Learner(step, mse, optax.sgd(0.1), rule)
    carry = learner.init(params, state0, xs[0])
    assert {k: v.val.dtype for k, v in carry.traces.items()} == {k: jnp.float16 for k in plan.blocks}


# ------------------------------------------------------------------------------------------------ the cost
COST_RULES = [po.Rule(k) for k in KINDS] + [po.Rule("neuron", trace_dtype=d) for d in ("bfloat16", "float16",
                                                                                       "float32")] + [
    po.Rule("full", {(0, 1): "neuron"}, untraced="R"), po.Rule("local", untraced=["R", "W", "Wo"])]


@pytest.mark.parametrize("name", ["rlif", "rsyn", "rlif1"])
def test_trace_bytes_equal_what_a_run_allocates(name):
    """rule_cost's bytes = the nbytes of the traces Stream.init allocates per example (and of plan.zeros())."""
    step, params, state0, xs, targets = CASES[name]()
    for rule in COST_RULES if name == "rlif" else COST_RULES[1:3] + COST_RULES[5:6]:
        cost = po.rule_cost(step, params, example(state0), xs[0, 0], rule)
        carry = po.Stream(step, mse, rule, batched=True).init(params, state0, xs[0], targets[0])
        allocated = sum(v.nbytes for v in jax.tree.leaves(carry.traces))
        plan = po.Stream(step, mse, rule, batched=True).plan(params, example(state0), xs[0, 0])
        assert cost.trace_bytes * B == allocated, rule
        assert cost.trace_bytes == sum(v.nbytes for v in jax.tree.leaves(plan.zeros())) == plan.stored_bytes
        itemsize = np.dtype(jnp.dtype(rule.trace_dtype or "float64")).itemsize
        assert cost.trace_bytes == plan.stored_size * itemsize
    assert po.rule_cost(step, params, example(state0), xs[0, 0], "diagonal") == po.rule_cost(
        step, params, example(state0), xs[0, 0], po.Rule.named("diagonal"))


def test_muls_count_the_trace_update_as_compose_does():
    """On the recurrent LIF (u, z) with n neurons, m inputs: per parameter of c columns (R: n, W: m, Wo: none)
    ``S = n·c`` numbers per leaf (one leaf's trace in rtrl stores n·S: the dense n × (n·c)). compose counts the
    union of the stored labels: rtrl, per leaf, β·G (n·S) + the dense R-path (n·n·S); diagonal, per leaf, two
    per-neuron factors times the (n, c) trace (2·S); eprop: u's trace stores only the columns (c) and z's
    (n, c), so β·G_u costs c and σ'·G_u costs n·c; "none" multiplies nothing."""
    step, params, state0, xs, _ = CASES["rlif"]()
    s, x = example(state0), xs[0, 0]
    cost = {k: po.rule_cost(step, params, s, x, po.Rule(k)) for k in KINDS}
    n, cols = N, {"R": N, "W": M}
    assert cost["full"].muls_per_step == sum(2 * (n * n * c + n * n * n * c) for c in cols.values())
    assert cost["neuron"].muls_per_step == sum(2 * 2 * n * c for c in cols.values())
    assert cost["local"].muls_per_step == sum(c + n * c for c in cols.values())
    assert cost["none"].muls_per_step == 0 and cost["none"].trace_bytes > 0
    assert cost["full"].trace_bytes == 8 * sum(2 * n * n * c for c in cols.values())
    # the same count, block by block, from plastix.ad.compose on the step's Jacobians and the plan's layouts
    plan = po.plan_traces(step, params, s, x, "diagonal")
    jac = step_jacobians(step, params, s, x, local=True)
    H = po.Rule("neuron").H(jac)
    zeros = plan.zeros()
    by_compose = sum(compose(H[a][b], zeros[(b, p)])[1] for (a, p) in plan.blocks for b in range(2)
                     if H[a][b] is not None and (b, p) in zeros)
    assert by_compose == cost["neuron"].muls_per_step == plan.muls_per_step
    untraced = po.rule_cost(step, params, s, x, po.Rule("neuron", untraced="R"))
    assert untraced.muls_per_step == 2 * 2 * n * M and untraced.trace_bytes == 8 * 2 * n * M


# ---------------------------------------------------------------------------------------------- the search
@pytest.mark.parametrize("budget", [-1, 0, 0.0, "2MB", True, float("nan"), [100]])
def test_invalid_budgets_are_one_line(budget):
    step, params, state0, xs, targets = CASES["rlif1"]()
    with pytest.raises(ValueError, match=r"^search_rules: budget_bytes must be a positive number of trace bytes per "
                                         r"example, or None for no budget, got .*$"):
        po.search_rules(step, mse, params, state0, xs, targets, budget_bytes=budget)


def test_search_is_deterministic_and_returns_a_front_within_the_budget():
    step, params, state0, xs, targets = CASES["rlif1"]()
    diagonal = po.rule_cost(step, params, example(state0), xs[0, 0], "diagonal")
    search = functools.partial(po.search_rules, step, mse, params, state0, xs, targets,
                               budget_bytes=diagonal.trace_bytes, seed=3, evaluations=3)
    found = search()
    assert found == search(), "the same seed must give the same front"
    for f in found:
        print(f"{f.trace_bytes:6d} B {f.muls_per_step:6d} muls cosine {f.cosine:.6f} {f.handmade or ''} {f.rule}")
    assert all(f.trace_bytes <= diagonal.trace_bytes for f in found)
    assert [f.trace_bytes for f in found] == sorted(f.trace_bytes for f in found)
    assert found[0].trace_bytes == 0 and found[0].muls_per_step == 0
    assert {f.handmade for f in found} >= {"diagonal", "eprop"} and "rtrl" not in {f.handmade for f in found}
    for f in found:
        assert f.handmade == f.rule.handmade
        assert po.rule_cost(step, params, example(state0), xs[0, 0], f.rule) == (f.trace_bytes, f.muls_per_step)
        dominated = [g for g in found if g != f and g.trace_bytes <= f.trace_bytes and
                     g.muls_per_step <= f.muls_per_step and g.cosine >= f.cosine]
        assert not dominated or f.handmade, (f, dominated)
    # a cosine assembled from per-parameter runs equals a run of the rule itself
    pick = next(f for f in found if f.rule.untraced and f.trace_bytes > 0)
    _, ref = jax.jit(po.value_and_grad(step, mse, "bptt", batched=True))(params, state0, xs, targets)
    _, got = jax.jit(po.value_and_grad(step, mse, pick.rule, batched=True))(params, state0, xs, targets)
    got, ref = flat(got), flat(ref)
    np.testing.assert_allclose(pick.cosine, got @ ref / np.linalg.norm(got) / np.linalg.norm(ref), rtol=1e-9)


@pytest.mark.slow
def test_search_over_the_whole_space_of_a_small_model():
    """Without a budget, local moves after the enumeration: rtrl is on the front at cosine 1; deterministic."""
    step, params, state0, xs, targets = CASES["rsyn"]()
    found = po.search_rules(step, mse, params, state0, xs, targets, seed=0, evaluations=24, seconds=1200)
    for f in found:
        print(f"{f.trace_bytes:6d} B {f.muls_per_step:6d} muls cosine {f.cosine:.6f} {f.handmade or ''} {f.rule}")
    assert any(f.handmade == "rtrl" and f.cosine == pytest.approx(1.0, abs=1e-12) for f in found)
    assert found == po.search_rules(step, mse, params, state0, xs, targets, seed=0, evaluations=24, seconds=1200)
