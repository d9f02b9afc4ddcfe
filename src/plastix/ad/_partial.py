"""Structured partial derivatives.

A partial ``J = dv/du`` has the logical shape ``v.shape + u.shape`` but stores only what carries information.
It is written as a sum over *labels* (enumeration indices, each with a size)::

    J[o, i] = sum_{labels} val[val_labels] * prod_p [position_p == index_p(labels)]

Every axis of ``v`` and of ``u`` (a *position*) is a function of some labels: the identity of one label (the
common case), or a static integer array over several labels (slices, pads, reshapes, gathers). From this one
form follow the structures of DESIGN.md:

* an elementwise op: one label shared by an output and an input axis (a Kronecker delta), values on it;
* a broadcast: a label on an output axis that no stored value mentions (the value is replicated);
* a reduction: a label only on an input axis (summed);
* ``W @ x`` w.r.t. ``W``: the row label shared by output and ``W``, the column label stored in ``val = x``;
* transpose, reshape, slice, pad, concatenate, gather with static indices: no values at all (``val is None``).

Composition (the chain rule) matches the contracted axes label by label: identical maps merge labels, a map
on one side substitutes a label of the other side, and general maps are joined statically in NumPy. The
stored values are then multiplied by one einsum whose size is the multiplication count.
"""

from __future__ import annotations

import dataclasses
import math
import string
from collections.abc import Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.typing import ArrayLike, DTypeLike

__all__ = ["Axis", "Partial", "add", "batch_sum", "canonical", "compose", "is_local", "structure_key"]


@dataclass(frozen=True, eq=False)
class Axis:
    """How one axis of a partial depends on labels.

    ``index is None`` means the axis is the identity of its single label; otherwise ``index`` is a static
    integer array with one dimension per label giving the position along the axis.
    """

    labels: tuple[int, ...]
    index: np.ndarray | None = None

    def key(self, rename: dict[int, int]) -> tuple:
        labels = tuple(rename[label] for label in self.labels)
        if self.index is None:
            return labels, None
        return labels, self.index.shape, self.index.tobytes()

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Axis):
            return NotImplemented
        ident = {label: label for label in self.labels + other.labels}
        return self.key(ident) == other.key(ident)

    def __hash__(self) -> int:
        return hash(self.key({label: label for label in self.labels}))


def _identity_axes(labels) -> tuple[Axis, ...]:
    return tuple(Axis((label,)) for label in labels)


