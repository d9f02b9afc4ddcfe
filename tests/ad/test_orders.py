"""plastix.ad.orders: heuristics and search give valid orders and jax.jacrev's Jacobian; search contract; saved
and cached orders bound to their graph's fingerprint."""

from __future__ import annotations

import json
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plastix
from plastix.ad import CostGraph, eliminate, orders
from plastix.bench import tasks

from ._cost_graphs import abstract, task_cost_graph
from .conftest import assert_trees_close

NAMED = tuple(orders.HEURISTICS)


def _net(W, x):
    h = jnp.tanh(W @ x)
    return jnp.sin(h) * h[::-1] + jnp.sum(h ** 2), jnp.exp(x[:2]) * h[0]


def _net_args():
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.uniform(-1, 1, (3, 4))), jnp.asarray(rng.uniform(-1, 1, 4))


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """An empty order cache directory, and a short search budget for ``order="search"``."""
    monkeypatch.setenv("PLASTIX_CACHE_DIR", str(tmp_path / "orders"))
    monkeypatch.setattr(orders, "SEARCH_SECONDS", 0.3)
    return tmp_path / "orders"


def _all_orders(cg: CostGraph) -> dict[str, list[int]]:
    named = {name: heuristic(cg) for name, heuristic in orders.HEURISTICS.items()}
    named["search"] = orders.search(cg, max_evals=30)[0]
    return named


def _check_task_jacobians(name: str) -> None:
    """Every order's elimination (eager, float64) against jax.jacrev, block by block."""
    task = tasks.get(name)
    args = task.valid_args if task.valid_args is not None else task.args
    args = tuple(jnp.asarray(a, jnp.float64) for a in args)
    ref = jax.tree_util.tree_leaves(jax.jit(jax.jacrev(task.fun, task.argnums))(*args))
    g = plastix.graph(task.fun, task.argnums)(*args)
    assert len(ref) == len(g.outputs) * len(g.inputs)
    for label, order in _all_orders(CostGraph(g)).items():
        edges, _ = eliminate(g, plastix.ad.resolve_order(g, order))
        for o, out in enumerate(g.outputs):
            for i, inp in enumerate(g.inputs):
                want = np.asarray(ref[o * len(g.inputs) + i])
                p = edges.get((inp, out))
                got = np.zeros_like(want) if p is None else np.asarray(p.todense())
                np.testing.assert_allclose(got, want, rtol=1e-7, atol=1e-10, err_msg=f"{name} {label} [{o}][{i}]")


@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("name", ["HumanHeartDipole"])
def test_every_order_gives_jacrevs_jacobian(name):
    _check_task_jacobians(name)


@pytest.mark.slow
@pytest.mark.usefixtures("x64")
@pytest.mark.parametrize("name", tasks.names())
def test_every_order_gives_jacrevs_jacobian_on_every_task(name):
    _check_task_jacobians(name)


@pytest.mark.usefixtures("x64", "cache")
def test_jacve_accepts_every_order_name_and_a_saved_order():
    W, x = _net_args()
    g = plastix.graph(_net, (0, 1))(W, x)
    saved = orders.Order.of(g, orders.min_fill(g))
    names = ("markowitz", "search")  # fwd, rev: test_conformance.py; the others: test_every_order_gives_...

    @jax.jit  # one compilation for all orders
    def jacobians(W, x):
        return [plastix.jacve(_net, (0, 1), order=order)(W, x) for order in (*names, saved)]

    ref = jax.jacrev(_net, (0, 1))(W, x)
    for order, got in zip((*names, saved), jacobians(W, x)):
        assert_trees_close(got, ref, rtol=1e-10, atol=1e-12, what=f"order={order!r}")


@pytest.mark.parametrize("name", tasks.names())
def test_every_order_is_a_permutation(name):
    cg = task_cost_graph(name)
    for label, order in _all_orders(cg).items():
        assert sorted(order) == sorted(cg.vertices), label
        assert all(type(v) is int for v in order), label


def test_markowitz_pre_eliminates_a_chain_in_forward_order():
    cg = CostGraph(plastix.graph(lambda x: jnp.sin(jnp.cos(jnp.exp(x))) * 2.0)(jnp.ones(3)))
    assert orders.markowitz(cg) == orders.forward(cg)


def test_heuristics_are_deterministic():
    task = tasks.get("g")
    a, b = task_cost_graph("g"), abstract(task.fun, task.argnums, task.valid_args, CostGraph)
    for heuristic in orders.HEURISTICS.values():
        assert heuristic(a) == heuristic(b)


def test_markowitz_eliminates_a_cheapest_vertex_at_every_step():
    cg = task_cost_graph("RoeFlux_1d")
    state = cg.start()
    pre = True
    for v in orders.markowitz(cg):
        remaining = state.remaining()
        if pre and len(state.pred[v]) * len(state.succ[v]) >= 2:
            pre = False
        if not pre:
            costs = {x: state.cost(x) for x in remaining}
            assert costs[v] == min(costs.values())
            assert v == min(x for x in remaining if costs[x] == costs[v])  # ties to the lowest id
        state.eliminate(v)


