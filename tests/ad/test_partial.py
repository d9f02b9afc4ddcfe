"""Structured partials: stored sizes, composition counts, addition, densification, pytree behaviour, the public
immutable algebra."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plastix
from plastix.ad import Axis, Partial, add, batch_sum, canonical, compose, structure_key


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _rng(*shape, seed=0):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape))


def test_matvec_wrt_weights_stores_the_input_only():
    n, m = 5, 7
    W, x = _rng(n, m), _rng(m, seed=1)
    p = plastix.jacve(lambda W: W @ x, sparse=True)(W)
    assert p.stored_size == m
    np.testing.assert_allclose(p.todense(), jax.jacrev(lambda W: W @ x)(W))


def test_elementwise_chain_stays_diagonal():
    x = _rng(50)
    p = plastix.jacve(lambda x: jnp.tanh(jnp.sin(x) * 2.0), sparse=True)(x)
    assert p.kind == "diagonal" and p.stored_size == 50
    np.testing.assert_allclose(p.todense(), jax.jacrev(lambda x: jnp.tanh(jnp.sin(x) * 2.0))(x))


def test_lif_step_wrt_weights_is_an_outer_product_of_size_n_m():
    n, m = 6, 9
    W, u, x = _rng(n, m), _rng(n, seed=1), _rng(m, seed=2)

    def step(W):
        v = 0.9 * u + W @ x
        return v - jnp.tanh(v) * 0.5

    p = plastix.jacve(step, sparse=True)(W)
    assert p.stored_size == n * m
    np.testing.assert_allclose(p.todense(), jax.jacrev(step)(W), rtol=1e-12)


@pytest.mark.parametrize("fun", [lambda x: x.T, lambda x: x.reshape(-1), lambda x: x[1:, ::2],
                                 lambda x: jnp.flip(x, 0), lambda x: jnp.broadcast_to(x, (2, 3, 4))])
def test_index_maps_store_nothing(fun):
    x = _rng(3, 4)
    p = plastix.jacve(fun, sparse=True)(x)
    assert p.stored_size == 0
    np.testing.assert_allclose(p.todense(), jax.jacrev(fun)(x))


def test_compose_counts_follow_the_convention():
    n, p_, m = 3, 4, 5
    A = Partial.dense(_rng(n, p_), (n,), (p_,))
    B = Partial.dense(_rng(p_, m, seed=1), (p_,), (m,))
    product, muls = compose(A, B)
    assert muls == n * p_ * m
    np.testing.assert_allclose(product.todense(), A.todense() @ B.todense())
    D = Partial.elementwise(_rng(p_, seed=2), (p_,), (p_,), jnp.float64)
    product, muls = compose(A, D)
    assert muls == n * p_
    np.testing.assert_allclose(product.todense(), A.todense() @ D.todense())
    product, muls = compose(D, D)
    assert muls == p_ and product.kind == "diagonal"
    identity = Partial.identity((p_,), jnp.float64)
    product, muls = compose(identity, D)
    assert muls == 0
    np.testing.assert_allclose(product.todense(), D.todense())


def test_add_keeps_shared_structure_and_densifies_otherwise():
    d1 = Partial.elementwise(_rng(4), (4,), (4,), jnp.float64)
    d2 = Partial.elementwise(jnp.asarray(3.0), (4,), (4,), jnp.float64)
    total = add(d1, d2)
    assert total.kind == "diagonal" and total.stored_size == 4
    np.testing.assert_allclose(total.todense(), d1.todense() + d2.todense())
    dense = Partial.dense(_rng(4, 4, seed=3), (4,), (4,))
    mixed = add(d1, dense)
    np.testing.assert_allclose(mixed.todense(), d1.todense() + dense.todense())


def test_partial_is_a_pytree_of_its_stored_values():
    x = _rng(3)
    p = plastix.jacve(lambda W: jnp.sin(W @ x), sparse=True)(_rng(2, 3, seed=1))
    leaves, treedef = jax.tree.flatten(p)
    assert len(leaves) == 1 and leaves[0].size == p.stored_size
    q = jax.tree.unflatten(treedef, [leaves[0] * 2])
    np.testing.assert_allclose(q.todense(), 2 * p.todense())
    doubled = jax.jit(lambda p: jax.tree.map(lambda v: 2 * v, p))(p)
    np.testing.assert_allclose(doubled.todense(), 2 * p.todense())


def test_transpose_swaps_input_and_output():
    p = plastix.jacve(lambda W: jnp.sin(W @ jnp.arange(3.0)), sparse=True)(_rng(2, 3))
    dense = p.todense()
    np.testing.assert_allclose(p.transpose().todense(), jnp.transpose(dense, (1, 2, 0)))


def _diagonal(n=4):
    return Partial(out_shape=[n], in_shape=(n,), sizes={0: n}, out_axes=[Axis((0,))], in_axes=[Axis((0,))],
                   val_labels=[0], val=jnp.arange(1.0, n + 1), dtype="float64")


def test_partial_is_a_frozen_record_built_by_keyword_or_position():
    p = _diagonal()
    assert p.out_shape == (4,) and p.out_axes == (Axis((0,)),) and p.val_labels == (0,)
    assert p.dtype == np.dtype("float64") and isinstance(p.sizes, dict)
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.val = None
    q = Partial(p.out_shape, p.in_shape, p.sizes, p.out_axes, p.in_axes, p.val_labels, p.val, p.dtype)
    np.testing.assert_array_equal(q.todense(), p.todense())


def test_replace_changes_fields_and_normalises_them():
    p = _diagonal()
    q = p.replace(val=2 * p.val, val_labels=[0], dtype=jnp.float32)
    assert q.val_labels == (0,) and q.dtype == np.dtype("float32") and type(q) is Partial
    np.testing.assert_array_equal(q.todense(), 2 * p.todense())
    np.testing.assert_array_equal(p.val, jnp.arange(1.0, 5))  # unchanged
    with pytest.raises(TypeError):
        p.replace(values=None)


def test_same_positions_compares_plain_labels_and_index_maps():
    p = Partial((3, 2), (3, 2), {0: 3, 1: 2}, [Axis((0,)), Axis((1,))], [Axis((0,)), Axis((1,))], (), None,
                np.float64)
    assert p.same_positions(Axis((0,)), Axis((0,)))
    assert not p.same_positions(Axis((0,)), Axis((1,)))
    assert p.same_positions(Axis((0,)), Axis((0,), np.arange(3)))
    assert not p.same_positions(Axis((0,)), Axis((0,), np.array([2, 1, 0])))
    assert p.same_positions(Axis((0, 1), np.add.outer(np.arange(3), 0 * np.arange(2))), Axis((0,)))
    assert p.same_positions(Axis((), np.asarray(1)), Axis((), np.asarray(1)))


def test_public_algebra_functions():
    x = _rng(3, 4)
    p = plastix.jacve(lambda x: jnp.sin(x) @ jnp.ones(4), sparse=True)(x)
    assert structure_key(canonical(p)) == structure_key(canonical(add(p, p)))
    a, b = _rng(5, 3, seed=1), _rng(5, 3, seed=2)
    np.testing.assert_allclose(batch_sum([((0,), a), ((0,), b)], (0,)), jnp.sum(a * b, 0))
    np.testing.assert_allclose(batch_sum([((0,), a), ((1,), b)], (0, 1)), jnp.einsum("bi,bj->ij", a, b))


def test_every_name_online_imports_is_public():
    for name in ("Axis", "Graph", "Partial", "add", "batch_sum", "build_graph", "canonical", "compose",
                 "eliminate", "is_local", "reachable", "resolve_order", "structure_key"):
        assert name in plastix.ad.__all__ and getattr(plastix.ad, name) is not None
    assert plastix.ad.resolve_order is plastix.ad.orders.resolve