@jax.tree_util.register_pytree_node_class
@dataclass(frozen=True, eq=False)
class Partial:
    """A structured partial derivative ``d out / d in`` (see the module docstring); immutable.

    Attributes:
        out_shape, in_shape: logical shapes; ``todense()`` has shape ``out_shape + in_shape``.
        sizes: size of every label.
        out_axes, in_axes: one :class:`Axis` per logical axis.
        val_labels: the labels of the axes of ``val``.
        val: the stored values, or ``None`` for a pure index map (all stored values are one).
        dtype: dtype of the logical partial.
    """

    out_shape: tuple[int, ...]
    in_shape: tuple[int, ...]
    sizes: dict[int, int]
    out_axes: tuple[Axis, ...]
    in_axes: tuple[Axis, ...]
    val_labels: tuple[int, ...]
    val: jax.Array | None
    dtype: np.dtype

    def __post_init__(self):
        normal = {"out_shape": tuple(self.out_shape), "in_shape": tuple(self.in_shape), "sizes": dict(self.sizes),
                  "out_axes": tuple(self.out_axes), "in_axes": tuple(self.in_axes),
                  "val_labels": tuple(self.val_labels), "dtype": np.dtype(self.dtype)}
        for name, value in normal.items():
            object.__setattr__(self, name, value)

    def replace(self, **changes) -> Partial:
        """A :class:`Partial` with the given fields changed, normalised as by the constructor.

        Like :func:`dataclasses.replace`, but the result is always a plain :class:`Partial` (a subclass marking a
        special edge, such as ``reduce_precision``'s rounding, does not carry over).
        """
        return Partial(**({name: getattr(self, name) for name in _FIELDS} | changes))

    # ----------------------------------------------------------------- pytree
    def tree_flatten(self):
        children = () if self.val is None else (self.val,)
        aux = (self.out_shape, self.in_shape, tuple(sorted(self.sizes.items())), self.out_axes, self.in_axes,
               self.val_labels, self.val is None, self.dtype)
        return children, aux

    @classmethod
    def tree_unflatten(cls, aux, children):
        out_shape, in_shape, sizes, out_axes, in_axes, val_labels, no_val, dtype = aux
        val = None if no_val else children[0]
        return cls(out_shape, in_shape, dict(sizes), out_axes, in_axes, val_labels, val, dtype)

    # ----------------------------------------------------------- constructors
    @classmethod
    def identity(cls, shape: Sequence[int], dtype: DTypeLike) -> Partial:
        """The identity ``d x / d x``: a Kronecker delta per axis, no stored values."""
        labels = range(len(shape))
        return cls(shape, shape, dict(zip(labels, shape)), _identity_axes(labels), _identity_axes(labels),
                   (), None, dtype)

    @classmethod
    def elementwise(cls, d: ArrayLike | None, in_shape: Sequence[int], out_shape: Sequence[int],
                    dtype: DTypeLike) -> Partial:
        """The partial of an elementwise op with local derivative ``d`` (a scalar or of ``out_shape``).

        The input has ``out_shape`` (a diagonal) or is broadcast to it from a scalar or from size-1 axes
        (a replicated input).
        """
        out_shape, in_shape = tuple(out_shape), tuple(in_shape)
        labels = tuple(range(len(out_shape)))
        sizes = dict(zip(labels, out_shape))
        if in_shape == ():
            in_axes = ()
        elif len(in_shape) == len(out_shape) and all(i in (1, o) for i, o in zip(in_shape, out_shape)):
            in_axes = tuple(Axis((k,)) if i == o else Axis((), np.zeros((), np.int64))
                            for k, (i, o) in enumerate(zip(in_shape, out_shape)))
        else:
            raise ValueError(f"elementwise partial: input shape {in_shape} does not broadcast to {out_shape}")
        if d is None:
            return cls(out_shape, in_shape, sizes, _identity_axes(labels), in_axes, (), None, dtype)
        d = jnp.asarray(d, dtype)
        val_labels = labels if d.ndim else ()
        if d.ndim and d.shape != out_shape:
            d = jnp.broadcast_to(d, out_shape)
        return cls(out_shape, in_shape, sizes, _identity_axes(labels), in_axes, val_labels, d, dtype)

    @classmethod
    def dense(cls, jac: jax.Array, out_shape: Sequence[int], in_shape: Sequence[int]) -> Partial:
        """A dense block ``jac`` of shape ``out_shape + in_shape``: every axis its own stored label."""
        out_shape, in_shape = tuple(out_shape), tuple(in_shape)
        n_out = len(out_shape)
        labels = tuple(range(n_out + len(in_shape)))
        sizes = dict(zip(labels, out_shape + in_shape))
        return cls(out_shape, in_shape, sizes, _identity_axes(labels[:n_out]), _identity_axes(labels[n_out:]),
                   labels, jac, jac.dtype)

    @classmethod
    def zeros(cls, out_shape: Sequence[int], in_shape: Sequence[int], dtype: DTypeLike) -> Partial:
        """An all-zero partial storing a single number."""
        out_shape, in_shape = tuple(out_shape), tuple(in_shape)
        labels = tuple(range(len(out_shape) + len(in_shape)))
        sizes = dict(zip(labels, out_shape + in_shape))
        n_out = len(out_shape)
        return cls(out_shape, in_shape, sizes, _identity_axes(labels[:n_out]), _identity_axes(labels[n_out:]),
                   (), jnp.zeros((), dtype), dtype)

    # ------------------------------------------------------------- properties
    @property
    def stored_size(self) -> int:
        """Number of stored values (0 for a pure index map)."""
        return 0 if self.val is None else int(math.prod(self.sizes[label] for label in self.val_labels))

    @property
    def kind(self) -> str:
        """A short name of the structure: dense, diagonal, index-map, ..."""
        positions = self.out_axes + self.in_axes
        if all(a.index is None for a in positions):
            used = [a.labels[0] for a in positions]
            if len(set(used)) == len(used) and set(self.val_labels) == set(used):
                return "dense"
            coupled = {label for label in used if used.count(label) > 1}
            if self.val is None:
                return "identity" if len(coupled) == len(used) / 2 and not self.val_labels else "index-map"
            if not self.val_labels:
                return "scaled-index-map"
            if coupled and set(self.val_labels) <= coupled:
                return "diagonal"
            return "structured"
        return "index-map" if self.val is None else "structured"

    def __repr__(self) -> str:
        def fmt(axes):
            return "(" + ", ".join(
                f"L{a.labels[0]}" if a.index is None else "f(" + ",".join(f"L{x}" for x in a.labels) + ")"
                for a in axes) + ")"

        stored = "none" if self.val is None else "[" + ",".join(f"L{x}" for x in self.val_labels) + "]"
        return (f"Partial<{self.kind} {self.out_shape}x{self.in_shape} out{fmt(self.out_axes)} "
                f"in{fmt(self.in_axes)} val{stored} stores {self.stored_size}>")

    # ------------------------------------------------------------- operations
    def transpose(self) -> Partial:
        """The partial with input and output swapped (the adjoint structure)."""
        return self.replace(out_shape=self.in_shape, in_shape=self.out_shape, out_axes=self.in_axes,
                            in_axes=self.out_axes)

    def astype(self, dtype: DTypeLike) -> Partial:
        """The same partial with its logical dtype (and stored values) converted to ``dtype``."""
        return self.replace(val=None if self.val is None else self.val.astype(dtype), dtype=dtype)

    def same_positions(self, a: Axis, b: Axis) -> bool:
        """Whether the axis maps ``a`` and ``b`` (over labels of this partial) give the same position for every
        assignment of their labels.

        Two plain labels are the same position exactly when they are the same label; a map with an index array is
        evaluated over the product grid of the labels of both (e.g. ``x.at[:, k].set(v)`` writes maps as arrays).
        """
        if a.index is None and b.index is None:
            return a.labels == b.labels
        grid = _Grid(sorted(set(a.labels) | set(b.labels)), self.sizes)
        return bool(np.array_equal(grid.eval(a), grid.eval(b)))

    def todense(self) -> jax.Array:
        """The dense array of shape ``out_shape + in_shape``."""
        positions = self.out_axes + self.in_axes
        shape = self.out_shape + self.in_shape
        if 0 in shape:
            return jnp.zeros(shape, self.dtype)
        if all(a.index is None for a in positions):
            return self._todense_einsum(positions, shape)
        return self._todense_scatter(positions, shape)

    def _todense_einsum(self, positions, shape):
        # The stored values broadcast over the distinct labels, then put on the diagonals of coupled axes by a
        # select: nothing is multiplied by a structural zero, so an infinite value stays on its own entries.
        first: dict[int, int] = {}
        for k, axis in enumerate(positions):
            first.setdefault(axis.labels[0], k)
        labels = list(first)
        core_shape = [self.sizes[label] for label in labels]
        if self.val is None:
            core = jnp.ones(core_shape, self.dtype)
        else:
            present = sorted(range(len(self.val_labels)), key=lambda k: labels.index(self.val_labels[k]))
            val = jnp.transpose(self.val.astype(self.dtype), present)
            stored = {self.val_labels[k] for k in present}
            core = jnp.broadcast_to(val.reshape([n if label in stored else 1 for label, n in zip(labels, core_shape)]),
                                    core_shape)
        repeated = [k for k, axis in enumerate(positions) if first[axis.labels[0]] != k]
        expanded = core.reshape([1 if k in repeated else n for k, n in enumerate(shape)])
        full = jnp.broadcast_to(expanded, shape)
        if not repeated:
            return full
        mask = None
        for k in repeated:
            same = (lax.broadcasted_iota(np.int32, shape, k)
                    == lax.broadcasted_iota(np.int32, shape, first[positions[k].labels[0]]))
            mask = same if mask is None else mask & same
        return jnp.where(mask, full, jnp.zeros((), self.dtype))

    def _todense_scatter(self, positions, shape):
        labels = sorted({label for axis in positions for label in axis.labels} | set(self.val_labels))
        grid = _Grid(labels, self.sizes)
        index = tuple(grid.eval(axis) for axis in positions)
        values = grid.broadcast(self.val, self.val_labels, self.dtype)
        return jnp.zeros(shape, self.dtype).at[index].add(values)


