"""Error contract: invalid elimination orders, unsupported primitives, non-float inputs."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax
from jax.extend.core import Primitive

import plastix

from .conftest import assert_trees_close

pytestmark = pytest.mark.usefixtures("x64")


def _f(x, W):
    h = jnp.sin(W @ x)
    return jnp.tanh(h * jnp.exp(x[:2])).sum() + jnp.cos(h).prod()


def _args():
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.uniform(-1, 1, 3)), jnp.asarray(rng.uniform(-1, 1, (2, 3)))


def _vertices():
    vs = list(plastix.graph(_f, (0, 1))(*_args()).vertices)
    assert len(vs) >= 5, vs
    return vs


def _names(message: str, ident) -> bool:
    """``ident`` appears in ``message`` as a whole number (not as part of a longer one)."""
    return re.search(rf"(?<![\d]){re.escape(str(ident))}(?![\d])", message) is not None


def _raises_value_error(order) -> str:
    with pytest.raises(ValueError) as info:
        plastix.jacve(_f, (0, 1), order=order)(*_args())
    return str(info.value)


def test_valid_orders_as_list_and_tuple_give_the_same_jacobian():
    vs = _vertices()
    ref = jax.jacrev(_f, (0, 1))(*_args())
    for order in (vs, tuple(vs), vs[::-1], vs[1::2] + vs[0::2]):
        assert_trees_close(plastix.jacve(_f, (0, 1), order=order)(*_args()), ref, rtol=1e-5, atol=1e-8,
                           what=f"order={order}")


def test_missing_vertex_is_named():
    vs = _vertices()
    gone = vs[len(vs) // 2]  # an interior id: not one of the ends a message might quote as a range
    msg = _raises_value_error([v for v in vs if v != gone])
    assert "missing" in msg.lower() and _names(msg, gone), msg


def test_several_missing_vertices_are_all_named():
    vs = _vertices()
    gone = vs[1:3]
    msg = _raises_value_error([v for v in vs if v not in gone])
    assert "missing" in msg.lower() and all(_names(msg, g) for g in gone), msg


def test_empty_order_names_missing_vertices():
    vs = _vertices()
    msg = _raises_value_error([])
    assert "missing" in msg.lower() and _names(msg, vs[len(vs) // 2]), msg


def test_repeated_vertex_is_named():
    vs = _vertices()
    twice = vs[len(vs) // 2]
    msg = _raises_value_error(vs + [twice])
    assert "repeat" in msg.lower() and _names(msg, twice), msg


def test_repeated_instead_of_missing_names_both():
    vs = _vertices()
    k = len(vs) // 2
    twice, gone = vs[k], vs[k + 1]
    order = [twice if v == gone else v for v in vs]
    msg = _raises_value_error(order)
    assert "repeat" in msg.lower() and _names(msg, twice), msg
    assert "missing" in msg.lower() and _names(msg, gone), msg


@pytest.mark.parametrize("extra", [987654, -4242])
def test_unknown_vertex_is_named(extra):
    vs = _vertices()
    msg = _raises_value_error(vs + [extra])
    assert "unknown" in msg.lower() and _names(msg, extra), msg


def test_unknown_replacing_a_vertex_names_unknown_and_missing():
    vs = _vertices()
    gone = vs[len(vs) // 2]
    msg = _raises_value_error([31337 if v == gone else v for v in vs])
    assert "unknown" in msg.lower() and _names(msg, 31337), msg
    assert "missing" in msg.lower() and _names(msg, gone), msg


def test_unknown_order_name_is_a_value_error():
    with pytest.raises(ValueError, match="sideways"):
        plastix.jacve(_f, (0, 1), order="sideways")(*_args())


def test_count_muls_validates_the_order_too():
    vs = _vertices()
    with pytest.raises(ValueError) as info:
        plastix.count_muls(_f, (0, 1), order=vs[:-1] + [vs[0]])(*_args())
    assert "repeat" in str(info.value).lower() and _names(str(info.value), vs[0])


def test_order_for_a_graph_without_vertices():
    f = lambda x: jnp.sin(x)
    x = jnp.arange(3.0)
    vs = list(plastix.graph(f)(x).vertices)
    np.testing.assert_allclose(plastix.jacve(f, order=vs)(x), jax.jacrev(f)(x))
    with pytest.raises(ValueError) as info:
        plastix.jacve(f, order=vs + [123456])(x)
    assert _names(str(info.value), 123456)


def test_order_is_validated_under_jit():
    vs = _vertices()
    with pytest.raises(ValueError) as info:
        jax.jit(plastix.jacve(_f, (0, 1), order=vs[1:]))(*_args())
    assert _names(str(info.value), vs[0])


# ----------------------------------------------------------------------------------------------------------------------
# unsupported primitives

_mystery_p = Primitive("plastix_test_mystery")
_mystery_p.def_impl(lambda x: 2.0 * x)
_mystery_p.def_abstract_eval(lambda aval: aval)


def _uses_mystery(x):
    return jnp.sum(_mystery_p.bind(jnp.sin(x)))


def test_fresh_primitive_runs_in_jax():
    x = jnp.arange(3.0)
    np.testing.assert_allclose(_uses_mystery(x), 2.0 * jnp.sin(x).sum())


@pytest.mark.parametrize("api", ["jacve", "graph", "count_muls"])
def test_fresh_primitive_raises_not_implemented_naming_it(api):
    x = jnp.arange(3.0)
    fn = {"jacve": plastix.jacve, "graph": plastix.graph, "count_muls": plastix.count_muls}[api]
    with pytest.raises(NotImplementedError, match="plastix_test_mystery"):
        fn(_uses_mystery)(x)


@pytest.mark.parametrize("order", ["fwd", "rev"])
def test_fft_is_differentiated_like_jacrev(order):
    """JAX can differentiate ``fft``: no error, a dense block (it used to raise NotImplementedError)."""
    f = lambda x: jnp.sum(jnp.abs(jnp.fft.rfft(x)) ** 2)
    x = jnp.arange(4.0)
    assert_trees_close(plastix.jacve(f, order=order)(x), jax.jacrev(f)(x), rtol=1e-10, atol=1e-10, what="rfft")


def test_lax_fft_is_differentiated_like_jacrev():
    f = lambda x: jnp.real(lax.fft(x.astype(jnp.complex128), "FFT", (4,))).sum()
    x = jnp.arange(4.0)
    assert_trees_close(plastix.jacve(f)(x), jax.jacrev(f)(x), rtol=1e-10, atol=1e-10, what="lax.fft")


# ----------------------------------------------------------------------------------------------------------------------
# non-float inputs: TypeError, like jax.jacrev


@pytest.mark.parametrize("value", [jnp.arange(3), jnp.array([True, False]), jnp.array([1, 2], dtype=jnp.int32)],
                         ids=["int64", "bool", "int32"])
def test_integer_and_bool_inputs_raise_type_error_like_jacrev(value):
    f = lambda x: x * 2
    with pytest.raises(TypeError):
        jax.jacrev(f)(value)
    with pytest.raises(TypeError):
        plastix.jacve(f)(value)


def test_python_int_input_raises_type_error_like_jacrev():
    f = lambda x: jnp.sin(x * 1.0)
    with pytest.raises(TypeError):
        jax.jacrev(f)(3)
    with pytest.raises(TypeError):
        plastix.jacve(f)(3)


def test_integer_leaf_in_differentiated_pytree_raises_type_error():
    f = lambda p: p["w"] * p["n"]
    p = {"w": jnp.arange(3.0), "n": jnp.arange(3)}
    with pytest.raises(TypeError):
        jax.jacrev(f)(p)
    with pytest.raises(TypeError):
        plastix.jacve(f)(p)


def test_integer_argument_in_tuple_argnums_raises_type_error():
    f = lambda x, k: x * k
    args = (jnp.arange(3.0), jnp.arange(3))
    with pytest.raises(TypeError):
        jax.jacrev(f, (0, 1))(*args)
    with pytest.raises(TypeError):
        plastix.jacve(f, (0, 1))(*args)


def test_integer_argument_not_differentiated_is_fine():
    f = lambda x, k: jnp.sin(x) * k
    args = (jnp.arange(3.0), jnp.arange(3))
    assert_trees_close(plastix.jacve(f)(*args), jax.jacrev(f)(*args), rtol=1e-5, atol=1e-8, what="int arg 1")


def test_count_muls_argnums_out_of_range_is_named():
    with pytest.raises(ValueError, match=r"count_muls: argnums \(0, 2\) out of range for 2 positional arguments"):
        plastix.count_muls(_f, (0, 2))(*_args())
    assert plastix.count_muls(_f, -1)(*_args()) == plastix.count_muls(_f, 1)(*_args())
