"""plastix.ad.orders.optimal: the exact minimum equals brute force over all permutations on small programs, is no
worse than any heuristic, its lower bound is valid and its order gives jax.jacrev's Jacobian."""

from __future__ import annotations

import itertools
import random

import jax
import jax.numpy as jnp
import pytest

import plastix
from plastix.ad import CostGraph, orders

from ._cost_graphs import task_cost_graph
from .conftest import assert_trees_close

_OPS = {
    "add": lambda x, y: x + y,
    "sub": lambda x, y: x - y,
    "mul": lambda x, y: x * y,
    "sin": lambda x, y: jnp.sin(x),
    "exp": lambda x, y: jnp.exp(x),
}


def _program(seed: int, n_in: int = 3, n_ops: int = 8, n_out: int = 2, vector: bool = False):
    """A random straight-line program of sums, products and unary functions (sums are index-map edges)."""
    rng = random.Random(seed)
    ops = [(rng.choice(("add", "add", "sub", "mul", "mul", "sin", "exp")), rng.randrange(n_in + k),
            rng.randrange(n_in + k)) for k in range(n_ops)]
    outs = rng.sample(range(n_in, n_in + n_ops), n_out)

    def fun(*xs):
        vals = list(xs)
        for op, a, b in ops:
            vals.append(_OPS[op](vals[a], vals[b]))
        return tuple(vals[o] for o in outs)

    shape = (3,) if vector else ()
    return fun, tuple(jnp.full(shape, 0.3 + 0.1 * i) for i in range(n_in))


def _gather_program(x, y):
    """Index arrays (slices, concatenation, reversal): the exact search runs with the trivial bound."""
    h = jnp.concatenate([jnp.sin(x[:2]) * y[1:], x[2:]])
    return h[::-1] * y


def _check(cg: CostGraph) -> orders.Exact:
    result = orders.optimal(cg, max_states=100_000)
    brute = min(cg.count(p) for p in itertools.permutations(cg.vertices))
    assert result.proven_optimal
    assert result.muls == result.lower_bound == brute == cg.count(result.order)
    assert sorted(result.order) == sorted(cg.vertices)
    assert all(result.muls <= cg.count(h(cg)) for h in orders.HEURISTICS.values())
    return result


def test_optimal_equals_brute_force_on_random_programs():
    checked = 0
    for seed in range(60):
        fun, args = _program(seed, vector=seed % 3 == 0)
        cg = CostGraph(plastix.graph(fun, tuple(range(len(args))))(*args))
        if 2 <= len(cg.vertices) <= 6:
            _check(cg)
            checked += 1
    assert checked >= 30


def test_optimal_with_index_arrays_equals_brute_force_and_gives_jacrevs_jacobian(x64):
    x, y = jnp.linspace(0.1, 0.9, 3), jnp.linspace(-0.5, 0.5, 3)
    cg = CostGraph(plastix.graph(_gather_program, (0, 1))(x, y))
    assert len(cg.vertices) <= 8
    result = _check(cg)
    got = plastix.jacve(_gather_program, (0, 1), order=result.order)(x, y)
    assert_trees_close(got, jax.jacrev(_gather_program, (0, 1))(x, y), rtol=1e-10, atol=1e-12, what="optimal")


def test_optimal_order_gives_jacrevs_jacobian(x64):
    fun, args = _program(7, n_ops=10)
    argnums = tuple(range(len(args)))
    result = orders.optimal(plastix.graph(fun, argnums)(*args), max_states=100_000)
    assert result.proven_optimal
    got = plastix.jacve(fun, argnums, order=result.order)(*args)
    assert_trees_close(got, jax.jacrev(fun, argnums)(*args), rtol=1e-10, atol=1e-12, what="optimal")


@pytest.mark.parametrize(("name", "muls"), [("HumanHeartDipole", 70), ("PropaneCombustion", 36)])
def test_optimal_proves_the_task_optimum_from_the_root_bound(name, muls):
    result = orders.optimal(task_cost_graph(name), max_states=0)
    assert result.lower_bound == muls == _best_heuristic(name)  # the best heuristic is optimal here
    assert result.proven_optimal and result.muls == muls


def _best_heuristic(name: str) -> int:
    cg = task_cost_graph(name)
    return min(cg.count(h(cg)) for h in orders.HEURISTICS.values())


def test_optimal_stops_at_its_state_budget_with_a_valid_lower_bound():
    cg = task_cost_graph("RobotArm_6DOF")
    result = orders.optimal(cg, max_states=5)
    assert result.lower_bound <= result.muls == cg.count(result.order) <= _best_heuristic("RobotArm_6DOF")
    assert orders.optimal(cg, max_states=5) == result


def test_search_returns_a_proven_optimum_at_once():
    cg = task_cost_graph("HumanHeartDipole")
    order, muls = orders.search(cg, seconds=30.0)
    assert muls == cg.count(order) == 70