def test_search_is_reproducible_for_a_seed():
    cg = task_cost_graph("RobotArm_6DOF")
    first = orders.search(cg, seed=3, max_evals=300)
    assert orders.search(cg, seed=3, max_evals=300) == first
    assert first[1] == cg.count(first[0])


@pytest.mark.parametrize("name", ["RoeFlux_1d", "BlackScholes_Jacobian", "Perceptron", "Encoder"])
def test_search_is_never_worse_than_the_best_heuristic(name):
    cg = task_cost_graph(name)
    order, muls = orders.search(cg, max_evals=40)
    assert muls == cg.count(order)
    assert muls <= min(cg.count(h(cg)) for h in orders.HEURISTICS.values())


def test_search_improves_on_the_heuristics():
    cg = task_cost_graph("RoeFlux_1d")
    # more evaluations than the exact phase may take, so rollouts and annealing run however fast the machine is
    _, muls = orders.search(cg, max_evals=orders.EXACT_STATES + 1500)
    assert muls < min(cg.count(h(cg)) for h in orders.HEURISTICS.values())


def test_search_respects_its_time_budget():
    cg = task_cost_graph("RoeFlux_3d")
    start = time.perf_counter()
    order, muls = orders.search(cg, seconds=0.5)
    assert time.perf_counter() - start < 1.5
    assert muls == cg.count(order)


def test_saved_order_round_trip_and_use(tmp_path):
    W, x = _net_args()
    g = plastix.graph(_net, (0, 1))(W, x)
    saved = orders.Order.of(g, orders.markowitz(g), "markowitz")
    saved.save(tmp_path / "net.json")
    loaded = orders.load_order(tmp_path / "net.json")
    assert loaded == orders.Order(saved.vertices, saved.fingerprint, saved.muls, "markowitz", {})
    assert loaded.check(g) == list(saved.vertices)
    assert loaded.muls == plastix.count_muls(_net, (0, 1), order=loaded)(W, x)


def test_saved_order_refuses_another_graph():
    W, x = _net_args()
    g = plastix.graph(_net, (0, 1))(W, x)
    saved = orders.Order.of(g, orders.reverse(g))
    other = plastix.graph(_net, (0, 1))(W[:2], x)  # other shapes: another graph, same vertex count
    with pytest.raises(ValueError) as info:
        plastix.jacve(_net, (0, 1), order=saved)(W[:2], x)
    message = str(info.value)
    assert saved.fingerprint in message and other.fingerprint() in message and "cannot be applied" in message


def test_load_order_rejects_other_files(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"vertices": [1, 2]}))
    with pytest.raises(ValueError, match="not a saved elimination order"):
        orders.load_order(path)


@pytest.mark.parametrize("bad", ["markowitzz", "Search", ""])
def test_unknown_order_name_lists_the_valid_names(bad):
    with pytest.raises(ValueError) as info:
        plastix.jacve(_net, (0, 1), order=bad)(*_net_args())
    message = str(info.value)
    assert repr(bad) in message
    for name in (*NAMED, "search"):
        assert repr(name) in message


def test_search_order_is_cached_per_fingerprint(cache, monkeypatch):
    W, x = _net_args()
    g = plastix.graph(_net, (0, 1))(W, x)
    first = plastix.count_muls(_net, (0, 1), order="search")(W, x)
    path = cache / f"{g.fingerprint()}.json"
    saved = orders.load_order(path)
    assert saved.fingerprint == g.fingerprint() and saved.muls == first and saved.method == "search"
    assert [p.name for p in cache.iterdir()] == [path.name]  # no temporary left behind

    def no_search(*args, **kwargs):
        raise AssertionError("searched although the order is cached")

    monkeypatch.setattr(orders, "search", no_search)
    assert plastix.count_muls(_net, (0, 1), order="search")(W, x) == first


def test_cache_keeps_the_better_order_and_survives_a_corrupt_file(cache):
    W, x = _net_args()
    g = plastix.graph(_net, (0, 1))(W, x)
    worse = orders.Order.of(g, orders.forward(g), "fwd")
    better = orders.Order.of(g, orders.search(g, max_evals=20)[0], "search")
    assert better.muls <= worse.muls
    assert orders.store(better) == better
    assert orders.store(worse).muls == better.muls
    (cache / f"{g.fingerprint()}.json").write_text("{not json")
    assert orders.cached(g) is None
    assert orders.cached_search(g, seconds=0.1).fingerprint == g.fingerprint()


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("PLASTIX_CACHE_DIR", str(tmp_path / "a"))
    assert orders.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("PLASTIX_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert orders.cache_dir() == tmp_path / "xdg" / "plastix" / "orders"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert orders.cache_dir() == tmp_path / "home" / ".cache" / "plastix" / "orders"
