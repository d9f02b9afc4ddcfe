"""Graph construction: numbering, pruning, summaries, custom rules, fallbacks, errors."""

import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend.core import Primitive

import plastix


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def test_vertex_numbering_follows_griewank():
    g = plastix.graph(lambda a, b: jnp.sin(a * b) + a, (0, 1))(jnp.ones(2), jnp.ones(2))
    assert g.inputs == (-1, 0)
    assert g.vertices == (1, 2, 3)
    assert g.outputs == (4,)


def test_pruning_removes_dead_and_constant_work():
    def f(x, c):
        dead = jnp.exp(x) * 3.0
        const = jnp.cos(c) * 2.0
        del dead
        return jnp.sin(x) * const

    g = plastix.graph(f)(jnp.ones(3), jnp.ones(3))
    assert [g.info[v].primitive for v in g.vertices] == ["sin", "mul"]


def test_stop_gradient_and_integer_paths_give_no_edge():
    def f(x):
        k = jnp.argmax(x)
        return lax.stop_gradient(x) * x[k] + jnp.floor(x)

    x = jnp.array([0.3, 2.0, -1.0])
    np.testing.assert_allclose(plastix.jacve(f)(x), jax.jacrev(f)(x))


def test_summary_lists_vertices_and_edge_structures():
    W, x = jnp.ones((3, 2)), jnp.ones(2)
    text = plastix.graph(lambda W: jnp.tanh(W @ x))(W).summary()
    assert "dot_general" in text and "tanh" in text and "diagonal" in text
    assert "float64[3, 2]" in text


def test_custom_jvp_rule_is_used_not_the_primal():
    @jax.custom_jvp
    def spike(v):
        return (v > 0).astype(v.dtype)

    spike.defjvp(lambda p, t: (spike(p[0]), t[0] / (1.0 + jnp.abs(p[0])) ** 2))
    x = jnp.array([-0.5, 0.2, 1.5])
    jac = plastix.jacve(lambda x: spike(x) * 2.0)(x)
    np.testing.assert_allclose(jac, jnp.diag(2.0 / (1.0 + jnp.abs(x)) ** 2))
    p = plastix.jacve(lambda x: spike(x), sparse=True)(x)
    assert p.kind == "diagonal"


def test_cond_and_fixed_scans_keep_structure_and_while_falls_back_visibly():
    """``cond`` is differentiated as a selection of its branches and a fixed-length ``scan`` (``fori_loop`` with
    static bounds) through its unrolled body, so elementwise work inside stays diagonal; a ``while_loop`` with a
    data-dependent trip count takes the dense fallback, which the summary reports."""
    x = jnp.array([0.5, 1.0, -2.0])
    for f in (lambda x: lax.cond(x[0] > 0, jnp.sin, jnp.cos, x),
              lambda x: lax.switch(2, [jnp.sin, jnp.cos, jnp.tanh], x),
              lambda x: lax.fori_loop(0, 3, lambda i, v: jnp.sin(v) * x, x),
              lambda x: lax.scan(lambda c, _: (jnp.sin(c) * 2.0, c), x, None, length=3)[0]):
        assert "dense fallback" not in plastix.graph(f)(x).summary()
        assert plastix.jacve(f, sparse=True)(x).kind == "diagonal"
        np.testing.assert_allclose(plastix.jacve(f)(x), jax.jacrev(f)(x), rtol=1e-6)
    f = lambda x: lax.scan(lambda c, xi: (c * xi, c + xi), x, jnp.stack([x, 2 * x]), reverse=True)
    np.testing.assert_allclose(plastix.jacve(f)(x)[1], jax.jacrev(f)(x)[1], rtol=1e-6)
    f = lambda x: lax.while_loop(lambda v: v[0] < 3.0, lambda v: v * 1.5, x + 1.0)
    assert "dense fallback" in plastix.graph(f)(x).summary()
    np.testing.assert_allclose(plastix.jacve(f)(x), jax.jacfwd(f)(x), rtol=1e-6)  # jax.jacrev refuses while


