"""Sparse vertex-elimination automatic differentiation.

Trace a JAX function to its jaxpr, put the structured elemental partial of every equation on the edges of a
computational graph, and accumulate the Jacobian by cross-country vertex elimination in any order.

Modules, each importing only those before it: ``_partial`` (the partial algebra), ``_rules`` (the rule table),
``_graph`` (the interpreter building a :class:`Graph`), ``_eliminate``, ``_custom`` (the rules of ``custom_jvp`` and
``custom_vjp``, which build and eliminate graphs of their own), ``_cost``, ``_exact``, ``orders``, ``api``.
"""

from . import _custom, orders  # noqa: F401  (_custom registers the rules of custom_jvp and custom_vjp)
from ._cost import CostGraph
from ._eliminate import eliminate
from ._graph import Graph, VertexInfo, build_graph, reachable
from ._partial import Axis, Partial, add, batch_sum, canonical, compose, is_local, structure_key
from ._rules import defdense, defelementwise, defelementwise_jvp, defrule, defzero, rules
from .api import count_muls, graph, jacve
from .orders import OrderSpec
from .orders import resolve as resolve_order

__all__ = [
    "Axis",
    "CostGraph",
    "Graph",
    "OrderSpec",
    "Partial",
    "VertexInfo",
    "add",
    "batch_sum",
    "build_graph",
    "canonical",
    "compose",
    "count_muls",
    "defdense",
    "defelementwise",
    "defelementwise_jvp",
    "defrule",
    "defzero",
    "eliminate",
    "graph",
    "is_local",
    "jacve",
    "orders",
    "reachable",
    "resolve_order",
    "rules",
    "structure_key",
]