_FIELDS = tuple(f.name for f in dataclasses.fields(Partial))


class _Grid:
    """The product grid of a set of labels, used to evaluate axis maps in NumPy."""

    def __init__(self, labels, sizes):
        self.labels = tuple(labels)
        self.shape = tuple(sizes[label] for label in self.labels)
        self.pos = {label: k for k, label in enumerate(self.labels)}

    def coord(self, label) -> np.ndarray:
        shape = [1] * len(self.shape)
        shape[self.pos[label]] = self.shape[self.pos[label]]
        return np.arange(self.shape[self.pos[label]]).reshape(shape)

    def eval(self, axis: Axis) -> np.ndarray:
        if axis.index is None:
            out = self.coord(axis.labels[0])
        else:
            out = axis.index[tuple(self.coord(label) for label in axis.labels)] if axis.labels else axis.index
        return np.broadcast_to(out, self.shape)

    def broadcast(self, val, val_labels, dtype):
        if val is None:
            return jnp.ones(self.shape, dtype)
        order = sorted(range(len(val_labels)), key=lambda k: self.pos[val_labels[k]])
        val = jnp.transpose(val, order) if order != list(range(len(order))) else val
        expanded = [1] * len(self.shape)
        for k in order:
            expanded[self.pos[val_labels[k]]] = self.shape[self.pos[val_labels[k]]]
        return jnp.broadcast_to(val.reshape(expanded), self.shape).astype(dtype)


