"""CostGraph: multiplication counts equal to the real elimination (count_muls) for every order, fast, stable."""

from __future__ import annotations

import time

import jax.numpy as jnp
import numpy as np
import pytest

import plastix
from plastix.ad import CostGraph, eliminate, orders
from plastix.bench import tasks

from ._cost_graphs import abstract, random_order, task_cost_graph


def _counts(fun, argnums, args, make_orders):
    """``[(CostGraph count, eliminate's count)]`` for the orders ``make_orders(cost_graph)``, abstractly."""

    def body(g):
        cg = CostGraph(g)
        return [(cg.count(o), eliminate(g, o)[1]) for o in make_orders(cg)]

    return abstract(fun, argnums, args, body)


@pytest.mark.parametrize("name", tasks.names())
def test_counts_equal_the_elimination_on_every_task(name):
    task = tasks.get(name)
    counts = _counts(task.fun, task.argnums, task.args, lambda cg: [orders.markowitz(cg)])
    for cost, real in counts:
        assert cost == real


@pytest.mark.slow
@pytest.mark.parametrize("name", tasks.names())
def test_counts_equal_the_elimination_for_every_heuristic_random_orders_and_search(name):
    task = tasks.get(name)

    def make(cg):
        return [*(h(cg) for h in orders.HEURISTICS.values()), random_order(cg.vertices, 1),
                random_order(cg.vertices, 2), orders.search(cg, seconds=60, max_evals=50)[0]]

    for cost, real in _counts(task.fun, task.argnums, task.args, make):
        assert cost == real


@pytest.mark.parametrize("name", ["HumanHeartDipole", "PropaneCombustion"])
def test_counts_equal_count_muls(name):
    task = tasks.get(name)
    cg = task_cost_graph(name)
    for order in ("fwd", "rev", orders.markowitz(cg), random_order(cg.vertices, 3)):
        vertices = orders.HEURISTICS[order](cg) if isinstance(order, str) else order
        assert cg.count(vertices) == plastix.count_muls(task.fun, task.argnums, order=order)(*task.args)


@pytest.mark.parametrize("seed", [0, 1])
def test_counts_equal_count_muls_on_random_programs(seed):
    fun, args = tasks.random_function(seed, n_inputs=5, n_ops=25, n_outputs=4, finite=False)  # counts only
    argnums = tuple(range(len(args)))

    def make(cg):
        return [list(cg.vertices), list(reversed(cg.vertices)), orders.markowitz(cg), orders.min_fill(cg),
                random_order(cg.vertices, seed)]

    for cost, real in _counts(fun, argnums, args, make):
        assert cost == real


def test_structured_partials_hand_counted():
    # W2 @ tanh(W1 @ x) w.r.t. x: fwd 12 + 24 = 36, rev 8 + 24 = 32 (see test_count.py)
    W1, W2 = jnp.ones((4, 3)) / 3, jnp.ones((2, 4)) / 4
    cg = CostGraph(plastix.graph(lambda x: W2 @ jnp.tanh(W1 @ x))(jnp.arange(3.0)))
    assert cg.count(orders.forward(cg)) == 36
    assert cg.count(orders.reverse(cg)) == 32


def test_counts_are_stable():
    cg = task_cost_graph("RoeFlux_3d")
    order = random_order(cg.vertices, 4)
    first = cg.count(order)
    assert cg.count(order) == first
    other = abstract(tasks.get("RoeFlux_3d").fun, tasks.get("RoeFlux_3d").argnums, tasks.get("RoeFlux_3d").args,
                     CostGraph)
    assert other.count(list(reversed(cg.vertices))) == cg.count(list(reversed(cg.vertices)))
    assert other.count(order) == first  # a fresh memo, filled in another sequence
    assert other.fingerprint == cg.fingerprint


def test_state_cost_and_fill_predict_the_elimination():
    cg = task_cost_graph("BlackScholes_Jacobian")
    state = cg.start()
    for v in random_order(cg.vertices, 5):
        cost, fill = state.cost(v), state.fill(v)
        before = sum(len(d) for d in state.succ.values())
        removed = len(state.pred[v]) + len(state.succ[v])
        assert state.eliminate(v) == cost
        assert sum(len(d) for d in state.succ.values()) <= before - removed + fill
    assert state.remaining() == []


def test_prefix_counts_sum_to_the_count():
    cg = task_cost_graph("RobotArm_6DOF")
    order = random_order(cg.vertices, 6)
    steps = cg.prefix_counts(order)
    assert len(steps) == len(order) and sum(steps) == cg.count(order) and min(steps) >= 0


def test_elimination_rate_on_roeflux_1d():
    cg = task_cost_graph("RoeFlux_1d")
    order = list(reversed(cg.vertices))
    cg.count(order)  # warm the memo, as a search does after its first orders
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.3:
        cg.count(order)
        n += len(order)
    rate = n / (time.perf_counter() - start)
    assert rate > 10_000, f"{rate:.0f} eliminations/s (target 100 000 on an idle core)"


def test_index_maps_are_free():
    cg = CostGraph(plastix.graph(lambda x: x.T.reshape(-1)[::2])(np.ones((3, 4))))
    assert cg.count(orders.forward(cg)) == 0


def test_contractions_count_products_that_sum_over_stored_values():
    W1, W2 = jnp.ones((5, 4)), jnp.ones((3, 5))
    mlp = plastix.graph(lambda x: W2 @ jnp.tanh(W1 @ x))(jnp.ones(4))
    cg = CostGraph(mlp)
    # rev scales W2 by tanh' (elementwise), then contracts the hidden axis with W1; fwd the other way round
    assert cg.contractions(orders.reverse(cg)) == cg.contractions(orders.forward(cg)) == 1
    elementwise = CostGraph(plastix.graph(lambda x: jnp.sin(jnp.exp(x) * x))(jnp.ones(4)))
    assert elementwise.contractions(orders.reverse(elementwise)) == 0
