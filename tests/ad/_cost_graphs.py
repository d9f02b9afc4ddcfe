"""Shared helpers for the order and cost-graph tests: task graphs built abstractly (no array values)."""

from __future__ import annotations

import random
from functools import cache

import jax

import plastix
from plastix.ad import CostGraph
from plastix.bench import tasks


def abstract(fun, argnums, args, body):
    """``body(graph)`` evaluated inside ``jax.eval_shape``: the graph's partials hold tracers, so elimination is
    abstract (as in ``plastix.count_muls``) and computes no values."""
    out = {}

    def run(*dyn):
        full = list(args)
        for k, d in zip(argnums, dyn):
            full[k] = d
        out["value"] = body(plastix.graph(fun, argnums)(*full))
        return 0

    jax.eval_shape(run, *(args[k] for k in argnums))
    return out["value"]


@cache
def task_cost_graph(name: str) -> CostGraph:
    """The cost graph of benchmark task ``name`` (float32, built abstractly)."""
    task = tasks.get(name)
    return abstract(task.fun, task.argnums, task.args, CostGraph)


def random_order(vertices, seed: int) -> list[int]:
    order = list(vertices)
    random.Random(seed).shuffle(order)
    return order
