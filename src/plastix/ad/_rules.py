"""Elemental partial derivatives: one rule per JAX primitive.

``rules[primitive](invals, outvals, active, **params)`` returns one entry per input of the equation: ``None``
(no edge: inactive input or identically zero derivative) or a :class:`Partial` — for primitives with several
results a list with one ``Partial | None`` per result. The table is filled by small helpers in the style of
``jax/_src/interpreters/ad.py``: :func:`defelementwise`, :func:`defzero`, :func:`defdense`, ...

A primitive without a rule gets dense blocks from JAX's own AD of the equation (:func:`partials`, with a one-time
warning); only a primitive that JAX cannot differentiate either raises ``NotImplementedError``. Complex values
are real (re, im) pairs in the graph (:func:`realify`). The entries of ``custom_jvp`` and ``custom_vjp`` calls build
graphs of their own and are registered by :mod:`._custom`, above graph building and elimination.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax
from jax.extend.core import ClosedJaxpr, Literal
from jax.extend.core import primitives as _primitives

from ._partial import Axis, Partial

__all__ = ["rules", "dense_rules", "complex_rules", "expansions", "defrule", "defexpand", "defelementwise",
           "defelementwise_jvp", "defzero", "defdense", "dense_partials", "partials", "realify", "Rounding", "bind",
           "MAX_UNROLL"]



class _Primitives:
    """JAX primitives by name, from ``jax.extend.core.primitives`` or ``jax.lax``."""

    def __getattr__(self, name):
        return getattr(_primitives, name, None) or getattr(lax, name)


P = _Primitives()
Rule = Callable[..., list]
rules: dict = {}
dense_rules: set = set()
expansions: dict = {}  # primitive -> expand(invals, **params) -> ClosedJaxpr | None, evaluated in its place
ONE = object()  # marks a derivative that is exactly one (a pure index map, nothing stored)


def defrule(primitive, rule: Rule) -> None:
    """Register the partial-derivative rule of a JAX primitive (replacing any existing one).

    Args:
        primitive: a JAX primitive (e.g. ``jax.lax.sin_p`` or a custom ``jax.extend.core.Primitive``).
        rule: ``rule(invals, outvals, active, **params) -> list``: ``invals``/``outvals`` are the equation's
            input and output values, ``active[k]`` tells whether input ``k`` depends on a differentiated
            input, ``params`` are the equation's parameters. Returns one entry per input: ``None`` (no
            edge) or a :class:`plastix.ad.Partial` of shape ``out.shape + in.shape`` — for a primitive with
            several results, a list with one ``Partial | None`` per result.

    Returns:
        None; the rule is stored in :data:`plastix.ad.rules` and used by every later trace.

    Example:
        >>> def rule(invals, outvals, active, **params):
        ...     (x,), (out,) = invals, outvals
        ...     return [Partial.elementwise(jnp.cos(x), x.shape, out.shape, out.dtype) if active[0] else None]
        >>> plastix.ad.defrule(my_sin_p, rule)
    """
    rules[primitive] = rule


def bind(primitive, params: dict, invals):
    """Evaluate one equation; always returns a list of results."""
    out = primitive.bind(*invals, **primitive.get_bind_params(params))
    return list(out) if primitive.multiple_results else [out]


def active_call(primitive, params: dict, invals, active):
    """The equation as a function of its active inputs only: ``(f, active positions, active values)``."""
    idx = [k for k, a in enumerate(active) if a]

    def f(*xs):
        args = list(invals)
        for k, x in zip(idx, xs):
            args[k] = x
        return bind(primitive, params, args)

    return f, idx, [invals[k] for k in idx]


def is_concrete(x) -> bool:
    return not isinstance(x, jax.core.Tracer)


def mask_of(pred, dtype):
    """A 0/1 array from a predicate, as a ``select``: a product with it follows IEEE arithmetic (``0 * inf`` is NaN)
    in eager and compiled code alike (XLA rewrites ``convert(pred) * x`` into ``select(pred, x, 0)``, which
    would make the result depend on how the products are fused)."""
    return jnp.where(pred, jnp.ones((), dtype), jnp.zeros((), dtype))


# --------------------------------------------------------------------------------------------- helpers
def defelementwise(primitive, *derivatives) -> None:
    """Register an elementwise primitive; ``derivatives[k](ans, *invals)`` is the derivative w.r.t. input k.

    Each input gets a diagonal partial (broadcast inputs are handled by the partial's shapes), so only the
    elementwise derivative values are stored.

    Args:
        primitive: a JAX primitive acting elementwise (with numpy broadcasting) on its inputs.
        *derivatives: one per input, in input order. Each is ``None`` (no edge: zero derivative) or a
            function ``(ans, *invals) -> array`` of the output value and the input values returning the
            derivative w.r.t. that input (a scalar or an array of ``ans.shape``), or returning :data:`ONE` (an exact
            identity: nothing stored).

    Returns:
        None; registers the rule with :func:`defrule`.

    Example:
        >>> plastix.ad.defelementwise(jax.lax.tanh_p, lambda ans, x: (1.0 + ans) * (1.0 - ans))
        >>> plastix.ad.defelementwise(jax.lax.mul_p, lambda ans, x, y: y, lambda ans, x, y: x)
    """

    def rule(invals, outvals, active, **params):
        out = outvals[0]
        result = []
        for k, (x, is_active) in enumerate(zip(invals, active)):
            deriv = derivatives[k]
            if not is_active or deriv is None:
                result.append(None)
                continue
            d = deriv(out, *invals)
            result.append(Partial.elementwise(None if d is ONE else d, np.shape(x), out.shape, out.dtype))
        return result

    defrule(primitive, rule)


def defzero(primitive) -> None:
    """A primitive whose derivative is zero everywhere (sign, floor, stop_gradient, ...): no edges."""
    defrule(primitive, lambda invals, outvals, active, **params: [None] * len(invals))


def defdense(primitive) -> None:
    """Fallback: dense blocks computed with JAX's own forward-mode AD of the single equation.

    Used for ``while`` loops and primitives without exploitable structure (linear algebra, ``fft``, ``sort``);
    ``Graph.summary()`` reports every equation that took this path and :func:`plastix.count_muls` counts its
    blocks as dense. A primitive with neither a rule nor a ``defdense`` registration takes the same path (with
    a one-time warning) when JAX can differentiate it.
    """
    dense_rules.add(primitive)
    defrule(primitive, lambda invals, outvals, active, **params: dense_partials(primitive, params, invals, outvals,
                                                                               active))


def is_complex(x) -> bool:
    return jnp.issubdtype(jnp.result_type(x), jnp.complexfloating)


def is_inexact(x) -> bool:
    """Whether ``x`` has a floating or complex dtype (a value that can carry a derivative)."""
    return jnp.issubdtype(jnp.result_type(x), jnp.inexact)


def pair_shape(x) -> tuple[int, ...]:
    """The shape of ``x``'s vertex: a complex array is a real array with a trailing (re, im) axis."""
    return tuple(np.shape(x)) + ((2,) if is_complex(x) else ())


def real_dtype(x) -> np.dtype:
    """The dtype of ``x``'s vertex (the real dtype of the same precision for a complex array)."""
    return np.dtype(jnp.finfo(jnp.result_type(x)).dtype) if is_complex(x) else np.dtype(jnp.result_type(x))


def _to_pair(x):
    return jnp.stack([jnp.real(x), jnp.imag(x)], -1) if is_complex(x) else x


def _from_pair(x, like):
    return lax.complex(x[..., 0], x[..., 1]).astype(jnp.result_type(like)) if is_complex(like) else x


def _jacobian_by_jvps(f, primals) -> list[list]:
    """``jax.jacfwd(f, argnums=all)(*primals)`` as one JVP per basis vector, without ``vmap``."""
    outs = f(*primals)
    jac = [[] for _ in outs]
    for j, x in enumerate(primals):
        columns = []
        for e in jnp.eye(int(np.size(x)), dtype=jnp.result_type(x)):
            tangents = [e.reshape(np.shape(x)) if i == j else jnp.zeros_like(p) for i, p in enumerate(primals)]
            columns.append(jax.jvp(f, primals, tangents)[1])
        for o, out in enumerate(outs):
            block = jnp.stack([c[o] for c in columns], -1) if columns else jnp.zeros(np.shape(out) + (0,))
            jac[o].append(block.reshape(np.shape(out) + np.shape(x)))
    return jac


def dense_partials(primitive, params, invals, outvals, active, *, reverse: bool = False) -> list:
    """Dense blocks of one equation from JAX's own AD (forward mode, or reverse with ``reverse``), in the format
    of a rule; complex inputs and outputs take part as (re, im) pairs, so the blocks are exact for maps that are
    not complex-analytic too."""
    idx = [k for k, a in enumerate(active) if a and is_inexact(invals[k])]
    keep = [o for o, out in enumerate(outvals) if is_inexact(out)]
    if not idx or not keep:
        return [None] * len(invals)

    def f(*xs):
        args = list(invals)
        for k, x in zip(idx, xs):
            args[k] = _from_pair(x, invals[k])
        outs = bind(primitive, params, args)
        return [_to_pair(outs[o]) for o in keep]

    primals = [_to_pair(invals[k]) for k in idx]
    try:
        jac = (jax.jacrev if reverse else jax.jacfwd)(f, argnums=tuple(range(len(idx))))(*primals)
    except (ValueError, TypeError):  # a primitive whose JVP JAX cannot batch (generic reduce_window)
        jac = _jacobian_by_jvps(f, primals)
    result: list = [None] * len(invals)
    for j, k in enumerate(idx):
        blocks: list = [None] * len(outvals)
        for i, o in enumerate(keep):
            blocks[o] = Partial.dense(jnp.asarray(jac[i][j], real_dtype(outvals[o])), pair_shape(outvals[o]),
                                      pair_shape(invals[k]))
        result[k] = blocks if primitive.multiple_results else blocks[0]
    return result


def _indexmap(out_shape, in_shape, out_index, in_index, dtype, n: int) -> Partial | None:
    """A pure index map over one label enumerating ``n`` entries; ``*_index`` are per-axis integer arrays.

    Returns ``None`` when there is no entry (the partial is zero).
    """
    if n == 0:
        return None
    axes = lambda index: [Axis((0,), np.asarray(ix, np.int64)) for ix in index]
    return Partial(out_shape, in_shape, {0: n}, axes(out_index), axes(in_index), (), None, dtype)


def _axiswise(out_shape, in_shape, maps, dtype, val=None, val_labels=()) -> Partial:
    """A partial between arrays of equal rank whose axes are mapped pairwise.

    ``maps[k]`` is ``None`` (identity, equal sizes) or ``(size, out_index, in_index)`` where the indices are
    arrays over a label of ``size`` (or ``None`` for the identity of that label).
    """
    sizes, out_axes, in_axes = {}, [], []
    for k, m in enumerate(maps):
        if m is None:
            if out_shape[k] != in_shape[k]:
                raise ValueError(f"identity map between axes of sizes {out_shape[k]} and {in_shape[k]}")
            sizes[k] = out_shape[k]
            out_axes.append(Axis((k,)))
            in_axes.append(Axis((k,)))
        else:
            size, out_index, in_index = m
            sizes[k] = size
            out_axes.append(Axis((k,), None if out_index is None else np.asarray(out_index, np.int64)))
            in_axes.append(Axis((k,), None if in_index is None else np.asarray(in_index, np.int64)))
    return _simplify(Partial(out_shape, in_shape, sizes, out_axes, in_axes, val_labels, val, dtype))


def _simplify(p: Partial) -> Partial:
    """Turn index arrays that are the identity of their label into plain identities."""
    def fix(axis, size):
        if axis.index is not None and len(axis.labels) == 1 and axis.index.shape == (size,) \
                and p.sizes[axis.labels[0]] == size and np.array_equal(axis.index, np.arange(size)):
            return Axis(axis.labels)
        return axis

    return p.replace(out_axes=[fix(a, n) for a, n in zip(p.out_axes, p.out_shape)],
                     in_axes=[fix(a, n) for a, n in zip(p.in_axes, p.in_shape)])


def _nonzero(mask) -> tuple[np.ndarray, list[np.ndarray]]:
    """Flat positions of the non-zeros of ``mask`` and their indices, one array per axis (none if 0-d)."""
    mask = np.asarray(mask)
    flat = np.flatnonzero(mask)
    return flat, list(np.unravel_index(flat, mask.shape)) if mask.ndim else []


def _only(active, k, partial_fn):
    result = [None] * len(active)
    if active[k]:
        result[k] = partial_fn()
    return result


# ---------------------------------------------------------------------------------- elementwise math
def _const(c):
    return lambda ans, *xs, **_: c


defelementwise(P.neg_p, _const(-1.0))
defelementwise(P.add_p, lambda *_: ONE, lambda *_: ONE)
defelementwise(P.sub_p, lambda *_: ONE, _const(-1.0))
defelementwise(P.mul_p, lambda ans, x, y: y, lambda ans, x, y: x)
defelementwise(P.div_p, lambda ans, x, y: 1.0 / y, lambda ans, x, y: -x * lax.integer_pow(y, -2))
defelementwise(P.exp_p, lambda ans, x: ans)
defelementwise(P.exp2_p, lambda ans, x: ans * np.log(2.0).astype(ans.dtype))
defelementwise(P.log_p, lambda ans, x: 1.0 / x)
defelementwise(P.log1p_p, lambda ans, x: 1.0 / (x + 1.0))
defelementwise(P.expm1_p, lambda ans, x: ans + 1.0)
defelementwise(P.sin_p, lambda ans, x: jnp.cos(x))
defelementwise(P.cos_p, lambda ans, x: -jnp.sin(x))
defelementwise(P.tan_p, lambda ans, x: 1.0 + ans * ans)
defelementwise(P.asin_p, lambda ans, x: lax.rsqrt(1.0 - x * x))
defelementwise(P.acos_p, lambda ans, x: -lax.rsqrt(1.0 - x * x))
defelementwise(P.atan_p, lambda ans, x: 1.0 / (1.0 + x * x))
defelementwise(P.sinh_p, lambda ans, x: jnp.cosh(x))
defelementwise(P.cosh_p, lambda ans, x: jnp.sinh(x))
defelementwise(P.tanh_p, lambda ans, x: (1.0 + ans) * (1.0 - ans))
defelementwise(P.asinh_p, lambda ans, x: lax.rsqrt(x * x + 1.0))
defelementwise(P.acosh_p, lambda ans, x: lax.rsqrt((x - 1.0) * (x + 1.0)))
defelementwise(P.atanh_p, lambda ans, x: 1.0 / ((1.0 + x) * (1.0 - x)))
defelementwise(P.logistic_p, lambda ans, x: ans * (1.0 - ans))
defelementwise(P.erf_p, lambda ans, x: (2.0 / np.sqrt(np.pi)) * jnp.exp(-x * x))
defelementwise(P.erfc_p, lambda ans, x: (-2.0 / np.sqrt(np.pi)) * jnp.exp(-x * x))
defelementwise(P.erf_inv_p, lambda ans, x: (np.sqrt(np.pi) / 2.0) * jnp.exp(ans * ans))
defelementwise(P.lgamma_p, lambda ans, x: lax.digamma(x))
defelementwise(P.digamma_p, lambda ans, x: lax.polygamma(jnp.ones_like(x), x))
defelementwise(P.sqrt_p, lambda ans, x: 0.5 / ans)
defelementwise(P.rsqrt_p, lambda ans, x: -0.5 * ans / x)
defelementwise(P.cbrt_p, lambda ans, x: (1.0 / 3.0) * lax.integer_pow(ans, -2))
defelementwise(P.square_p, lambda ans, x: 2.0 * x)
defelementwise(P.abs_p, lambda ans, x: jnp.where(x >= 0, 1.0, -1.0).astype(ans.dtype))
defelementwise(P.atan2_p, lambda ans, x, y: y / (x * x + y * y), lambda ans, x, y: -x / (x * x + y * y))
defelementwise(P.rem_p, lambda *_: ONE, lambda ans, x, y: -(jnp.sign(x / y) * jnp.floor(jnp.abs(x / y))))
defelementwise(P.copy_p, lambda *_: ONE)


def _integer_pow(ans, x, *, y):
    return None if y == 0 else y * lax.integer_pow(x, y - 1)


defrule(P.integer_pow_p, lambda invals, outvals, active, *, y: [
    None if not active[0] or y == 0 else
    Partial.elementwise(_integer_pow(outvals[0], invals[0], y=y), invals[0].shape, outvals[0].shape,
                        outvals[0].dtype)])


def _pow_x(ans, x, y):
    return jnp.where(y == 0, jnp.zeros_like(ans), y * lax.pow(x, y - jnp.ones_like(y)))


def _pow_y(ans, x, y):
    if not jnp.issubdtype(jnp.result_type(y), jnp.inexact):
        return None
    return jnp.log(jnp.where(x == 0, jnp.ones_like(x), x)) * ans


def _pow_rule(invals, outvals, active, **params):
    x, y = invals
    out = outvals[0]
    dy = _pow_y(out, x, y) if active[1] else None
    return [Partial.elementwise(_pow_x(out, x, y), np.shape(x), out.shape, out.dtype) if active[0] else None,
            None if dy is None else Partial.elementwise(dy, np.shape(y), out.shape, out.dtype)]


defrule(P.pow_p, _pow_rule)


def _balanced_eq(x, z, y):
    return jnp.where(x == z, jnp.where(y == z, 0.5, 1.0), 0.0).astype(z.dtype)


defelementwise(P.max_p, lambda ans, x, y: _balanced_eq(x, ans, y), lambda ans, x, y: _balanced_eq(y, ans, x))
defelementwise(P.min_p, lambda ans, x, y: _balanced_eq(x, ans, y), lambda ans, x, y: _balanced_eq(y, ans, x))


def _select_n_rule(invals, outvals, active, **params):
    pred, *cases = invals
    out = outvals[0]
    result = [None]
    for k, (case, is_active) in enumerate(zip(cases, active[1:])):
        if not is_active:
            result.append(None)
            continue
        mask = (pred == k) if pred.dtype != bool else (pred if k == 1 else jnp.logical_not(pred))
        result.append(Partial.elementwise(mask_of(mask, out.dtype), np.shape(case), out.shape, out.dtype))
    return result


defrule(P.select_n_p, _select_n_rule)


def _clamp_rule(invals, outvals, active, **params):
    lo, x, hi = invals
    out = outvals[0]
    d = [lambda: (lo > x) & (lo < hi), lambda: (x > lo) & (x < hi), lambda: hi < x]
    return [Partial.elementwise(mask_of(jnp.broadcast_to(d[k](), out.shape), out.dtype), np.shape(v), out.shape,
                                out.dtype) if active[k] else None for k, v in enumerate(invals)]


defrule(P.clamp_p, _clamp_rule)


def _convert_rule(invals, outvals, active, **params):
    out = outvals[0]
    if not (active[0] and jnp.issubdtype(out.dtype, jnp.inexact)):
        return [None]
    return [Partial.elementwise(None, np.shape(invals[0]), out.shape, out.dtype)]


defrule(P.convert_element_type_p, _convert_rule)

for _p in (P.sign_p, P.floor_p, P.ceil_p, P.round_p, P.is_finite_p, P.stop_gradient_p, P.nextafter_p,
           P.argmax_p, P.argmin_p, P.iota_p, P.eq_p, P.ne_p, P.lt_p, P.le_p, P.gt_p, P.ge_p, P.and_p, P.or_p,
           P.not_p, P.xor_p, P.reduce_and_p, P.reduce_or_p, P.random_bits_p, P.rng_uniform_p):
    defzero(_p)


# ------------------------------------------------------------------------------------ shape and layout
def _transpose_rule(invals, outvals, active, *, permutation):
    x = invals[0]
    labels = range(x.ndim)
    return _only(active, 0, lambda: Partial(
        outvals[0].shape, x.shape, dict(zip(labels, x.shape)), [Axis((p,)) for p in permutation],
        [Axis((k,)) for k in labels], (), None, outvals[0].dtype))


defrule(P.transpose_p, _transpose_rule)


def _reshape_groups(old, new):
    """Split a row-major reshape into groups of old and new axes with equal products.

    A size-1 axis without a partner on the other side forms a group of its own.
    """
    groups, i, j = [], 0, 0
    while i < len(old) or j < len(new):
        if i < len(old) and old[i] == 1 and (j >= len(new) or new[j] != 1):
            groups.append(([i], []))
            i += 1
            continue
        if j < len(new) and new[j] == 1 and (i >= len(old) or old[i] != 1):
            groups.append(([], [j]))
            j += 1
            continue
        gi, gj = [i], [j]
        po, pn = old[i], new[j]
        i, j = i + 1, j + 1
        while po != pn:
            if po < pn:
                po *= old[i]
                gi.append(i)
                i += 1
            else:
                pn *= new[j]
                gj.append(j)
                j += 1
        groups.append((gi, gj))
    return groups


def _reshape_partial(old, new, dtype) -> Partial:
    sizes, out_axes, in_axes = {}, [None] * len(new), [None] * len(old)
    label = 0

    def ravel_index(labels, shape):
        grids = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
        return np.ravel_multi_index(grids, shape) if shape else np.zeros((), np.int64), labels

    def unravel_axes(glabel, shape, positions, axes):
        total = math.prod(shape)
        for k, pos in enumerate(positions):
            stride = math.prod(shape[k + 1:])
            axes[pos] = Axis((glabel,), (np.arange(total) // stride) % shape[k])

    for gi, gj in _reshape_groups(list(old), list(new)):
        old_shape, new_shape = [old[k] for k in gi], [new[k] for k in gj]
        if not gi or not gj:
            if gj:
                sizes[label] = 1
                out_axes[gj[0]] = Axis((label,))
                label += 1
            else:
                in_axes[gi[0]] = Axis((), np.zeros((), np.int64))
        elif len(gi) == 1 and len(gj) == 1:
            sizes[label] = old_shape[0]
            in_axes[gi[0]] = out_axes[gj[0]] = Axis((label,))
            label += 1
        elif len(gi) == 1 or len(gj) == 1:
            single, many = (gi, gj) if len(gi) == 1 else (gj, gi)
            single_axes, many_axes = (in_axes, out_axes) if len(gi) == 1 else (out_axes, in_axes)
            many_shape = [(new if len(gi) == 1 else old)[k] for k in many]
            labels = tuple(range(label, label + len(many)))
            for lab, k, s in zip(labels, many, many_shape):
                sizes[lab] = s
                many_axes[k] = Axis((lab,))
            index, _ = ravel_index(labels, many_shape)
            single_axes[single[0]] = Axis(labels, index)
            label += len(many)
        else:
            sizes[label] = math.prod(old_shape)
            unravel_axes(label, old_shape, gi, in_axes)
            unravel_axes(label, new_shape, gj, out_axes)
            label += 1
    return _simplify(Partial(new, old, sizes, out_axes, in_axes, (), None, dtype))


def _reshape_rule(invals, outvals, active, *, new_sizes, dimensions, **_):
    if dimensions is not None:
        raise NotImplementedError("reshape with `dimensions` is not supported; transpose first")
    x = invals[0]
    return [_reshape_partial(tuple(x.shape), tuple(new_sizes), outvals[0].dtype) if active[0] else None] + \
        [None] * (len(invals) - 1)


defrule(P.reshape_p, _reshape_rule)


def _broadcast_in_dim_rule(invals, outvals, active, *, shape, broadcast_dimensions, **_):
    x = invals[0]

    def partial():
        sizes = dict(enumerate(shape))
        in_axes = []
        for k, d in enumerate(broadcast_dimensions):
            in_axes.append(Axis((d,)) if x.shape[k] == shape[d] else Axis((), np.zeros((), np.int64)))
        return Partial(shape, x.shape, sizes, [Axis((d,)) for d in range(len(shape))], in_axes, (), None,
                       outvals[0].dtype)

    return [partial() if active[0] else None] + [None] * (len(invals) - 1)


defrule(P.broadcast_in_dim_p, _broadcast_in_dim_rule)


def _squeeze_rule(invals, outvals, active, *, dimensions):
    x = invals[0]

    def partial():
        dims = {d % x.ndim for d in dimensions}
        kept = [k for k in range(x.ndim) if k not in dims]
        sizes = {k: x.shape[k] for k in kept}
        in_axes = [Axis((), np.zeros((), np.int64)) if k in dims else Axis((k,)) for k in range(x.ndim)]
        return Partial(outvals[0].shape, x.shape, sizes, [Axis((k,)) for k in kept], in_axes, (), None,
                       outvals[0].dtype)

    return _only(active, 0, partial)


defrule(P.squeeze_p, _squeeze_rule)


def _slice_maps(x_shape, start, limit, strides):
    maps = []
    for k, n in enumerate(x_shape):
        step = 1 if strides is None else strides[k]
        idx = np.arange(start[k], limit[k], step)
        maps.append(None if len(idx) == n else (len(idx), None, idx))
    return maps


def _slice_rule(invals, outvals, active, *, start_indices, limit_indices, strides):
    x = invals[0]
    return _only(active, 0, lambda: _axiswise(outvals[0].shape, x.shape,
                                              _slice_maps(x.shape, start_indices, limit_indices, strides),
                                              outvals[0].dtype))


defrule(P.slice_p, _slice_rule)


def _rev_rule(invals, outvals, active, *, dimensions):
    x = invals[0]
    maps = [(n, None, np.arange(n)[::-1]) if k in dimensions and n > 1 else None for k, n in enumerate(x.shape)]
    return _only(active, 0, lambda: _axiswise(x.shape, x.shape, maps, outvals[0].dtype))


defrule(P.rev_p, _rev_rule)


def _concatenate_rule(invals, outvals, active, *, dimension):
    out = outvals[0]
    result, offset = [], 0
    for x, is_active in zip(invals, active):
        n = x.shape[dimension]
        if is_active:
            maps = [None] * x.ndim
            maps[dimension] = (n, offset + np.arange(n), None)
            result.append(_axiswise(out.shape, x.shape, maps, out.dtype))
        else:
            result.append(None)
        offset += n
    return result


defrule(P.concatenate_p, _concatenate_rule)


def _split_rule(invals, outvals, active, *, sizes, axis):
    x = invals[0]
    if not active[0]:
        return [None]
    blocks, offset = [], 0
    for size, out in zip(sizes, outvals):
        maps = [None] * x.ndim
        if size != x.shape[axis]:
            maps[axis] = (int(size), None, offset + np.arange(size))
        blocks.append(_axiswise(out.shape, x.shape, maps, out.dtype))
        offset += int(size)
    return [blocks]


defrule(P.split_p, _split_rule)


def _pad_rule(invals, outvals, active, *, padding_config):
    x, pv = invals
    out = outvals[0]
    result = [None, None]
    if active[0]:
        maps = []
        for n, m, (lo, _, interior) in zip(x.shape, out.shape, padding_config):
            src = np.arange(n)
            dst = lo + src * (interior + 1)
            keep = (dst >= 0) & (dst < m)
            identity = n == m and keep.all() and np.array_equal(dst, src)
            maps.append(None if identity else (int(keep.sum()), dst[keep], src[keep]))
        result[0] = _axiswise(out.shape, x.shape, maps, out.dtype)
    if active[1]:
        with jax.ensure_compile_time_eval():
            filled = np.asarray(lax.pad(np.ones(x.shape, np.int8), np.int8(0), padding_config))
        flat, where = _nonzero(filled == 0)
        result[1] = _indexmap(out.shape, (), where, [], out.dtype, flat.size)
    return result


defrule(P.pad_p, _pad_rule)


def _tile_rule(invals, outvals, active, *, reps):
    x, out = invals[0], outvals[0]
    maps = [None if r == 1 else (n * r, None, np.arange(n * r) % n) for n, r in zip(x.shape, reps)]
    return _only(active, 0, lambda: _axiswise(out.shape, x.shape, maps, out.dtype))


defrule(P.tile_p, _tile_rule)


def _stack_rule(invals, outvals, active, *, axis):
    out = outvals[0]

    def partial(k, x):
        out_axes = [Axis((d,)) for d in range(x.ndim)]
        out_axes.insert(axis, Axis((), np.asarray(k, np.int64)))
        return Partial(out.shape, x.shape, dict(enumerate(x.shape)), out_axes, [Axis((d,)) for d in range(x.ndim)],
                       (), None, out.dtype)

    return [partial(k, x) if a else None for k, (x, a) in enumerate(zip(invals, active))]


defrule(P.stack_p, _stack_rule)


def _unstack_rule(invals, outvals, active, *, axis):
    x = invals[0]
    if not active[0]:
        return [None]
    blocks = []
    for k, out in enumerate(outvals):
        in_axes = [Axis((d,)) for d in range(out.ndim)]
        in_axes.insert(axis, Axis((), np.asarray(k, np.int64)))
        blocks.append(Partial(out.shape, x.shape, dict(enumerate(out.shape)), [Axis((d,)) for d in range(out.ndim)],
                              in_axes, (), None, out.dtype))
    return [blocks]


defrule(P.unstack_p, _unstack_rule)
defelementwise(P.add_jaxvals_p, lambda *_: ONE, lambda *_: ONE)


# ------------------------------------------------------------------------------------------- reductions
def _reduce_sum_rule(invals, outvals, active, *, axes, **_):
    x = invals[0]

    def partial():
        kept = [k for k in range(x.ndim) if k not in axes]
        return Partial(outvals[0].shape, x.shape, dict(enumerate(x.shape)), [Axis((k,)) for k in kept],
                       [Axis((k,)) for k in range(x.ndim)], (), None, outvals[0].dtype)

    return _only(active, 0, partial)


defrule(P.reduce_sum_p, _reduce_sum_rule)


def _reduce_chooser_rule(invals, outvals, active, *, axes, **_):
    x, out = invals[0], outvals[0]

    def partial():
        kept = [k for k in range(x.ndim) if k not in axes]
        ans = jnp.expand_dims(out, tuple(axes))
        hits = mask_of(x == ans, out.dtype)
        val = hits / jnp.sum(hits, axis=tuple(axes), keepdims=True)
        labels = tuple(range(x.ndim))
        return Partial(out.shape, x.shape, dict(enumerate(x.shape)), [Axis((k,)) for k in kept],
                       [Axis((k,)) for k in labels], labels, val, out.dtype)

    return _only(active, 0, partial)


defrule(P.reduce_max_p, _reduce_chooser_rule)
defrule(P.reduce_min_p, _reduce_chooser_rule)


def _reduce_prod_rule(invals, outvals, active, *, axes, **_):
    x, out = invals[0], outvals[0]

    def partial():
        kept = [k for k in range(x.ndim) if k not in axes]
        moved = jnp.moveaxis(x, tuple(axes), tuple(range(x.ndim - len(axes), x.ndim)))
        flat = moved.reshape(moved.shape[:len(kept)] + (-1,))
        ones = jnp.ones_like(flat[..., :1])
        left = jnp.cumprod(jnp.concatenate([ones, flat[..., :-1]], -1), -1)
        right = jnp.flip(jnp.cumprod(jnp.concatenate([ones, jnp.flip(flat, -1)[..., :-1]], -1), -1), -1)
        others = (left * right).reshape(moved.shape)
        val = jnp.moveaxis(others, tuple(range(x.ndim - len(axes), x.ndim)), tuple(axes))
        labels = tuple(range(x.ndim))
        return Partial(out.shape, x.shape, dict(enumerate(x.shape)), [Axis((k,)) for k in kept],
                       [Axis((k,)) for k in labels], labels, val, out.dtype)

    return _only(active, 0, partial)


defrule(P.reduce_prod_p, _reduce_prod_rule)


def _cumsum_rule(invals, outvals, active, *, axis, reverse):
    x = invals[0]
    n = x.shape[axis]
    k_out, j_in = np.nonzero(np.triu(np.ones((n, n), bool)).T if not reverse else np.triu(np.ones((n, n), bool)))
    maps = [None] * x.ndim
    maps[axis] = (len(k_out), k_out, j_in)
    return _only(active, 0, lambda: _axiswise(x.shape, x.shape, maps, outvals[0].dtype))


defrule(P.cumsum_p, _cumsum_rule)


def _axis_local_dense_rule(primitive):
    """Cumulative ops other than sums: dense along the scanned axis, a Kronecker delta along the others."""

    def rule(invals, outvals, active, *, axis, reverse):
        x, out = invals[0], outvals[0]

        def partial():
            moved = jnp.moveaxis(x, axis, -1)
            f = lambda v: primitive.bind(v, axis=0, reverse=reverse)
            jac = jax.jacfwd(f)
            for _ in range(x.ndim - 1):
                jac = jax.vmap(jac)
            blocks = jac(moved)
            others = [k for k in range(x.ndim) if k != axis]
            out_label, in_label = x.ndim, x.ndim + 1
            sizes = {k: x.shape[k] for k in others} | {out_label: x.shape[axis], in_label: x.shape[axis]}
            out_axes = [Axis((out_label,)) if k == axis else Axis((k,)) for k in range(x.ndim)]
            in_axes = [Axis((in_label,)) if k == axis else Axis((k,)) for k in range(x.ndim)]
            return Partial(out.shape, x.shape, sizes, out_axes, in_axes, tuple(others) + (out_label, in_label),
                           blocks.astype(out.dtype), out.dtype)

        return _only(active, 0, partial)

    return rule


for _p in (P.cumprod_p, P.cummax_p, P.cummin_p, P.cumlogsumexp_p):
    defrule(_p, _axis_local_dense_rule(_p))


# ------------------------------------------------------------------------------------------ contraction
def _dot_general_rule(invals, outvals, active, *, dimension_numbers, **_):
    (lc, rc), (lb, rb) = dimension_numbers
    lhs, rhs = invals
    out = outvals[0]
    nb = len(lb)
    lfree = [k for k in range(lhs.ndim) if k not in lc and k not in lb]
    rfree = [k for k in range(rhs.ndim) if k not in rc and k not in rb]

    def partial(x, x_con, x_bat, x_free, other, o_con, o_bat, o_free, x_is_lhs):
        # labels: batch 0..nb-1, x-free, other-free, contracting
        lab = iter(range(10 ** 6))
        batch = [next(lab) for _ in range(nb)]
        xf = [next(lab) for _ in x_free]
        of = [next(lab) for _ in o_free]
        con = [next(lab) for _ in x_con]
        sizes = dict(zip(batch, [x.shape[k] for k in x_bat])) | dict(zip(xf, [x.shape[k] for k in x_free]))
        sizes |= dict(zip(of, [other.shape[k] for k in o_free])) | dict(zip(con, [x.shape[k] for k in x_con]))
        out_labels = batch + (xf + of if x_is_lhs else of + xf)
        x_labels = [None] * x.ndim
        for k, lab_ in zip(x_bat, batch):
            x_labels[k] = lab_
        for k, lab_ in zip(x_free, xf):
            x_labels[k] = lab_
        for k, lab_ in zip(x_con, con):
            x_labels[k] = lab_
        o_labels = [None] * other.ndim
        for k, lab_ in zip(o_bat, batch):
            o_labels[k] = lab_
        for k, lab_ in zip(o_free, of):
            o_labels[k] = lab_
        for k, lab_ in zip(o_con, con):
            o_labels[k] = lab_
        return Partial(out.shape, x.shape, sizes, [Axis((x_,)) for x_ in out_labels],
                       [Axis((x_,)) for x_ in x_labels], o_labels, other.astype(out.dtype), out.dtype)

    return [partial(lhs, lc, lb, lfree, rhs, rc, rb, rfree, True) if active[0] else None,
            partial(rhs, rc, rb, rfree, lhs, lc, lb, lfree, False) if active[1] else None]


defrule(P.dot_general_p, _dot_general_rule)


# ------------------------------------------------------------------------------ indexing (static maps)
def _flat_iota(shape):
    return np.arange(1, math.prod(shape) + 1, dtype=np.int64 if math.prod(shape) >= 2 ** 31 else np.int32) \
        .reshape(shape)


def _gather_rule(invals, outvals, active, **params):
    operand, indices = invals
    out = outvals[0]
    if not active[0]:
        return [None, None]
    if not is_concrete(indices):
        return _dynamic_fallback(P.gather_p, invals, outvals, active, params)
    with jax.ensure_compile_time_eval():
        src = np.asarray(P.gather_p.bind(_flat_iota(operand.shape), np.asarray(indices),
                                         **(params | {"fill_value": 0})))
    flat, where = _nonzero(src)
    in_index = list(np.unravel_index(src.reshape(-1)[flat] - 1, operand.shape))
    return [_indexmap(out.shape, operand.shape, where, in_index, out.dtype, flat.size), None]


defrule(P.gather_p, _gather_rule)


def _scatter_destinations(operand_shape, indices, updates_shape, dnums, mode):
    """For every element of ``updates``, the flat operand index it lands on (or -1 when dropped)."""
    gather_dnums = lax.GatherDimensionNumbers(
        offset_dims=dnums.update_window_dims, collapsed_slice_dims=dnums.inserted_window_dims,
        start_index_map=dnums.scatter_dims_to_operand_dims, operand_batching_dims=dnums.operand_batching_dims,
        start_indices_batching_dims=dnums.scatter_indices_batching_dims)
    slice_sizes, pos = [], 0
    for k in range(len(operand_shape)):
        if k in dnums.inserted_window_dims or k in dnums.operand_batching_dims:
            slice_sizes.append(1)
        else:
            slice_sizes.append(updates_shape[dnums.update_window_dims[pos]])
            pos += 1
    gather_mode = lax.GatherScatterMode.FILL_OR_DROP if mode == lax.GatherScatterMode.FILL_OR_DROP else mode
    with jax.ensure_compile_time_eval():
        dest = np.asarray(lax.gather(_flat_iota(operand_shape), np.asarray(indices), gather_dnums,
                                     tuple(slice_sizes), mode=gather_mode, fill_value=0))
    return dest.astype(np.int64) - 1


def _scatter_add_rule(invals, outvals, active, *, dimension_numbers, mode, **params):
    operand, indices, updates = invals
    out = outvals[0]
    result = [Partial.elementwise(None, operand.shape, out.shape, out.dtype) if active[0] else None, None, None]
    if active[2]:
        if not is_concrete(indices):
            return _dynamic_fallback(P.scatter_add_p, invals, outvals, active,
                                     params | {"dimension_numbers": dimension_numbers, "mode": mode})
        dest = _scatter_destinations(operand.shape, indices, updates.shape, dimension_numbers, mode)
        flat, where = _nonzero(dest >= 0)
        out_index = list(np.unravel_index(dest.reshape(-1)[flat], operand.shape))
        result[2] = _indexmap(out.shape, updates.shape, out_index, where, out.dtype, flat.size)
    return result


defrule(P.scatter_add_p, _scatter_add_rule)


def _scatter_rule(invals, outvals, active, **params):
    operand, indices, updates = invals
    out = outvals[0]
    if not is_concrete(indices):
        return _dynamic_fallback(P.scatter_p, invals, outvals, active, params)
    with jax.ensure_compile_time_eval():
        winner = np.asarray(P.scatter_p.bind(np.zeros(operand.shape, np.int64 if updates.size >= 2 ** 31
                                                      else np.int32),
                                             np.asarray(indices), _flat_iota(updates.shape), **params))
    result = [None, None, None]
    if active[0]:
        flat, kept = _nonzero(winner == 0)
        result[0] = _indexmap(out.shape, operand.shape, kept, kept, out.dtype, flat.size)
    if active[2]:
        flat, written = _nonzero(winner)
        src = list(np.unravel_index(winner.reshape(-1)[flat] - 1, updates.shape))
        result[2] = _indexmap(out.shape, updates.shape, written, src, out.dtype, flat.size)
    return result


defrule(P.scatter_p, _scatter_rule)


def _dynamic_fallback(primitive, invals, outvals, active, params):
    """Dense blocks through JAX's AD, for indexing whose indices are only known at run time."""
    return dense_partials(primitive, params, invals, outvals, active)


def _starts(start_indices, shape, sizes):
    """Clamped start indices as ints (static) or traced scalars (dynamic), as XLA clamps them."""
    starts = []
    for s, n, size in zip(start_indices, shape, sizes):
        if is_concrete(s):
            starts.append(int(np.clip(int(np.asarray(s)), 0, n - size)))
        else:
            starts.append(jnp.clip(s, 0, n - size))
    return starts


def _one_hot_block(start, n_small, n_big, dtype):
    """``M[a, b] = 1`` where ``b == start + a``: shape (n_small, n_big)."""
    return mask_of(jnp.arange(n_big)[None, :] == start + jnp.arange(n_small)[:, None], dtype)


def _window_partial(small_shape, big_shape, starts, dtype, small_is_out):
    """Partial between a window (``small``) and the array (``big``) it sits in at ``starts``."""
    maps, dyn = [], []
    for k, (s, m, n) in enumerate(zip(starts, small_shape, big_shape)):
        if isinstance(s, int):
            idx = s + np.arange(m)
            if m == n:
                maps.append(None)
            else:
                maps.append((m, None, idx) if small_is_out else (m, idx, None))
        else:
            dyn.append(k)
            maps.append(None)
    if not dyn:
        out_shape, in_shape = (small_shape, big_shape) if small_is_out else (big_shape, small_shape)
        return _axiswise(out_shape, in_shape, maps, dtype)
    return _dynamic_window(small_shape, big_shape, starts, maps, dyn, dtype, small_is_out)


def _dynamic_window(small_shape, big_shape, starts, maps, dyn, dtype, small_is_out):
    sizes, out_axes, in_axes, val_labels, blocks = {}, [], [], [], []
    next_label = len(small_shape)
    for k in range(len(small_shape)):
        if k in dyn:
            a, b = next_label, next_label + 1
            next_label += 2
            sizes[a], sizes[b] = small_shape[k], big_shape[k]
            small_axis, big_axis = Axis((a,)), Axis((b,))
            val_labels += [a, b]
            blocks.append(_one_hot_block(starts[k], small_shape[k], big_shape[k], dtype))
        else:
            m = maps[k]
            sizes[k] = small_shape[k] if m is None else m[0]
            small_axis = Axis((k,))
            big_axis = Axis((k,)) if m is None else Axis((k,), np.asarray(m[2] if small_is_out else m[1]))
        (out_axes if small_is_out else in_axes).append(small_axis)
        (in_axes if small_is_out else out_axes).append(big_axis)
    val = blocks[0]
    for block in blocks[1:]:
        val = jnp.multiply.outer(val, block)
    out_shape, in_shape = (small_shape, big_shape) if small_is_out else (big_shape, small_shape)
    return _simplify(Partial(out_shape, in_shape, sizes, out_axes, in_axes, val_labels, val, dtype))


def _dynamic_slice_rule(invals, outvals, active, *, slice_sizes):
    operand, *start_indices = invals
    out = outvals[0]
    if not active[0]:
        return [None] * len(invals)
    starts = _starts(start_indices, operand.shape, slice_sizes)
    return [_window_partial(out.shape, operand.shape, starts, out.dtype, True)] + [None] * len(start_indices)


defrule(P.dynamic_slice_p, _dynamic_slice_rule)


def _dynamic_update_slice_rule(invals, outvals, active, **_):
    operand, update, *start_indices = invals
    out = outvals[0]
    starts = _starts(start_indices, operand.shape, update.shape)
    result = [None] * len(invals)
    if active[0]:
        if all(isinstance(s, int) for s in starts):
            mask = np.ones(operand.shape, bool)
            mask[tuple(slice(s, s + m) for s, m in zip(starts, update.shape))] = False
            flat, kept = _nonzero(mask)
            result[0] = _indexmap(out.shape, operand.shape, kept, kept, out.dtype, flat.size)
        else:
            inside = jnp.ones(update.shape, bool)
            mask = lax.dynamic_update_slice(jnp.ones(operand.shape, bool), ~inside, start_indices)
            result[0] = Partial.elementwise(mask_of(mask, out.dtype), operand.shape, out.shape, out.dtype)
    if active[1]:
        result[1] = _window_partial(update.shape, operand.shape, starts, out.dtype, False)
    return result


defrule(P.dynamic_update_slice_p, _dynamic_update_slice_rule)


# ------------------------------------------------------------------------------ control flow in place
MAX_UNROLL = 64  # a scan of at most this many iterations is differentiated through its unrolled body


def defexpand(primitive, expand) -> None:
    """Differentiate ``primitive`` through an equivalent jaxpr evaluated in its place (structure kept inside).

    ``expand(invals, **params)`` returns a ``ClosedJaxpr`` taking the equation's inputs to its outputs, or
    ``None`` to use the primitive's rule instead.
    """
    expansions[primitive] = expand


def _eval(closed, args):
    env = {}
    read = lambda v: v.val if isinstance(v, Literal) else env[v]
    for v, c in zip(closed.jaxpr.constvars, closed.consts):
        env[v] = c
    for v, a in zip(closed.jaxpr.invars, args):
        env[v] = a
    for eqn in closed.jaxpr.eqns:
        for v, o in zip(eqn.outvars, bind(eqn.primitive, eqn.params, [read(v) for v in eqn.invars])):
            env[v] = o
    return [read(v) for v in closed.jaxpr.outvars]


def _unrolled_scan(invals, *, length, reverse, jaxpr, num_consts, num_carry, **_):
    """A fixed-length ``scan`` (``fori_loop`` with static bounds) as its body repeated ``length`` times."""
    if not 1 <= length <= MAX_UNROLL:
        return None

    def unrolled(*args):
        split = num_consts + num_carry
        consts, carry, xs = args[:num_consts], list(args[num_consts:split]), args[split:]
        ys = [None] * length
        for i in (reversed(range(length)) if reverse else range(length)):
            out = _eval(jaxpr, list(consts) + carry + [x[i] for x in xs])
            carry, ys[i] = out[:num_carry], out[num_carry:]
        return carry + [jnp.stack([y[j] for y in ys]) for j in range(len(ys[0]))]

    return jax.make_jaxpr(unrolled)(*invals)


def _selected_branches(invals, *, branches, **_):
    """``cond``/``switch``: every branch evaluated, the result selected by the index (``select_n``)."""
    def selected(index, *operands):
        outs = [_eval(branch, operands) for branch in branches]
        which = jnp.clip(index, 0, len(branches) - 1)
        return [lax.select_n(which, *[o[j] for o in outs]) for j in range(len(outs[0]))]

    return jax.make_jaxpr(selected)(*invals)


def _inlined_call(invals, *, jaxpr=None, call_jaxpr=None, **_):
    """A call (``jit``, ``closed_call``, ``checkpoint``, ...): its body evaluated in its place."""
    body = call_jaxpr if jaxpr is None else jaxpr
    return body if isinstance(body, ClosedJaxpr) else ClosedJaxpr(body, [])


defexpand(P.scan_p, _unrolled_scan)
defexpand(P.cond_p, _selected_branches)
for _p in (P.jit_p, P.closed_call_p, P.call_p, P.remat_p):
    defexpand(_p, _inlined_call)


# ----------------------------------------------------------------------------- values passed through
def _pass_through_rule(invals, outvals, active, **params):
    """Operand ``k`` is result ``k`` (``device_put``, ``optimization_barrier``: several operands at once)."""
    return [[Partial.identity(np.shape(out), out.dtype) if j == k else None for j, out in enumerate(outvals)]
            if is_active else None for k, is_active in enumerate(active)]


for _p in (P.device_put_p, P.optimization_barrier_p):
    defrule(_p, _pass_through_rule)
for _p in (P.sharding_constraint_p, P.name_p):  # a sharding annotation, a checkpoint name
    defelementwise(_p, lambda *_: ONE)
defzero(P.dce_sink_p)  # no results


def _primitive_of(fun):
    """The primitive of the single equation ``fun`` traces to (for primitives JAX does not export)."""
    eqns = jax.make_jaxpr(fun)(np.zeros(2, np.float32)).jaxpr.eqns
    return eqns[0].primitive if len(eqns) == 1 else None


for _p in (_primitive_of(lambda x: jax.debug.print("{}", x)),
           _primitive_of(lambda x: jax.debug.callback(lambda v: None, x))):
    if _p is not None:
        defzero(_p)  # no results: nothing to differentiate

for _p in (P.bitcast_convert_type_p, P.population_count_p, P.clz_p, P.shift_left_p, P.shift_right_logical_p,
           P.shift_right_arithmetic_p, P.mulhi_p, P.eq_to_p, P.le_to_p, P.lt_to_p, P.random_seed_p,
           P.random_split_p, P.random_fold_in_p, P.threefry2x32_p, P.rng_bit_generator_p):
    defzero(_p)  # integer (or key) results, or a zero derivative as in JAX


# ---------------------------------------------------------------- elementwise, derivative from JAX's JVP
def defelementwise_jvp(primitive) -> None:
    """Register an elementwise primitive whose derivatives come from JAX's own JVP rule.

    One JVP per active input with a tangent of ones gives the diagonal exactly (the map is elementwise), so the
    partials stay diagonal, as with :func:`defelementwise`.
    """

    def rule(invals, outvals, active, **params):
        out = outvals[0]
        f, idx, primals = active_call(primitive, params, invals, active)
        result: list = [None] * len(invals)
        for j, k in enumerate(idx):
            tangents = [jnp.ones_like(p) if i == j else jnp.zeros_like(p) for i, p in enumerate(primals)]
            d = jax.jvp(f, primals, tangents)[1][0]
            result[k] = Partial.elementwise(d, np.shape(invals[k]), out.shape, out.dtype)
        return result

    defrule(primitive, rule)


for _p in (P.bessel_i0e_p, P.bessel_i1e_p, P.igamma_p, P.igammac_p, P.polygamma_p,
           P.regularized_incomplete_beta_p, P.random_gamma_p):
    defelementwise_jvp(_p)


# ---------------------------------------------------------------------------- scatter: sub, max, min
def _scatter_sub_rule(invals, outvals, active, **params):
    if active[2] and not is_concrete(invals[1]):
        return _dynamic_fallback(P.scatter_sub_p, invals, outvals, active, params)
    result = _scatter_add_rule(invals, outvals, active, **params)
    if result[2] is not None:
        p = result[2]
        val = -jnp.ones((), p.dtype) if p.val is None else -p.val
        result[2] = p.replace(val=val)
    return result


defrule(P.scatter_sub_p, _scatter_sub_rule)


def _scatter_extremal_rule(primitive):
    """``scatter-max``/``scatter-min`` with static indices: the operand keeps a diagonal and every update an index
    map onto its destination, weighted as JAX's JVP weights them (ties share the derivative equally, the operand
    counting as one contender)."""

    def rule(invals, outvals, active, *, dimension_numbers, mode, **params):
        operand, indices, updates = invals
        out = outvals[0]
        if not (active[0] or active[2]):
            return [None, None, None]
        if not is_concrete(indices):
            return _dynamic_fallback(primitive, invals, outvals, active,
                                     params | {"dimension_numbers": dimension_numbers, "mode": mode})
        dest = _scatter_destinations(operand.shape, indices, updates.shape, dimension_numbers, mode).reshape(-1)
        valid = np.flatnonzero(dest >= 0)
        target = dest[valid]
        flat_out = out.reshape(-1)
        won = mask_of(updates.reshape(-1)[valid] == flat_out[target], out.dtype)
        winners = jnp.zeros(out.size, out.dtype).at[target].add(won)
        kept = mask_of(operand.reshape(-1) == flat_out, out.dtype)
        result = [None, None, None]
        if active[0]:
            result[0] = Partial.elementwise((kept / (winners + kept)).reshape(out.shape), operand.shape, out.shape,
                                            out.dtype)
        if active[2] and valid.size:
            share = won / (winners[target] + kept[target])
            out_index = list(np.unravel_index(target, out.shape))
            in_index = list(np.unravel_index(valid, updates.shape))
            p = _indexmap(out.shape, updates.shape, out_index, in_index, out.dtype, valid.size)
            result[2] = p.replace(val_labels=(0,), val=share, dtype=out.dtype)
        return result

    return rule


for _p in (P.scatter_max_p, P.scatter_min_p):
    defrule(_p, _scatter_extremal_rule(_p))


# ------------------------------------------------------------------------------------- reduce_precision
@dataclass(frozen=True, eq=False, init=False, repr=False)
class Rounding(Partial):
    """The partial of ``reduce_precision``: the identity, except that whatever is composed with it is rounded.

    JAX's JVP rounds the tangent that flows through ``reduce_precision`` (and its transpose the cotangent); here
    the partial composed with this edge is rounded: in reverse order that is the accumulated cotangent (as
    ``jax.jacrev``), in forward order the accumulated tangent (as ``jax.jacfwd``). Its structure is the
    identity's, so counting and order search treat it as one.
    """

    bits: tuple[int, int]  # (exponent bits, mantissa bits)

    def __init__(self, shape, dtype, exponent_bits: int, mantissa_bits: int):
        labels = range(len(shape))
        axes = [Axis((k,)) for k in labels]
        super().__init__(shape, shape, dict(zip(labels, shape)), axes, axes, (), None, dtype)
        object.__setattr__(self, "bits", (exponent_bits, mantissa_bits))

    def round(self, p: Partial) -> Partial:
        """``p`` (composed with this edge on either side) with its stored values rounded."""
        if p.val is None:
            return p
        val = lax.reduce_precision(p.val, *self.bits)
        return p.replace(val=val)


def _reduce_precision_rule(invals, outvals, active, *, exponent_bits, mantissa_bits):
    out = outvals[0]
    return _only(active, 0, lambda: Rounding(out.shape, out.dtype, exponent_bits, mantissa_bits))


defrule(P.reduce_precision_p, _reduce_precision_rule)


# ------------------------------------------------------------------------------------------ complex values
# A complex vertex is a real array with a trailing (re, im) axis of 2, so every partial is real and exact in any
# order, also for maps that are not complex-analytic (real, imag, conj, abs). The rules of complex-analytic
# primitives give the complex derivative (a C-linear map); `realify` turns it into the 2x2 real block
# [[re, -im], [im, re]] per entry. Other primitives with complex values get `complex_rules` or a dense block.
complex_rules: dict = {}
HOLOMORPHIC = {P.neg_p, P.add_p, P.sub_p, P.mul_p, P.div_p, P.exp_p, P.log_p, P.log1p_p, P.expm1_p, P.sin_p,
               P.cos_p, P.tan_p, P.sinh_p, P.cosh_p, P.tanh_p, P.logistic_p, P.sqrt_p, P.rsqrt_p, P.square_p,
               P.integer_pow_p, P.pow_p, P.select_n_p, P.convert_element_type_p, P.copy_p, P.stop_gradient_p,
               P.transpose_p, P.reshape_p, P.broadcast_in_dim_p, P.squeeze_p, P.slice_p, P.rev_p,
               P.concatenate_p, P.split_p, P.pad_p, P.tile_p, P.stack_p, P.unstack_p, P.add_jaxvals_p,
               P.reduce_sum_p, P.reduce_prod_p, P.cumsum_p, P.cumprod_p, P.dot_general_p, P.gather_p,
               P.scatter_add_p, P.scatter_sub_p, P.scatter_p, P.dynamic_slice_p, P.dynamic_update_slice_p,
               P.device_put_p, P.optimization_barrier_p, P.sharding_constraint_p, P.name_p}


def realify(p: Partial | None, out_complex: bool, in_complex: bool) -> Partial | None:
    """The complex derivative ``p`` of a complex-analytic map as the real partial between (re, im) pairs."""
    if p is None or not (out_complex or in_complex):
        return p
    dtype = np.dtype(jnp.finfo(p.dtype).dtype)
    sizes, out_axes, in_axes, labels = dict(p.sizes), list(p.out_axes), list(p.in_axes), tuple(p.val_labels)
    a = max(sizes, default=-1) + 1
    out_shape = p.out_shape + ((2,) if out_complex else ())
    in_shape = p.in_shape + ((2,) if in_complex else ())
    if p.val is None:  # a derivative of one
        if out_complex and in_complex:  # re to re, im to im
            sizes[a] = 2
            out_axes.append(Axis((a,)))
            in_axes.append(Axis((a,)))
        elif out_complex:  # a real input into the real component
            out_axes.append(Axis((), np.zeros((), np.int64)))
        else:  # the real component of a complex input
            in_axes.append(Axis((), np.zeros((), np.int64)))
        return Partial(out_shape, in_shape, sizes, out_axes, in_axes, labels, None, dtype)
    v = jnp.asarray(p.val)
    re, im = jnp.real(v), jnp.imag(v)
    if out_complex and in_complex:
        sizes[a], sizes[a + 1] = 2, 2
        val = jnp.stack([jnp.stack([re, -im], -1), jnp.stack([im, re], -1)], -2)
        out_axes.append(Axis((a,)))
        in_axes.append(Axis((a + 1,)))
        labels += (a, a + 1)
    elif out_complex:  # d(out) = v dx for a real input x
        sizes[a] = 2
        val = jnp.stack([re, im], -1)
        out_axes.append(Axis((a,)))
        labels += (a,)
    else:  # a real output Re(v dz)
        sizes[a] = 2
        val = jnp.stack([re, -im], -1)
        in_axes.append(Axis((a,)))
        labels += (a,)
    return Partial(out_shape, in_shape, sizes, out_axes, in_axes, labels, val.astype(dtype), dtype)


def _component(out_shape, in_shape, dtype, component: int, into: bool) -> Partial:
    """Elementwise between a complex array's pairs and a real array: the real (0) or imaginary (1) component
    taken (``into=False``) or set (``into=True``)."""
    p = Partial.elementwise(None, in_shape, out_shape, dtype)
    fixed = (Axis((), np.asarray(component, np.int64)),)
    if into:
        return p.replace(out_shape=p.out_shape + (2,), out_axes=p.out_axes + fixed)
    return p.replace(in_shape=p.in_shape + (2,), in_axes=p.in_axes + fixed)


def _part_rule(component: int):
    def rule(invals, outvals, active, **params):
        (z,), (out,) = invals, outvals
        return _only(active, 0, lambda: _component(out.shape, z.shape, out.dtype, component, False))

    return rule


def _complex_rule(invals, outvals, active, **params):
    out = outvals[0]
    return [_component(out.shape, np.shape(x), real_dtype(out), c, True) if a else None
            for c, (x, a) in enumerate(zip(invals, active))]


def _conj_rule(invals, outvals, active, **params):
    (z,), (out,) = invals, outvals
    dtype = real_dtype(out)
    if not is_complex(z):
        return _only(active, 0, lambda: _component(out.shape, z.shape, dtype, 0, True))

    def partial():
        n = z.ndim
        sizes = dict(enumerate(z.shape)) | {n: 2}
        axes = [Axis((k,)) for k in range(n + 1)]
        return Partial(out.shape + (2,), z.shape + (2,), sizes, axes, axes, (n,), jnp.asarray([1, -1], dtype),
                       dtype)

    return _only(active, 0, partial)


def _abs_complex_rule(invals, outvals, active, **params):
    (z,), (out,) = invals, outvals

    def partial():
        safe = jnp.where(out == 0, jnp.ones((), out.dtype), out)
        val = jnp.stack([jnp.real(z) / safe, jnp.imag(z) / safe], -1)
        n = z.ndim
        sizes = dict(enumerate(z.shape)) | {n: 2}
        return Partial(out.shape, z.shape + (2,), sizes, [Axis((k,)) for k in range(n)],
                       [Axis((k,)) for k in range(n + 1)], tuple(range(n + 1)), val, out.dtype)

    return _only(active, 0, partial)


def _convert_complex_rule(invals, outvals, active, **params):
    (x,), (out,) = invals, outvals
    if is_complex(x) and not is_complex(out):  # the real part, as JAX converts
        return _only(active, 0, lambda: _component(out.shape, x.shape, out.dtype, 0, False))
    return [realify(p, is_complex(out), is_complex(x)) for p in _convert_rule(invals, outvals, active, **params)]


complex_rules |= {P.real_p: _part_rule(0), P.imag_p: _part_rule(1), P.complex_p: _complex_rule, P.conj_p: _conj_rule,
                  P.abs_p: _abs_complex_rule, P.convert_element_type_p: _convert_complex_rule}
for _p, _rule in complex_rules.items():
    rules.setdefault(_p, _rule)  # real, imag, complex, conj always involve complex values


# -------------------------------------------------------------------------------- dense fallbacks
for _p in (P.cond_p, P.scan_p, P.while_p, P.sort_p, P.top_k_p, P.approx_top_k_p, P.conv_general_dilated_p,
           P.reduce_window_sum_p, P.reduce_window_max_p, P.reduce_window_min_p, P.reduce_window_p,
           P.select_and_gather_add_p, P.select_and_scatter_add_p, P.linear_solve_p, P.triangular_solve_p,
           P.cholesky_p, P.svd_p, P.eigh_p, P.eig_p, P.qr_p, P.lu_p, P.tridiagonal_solve_p, P.fft_p):
    defdense(_p)

_warned: set = set()
DENSE_NOTE = "dense fallback via JAX AD"


def partials(primitive, params, invals, outvals, active) -> tuple[list, str]:
    """The partials of one equation, per input a list with one ``Partial | None`` per result, and a note for
    ``Graph.summary()`` (``DENSE_NOTE`` for dense blocks from JAX's AD)."""
    rule = rules.get(primitive)
    note = DENSE_NOTE if primitive in dense_rules else ""
    if any(a and is_complex(x) for a, x in zip(active, invals)) or any(is_complex(o) for o in outvals):
        if primitive in complex_rules:
            rule = complex_rules[primitive]
        elif primitive in HOLOMORPHIC and rule is not None:
            result = _per_result(primitive, rule(invals, outvals, active, **params))
            return [r if r is None else [realify(p, is_complex(o), is_complex(x)) for p, o in zip(r, outvals)]
                    for r, x in zip(result, invals)], note
        elif primitive not in dense_rules:
            rule, note = None, DENSE_NOTE
    if rule is None:
        return _per_result(primitive, _fallback(primitive, params, invals, outvals, active)), DENSE_NOTE
    return _per_result(primitive, rule(invals, outvals, active, **params)), note


def _per_result(primitive, result) -> list:
    if primitive.multiple_results:
        return [r if r is None else list(r) for r in result]
    return [[r] for r in result]


def _fallback(primitive, params, invals, outvals, active) -> list:
    """Dense blocks from JAX's AD for a primitive without a (complex-valued) rule; warns once per primitive."""
    try:
        result = dense_partials(primitive, params, invals, outvals, active,
                                reverse=primitive is P.custom_vjp_call_p)
    except NotImplementedError as e:
        raise NotImplementedError(
            f"plastix.ad has no partial-derivative rule for the JAX primitive '{primitive.name}', and JAX cannot "
            f"differentiate it either ({' '.join(str(e).split())[:200]}). Register one with "
            f"plastix.ad.defrule({primitive.name}_p, rule) where rule(invals, outvals, active, **params) returns "
            f"one Partial (or None) per input.") from None
    if primitive not in _warned and primitive not in rules:
        _warned.add(primitive)
        warnings.warn(f"plastix.ad has no partial-derivative rule for the JAX primitive '{primitive.name}': its "
                      f"partials are dense blocks from JAX's own AD (marked '{DENSE_NOTE}' in Graph.summary(), "
                      f"counted as dense by count_muls). A structured rule (plastix.ad.defrule) could be cheaper.",
                      stacklevel=2)
    return result