def test_fingerprint_is_stable_and_structure_sensitive():
    f = lambda x: jnp.sin(x) * x
    a = plastix.graph(f)(jnp.ones(3)).fingerprint()
    assert a == plastix.graph(f)(jnp.full(3, 2.0)).fingerprint()
    assert a != plastix.graph(f)(jnp.ones(4)).fingerprint()
    assert a != plastix.graph(lambda x: jnp.cos(x) * x)(jnp.ones(3)).fingerprint()


_opaque_p = Primitive("plastix_test_opaque")  # no JVP rule: JAX cannot differentiate it either
_opaque_p.def_impl(lambda x: 2.0 * x)
_opaque_p.def_abstract_eval(lambda aval: aval)


def test_unknown_primitive_names_itself_and_how_to_register():
    with pytest.raises(NotImplementedError, match=r"'plastix_test_opaque'.*JAX cannot differentiate.*defrule"):
        plastix.jacve(lambda x: _opaque_p.bind(jnp.sin(x)))(jnp.ones(4))


def test_primitive_without_a_rule_takes_the_dense_fallback_visibly(monkeypatch):
    """A primitive JAX differentiates but plastix has no rule for: a dense block from JAX's forward mode, marked
    in the summary, counted as dense, and one warning naming it (``scatter-mul`` has no rule)."""
    monkeypatch.setattr(plastix.ad._rules, "_warned", set())  # as in a fresh process
    f = lambda x: jnp.sin(x.at[jnp.array([1, 3])].multiply(x[:2], unique_indices=True))
    x = jnp.array([0.5, 1.0, -2.0, 0.3])
    with pytest.warns(UserWarning, match="'scatter-mul'"):
        g = plastix.graph(f)(x)
    assert "[dense fallback via JAX AD]" in g.summary() and "1 dense fallback(s)" in g.summary()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # only once per primitive
        np.testing.assert_allclose(plastix.jacve(f)(x), jax.jacrev(f)(x), rtol=1e-12)
        assert plastix.count_muls(f, order="fwd")(x) == 4 * 4  # the sin diagonal times the dense 4x4 block


@jax.custom_vjp
def clip_gradient(lo, hi, x):
    return x  # identity forward, clipped cotangent backward (the JAX documentation's example)


clip_gradient.defvjp(lambda lo, hi, x: (x, (lo, hi)), lambda res, g: (None, None, jnp.clip(g, *res)))


@jax.custom_vjp
def spike(v):
    return (v > 0).astype(v.dtype)


spike.defvjp(lambda v: (spike(v), v), lambda v, g: (g / (1.0 + 5.0 * jnp.abs(v)) ** 2,))


def test_custom_vjp_partials_come_from_the_backward_rule():
    """The backward rule, not the primal, defines the partial: clip_gradient gives 0.5 per basis cotangent (as
    jax.jacrev), an elementwise surrogate stays diagonal, also inside a fixed scan and a cond."""
    x = jnp.array([1.0, 2.0, -0.3])
    f = lambda x: clip_gradient(-0.5, 0.5, jnp.sin(x) * 3.0)
    np.testing.assert_allclose(plastix.jacve(f)(x), jax.jacrev(f)(x), rtol=1e-6)
    g = lambda x: jnp.tanh(spike(x - 0.5) * 2.0)
    assert plastix.jacve(g, sparse=True)(x).kind == "diagonal"
    for h in (g, lambda x: lax.fori_loop(0, 2, lambda i, v: spike(v - 0.5) + 0.5 * v, x),
              lambda x: lax.cond(x[0] > 0, lambda: spike(x), lambda: -x)):
        np.testing.assert_allclose(plastix.jacve(h)(x), jax.jacrev(h)(x), rtol=1e-6)
