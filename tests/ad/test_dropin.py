"""``jacve`` as a drop-in for ``jax.jacrev`` (issue 18), in float32 and float64: what ``jacve`` accepts,
``graph``/``count_muls``/``order="search"`` accept too; arguments outside ``argnums`` stay concrete; aux passes
through untouched; complex intermediates, linear algebra, scatter-max/min and ``reduce_precision`` as JAX
differentiates them; orders as any integer sequence; sparse and dense agree where partials are infinite."""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import jax.scipy as jsp
import numpy as np
import pytest
from jax import lax

import plastix
from plastix.ad import Partial, orders

from .conftest import assert_trees_close, x64_enabled


@pytest.fixture(params=["float32", "float64"])
def precision(request):
    """The test body runs with float64 off (float32) or on; yields (dtype, rtol)."""
    f64 = request.param == "float64"
    with x64_enabled(f64):
        yield (jnp.float64, 1e-10) if f64 else (jnp.float32, 2e-5)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty order cache and a short budget for ``order="search"``."""
    monkeypatch.setenv("PLASTIX_CACHE_DIR", str(tmp_path / "orders"))
    monkeypatch.setattr(orders, "SEARCH_SECONDS", 0.2)


def _vec(n=4, lo=0.2, hi=1.4, seed=0, dtype=None):
    return jnp.asarray(np.random.default_rng(seed).uniform(lo, hi, n), dtype)


def _graph(fun, *args, argnums=0):
    """``plastix.graph(fun, argnums)(*args)`` traced abstractly (no eager dispatch of every rule): its structure."""
    box = {}
    jax.eval_shape(lambda *a: box.setdefault("g", plastix.graph(fun, argnums)(*a)) and 0, *args)
    return box["g"]


def _vertices(fun, *args, argnums=0) -> list[int]:
    return list(_graph(fun, *args, argnums=argnums).vertices)


def _check(fun, args, argnums=0, *, rtol, atol, what=""):
    """jacve in reverse order and in one shuffled order against ``jax.jit(jax.jacrev)``."""
    expected = jax.jit(jax.jacrev(fun, argnums))(*args)
    vertices = _vertices(fun, *args, argnums=argnums)
    shuffled = [int(v) for v in np.random.default_rng(len(vertices)).permutation(vertices)]
    for order in ("rev", shuffled):
        assert_trees_close(plastix.jacve(fun, argnums, order=order)(*args), expected, rtol=rtol, atol=atol,
                           what=f"{what} order={order}")


# ------------------------------------------------------------------------------------------------- arguments


def _flagged(x, flag, n, reps):
    y = jnp.sin(x) if flag else x
    for _ in range(n):
        y = y * x
    return jnp.tile(y, reps)


def test_arguments_outside_argnums_stay_concrete(precision, cache):
    """A Python ``if`` on a flag, ``range(n)`` on an int and a shape from an argument, as in jax.jacrev, for
    jacve, graph, count_muls and the search order alike."""
    dtype, rtol = precision
    x = _vec(3, dtype=dtype)
    for flag, n, reps in ((True, 2, (2,)), (False, 1, (1, 3))):
        args = (x, flag, n, reps)
        expected = jax.jacrev(_flagged)(*args)
        for order in ("rev", "search"):
            assert_trees_close(plastix.jacve(_flagged, order=order)(*args), expected, rtol=rtol, atol=1e-6,
                               what=f"flag={flag} order={order}")
        g = plastix.graph(_flagged)(*args)
        assert [g.info[v].primitive for v in g.vertices].count("mul") == n
        assert plastix.count_muls(_flagged, order="search")(*args) <= plastix.count_muls(_flagged)(*args)


def test_python_scalars_numpy_arrays_and_pytrees_everywhere(precision, cache):
    """Python floats, NumPy arrays and pytrees with tuple argnums: jacve equals jax.jacrev (values and dtypes),
    and graph, count_muls and the search order take the same arguments."""
    dtype, rtol = precision
    f = lambda s, p, k: {"y": jnp.tanh(p["w"] @ p["x"] * s) + k, "s": s * jnp.sum(p["x"] ** 2)}
    p = {"w": np.random.default_rng(1).uniform(-1, 1, (2, 3)), "x": np.linspace(0.1, 0.9, 3)}
    args = (0.7, p, 2)
    argnums = (1, 0)
    expected = jax.jacrev(f, argnums)(*args)
    for order in ("rev", "search"):
        assert_trees_close(plastix.jacve(f, argnums, order=order)(*args), expected, rtol=rtol, atol=1e-6,
                           what=f"order={order}")
    assert len(plastix.graph(f, argnums)(*args).inputs) == 3
    assert isinstance(plastix.count_muls(f, argnums, order="search")(*args), int)
    assert plastix.jacve(lambda x: x * 2.0)(3.0).dtype == jax.jacrev(lambda x: x * 2.0)(3.0).dtype == dtype


def test_has_aux_passes_any_aux_through_as_jacrev(precision):
    dtype, rtol = precision
    f = lambda x: (jnp.sin(x), {"name": "lif", "n": 3, "tau": 2.5, "on": True, "none": None, "np": np.ones(2),
                                "both": (1, "a"), "y": x * 2.0})
    x = _vec(3, dtype=dtype)
    jac, aux = plastix.jacve(f, has_aux=True)(x)
    ref_jac, ref_aux = jax.jacrev(f, has_aux=True)(x)
    assert_trees_close(jac, ref_jac, rtol=rtol, atol=0, what="jac")
    assert jax.tree.structure(aux) == jax.tree.structure(ref_aux)
    for key in ref_aux:
        assert type(aux[key]) is type(ref_aux[key]), key
    assert aux["name"] == "lif" and aux["n"] == 3 and aux["both"] == (1, "a") and aux["none"] is None
    np.testing.assert_array_equal(aux["y"], ref_aux["y"])
    g = lambda x: (jnp.sin(x), {"n": 3, "y": x * 2.0})  # under jit, as jax.jit(jax.jacrev) returns it
    assert_trees_close(jax.jit(plastix.jacve(g, has_aux=True))(x), jax.jit(jax.jacrev(g, has_aux=True))(x),
                       rtol=rtol, atol=0, what="jit aux")


# ----------------------------------------------------------------------------------------------------- orders


def test_orders_are_any_integer_sequence_and_junk_is_a_type_error():
    f = lambda x: jnp.tanh(jnp.sin(x) * x).sum()
    x = _vec(3)
    vs = plastix.graph(f)(x).vertices
    expected = jax.jacrev(f)(x)
    for order in (np.array(vs[::-1]), np.asarray(vs, np.int32), [np.int64(v) for v in vs], range(1, len(vs) + 1),
                  jnp.asarray(vs), tuple(vs)):
        np.testing.assert_allclose(plastix.jacve(f, order=order)(x), expected, rtol=1e-6)
        assert plastix.count_muls(f, order=order)(x) >= 0
    for bad in (None, 5, True, 2.5, {1, 2}, np.array([1.0, 2.0, 3.0]), np.ones((3, 1), int), [1, 2.0, 3], b"rev"):
        with pytest.raises(TypeError) as info:
            plastix.jacve(f, order=bad)(x)
        message = str(info.value)
        assert "\n" not in message and "an elimination order is a name" in message and "vertex ids" in message
    with pytest.raises(ValueError, match="unknown vertices"):
        plastix.jacve(f, order=np.array(list(vs) + [99]))(x)


# -------------------------------------------------------------------------------------------- primitives


def test_complex_intermediates_are_exact_in_every_order(precision):
    """Complex values are (re, im) pairs in the graph: real/imag/conj/abs/angle and fft are exact in any order,
    also where a real part feeds complex arithmetic again."""
    dtype, rtol = precision
    x = _vec(4, dtype=dtype)
    parts = [lambda x: jnp.fft.fft(x).real + jnp.fft.ifft(x * 1j).imag,
             lambda x: jnp.abs(jnp.fft.rfft(jnp.sin(x))) ** 2,
             lambda x: jnp.real((jnp.real(x * (1 + 1j)) + 0j) * (2 - 3j) * jnp.conj(jnp.exp(1j * x))),
             lambda x: jnp.angle(x + 1j * x[::-1]) + jnp.abs(lax.complex(x, x**2))]
    _check(lambda x: [f(x) for f in parts], (x,), rtol=rtol * 10, atol=1e-5, what="complex")
    summary = _graph(lambda x: jnp.imag(jnp.exp(1j * x)), x).summary()
    assert "dense fallback" not in summary and f"{jnp.dtype(dtype).name}[4, 2]" in summary


def test_linear_algebra_through_the_dense_fallback(precision):
    dtype, _ = precision
    rng = np.random.default_rng(3)
    a = jnp.asarray(rng.uniform(-0.5, 0.5, (3, 3)) + 2 * np.eye(3), dtype)
    b = jnp.ones(3, dtype)
    parts = [lambda a: jnp.linalg.norm(a, 2)[None], lambda a: jnp.linalg.lstsq(a, b)[0],  # svd
             lambda a: jsp.sparse.linalg.cg(a @ a.T, b)[0]]  # custom_linear_solve, device_put
    f = lambda a: jnp.concatenate([jnp.ravel(g(a)) for g in parts])
    f32 = dtype == jnp.float32
    assert_trees_close(plastix.jacve(f)(a), jax.jit(jax.jacrev(f))(a), rtol=1e-4 if f32 else 1e-9,
                       atol=1e-5 if f32 else 1e-12, what="linear algebra")


def test_scatter_max_min_are_structured_and_split_ties_as_jax(precision):
    dtype, rtol = precision
    x, y = _vec(4, dtype=dtype), jnp.asarray([0.5, 0.9, 0.5, 0.2], dtype)
    idx = jnp.array([0, 2, 0, 3])
    f = lambda x, y: (x.at[idx].max(y), x.at[idx].min(y),
                      jnp.sin(x.at[idx].max(jnp.full(4, x[1]))))  # ties with the operand too
    _check(f, (x, y), (0, 1), rtol=rtol, atol=1e-7, what="scatter")
    assert "dense fallback" not in _graph(f, x, y, argnums=(0, 1)).summary()


def test_identity_and_no_op_primitives_need_no_fallback(precision, capfd):
    dtype, rtol = precision

    def f(x):
        jax.debug.print("x0={}", x[0])
        jax.debug.callback(lambda v: None, x)
        y, z = lax.optimization_barrier((jax.device_put(x), jnp.copy(x)))
        return y * z

    x = _vec(3, dtype=dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = plastix.graph(f)(x)
        assert_trees_close(plastix.jacve(f)(x), jax.jacrev(f)(x), rtol=rtol, atol=0, what="no-ops")
    assert "dense fallback" not in g.summary()
    assert "x0=" in capfd.readouterr().out


def test_reduce_precision_rounds_partials_as_jax(precision):
    """JAX rounds the tangent (jacfwd) or the cotangent (jacrev) flowing through ``reduce_precision``; plastix
    rounds the partial composed with it: the accumulated cotangent in reverse order, the tangent in forward."""
    dtype, rtol = precision
    f = lambda x: jnp.sin(lax.reduce_precision(x * 1.2345678, 5, 7)) * 3.14159
    x = _vec(4, dtype=dtype)
    rev, fwd = jax.jacrev(f)(x), jax.jacfwd(f)(x)
    assert not np.allclose(rev, fwd, rtol=1e-4, atol=0)  # the rounding is visible
    assert_trees_close(plastix.jacve(f, order="rev")(x), rev, rtol=rtol, atol=0, what="rev")
    assert_trees_close(plastix.jacve(f, order="fwd")(x), fwd, rtol=rtol, atol=0, what="fwd")


# ------------------------------------------------------------------------------------------------ NaN and inf

_W = np.array([[1.0, 2.0], [0.5, -1.0]])
INFINITE_AT_ZERO = [lambda x: 1.0 / x, lambda x: jnp.where(x > 0, jnp.sqrt(x), 0.0),
                    lambda x: jnp.where(x > 0, jnp.log(x), 0.0), lambda x: jnp.asarray(_W, x.dtype) @ jnp.log(x)]


def test_infinite_partials_sparse_equals_dense_and_differs_from_jacrev_only_off_paths(precision):
    """At ``x = 0`` the elemental partials are infinite (``1/x``, a masked ``sqrt`` and ``log``, ``log`` then a
    matrix). Sparse and dense results are identical in every order; on entries that a path of the graph connects,
    plastix has jax.jacrev's value (IEEE: a masked branch's ``0 * inf`` is NaN); entries that no path connects are
    exact zeros, where jax.jacrev, which multiplies every zero cotangent entry too, has NaN (docs/guide.md,
    "Infinite partials")."""
    dtype, _ = precision
    f = lambda x: [part(x) for part in INFINITE_AT_ZERO]
    x = jnp.asarray([0.0, 2.0], dtype)
    # each part on its own (jax.jacrev of all at once has NaN in every output: it multiplies the zero cotangents of
    # the other outputs by their infinite partials too), eagerly (under jit XLA's rewrites move its NaNs)
    reference = [np.asarray(jax.jacrev(part)(x)) for part in INFINITE_AT_ZERO]
    connected = []
    for p in plastix.jacve(f, sparse=True)(x):
        ones = None if p.val is None else jnp.ones_like(p.val)
        connected.append(np.asarray(Partial(p.out_shape, p.in_shape, p.sizes, p.out_axes, p.in_axes, p.val_labels,
                                            ones, p.dtype).todense() != 0))
    assert np.isnan(reference[0][~connected[0]]).any() and np.isnan(reference[1][connected[1]]).any()
    assert connected[3].all()  # the matrix couples everything: plastix equals jax.jacrev there, inf and all
    vertices = _vertices(f, x)
    for order in ("fwd", vertices[::2] + vertices[1::2]):
        dense = plastix.jacve(f, order=order)(x)
        sparse = plastix.jacve(f, order=order, sparse=True)(x)
        for k, (d, s, ref, c) in enumerate(zip(dense, sparse, reference, connected)):
            d = np.asarray(d)
            what = f"output {k}, order={order}"
            np.testing.assert_array_equal(d, np.asarray(s.todense()), err_msg=what)
            np.testing.assert_array_equal(d[c], ref[c], err_msg=what)
            assert (d[~c] == 0).all(), (what, d)
