"""Sparse vertex-elimination automatic differentiation.

Trace a JAX function to its jaxpr, put the structured elemental partial of every equation on the edges of a
computational graph, and accumulate the Jacobian by cross-country vertex elimination in any order.
"""

from . import orders
from ._cost import CostGraph
from ._eliminate import eliminate, resolve_order
from ._graph import Graph, VertexInfo, build_graph
from ._partial import Axis, Partial
from ._rules import defdense, defelementwise, defelementwise_jvp, defrule, defzero, rules
from .api import count_muls, graph, jacve

__all__ = [
    "Axis",
    "CostGraph",
    "Graph",
    "Partial",
    "VertexInfo",
    "build_graph",
    "count_muls",
    "defdense",
    "defelementwise",
    "defelementwise_jvp",
    "defrule",
    "defzero",
    "eliminate",
    "graph",
    "jacve",
    "orders",
    "resolve_order",
    "rules",
]
