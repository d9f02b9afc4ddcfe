"""Planning the traces of a step: which blocks exist, their fixed-point layouts, which advance in chunks.

Everything here runs on shapes alone (``jax.eval_shape``): no array values are computed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np

from ..ad import Partial, add, canonical, compose, structure_key
from ._chunked import chunk_layout, group_layout
from ._jacobians import step_jacobians
from ._modes import Mode, get_mode

__all__ = ["DEFAULT_MAX_TRACE_SIZE", "TracePlan", "bounded_plan", "conform", "parameter_names", "plan_traces",
           "trace_update"]

DEFAULT_MAX_TRACE_SIZE = 2 ** 27


@dataclass(frozen=True, eq=False)
class TracePlan:
    """What a mode traces for a step: the blocks, their layouts (zero-valued templates) and their sizes.

    ``chunks`` maps the blocks advanced in chunks to their :class:`._chunked.ChunkLayout` (or, for blocks of
    several state leaves coupled per neuron, their shared :class:`._chunked.GroupLayout`), ``unchunked`` the
    others to the reason they advance step by step; ``folds`` holds the parameters whose within-step gradient
    is folded into the chunk's matrix product: those that reach the new state only through the state leaves
    of one chunked block or group. ``muls`` holds per block the multiplications of its step-by-step update
    ``Σ_b H̃[a][b]·G[(b, p)]`` (counted by :func:`plastix.ad.compose` on the trace's layout, per example).

    A template's ``val`` has the dtype the trace is *stored* in (:meth:`Mode.stored_dtype`), its ``dtype`` the
    working dtype of the arithmetic; a trace stored in another dtype is rounded to it after every step's update.
    """

    mode: Mode
    blocks: tuple[tuple[int, int], ...]
    templates: dict
    chunks: dict = field(default_factory=dict)
    unchunked: dict = field(default_factory=dict)
    folds: frozenset = frozenset()
    dropped: frozenset = frozenset()
    muls: dict = field(default_factory=dict)

    def zeros(self, batch: int | None = None) -> dict:
        """Traces at t = 0 (with a leading axis of size ``batch`` on the stored values if given)."""
        lead = () if batch is None else (batch,)
        return {k: t.replace(val=jnp.zeros(lead + t.val.shape, t.val.dtype)) for k, t in self.templates.items()}

    @property
    def stored_size(self) -> int:
        """Numbers stored per example by all traces."""
        return sum(t.stored_size for t in self.templates.values())

    @property
    def stored_bytes(self) -> int:
        """Bytes stored per example by all traces, each in its stored dtype (the ``nbytes`` of :meth:`zeros`)."""
        return sum(t.stored_size * np.dtype(t.val.dtype).itemsize for t in self.templates.values())

    @property
    def muls_per_step(self) -> int:
        """Multiplications of one step-by-step update of all traces per example (see ``muls``)."""
        return sum(self.muls.values())


def traced_blocks(H, F, dropped: frozenset) -> list[tuple[int, int]]:
    """The (state leaf, parameter leaf) pairs that carry a trace: every block the mode's ``H`` and ``F`` reach,
    except for the parameters in ``dropped``."""
    n_state, n_params = len(F), len(F[0]) if F else 0
    keep = {(a, p) for a in range(n_state) for p in range(n_params) if F[a][p] is not None and p not in dropped}
    changed = True
    while changed:
        reached = {(a, p) for a in range(n_state) for b in range(n_state) for (c, p) in keep
                   if c == b and H[a][b] is not None}
        changed = not reached <= keep
        keep |= reached
    return sorted(keep)


def trace_update(H, F, G, blocks) -> dict:
    """``H · G + F`` for every traced block (``None`` where structurally zero)."""
    new = {}
    for (a, p) in blocks:
        acc = F[a][p]
        for b in range(len(H)):
            if H[a][b] is None or G.get((b, p)) is None:
                continue
            term, _ = compose(H[a][b], G[(b, p)])
            if term is not None:
                acc = term if acc is None else add(acc, term)
        new[(a, p)] = acc
    return new


def _key(p: Partial | None):
    if p is None:
        return None
    c = canonical(p)
    return structure_key(c), c.val_labels


def _merge(t: Partial | None, u: Partial | None) -> Partial | None:
    if t is None or u is None:
        return t if u is None else u
    return add(t, u)


def _fixed_point(H, F, blocks) -> dict:
    """Each block's layout: ``F``'s, widened by ``H · G`` until it no longer changes."""
    templates = {k: F[k[0]][k[1]] for k in blocks}
    for _ in range(8):
        update = trace_update(H, F, templates, blocks)
        merged = {k: _merge(templates[k], update[k]) for k in blocks}
        if all(_key(merged[k]) == _key(templates[k]) for k in blocks):
            break
        templates = merged
    else:
        raise RuntimeError("plastix.online: the trace layout did not reach a fixed point in 8 steps")
    found = {}
    for k in blocks:
        t = canonical(templates[k])
        found[k] = t.replace(val_labels=(), val=jnp.ones((), t.dtype)) if t.val is None else t
    return found


def _coupled(blocks, H) -> list[tuple[int, tuple[int, ...]]]:
    """``(parameter, state leaves)`` of every set of two or more traces of one parameter coupled through ``H``."""
    groups = []
    for p in sorted({q for _, q in blocks}):
        left = [a for (a, q) in blocks if q == p]
        while left:
            group, frontier = {left[0]}, [left[0]]
            while frontier:
                b = frontier.pop()
                for a in left:
                    if a not in group and (H[a][b] is not None or H[b][a] is not None):
                        group.add(a)
                        frontier.append(a)
            left = [a for a in left if a not in group]
            if len(group) > 1:
                groups.append((p, tuple(sorted(group))))
    return groups


def _layouts(blocks, H, F, templates, factors) -> dict:
    """Each block's chunk layout (a shared :class:`._chunked.GroupLayout` for coupled blocks) or why it has none."""
    layouts = {k: chunk_layout(k, H, F, blocks, templates[k], factors.get(k)) for k in blocks}
    for p, leaves in _coupled(blocks, H):
        group = group_layout(leaves, p, H, F, templates, factors)
        layouts |= {(a, p): group for a in leaves}
    return layouts


def plan_traces(step, params, state, x, mode: str | Mode, *, order="rev", drop=()) -> TracePlan:
    """Find the traced blocks and the fixed-point layout of every trace, from shapes alone.

    The step is evaluated abstractly (``jax.eval_shape``): no array values are computed, only the structure
    of ``H = ds'/ds`` and ``F = ds'/dθ``, from which each trace's layout is iterated to its fixed point.

    Args:
        step: ``step(params, state, x) -> (new_state, out)`` for one time step of one example.
        params: parameter pytree (floating-point leaves); only shapes and dtypes are used.
        state: state pytree at one step (floating-point leaves, no batch axis).
        x: input of one step (no batch or time axis).
        mode: an online mode of :data:`plastix.online.MODES` (``"rtrl"``, ``"diagonal"``, ``"eprop"``).
        order: elimination order for the step's Jacobians, as for :func:`plastix.jacve`.
        drop: parameters (names as in :func:`parameter_names`) that carry no trace by request: they learn from
            their within-step gradient only (an explicit approximation, reported by ``describe``).

    Returns:
        A :class:`TracePlan`: the traced ``(state leaf, parameter leaf)`` blocks, a zero-valued template
        :class:`~plastix.ad.Partial` per block (its layout), the blocks advanced in chunks, and
        ``stored_size`` (numbers stored per example).

    Raises:
        ValueError: ``mode`` is not an online mode, or ``drop`` names no parameter.
        RuntimeError: the trace layout does not reach a fixed point within 8 iterations.
        ValueError, TypeError, NotImplementedError: as :func:`plastix.jacve` when tracing ``step``.

    Example:
        >>> plan = plastix.online.plan_traces(step, params, state0, x[0], "diagonal")
        >>> plan.stored_size, plan.blocks
    """
    mode = get_mode(mode, online=True, who="plan_traces")
    mode.check(params, state)
    dropped = dropped_params(params, drop) | untraced_params(params, mode)
    found = {}

    def probe(params, state, x):
        jac = step_jacobians(step, params, state, x, order=order, local=mode.layered)
        H, F = mode.H(jac), mode.F(jac)
        blocks = traced_blocks(H, F, dropped)
        found["templates"] = _fixed_point(H, F, blocks)
        found["chunks"] = _layouts(blocks, H, F, found["templates"], jac.factors)
        found["sources"] = {p: [a for a in range(len(jac.F)) if jac.F[a][p] is not None] for (_, p) in blocks}
        found["muls"] = update_muls(H, found["templates"], blocks)
        return 0

    jax.eval_shape(probe, params, state, x)
    templates = {k: t.replace(val=jax.ShapeDtypeStruct(t.val.shape, mode.stored_dtype(t.val.dtype)))
                 for k, t in found["templates"].items()}
    layouts = _rounded_step_by_step(found["chunks"], found["templates"], templates)
    chunks = {k: layout for k, layout in layouts.items() if not isinstance(layout, str)}
    unchunked = {k: reason for k, reason in layouts.items() if isinstance(reason, str)}
    folds = frozenset(p for (a, p), layout in chunks.items()
                      if set(found["sources"][p]) <= set(getattr(layout, "leaves", (a,))))
    return TracePlan(mode, tuple(templates), templates, chunks, unchunked, folds, dropped, found["muls"])


def update_muls(H, templates: dict, blocks) -> dict:
    """Per block ``(a, p)``: the multiplications of ``Σ_b H[a][b]·G[(b, p)]`` with every ``G`` in its layout
    (:func:`plastix.ad.compose`'s count: index maps are free, additions and ``F`` are not counted)."""
    return {(a, p): sum(compose(H[a][b], templates[(b, p)])[1] for b in range(len(H))
                        if H[a][b] is not None and (b, p) in templates) for (a, p) in blocks}


def _rounded_step_by_step(layouts: dict, working: dict, stored: dict) -> dict:
    """The chunk layouts, without those of traces stored in another dtype than they are computed in (and of the
    groups holding one): such a trace is rounded after every step, so it advances step by step."""
    narrow = {k for k, t in stored.items() if t.val.dtype != working[k].val.dtype}
    out = {}
    for k, layout in layouts.items():
        members = [(a, layout.param) for a in layout.leaves] if hasattr(layout, "leaves") else [k]
        if not isinstance(layout, str) and any(m in narrow for m in members):
            layout = (f"stored in {stored[k].val.dtype} (computed in {working[k].val.dtype}): rounded after every "
                      f"step, so advanced step by step")
        out[k] = layout
    return out


def parameter_names(params) -> list[str]:
    """The name of every parameter leaf: its key path joined by ``/`` (``{"hidden": [{"W": ..}]}`` gives
    ``"hidden/0/W"``), or ``"<params>"`` for a lone array."""
    names = []
    for path, _ in jax.tree.flatten_with_path(params)[0]:
        keys = [str(getattr(k, "key", getattr(k, "idx", getattr(k, "name", k)))) for k in path]
        names.append("/".join(keys) or "<params>")
    return names


def untraced_params(params, mode: Mode) -> frozenset[int]:
    """Leaf indices of the parameters ``mode`` leaves without a trace (:meth:`Mode.untraced_names`), with a
    one-line error for a name that is not a parameter of the step."""
    untraced = mode.untraced_names()
    if not untraced:
        return frozenset()
    names = parameter_names(params)
    unknown = [u for u in untraced if u not in names]
    if unknown:
        raise ValueError(f"rule {mode.name!r}: untraced names no parameter {', '.join(map(repr, unknown))}; expected "
                         f"names of plastix.online.parameter_names(params): {', '.join(map(repr, names))}")
    return frozenset(k for k, n in enumerate(names) if n in untraced)


def dropped_params(params, drop) -> frozenset[int]:
    """Leaf indices of the parameters named in ``drop`` (a name, or its ``jax.tree_util.keystr`` path)."""
    if isinstance(drop, str):
        drop = (drop,)
    names = parameter_names(params)
    paths = [jax.tree_util.keystr(p) for p, _ in jax.tree.flatten_with_path(params)[0]]
    unknown = [d for d in drop if d not in names and d not in paths]
    if unknown:
        raise ValueError(f"drop: no parameter named {', '.join(map(repr, unknown))}; the parameters are "
                         f"{', '.join(map(repr, names))}")
    return frozenset(k for k, (n, p) in enumerate(zip(names, paths)) if n in drop or p in drop)


def conform(p: Partial | None, template: Partial) -> Partial:
    """``p`` expressed in the layout of ``template`` (a trace must keep its layout across steps)."""
    shape, dtype = template.val.shape, template.val.dtype
    if p is None:
        return template.replace(val=jnp.zeros(shape, dtype))
    c = canonical(p)
    if structure_key(c) != structure_key(template):
        if template.kind != "dense":
            raise RuntimeError(f"plastix.online: a trace left its layout: {c!r} vs {template!r}")
        c = Partial.dense(c.todense(), c.out_shape, c.in_shape)
    if c.val is None:
        return template.replace(val=jnp.ones(shape, dtype))
    sizes = [c.sizes[x] if x in c.val_labels else 1 for x in template.val_labels]
    return template.replace(val=jnp.broadcast_to(c.val.astype(dtype).reshape(sizes), shape))


def bounded_plan(step, params, state, x, mode: str | Mode, *, order, max_trace_size: int | None,
                 drop=()) -> TracePlan:
    """:func:`plan_traces`, refused when its traces store more than ``max_trace_size`` numbers per example.

    Plans are cached per step function, mode, options and argument shapes, so a new pass (``Stream.init``,
    an un-jitted call) does not plan the same step again.
    """
    shapes = jax.tree.map(lambda v: jax.ShapeDtypeStruct(jnp.shape(v), jnp.result_type(v)), (params, state, x))
    leaves, tree = jax.tree.flatten(shapes)
    drop = (drop,) if isinstance(drop, str) else tuple(drop)
    try:
        plan = _cached_plan(step, get_mode(mode, online=True, who="plan_traces"), order, drop, tree, tuple(leaves))
    except TypeError as e:
        if "unhashable" not in str(e):
            raise
        plan = plan_traces(step, params, state, x, mode, order=order, drop=drop)
    if max_trace_size is not None and plan.stored_size > max_trace_size:
        raise ValueError(_too_large(plan, params, state, max_trace_size))
    return plan


@functools.lru_cache(maxsize=64)
def _cached_plan(step, mode: Mode, order, drop: tuple, tree, leaves: tuple) -> TracePlan:
    params, state, x = jax.tree.unflatten(tree, leaves)
    return plan_traces(step, params, state, x, mode, order=order, drop=drop)


def _too_large(plan: TracePlan, params, state, max_trace_size: int) -> str:
    state_names = [jax.tree_util.keystr(p) or "<state>" for p, _ in jax.tree.flatten_with_path(state)[0]]
    names = parameter_names(params)
    largest = sorted(plan.templates.items(), key=lambda kv: -kv[1].stored_size)[:3]
    blocks = "; ".join(f"state {state_names[a]} / parameter {names[p]!r}: {t.stored_size:,} ({t.kind})"
                       for (a, p), t in largest)
    return (f"mode {plan.mode.name!r} needs traces of {plan.stored_size:,} numbers per example, more than "
            f"max_trace_size={max_trace_size:,} (largest blocks: {blocks}); ways out: a smaller model, mode "
            f"'bptt' (no traces), drop=[{names[largest[0][0][1]]!r}] to learn that parameter from its within-step "
            f"gradient only, or a larger max_trace_size")