# ---------------------------------------------------------------------------------------------------------
# Composition


class _Composer:
    """Working state of one chain-rule product: labels, positions and the two stored values."""

    def __init__(self, outer: Partial, inner: Partial, lead: int = 0):
        self.lead = lead
        offset = max(list(outer.sizes) + [-1]) + 1
        shift = lambda labels: tuple(label + offset for label in labels)
        self.sizes = dict(outer.sizes) | {label + offset: n for label, n in inner.sizes.items()}
        self.next_label = max(list(self.sizes) + [-1]) + 1
        self.axes: list[Axis] = list(outer.out_axes) + list(outer.in_axes)
        self.axes += [Axis(shift(a.labels), a.index) for a in inner.out_axes + inner.in_axes]
        self.axis_sizes = list(outer.out_shape + outer.in_shape + inner.out_shape + inner.in_shape)
        self.n_out = len(outer.out_axes)
        self.n_mid = len(outer.in_axes)
        self.vals = [(outer.val_labels, outer.val), (shift(inner.val_labels), inner.val)]
        self.live = {label for axis in self.axes for label in axis.labels}
        self.live |= {label for labels, val in self.vals if val is not None for label in labels}

    def fresh(self, size: int) -> int:
        label = self.next_label
        self.next_label += 1
        self.sizes[label] = size
        self.live.add(label)
        return label

    def substitute(self, subs: dict[int, tuple[tuple[int, ...], np.ndarray]]) -> None:
        """Replace each label ``l`` in ``subs`` by ``index[new labels]`` everywhere."""
        for k, axis in enumerate(self.axes):
            if set(axis.labels) & subs.keys():
                self.axes[k] = self._sub_axis(axis, subs, self.axis_sizes[k])
        for k, (labels, val) in enumerate(self.vals):
            if val is not None and set(labels) & subs.keys():
                self.vals[k] = self._sub_val(labels, val, subs)
        for label in subs:
            self.live.discard(label)
        for new_labels, _ in subs.values():
            self.live.update(new_labels)

    def _target_labels(self, labels, subs):
        out: list[int] = []
        for label in labels:
            for new in subs[label][0] if label in subs else (label,):
                if new not in out:
                    out.append(new)
        return out

    def _coords(self, labels, subs, grid):
        return [subs[label][1][tuple(grid.coord(x) for x in subs[label][0])] if label in subs
                else grid.coord(label) for label in labels]

    def _sub_axis(self, axis: Axis, subs, axis_size: int) -> Axis:
        target = self._target_labels(axis.labels, subs)
        grid = _Grid(target, self.sizes)
        coords = self._coords(axis.labels, subs, grid)
        index = coords[0] if axis.index is None else axis.index[tuple(coords)]
        index = np.array(np.broadcast_to(index, grid.shape))
        if len(target) == 1 and grid.shape[0] == axis_size and np.array_equal(index, np.arange(axis_size)):
            return Axis((target[0],))
        return Axis(tuple(target), index)

    def _sub_val(self, labels, val, subs):
        target = self._target_labels(labels, subs)
        renames = {label: subs[label][0][0] for label in labels if label in subs and len(subs[label][0]) == 1
                   and self.sizes[subs[label][0][0]] == self.sizes[label]
                   and np.array_equal(subs[label][1], np.arange(self.sizes[label]))}
        if len(renames) == len(set(labels) & subs.keys()):
            renamed = tuple(renames.get(label, label) for label in labels)
            if len(set(renamed)) == len(renamed):
                return renamed, val
        grid = _Grid(target, self.sizes)
        coords = self._coords(labels, subs, grid)
        return tuple(target), val[(slice(None),) * self.lead + tuple(coords)]

    def chain(self):
        """Unify every contracted axis pair; the product's structure, or ``None`` when it is structurally zero.

        Returns:
            ``(out_axes, in_axes, in_positions, in_vals, factor, muls)``: the result's axes, the labels on them,
            the labels of the stored values, the count of summed value-free labels (a scale) and the
            multiplication count.
        """
        n_out, n_mid = self.n_out, self.n_mid
        for k in range(n_mid):
            if not self.unify(n_out + k, n_out + n_mid + k):
                return None
        out_axes = self.axes[:n_out]
        in_axes = self.axes[n_out + 2 * n_mid:]
        in_positions = {label for axis in out_axes + in_axes for label in axis.labels}
        (la, va), (lb, vb) = self.vals
        in_vals = set(la if va is not None else ()) | set(lb if vb is not None else ())
        factor = math.prod(self.sizes[x] for x in self.live - in_positions - in_vals)
        muls = math.prod(self.sizes[x] for x in in_vals) if va is not None and vb is not None else 0
        return out_axes, in_axes, in_positions, in_vals, factor, muls

    def unify(self, k_outer: int, k_inner: int) -> bool:
        """Make the outer input axis ``k_outer`` and the inner output axis ``k_inner`` the same index.

        Returns False when no index satisfies both (the product is structurally zero).
        """
        a, b = self.axes[k_outer], self.axes[k_inner]
        if a == b:
            return True
        if b.index is None and b.labels[0] not in a.labels:
            self.substitute({b.labels[0]: (a.labels, self._index_or_range(a))})
            return True
        if a.index is None and a.labels[0] not in b.labels:
            self.substitute({a.labels[0]: (b.labels, self._index_or_range(b))})
            return True
        return self._join(a, b)

    def _index_or_range(self, axis: Axis) -> np.ndarray:
        return np.arange(self.sizes[axis.labels[0]]) if axis.index is None else axis.index

    def _join(self, a: Axis, b: Axis) -> bool:
        labels = list(dict.fromkeys(a.labels + b.labels))
        if not set(a.labels) & set(b.labels):
            ga, gb = _Grid(a.labels, self.sizes), _Grid(b.labels, self.sizes)
            fa, fb = ga.eval(a).ravel(), gb.eval(b).ravel()
            order = np.argsort(fb, kind="stable")
            lo = np.searchsorted(fb[order], fa, "left")
            hi = np.searchsorted(fb[order], fa, "right")
            counts = hi - lo
            pa = np.repeat(np.arange(fa.size), counts)
            starts = np.repeat(lo - np.cumsum(counts) + counts, counts)
            pb = order[np.arange(pa.size) + starts]
            coords = {}
            for axis, grid, flat in ((a, ga, pa), (b, gb, pb)):
                if axis.labels:
                    coords |= dict(zip(axis.labels, np.unravel_index(flat, grid.shape)))
            n = pa.size
        else:
            grid = _Grid(labels, self.sizes)
            hits = np.nonzero((grid.eval(a) == grid.eval(b)).ravel())[0]
            coords = dict(zip(labels, np.unravel_index(hits, grid.shape)))
            n = hits.size
        if n == 0:
            return False
        new = self.fresh(n)
        self.substitute({label: ((new,), np.asarray(coords[label])) for label in labels})
        return True


