"""Exact chunked updates of traces whose recurrence acts per neuron.

Many trace blocks ``G = ∂s/∂θ`` obey, for each example,

    G_t[r, c] = h_t[r] · G_{t-1}[r, c] + x_t[c]

where ``r`` runs over the state's axes, ``c`` over the parameter's other axes, ``h_t`` is the kept (diagonal)
part of ``H_t`` and ``x_t`` the factor of ``F_t`` (the presynaptic activity for a weight). Their gradient
contribution is ``g += Σ_t L_t[r] · G_{t-1}[r, c]`` with the learning signal ``L_t``. Over a chunk of ``K``
steps after ``t0`` both have closed forms with suffix products ``A_k = Π_{j>k} h_j`` and the backward
recursion ``B_{k-1} = L_k + h_k · B_k`` (``B_{K-1} = 0``)::

    G_{t0+K} = A_{-1} ⊙ G_{t0} + Σ_k A_k ⊗ x_k,          g += B_{-1} ⊙ G_{t0} + Σ_k B_k ⊗ x_k.

The parameter's within-step gradient ``δ_k ⊗ x_k`` (``δ_k = ∂ℓ_k/∂s_k``, the path through ``F_k``) has the same
column factor, so it joins the last product as ``Σ_k (B_k + δ_k) ⊗ x_k`` instead of costing one of its own.

So a chunk touches the stored trace once and does the rest as matrix products with inner dimension ``K``
(``K·batch`` for the gradient) instead of ``K`` memory-bound passes over the trace. No division, so nothing
over- or underflows that the step-by-step update would not; the result is the same up to rounding.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax

from ..ad import Partial, batch_sum, canonical, compose, structure_key
from ._jacobians import is_local

__all__ = ["ChunkLayout", "GroupLayout", "chunk_end", "chunk_layout", "chunk_recursion", "col_factor", "group_end",
           "group_factors", "group_layout", "row_factor", "row_key"]


@dataclass(frozen=True)
class ChunkLayout:
    """Labels of a chunkable trace: ``rows`` (the state's axes, in order), the stored ``val_rows`` and ``cols``."""

    rows: tuple[int, ...]
    val_rows: tuple[int, ...]
    cols: tuple[int, ...]
    scaled: bool = False


def chunk_layout(block, H, F, blocks, template: Partial, factor=None) -> ChunkLayout | str:
    """The layout of ``block = (state a, parameter p)`` if its trace has the per-neuron form, else why not.

    Requires: no other traced block of ``p`` is coupled to ``a`` through ``H``; ``H[a][a]`` is per element of
    the state; ``F[a][p]`` has the trace's structure and values only on the parameter's own axes, or is the
    product of a per-element factor and such a partial (``factor = (J, E)``, ``F = J·E``: the layout is
    ``scaled``, ``F_t[r, c] = a_t[r]·x_t[c]``, as through a reset ``u·(1 - z)`` that is not detached).

    Returns:
        A :class:`ChunkLayout`, or a one-line reason (for ``describe``) why the block advances step by step.
    """
    a, p = block
    for b in range(len(H)):
        if b != a and (b, p) in blocks and (H[a][b] is not None or H[b][a] is not None):
            return f"coupled through H to the trace of state leaf s{b} (a recurrence of several state leaves)"
    layout = _rows_and_cols(template)
    if isinstance(layout, str):
        return layout
    h = H[a][a]
    if h is not None and (not is_local(h) or not set(_row_labels(h, template)) <= set(layout.val_rows)):
        return "H of the state leaf is not elementwise (it mixes neurons or compartments)"
    f = F[a][p]
    if f is None or _column_factor(f, template, layout.cols):
        return layout
    if factor is not None and _scaled(f, factor, template, layout.val_rows, layout.cols):
        return ChunkLayout(layout.rows, layout.val_rows, layout.cols, scaled=True)
    return "F is not a per-neuron factor times a row shared by all neurons (a_t ⊗ x_t)"


def _rows_and_cols(template: Partial) -> ChunkLayout | str:
    """The trace's labels split into rows (the state's axes) and columns, if its values are stored that way."""
    if any(axis.index is not None for axis in template.out_axes):
        return "the trace's state axes are index maps, not plain labels"
    rows = tuple(axis.labels[0] for axis in template.out_axes)
    in_labels = {label for axis in template.in_axes for label in axis.labels}
    if len(set(rows)) != len(rows) or not set(rows) <= in_labels or not set(template.val_labels) <= in_labels:
        return f"the trace's layout ({template.kind}) is not state rows times parameter columns"
    val_rows = tuple(label for label in template.val_labels if label in rows)
    cols = tuple(label for label in template.val_labels if label not in rows)
    if template.val_labels != val_rows + cols:
        return f"the trace's layout ({template.kind}) is not state rows times parameter columns"
    return ChunkLayout(rows, val_rows, cols)


def _column_factor(f: Partial, template: Partial, cols) -> bool:
    f = canonical(f)
    return structure_key(f) == structure_key(template) and (f.val is None or set(f.val_labels) <= set(cols))


def _scaled(f: Partial, factor, template: Partial, val_rows, cols) -> bool:
    """Whether ``f = J·E`` with ``J`` per element of the state (values on stored rows) and ``E`` a column factor."""
    J, E = factor
    if J is None or E is None or not is_local(J) or J.out_shape != template.out_shape:
        return False
    if not set(_row_labels(J, template)) <= set(val_rows) or not _column_factor(E, template, cols):
        return False
    product, _ = compose(J, E)
    return product is not None and structure_key(canonical(product)) == structure_key(canonical(f))


def _row_labels(h: Partial, template: Partial) -> tuple[int, ...]:
    """The labels of ``h``'s stored values, renamed to the template's row labels (axis by axis)."""
    h = canonical(h)
    rename = {axis.labels[0]: t.labels[0] for axis, t in zip(h.out_axes, template.out_axes)}
    return tuple(rename[label] for label in h.val_labels) if h.val is not None else ()


def _row_shape(template: Partial, layout: ChunkLayout, present) -> list[int]:
    return [template.sizes[r] if r in present else 1 for r in layout.rows]


def row_factor(h: Partial | None, template: Partial, layout: ChunkLayout) -> jax.Array:
    """``h_t`` as an array over the rows (size 1 where the trace does not vary), for one example."""
    shape = _row_shape(template, layout, layout.val_rows)
    if h is None:
        return jnp.zeros(shape, template.dtype)
    h = canonical(h)
    if h.val is None:
        return jnp.ones(shape, template.dtype)
    labels = _row_labels(h, template)
    order = sorted(range(len(labels)), key=lambda k: layout.rows.index(labels[k]))
    val = jnp.transpose(h.val, order).reshape(_row_shape(template, layout, labels))
    return jnp.broadcast_to(val, shape).astype(template.dtype)


def col_factor(f: Partial | None, template: Partial, layout: ChunkLayout) -> jax.Array:
    """``x_t`` (the factor of ``F_t``) as an array over the trace's columns, for one example."""
    shape = [template.sizes[c] for c in layout.cols]
    if f is None:
        return jnp.zeros(shape, template.dtype)
    f = canonical(f)
    if f.val is None:
        return jnp.ones(shape, template.dtype)
    order = sorted(range(len(f.val_labels)), key=lambda k: layout.cols.index(f.val_labels[k]))
    sizes = [template.sizes[c] if c in f.val_labels else 1 for c in layout.cols]
    return jnp.broadcast_to(jnp.transpose(f.val, order).reshape(sizes), shape).astype(template.dtype)


def row_key(block: tuple[int, int], template: Partial, layout: ChunkLayout) -> tuple:
    """Blocks of one state leaf with the same row shape share ``h_t`` and the chunk's backward recursion."""
    return block[0], tuple(_row_shape(template, layout, layout.val_rows))


def chunk_recursion(h, signal):
    """Suffix products and the backward recursion of one chunk.

    Args:
        h: ``(K, batch, *rows)`` row factors (size-1 rows where the trace does not vary).
        signal: ``(K, batch, *rows)`` learning signals ``∂ℓ_t/∂s_{t-1}``.

    Returns:
        ``(A_{-1}, B_{-1}, A_k, B_k)`` with ``A_k = Π_{j>k} h_j`` and ``B_{k-1} = L_k + h_k · B_k``.
    """
    def back(carry, inputs):
        a, b = carry
        h_k, l_k = inputs
        return (h_k * a, l_k + h_k * b), (a, b)

    start = (jnp.ones(h.shape[1:], h.dtype), jnp.zeros(signal.shape[1:], signal.dtype))
    (a_first, b_first), (a_k, b_k) = lax.scan(back, start, (h, signal), reverse=True)
    return a_first, b_first, a_k, b_k


def chunk_end(trace: Partial, recursion, x, coefficient, template: Partial, layout: ChunkLayout, scale=None):
    """Advance a batched trace over one chunk and return it with the chunk's gradient contribution.

    Args:
        trace: the trace at the chunk's start, values ``(batch, *val_rows, *cols)``.
        recursion: :func:`chunk_recursion` of the block's row factors and learning signals.
        x: ``(K, batch, *cols)`` column factors.
        coefficient: ``(K, batch, *rows)``: ``B_k``, or ``B_k + δ_k`` where the parameter's within-step gradient
            ``δ_k ⊗ x_k`` (``δ_k = ∂ℓ_k/∂s_k``, its path through ``F_k``) is added here, in the same product.
        scale: for a ``scaled`` layout, ``(K, batch, *rows)`` row factors ``a_k`` of ``F_k = a_k ⊗ x_k``; they
            multiply ``A_k`` and the coefficient before the products.

    Returns:
        ``(trace at the chunk's end, dense gradient contribution summed over the batch)``.
    """
    a_first, b_first, a_k, _ = recursion
    if scale is not None:
        a_k, coefficient = a_k * scale, coefficient * scale
    g0 = trace.val
    drop = [k for k, r in enumerate(layout.rows) if r not in layout.val_rows]
    a_first = jnp.squeeze(a_first, [1 + k for k in drop])
    a_first = a_first.reshape(a_first.shape + (1,) * len(layout.cols))
    letter = dict(zip(layout.rows + layout.cols, string.ascii_lowercase))
    spec_r = "".join(letter[r] for r in layout.val_rows)
    spec_c = "".join(letter[c] for c in layout.cols)
    spread = jnp.einsum(f"KB{spec_r},KB{spec_c}->B{spec_r}{spec_c}", jnp.squeeze(a_k, [2 + k for k in drop]), x)
    new = a_first * g0 + spread
    labels = layout.rows + layout.cols
    flat = lambda v: v.reshape((-1,) + v.shape[2:])
    val = batch_sum([(layout.rows, b_first), (layout.val_rows + layout.cols, g0)], labels)
    val = val + batch_sum([(layout.rows, flat(coefficient)), (layout.cols, flat(x))], labels)
    grad = template.replace(out_shape=(), out_axes=(), val_labels=labels, val=val)
    new_trace = trace.replace(val=new.astype(g0.dtype))
    return new_trace, grad.todense()


@dataclass(frozen=True)
class GroupLayout:
    """Traces of one parameter in several state leaves coupled per neuron (ALIF's membrane and adaptation, a
    current-based synapse feeding the membrane): per neuron a ``k × k`` recurrence

        G_t[s, r, c] = Σ_u M_t[s, u, r] · G_{t-1}[u, r, c] + f_t[s, r] · x_t[c]

    over the ``k`` leaves ``s``, rows ``r`` (the leaves' common shape) and the parameter's columns ``c``. A leaf's
    trace may store fewer rows (``val_rows[s]``, e.g. a synaptic current whose trace is the same for every
    neuron); its layout is the fixed point of the update, so the chunk's result keeps that form exactly.
    """

    param: int
    leaves: tuple[int, ...]
    rows: tuple[int, ...]
    cols: tuple[int, ...]
    val_rows: tuple[tuple[int, ...], ...]


def group_layout(leaves, p: int, H, F, templates: dict, factors: dict) -> GroupLayout | str:
    """The :class:`GroupLayout` of the coupled blocks ``(a, p)``, ``a in leaves``, or why they advance step by step.

    Requires: the blocks share one structure, stored as rows times the same columns; every ``H[a][b]`` between
    them is elementwise; every ``F[a][p]`` is a per-element factor times the parameter's one input edge
    (``F = J·E``, the same ``E`` for all; found in the layered modes).
    """
    reason = _group_reason(leaves, p, H, F, templates, factors)
    if reason is not None:
        return f"coupled through H with the traces of {', '.join(f's{a}' for a in leaves)}, not chunked: {reason}"
    layout = _rows_and_cols(templates[(leaves[0], p)])
    return GroupLayout(p, tuple(leaves), layout.rows, layout.cols,
                       tuple(_rows_and_cols(templates[(a, p)]).val_rows for a in leaves))


def _group_reason(leaves, p: int, H, F, templates: dict, factors: dict) -> str | None:
    first = templates[(leaves[0], p)]
    for a in leaves:
        layout = _rows_and_cols(templates[(a, p)])
        if isinstance(layout, str):
            return f"for s{a}, {layout}"
        if structure_key(templates[(a, p)]) != structure_key(first) or layout.cols != _rows_and_cols(first).cols:
            return "their layouts differ (state leaves of different shapes)"
    rows, cols = _rows_and_cols(first).rows, _rows_and_cols(first).cols
    for a in leaves:
        for b in leaves:
            h = H[a][b]
            if h is not None and (not is_local(h) or not set(_row_labels(h, first)) <= set(rows)):
                return f"H from s{b} to s{a} is not elementwise"
    for a in leaves:
        if F[a][p] is not None and ((a, p) not in factors or not _scaled(F[a][p], factors[(a, p)], first, rows,
                                                                           cols)):
            return f"F of s{a} is not a per-neuron factor times the parameter's input row"
    if len({structure_key(canonical(factors[(a, p)][1])) for a in leaves if (a, p) in factors}) != 1:
        return "the parameter enters them through different edges"
    return None


def _group_axes(group: GroupLayout, val_rows, sizes: dict):
    """einsum letters of a leaf's stored values and of the same values in row order, and the full shapes."""
    letter = dict(zip(group.rows + group.cols, string.ascii_letters))
    cols = "".join(letter[c] for c in group.cols)
    stored = "".join(letter[r] for r in val_rows) + cols
    ordered = "".join(letter[r] for r in group.rows if r in val_rows) + cols
    expanded = tuple(sizes[r] if r in val_rows else 1 for r in group.rows) + tuple(sizes[c] for c in group.cols)
    full = tuple(sizes[r] for r in group.rows) + tuple(sizes[c] for c in group.cols)
    return stored, ordered, expanded, full


def _widened(val, group: GroupLayout, val_rows, sizes: dict):
    """A leaf's stored trace ``(B, *val_rows, *cols)`` as ``(B, r, c)`` over all rows."""
    stored, ordered, expanded, full = _group_axes(group, val_rows, sizes)
    val = jnp.einsum(f"B{stored}->B{ordered}", val).reshape((val.shape[0],) + expanded)
    rows = math.prod(sizes[r] for r in group.rows)
    return jnp.broadcast_to(val, (val.shape[0],) + full).reshape(val.shape[0], rows, -1)


def _narrowed(new, group: GroupLayout, val_rows, sizes: dict):
    """``(B, r, c)`` back to a leaf's stored rows (the fixed point makes the dropped rows copies)."""
    stored, ordered, _, full = _group_axes(group, val_rows, sizes)
    new = new.reshape((new.shape[0],) + full)
    new = new[(slice(None),) + tuple(slice(None) if r in val_rows else 0 for r in group.rows)]
    return jnp.einsum(f"B{ordered}->B{stored}", new)


def group_factors(group: GroupLayout, H, F, templates: dict, factors: dict):
    """``(M_t, f_t, x_t)`` of a group for one example: ``(k, k, r)``, ``(k, r)`` and ``(c,)`` (rows and columns
    flattened)."""
    template = templates[(group.leaves[0], group.param)]
    layout = ChunkLayout(group.rows, group.rows, group.cols)
    rows = lambda h: row_factor(h, template, layout).reshape(-1)
    M = jnp.stack([jnp.stack([rows(H[a][b]) for b in group.leaves]) for a in group.leaves])
    zero = jnp.zeros(M.shape[-1], template.dtype)
    f = jnp.stack([zero if F[a][group.param] is None else rows(factors[(a, group.param)][0])
                   for a in group.leaves])
    edge = next(factors[(a, group.param)][1] for a in group.leaves if (a, group.param) in factors)
    return M, f, col_factor(edge, template, layout).reshape(-1)


def group_recursion(M, signal):
    """Suffix products ``A_k = M_{K-1} ··· M_{k+1}`` and ``B_{k-1} = L_k + M_kᵀ B_k`` of a group over one chunk.

    Args:
        M: ``(K, batch, k, k, r)``; signal: ``(K, batch, k, r)`` learning signals.

    Returns:
        ``(A_{-1}, B_{-1}, A_k, B_k)``.
    """
    def back(carry, inputs):
        a, b = carry
        m, signal_k = inputs
        return (jnp.einsum("Bsur,Butr->Bstr", a, m), signal_k + jnp.einsum("Bsur,Bsr->Bur", m, b)), (a, b)

    eye = jnp.eye(M.shape[2], dtype=M.dtype)[None, :, :, None]
    start = (jnp.broadcast_to(eye, M.shape[1:]), jnp.zeros(signal.shape[1:], signal.dtype))
    (a_first, b_first), (a_k, b_k) = lax.scan(back, start, (M, signal), reverse=True)
    return a_first, b_first, a_k, b_k


def group_end(group: GroupLayout, traces: dict, templates: dict, pieces, signal, delta=None):
    """Advance a group's batched traces over one chunk; return them with the chunk's gradient contribution.

    Args:
        pieces: ``(M, f, x)`` of the chunk, ``(K, batch, ...)``; signal: ``(K, batch, k, r)``; delta: the new
            state's cotangents ``(K, batch, k, r)`` when the parameter's within-step gradient joins the chunk.
    """
    M, f, x = pieces
    template = templates[(group.leaves[0], group.param)]
    blocks = [(a, group.param) for a in group.leaves]
    g0 = jnp.stack([_widened(traces[k].val, group, rows, template.sizes) for k, rows in zip(blocks, group.val_rows)],
                   1)
    a_first, b_first, a_k, b_k = group_recursion(M, signal)
    spread = jnp.einsum("KBsr,KBc->Bsrc", jnp.einsum("KBstr,KBtr->KBsr", a_k, f), x)
    new = jnp.einsum("Bstr,Btrc->Bsrc", a_first, g0) + spread
    coefficient = jnp.einsum("KBsr,KBsr->KBr", b_k if delta is None else b_k + delta, f)
    grad = jnp.einsum("Bsr,Bsrc->rc", b_first, g0) + jnp.einsum("KBr,KBc->rc", coefficient, x)
    labels = group.rows + group.cols
    grad = template.replace(out_shape=(), out_axes=(), val_labels=labels,
                            val=grad.reshape([template.sizes[label] for label in labels]))
    out = {k: traces[k].replace(val=_narrowed(new[:, s], group, rows, template.sizes).astype(traces[k].val.dtype))
           for s, (k, rows) in enumerate(zip(blocks, group.val_rows))}
    return out, grad.todense()
