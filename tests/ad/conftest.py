"""Shared helpers for the plastix.ad ground-truth tests.

* ``x64`` fixture / ``x64_enabled()`` context: float64 switched on locally (``jax.enable_x64(True)`` as a
  context manager), never by flipping the global config at import time.
* ``check_jacobian``: ``plastix.jacve`` against ``jax.jacrev`` leaf by leaf (tree structure, dtype, shape,
  values) for ``"fwd"``, ``"rev"`` and random valid permutations of ``plastix.graph(...).vertices``.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest
from jax.tree_util import tree_flatten, tree_structure

import plastix


def x64_enabled(enabled: bool = True):
    """Context manager switching float64 on (or off) for the enclosed block only."""
    return jax.enable_x64(enabled)


@pytest.fixture
def x64():
    """Run the test body with float64 enabled (locally)."""
    with x64_enabled(True):
        yield


@pytest.fixture
def x32():
    """Run the test body with float64 disabled (locally): plain float32 JAX semantics."""
    with x64_enabled(False):
        yield


def random_orders(vertices, n: int = 2, seed: int = 0) -> list[list[int]]:
    """``n`` random permutations (python ints) of ``vertices``, seeded."""
    rng = np.random.default_rng(seed)
    return [[int(v) for v in rng.permutation(np.asarray(vertices, dtype=np.int64))] for _ in range(n)]


def assert_trees_close(actual, expected, *, rtol: float, atol: float, what: str = "") -> None:
    """Leaf-by-leaf comparison: equal tree structure, then per leaf equal dtype, shape and close values."""
    s_act, s_exp = tree_structure(actual), tree_structure(expected)
    assert s_act == s_exp, f"{what}: tree structure differs:\n  plastix: {s_act}\n  jax:     {s_exp}"
    leaves_act, _ = tree_flatten(actual)
    leaves_exp, _ = tree_flatten(expected)
    for k, (a, e) in enumerate(zip(leaves_act, leaves_exp)):
        a_dtype = getattr(a, "dtype", type(a))
        e_dtype = getattr(e, "dtype", type(e))
        assert a_dtype == e_dtype, f"{what}: leaf {k}: dtype {a_dtype} != jax's {e_dtype}"
        a_shape, e_shape = np.shape(a), np.shape(e)
        assert a_shape == e_shape, f"{what}: leaf {k}: shape {a_shape} != jax's {e_shape}"
        np.testing.assert_allclose(np.asarray(a), np.asarray(e), rtol=rtol, atol=atol,
                                   err_msg=f"{what}: leaf {k} values differ")


def check_jacobian(fun, args, argnums=0, orders=("fwd", "rev"), rtol: float = 1e-5, atol: float = 1e-8, *,
                   has_aux: bool = False, n_random: int = 2, seed: int = 0):
    """Compare ``plastix.jacve(fun, argnums, order=o)`` with ``jax.jacrev(fun, argnums)`` at ``args``.

    Checked for every ``o`` in ``orders`` plus ``n_random`` random permutations of
    ``plastix.graph(fun, argnums)(*args).vertices`` (seeded by ``seed``). With ``has_aux`` the aux output is
    compared too (``plastix.graph`` has no ``has_aux`` in the contract, so only the named orders are used
    then). Returns the graph (``None`` with ``has_aux``).
    """
    args = tuple(args)
    expected = jax.jacrev(fun, argnums, has_aux=has_aux)(*args)
    g = None
    all_orders = list(orders)
    if not has_aux:
        g = plastix.graph(fun, argnums)(*args)
        vertices = tuple(g.vertices)
        assert all(isinstance(v, int) for v in vertices), f"Graph.vertices must be ints, got {vertices!r}"
        all_orders += random_orders(vertices, n_random, seed)
    for order in all_orders:
        actual = plastix.jacve(fun, argnums, order=order, has_aux=has_aux)(*args)
        assert_trees_close(actual, expected, rtol=rtol, atol=atol, what=f"order={order!r}")
    return g