def compose(outer: Partial, inner: Partial, *, batch_sum: bool = False) -> tuple[Partial | None, int]:
    """The chain rule ``outer @ inner`` (``dv/du @ du/dw``) and its multiplication count.

    With ``batch_sum`` the stored values of both partials carry one leading batch axis and the result is the
    sum over it of the per-example products (one contraction, e.g. a matrix product over the batch, instead of
    per-example products that are summed afterwards).

    Returns ``(None, 0)`` when the product is structurally zero.
    """
    if outer.in_shape != inner.out_shape:
        raise ValueError(f"cannot compose partials: {outer.in_shape} vs {inner.out_shape}")
    lead = int(batch_sum)
    work = _Composer(outer, inner, lead)
    chained = work.chain()
    if chained is None:
        return None, 0
    out_axes, in_axes, in_positions, in_vals, factor, muls = chained
    dtype = jnp.result_type(outer.dtype, inner.dtype)
    present = [(labels, v) for labels, v in work.vals if v is not None]
    if not present:
        val_labels, val = (), (None if factor == 1 else jnp.asarray(factor, dtype))
    else:
        val_labels = tuple(sorted(in_vals & in_positions))
        val = _product(present, val_labels, lead, factor).astype(dtype)
    result = Partial(outer.out_shape, inner.in_shape, work.sizes, out_axes, in_axes, val_labels, val, dtype)
    return canonical(result), muls


