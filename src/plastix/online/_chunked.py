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

import string
from dataclasses import dataclass

import jax
import jax.numpy as jnp
from jax import lax

from ..ad._partial import Partial, _batch_sum, canonical, compose, structure_key
from ._jacobians import is_local

__all__ = ["ChunkLayout", "chunk_layout", "row_factor", "col_factor", "row_key", "chunk_recursion", "chunk_end"]


@dataclass(frozen=True)
class ChunkLayout:
    """Labels of a chunkable trace: ``rows`` (the state's axes, in order), the stored ``val_rows`` and ``cols``."""

    rows: tuple[int, ...]
    val_rows: tuple[int, ...]
    cols: tuple[int, ...]
    scaled: bool = False


def chunk_layout(block, H, F, blocks, template: Partial, factor=None) -> ChunkLayout | None:
    """The layout of ``block = (state a, parameter p)`` if its trace has the per-neuron form, else ``None``.

    Requires: no other traced block of ``p`` is coupled to ``a`` through ``H``; ``H[a][a]`` is per element of
    the state; ``F[a][p]`` has the trace's structure and values only on the parameter's own axes, or is the
    product of a per-element factor and such a partial (``factor = (J, E)``, ``F = J·E``: the layout is
    ``scaled``, ``F_t[r, c] = a_t[r]·x_t[c]``, as through a reset ``u·(1 - z)`` that is not detached).
    """
    a, p = block
    for b in range(len(H)):
        if b != a and (b, p) in blocks and (H[a][b] is not None or H[b][a] is not None):
            return None
    if any(axis.index is not None for axis in template.out_axes):
        return None
    rows = tuple(axis.labels[0] for axis in template.out_axes)
    in_labels = {label for axis in template.in_axes for label in axis.labels}
    if len(set(rows)) != len(rows) or not set(rows) <= in_labels or not set(template.val_labels) <= in_labels:
        return None
    val_rows = tuple(label for label in template.val_labels if label in rows)
    cols = tuple(label for label in template.val_labels if label not in rows)
    if template.val_labels != val_rows + cols:
        return None
    h = H[a][a]
    if h is not None:
        if not is_local(h) or not set(_row_labels(h, template)) <= set(val_rows):
            return None
    f = F[a][p]
    if f is None or _column_factor(f, template, cols):
        return ChunkLayout(rows, val_rows, cols)
    if factor is not None and _scaled(f, factor, template, val_rows, cols):
        return ChunkLayout(rows, val_rows, cols, scaled=True)
    return None


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
    val = _batch_sum([(layout.rows, b_first), (layout.val_rows + layout.cols, g0)], labels)
    val = val + _batch_sum([(layout.rows, flat(coefficient)), (layout.cols, flat(x))], labels)
    grad = Partial((), template.in_shape, template.sizes, (), template.in_axes, labels, val, template.dtype)
    new_trace = Partial(trace.out_shape, trace.in_shape, trace.sizes, trace.out_axes, trace.in_axes,
                        trace.val_labels, new.astype(g0.dtype), trace.dtype)
    return new_trace, grad.todense()
