"""Public entry points: :func:`jacve`, :func:`graph`, :func:`count_muls`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.tree_util import tree_flatten, tree_unflatten

from ._eliminate import eliminate
from ._graph import Graph, build_graph
from ._partial import Partial
from .orders import OrderSpec, resolve

__all__ = ["jacve", "graph", "count_muls"]


def _argnums(argnums, n_args: int, name: str) -> tuple[bool, tuple[int, ...]]:
    """``(argnums is an int, the positions as non-negative ints)``, validated as ``jax.jacrev`` does."""
    int_argnums = isinstance(argnums, int) and not isinstance(argnums, bool)
    try:
        nums = (argnums,) if int_argnums else tuple(argnums)
    except TypeError:
        nums = (argnums,)
    for k in nums:
        if not isinstance(k, int | np.integer) or isinstance(k, bool) or not -n_args <= k < n_args:
            raise ValueError(f"{name}: argnums {argnums!r} out of range for {n_args} positional arguments")
    return int_argnums, tuple(int(k) % n_args for k in nums)


def _as_array(x):
    """A differentiated leaf as a JAX value (Python scalars and NumPy arrays as ``jax.jacrev`` takes them)."""
    return x if isinstance(x, jax.Array | jax.core.Tracer) else jnp.asarray(x)


_TRACED = object()  # marks an aux leaf that is a jaxpr output


def _is_traced(x) -> bool:
    return isinstance(x, jax.core.Tracer)


class _Traced:
    """A function traced to a graph for one call: the graph plus the trees to repack results.

    Only the leaves of the arguments in ``argnums`` are graph inputs; every other argument (and keyword
    argument) reaches ``fun`` exactly as given, so Python control flow and shapes may depend on it, as in
    ``jax.jacrev``.
    """

    def __init__(self, fun, argnums, has_aux, args, kwargs, name):
        self.int_argnums, self.argnums = _argnums(argnums, len(args), name)
        dyn = args[self.argnums[0]] if self.int_argnums else tuple(args[k] for k in self.argnums)
        flat, self.in_tree = tree_flatten(dyn)
        flat = [_as_array(x) for x in flat]
        self.in_avals = [jax.typeof(x) for x in flat]
        for aval in self.in_avals:
            if not jnp.issubdtype(aval.dtype, jnp.floating):
                raise TypeError(f"{name} requires real-valued inputs (input dtype that is a sub-dtype of "
                                f"np.floating), but got {aval.dtype.name}. If you want to use Boolean- or "
                                f"integer-valued inputs, use jax.vjp.")
        store: dict[str, Any] = {}

        def flat_fun(*flat_dyn):
            full = list(args)
            dyn_tree = tree_unflatten(self.in_tree, flat_dyn)
            for k, d in zip(self.argnums, (dyn_tree,) if self.int_argnums else dyn_tree):
                full[k] = d
            out = fun(*full, **kwargs)
            if has_aux:
                if not (isinstance(out, tuple) and len(out) == 2):
                    raise TypeError(f"{name} with has_aux=True requires fun to return a pair (out, aux), "
                                    f"got {type(out).__name__}")
                out, aux = out
            flat_out, store["out_tree"] = tree_flatten(out)
            store["n_out"] = len(flat_out)
            if not has_aux:
                return flat_out
            # aux passes through untouched: only leaves computed from the inputs become jaxpr outputs
            flat_aux, store["aux_tree"] = tree_flatten(aux)
            store["aux"] = [_TRACED if _is_traced(a) else a for a in flat_aux]
            return flat_out + [a for a in flat_aux if _is_traced(a)]

        closed = jax.make_jaxpr(flat_fun)(*flat)
        self.out_tree = store["out_tree"]
        self.aux_tree = store.get("aux_tree")
        self.static_aux = store.get("aux")
        self.out_avals = closed.out_avals[:store["n_out"]]
        for aval in self.out_avals:
            if not jnp.issubdtype(aval.dtype, jnp.floating):
                raise TypeError(f"{name} requires real-valued outputs (output dtype that is a sub-dtype of "
                                f"np.floating), but got {aval.dtype.name}.")
        self.graph = build_graph(closed, flat, store["n_out"])

    def aux(self):
        """The auxiliary output: leaves computed from the inputs from the graph, all others as ``fun`` gave them."""
        traced = iter(self.graph.values[len(self.out_avals):])
        return tree_unflatten(self.aux_tree, [next(traced) if a is _TRACED else a for a in self.static_aux])

    def assemble(self, edges, sparse: bool):
        g = self.graph
        rows = []
        for out_id, out_aval in zip(g.outputs, self.out_avals):
            row = []
            for in_id, in_aval in zip(g.inputs, self.in_avals):
                p = edges.get((in_id, out_id))
                if sparse:
                    block = (p or Partial.zeros(out_aval.shape, in_aval.shape, in_aval.dtype)).astype(in_aval.dtype)
                elif p is None:
                    block = jnp.zeros(out_aval.shape + in_aval.shape, in_aval.dtype)
                else:
                    block = p.todense().astype(in_aval.dtype)
                row.append(block)
            rows.append(tree_unflatten(self.in_tree, row))
        return tree_unflatten(self.out_tree, rows)


def jacve(fun: Callable, argnums: int | Sequence[int] = 0, *, order: OrderSpec = "rev", has_aux: bool = False,
          sparse: bool = False) -> Callable:
    """Jacobian of ``fun`` by cross-country vertex elimination; a drop-in for ``jax.jacrev``.

    Args:
        fun: function of arrays (pytrees allowed) returning arrays (pytrees allowed).
        argnums: which positional arguments to differentiate (int or tuple, as in JAX); their leaves may be JAX
            or NumPy arrays or Python floats. The other arguments reach ``fun`` as given (concrete: Python control
            flow and shapes may depend on them), as in ``jax.jacrev``.
        order: ``"fwd"``, ``"rev"``, ``"markowitz"``, ``"reverse_markowitz"``, ``"min_fill"``, ``"search"``
            (searched once per graph, then cached; see :mod:`plastix.ad.orders`), a saved
            :class:`plastix.ad.orders.Order`, or a sequence of integer vertex ids (a list, tuple, range or 1-d
            integer array: a permutation of ``graph(...).vertices``).
        has_aux: ``fun`` returns ``(out, aux)``; the Jacobian function then returns ``(jac, aux)``, ``aux`` as
            ``fun`` returned it (any pytree: strings and Python numbers pass through untouched).
        sparse: return structured :class:`Partial` blocks instead of dense arrays (call ``.todense()``).

    Returns:
        A function with the signature of ``fun`` returning the Jacobian in ``jax.jacrev``'s pytree layout:
        the output structure, each leaf holding the input structure of blocks ``out.shape + in.shape``.

    Raises:
        ValueError: invalid ``order`` (see :func:`plastix.ad.resolve_order`) or ``argnums`` out of range.
        TypeError: ``order`` is not an order at all (``None``, a number, ...), a differentiated input or an
            output is not floating point, or ``has_aux=True`` and ``fun`` does not return a pair.
        NotImplementedError: a primitive without a partial-derivative rule that JAX cannot differentiate either
            (a primitive JAX can differentiate takes a dense fallback, with a one-time warning).

    Example:
        >>> jac = plastix.jacve(lambda W, x: jnp.tanh(W @ x), argnums=(0, 1))(W, x)
    """

    def traced_jac(*args, **kwargs):
        traced = _Traced(fun, argnums, has_aux, args, kwargs, "jacve")
        edges, _ = eliminate(traced.graph, resolve(traced.graph, order))
        jac = traced.assemble(edges, sparse)
        return (jac, traced.aux()) if has_aux else jac

    def jac_fun(*args, **kwargs):
        if any(_is_traced(x) for x in jax.tree.leaves((args, kwargs))):
            return traced_jac(*args, **kwargs)
        return _compiled(traced_jac, argnums, has_aux, args, kwargs)

    return jac_fun


def _compiled(traced_jac: Callable, argnums, has_aux: bool, args, kwargs):
    """``traced_jac(*args, **kwargs)`` called eagerly: the whole accumulation compiled once instead of dispatched
    op by op. Only the differentiated leaves are arguments of the compiled function; every other argument stays
    concrete."""
    _, nums = _argnums(argnums, len(args), "jacve")
    flat, tree = tree_flatten([args[k] for k in nums])
    static: dict[str, Any] = {}

    def with_arrays(*flat_dyn):
        full = list(args)
        for k, d in zip(nums, tree_unflatten(tree, flat_dyn)):
            full[k] = d
        if not has_aux:
            return traced_jac(*full, **kwargs)
        jac, aux = traced_jac(*full, **kwargs)
        leaves, static["tree"] = tree_flatten(aux)
        static["leaves"] = [_TRACED if _is_traced(a) else a for a in leaves]
        return jac, [a for a in leaves if _is_traced(a)]

    result = jax.jit(with_arrays)(*flat)
    if not has_aux:
        return result
    jac, traced = result
    traced = iter(traced)
    return jac, tree_unflatten(static["tree"], [next(traced) if a is _TRACED else a for a in static["leaves"]])


def graph(fun: Callable, argnums: int | Sequence[int] = 0, *, has_aux: bool = False) -> Callable[..., Graph]:
    """The computational graph of ``fun`` at given arguments: ``plastix.graph(f)(x) -> Graph``.

    ``Graph.vertices`` lists the ids an elimination order must contain; ``Graph.summary()`` shows every
    vertex with its primitive, shape and the structure of its incoming partials.

    Args:
        fun: function of arrays (pytrees allowed) returning arrays (pytrees allowed).
        argnums: which positional arguments are graph inputs (int or sequence of ints, as in JAX); the
            others reach ``fun`` as given (concrete), exactly as in :func:`jacve`.
        has_aux: ``fun`` returns ``(out, aux)``; only ``out`` becomes graph outputs.

    Returns:
        A function with the signature of ``fun`` returning the :class:`plastix.ad.Graph` traced at those
        arguments (one graph per call; nothing is cached).

    Raises:
        ValueError: ``argnums`` out of range for the positional arguments.
        TypeError: a differentiated input or an output is not floating point, or ``has_aux=True`` and
            ``fun`` does not return a pair.
        NotImplementedError: a primitive without a partial-derivative rule that JAX cannot differentiate either
            (register one with :func:`plastix.ad.defrule`).

    Example:
        >>> g = plastix.graph(lambda W, x: jnp.tanh(W @ x), argnums=(0, 1))(W, x)
        >>> g.vertices          # ids to permute into a custom elimination order
        >>> print(g.summary())
    """

    def graph_fun(*args, **kwargs) -> Graph:
        return _Traced(fun, argnums, has_aux, args, kwargs, "graph").graph

    return graph_fun


def count_muls(fun: Callable, argnums: int | Sequence[int] = 0, *, order: OrderSpec = "rev",
               has_aux: bool = False) -> Callable[..., int]:
    """Number of multiplications the elimination in ``order`` performs, from shapes and structure alone.

    Convention (as AlphaGrad's): only products of partials during elimination count; composing two partials
    with stored values costs the size of the union of their labels (dense m×n by n×p: m·n·p, diagonal by
    diagonal: n, diagonal by dense n×p: n·p); a partial without stored values (an index map: transpose,
    reshape, slice, broadcast, identity) composes for free; additions and the elemental partials themselves
    are not counted.

    Args:
        fun: function of arrays (pytrees allowed) returning arrays (pytrees allowed).
        argnums: which positional arguments to differentiate (int or sequence of ints), as for :func:`jacve`.
        order: an elimination order, as for :func:`jacve`.
        has_aux: ``fun`` returns ``(out, aux)``; ``aux`` is ignored.

    Returns:
        A function of the same arguments as ``fun`` returning an ``int``; no array values are computed
        (the function is evaluated abstractly with ``jax.eval_shape``).

    Raises:
        ValueError: invalid ``order`` (see :func:`plastix.ad.resolve_order`).
        ValueError: ``argnums`` out of range for the positional arguments.
        TypeError: a differentiated input or an output is not floating point, or ``has_aux=True`` and
            ``fun`` does not return a pair.
        NotImplementedError: as :func:`jacve`.

    Example:
        >>> f = lambda W, x: jnp.tanh(W @ x)
        >>> plastix.count_muls(f, order="fwd")(W, x), plastix.count_muls(f, order="rev")(W, x)
    """

    def count_fun(*args, **kwargs) -> int:
        result = {}
        _, nums = _argnums(argnums, len(args), "count_muls")
        flat, tree = tree_flatten([args[k] for k in nums])

        def run(*flat_dyn):
            full = list(args)
            for k, d in zip(nums, tree_unflatten(tree, flat_dyn)):
                full[k] = d
            traced = _Traced(fun, argnums, has_aux, tuple(full), kwargs, "count_muls")
            _, result["muls"] = eliminate(traced.graph, resolve(traced.graph, order))
            return 0

        jax.eval_shape(run, *[_as_array(x) for x in flat])
        return int(result["muls"])

    return count_fun