def _product(operands, out_labels, lead: int, factor: int) -> jax.Array:
    """The stored values of a product: one contraction (summed over a leading batch axis with ``lead``), scaled
    by ``factor`` (the count of summed labels that no stored value mentions)."""
    val = batch_sum(operands, out_labels) if lead else _einsum(operands, out_labels)
    return val if factor == 1 else val * factor


def _einsum(operands, out_labels):
    all_labels = sorted({x for labels, _ in operands for x in labels} | set(out_labels))
    letter = dict(zip(all_labels, string.ascii_letters))
    if len(operands) == 1 and tuple(operands[0][0]) == tuple(out_labels):
        return operands[0][1]
    spec = ",".join("".join(letter[x] for x in labels) for labels, _ in operands)
    spec += "->" + "".join(letter[x] for x in out_labels)
    return jnp.einsum(spec, *(v for _, v in operands))


def batch_sum(operands: Sequence[tuple[Sequence[int], jax.Array]], out_labels: Sequence[int]) -> jax.Array:
    """``sum_b prod_k operand_k[b, ...]`` over a leading batch axis ``b`` of every operand.

    Each operand is ``(labels, values)``: ``values`` has a leading batch axis, then one axis per label; the result
    has one axis per label of ``out_labels`` (every other label is summed).

    A label shared by both operands and kept in the result would make the contraction a batched matrix
    product that XLA transposes; there a fused multiply-and-sum is faster, otherwise one ``einsum``.
    """
    shared = set(operands[0][0]).intersection(*(labels for labels, _ in operands[1:])) if len(operands) > 1 else set()
    if shared & set(out_labels) and all(set(labels) <= set(out_labels) for labels, _ in operands):
        total = None
        for labels, val in operands:
            order = sorted(range(len(labels)), key=lambda k: out_labels.index(labels[k]))
            val = jnp.transpose(val, [0] + [k + 1 for k in order])
            sizes = dict(zip((labels[k] for k in order), val.shape[1:]))
            val = val.reshape([val.shape[0]] + [sizes.get(x, 1) for x in out_labels])
            total = val if total is None else total * val
        return jnp.sum(total, axis=0)
    all_labels = sorted({x for labels, _ in operands for x in labels} | set(out_labels))
    letter = dict(zip(all_labels, string.ascii_letters[1:]))
    spec = ",".join("a" + "".join(letter[x] for x in labels) for labels, _ in operands)
    spec += "->" + "".join(letter[x] for x in out_labels)
    return jnp.einsum(spec, *(v for _, v in operands))


def canonical(p: Partial, *, structure_only: bool = False) -> Partial:
    """Relabel ``p`` 0..k-1 in order of first appearance on its axes (a canonical form for comparisons).

    With ``structure_only`` the stored values are passed through as they are (a placeholder in the cost
    graph), not transposed to the new label order.
    """
    rename: dict[int, int] = {}
    for axis in p.out_axes + p.in_axes:
        for label in axis.labels:
            rename.setdefault(label, len(rename))
    for label in p.val_labels:
        rename.setdefault(label, len(rename))
    order = sorted(range(len(p.val_labels)), key=lambda k: rename[p.val_labels[k]])
    val = p.val
    if val is not None and not structure_only and order != list(range(len(order))):
        val = jnp.transpose(val, order)
    return p.replace(sizes={rename[x]: p.sizes[x] for x in rename},
                     out_axes=[Axis(tuple(rename[x] for x in a.labels), a.index) for a in p.out_axes],
                     in_axes=[Axis(tuple(rename[x] for x in a.labels), a.index) for a in p.in_axes],
                     val_labels=[rename[p.val_labels[k]] for k in order], val=val)


def structure_key(p: Partial) -> tuple:
    """A hashable description of the sparsity structure of a canonical partial (values excluded)."""
    ident = {label: label for label in p.sizes}
    return (p.out_shape, p.in_shape, tuple(a.key(ident) for a in p.out_axes + p.in_axes),
            tuple(sorted(p.sizes.items())))


def add(a: Partial, b: Partial) -> Partial:
    """``a + b``; keeps the structure when both share it, otherwise falls back to a dense block."""
    a, b = canonical(a), canonical(b)
    dtype = jnp.result_type(a.dtype, b.dtype)
    if structure_key(a) != structure_key(b):
        total = a.todense().astype(dtype) + b.todense().astype(dtype)
        return Partial.dense(total, a.out_shape, a.in_shape)
    labels = tuple(sorted(set(a.val_labels) | set(b.val_labels)))
    total = _aligned(a, labels, dtype) + _aligned(b, labels, dtype)
    return a.replace(val_labels=labels, val=total, dtype=dtype)


def _aligned(p: Partial, labels, dtype):
    if p.val is None:
        return jnp.ones((1,) * len(labels), dtype)
    shape = [p.sizes[x] if x in p.val_labels else 1 for x in labels]
    return p.val.astype(dtype).reshape(shape)


def is_local(p: Partial) -> bool:
    """An elementwise partial: every axis the identity of one label shared by input and output."""
    return p.out_shape == p.in_shape and all(
        a.index is None and b.index is None and a.labels == b.labels for a, b in zip(p.out_axes, p.in_axes))
