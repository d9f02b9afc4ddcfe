"""Randomised ground truth: hypothesis-generated programs checked against ``jax.jacrev``.

A program is a straight-line sequence of 3..12 operations over small arrays (rank 0..3, 1..4 per axis):
broadcasting binary ops, reductions over random axes, transposes, reshapes, strided slices, flips,
concatenation, broadcasts, dot products and elementwise unary ops on domains where they are smooth. It has one
or more inputs and one or more outputs. Every program is checked for orders "fwd", "rev" and a random valid
permutation of ``plastix.graph(...).vertices`` in float64 at rtol 1e-5.

The drawn ``Program`` prints as readable pseudo-code, e.g.::

    Program(seed=3, argnums=(0, 1)):
      v0: in f64[2, 3]
      v1: in f64[3]
      v2 = mul(v0, v1)                    # [2, 3]
      v3 = sum(v2, axes=(1,), keepdims=False)  # [2]
      return (v3, v2)

``derandomize=True`` makes the suite deterministic; the tests below together run well over 500 programs.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jax import lax

import plastix

from .conftest import assert_trees_close, random_orders, x64_enabled

MAX_DIM = 4
MAX_RANK = 3
MAX_CONCAT_DIM = 6

# ----------------------------------------------------------------------------------------------------------------------
# program representation


@dataclass(frozen=True)
class Op:
    name: str
    args: tuple[int, ...]
    params: tuple = ()
    shape: tuple[int, ...] = ()

    def render(self, index: int) -> str:
        args = ", ".join(f"v{a}" for a in self.args)
        params = "".join(f", {k}={v!r}" for k, v in self.params)
        return f"v{index} = {self.name}({args}{params})".ljust(44) + f"  # {list(self.shape)}"


@dataclass(frozen=True)
class Program:
    input_shapes: tuple[tuple[int, ...], ...]
    ops: tuple[Op, ...]
    outputs: tuple[int, ...]
    output_kind: str  # "single", "tuple" or "dict"
    argnums: int | tuple[int, ...]
    seed: int

    def __repr__(self) -> str:
        lines = [f"Program(seed={self.seed}, argnums={self.argnums!r}):"]
        lines += [f"  v{k}: in f64{list(s)}" for k, s in enumerate(self.input_shapes)]
        n_in = len(self.input_shapes)
        lines += [f"  {op.render(n_in + k)}" for k, op in enumerate(self.ops)]
        outs = [f"v{o}" for o in self.outputs]
        if self.output_kind == "single":
            ret = outs[0]
        elif self.output_kind == "tuple":
            ret = "(" + ", ".join(outs) + ",)"
        else:
            ret = "{" + ", ".join(f"'o{k}': {o}" for k, o in enumerate(outs)) + "}"
        lines.append(f"  return {ret}")
        return "\n".join(lines)

    def _repr_pretty_(self, printer, cycle):  # hypothesis prints drawn values with this
        printer.text(repr(self))

    def inputs(self):
        rng = np.random.default_rng(self.seed)
        return tuple(jnp.asarray(rng.uniform(-1.0, 1.0, size=s)) for s in self.input_shapes)

    def __call__(self, *inputs):
        vals = list(inputs)
        for op in self.ops:
            out = apply(op, [vals[a] for a in op.args])
            assert out.shape == op.shape, (op, out.shape)
            vals.append(out)
        outs = [vals[o] for o in self.outputs]
        if self.output_kind == "single":
            return outs[0]
        if self.output_kind == "tuple":
            return tuple(outs)
        return {f"o{k}": o for k, o in enumerate(outs)}


UNARY = {
    "sin": jnp.sin,
    "cos": jnp.cos,
    "tanh": jnp.tanh,
    "exp_tanh": lambda x: jnp.exp(jnp.tanh(x)),
    "log1p_sq": lambda x: jnp.log(1.0 + x * x),
    "logistic": jax.nn.sigmoid,
    "square": jnp.square,
    "sqrt1p_sq": lambda x: jnp.sqrt(1.0 + x * x),
    "neg": jnp.negative,
    "scale": lambda x: 0.5 * x,
    # beyond elementwise: primitives with structured rules, expansions or the dense fallback
    "erf": jax.scipy.special.erf,
    "softplus": jax.nn.softplus,
    "cumsum": lambda x: jnp.cumsum(x, axis=-1) if x.ndim else x,
    "sort": lambda x: jnp.sort(x, axis=-1) if x.ndim else x,
    "fft_real": lambda x: jnp.fft.fft(x, axis=-1).real if x.ndim else x,
    "cond": lambda x: lax.cond(jnp.sum(x) > 0, jnp.sin, lambda v: 0.5 * v * v, x),
    "fori": lambda x: lax.fori_loop(0, 2, lambda i, v: jnp.tanh(v) + 0.5 * x, x),
}

BINARY = {
    "add": jnp.add,
    "sub": jnp.subtract,
    "mul": jnp.multiply,
    "div_safe": lambda a, b: a / (1.0 + b * b),
    "where_pos": lambda a, b: jnp.where(a > 0, a, b),
    "maximum": jnp.maximum,
    "atan2": lambda a, b: jnp.arctan2(a, 1.5 + jnp.tanh(b)),
}


def apply(op: Op, xs):
    p = dict(op.params)
    n = op.name
    if n in UNARY:
        return UNARY[n](xs[0])
    if n in BINARY:
        return BINARY[n](xs[0], xs[1])
    if n == "sum":
        return jnp.sum(xs[0], axis=p["axes"], keepdims=p["keepdims"])
    if n == "mean":
        return jnp.mean(xs[0], axis=p["axes"], keepdims=p["keepdims"])
    if n == "transpose":
        return jnp.transpose(xs[0], p["perm"])
    if n == "reshape":
        return jnp.reshape(xs[0], p["shape"])
    if n == "slice":
        return xs[0][tuple(slice(*s) for s in p["slices"])]
    if n == "flip":
        return jnp.flip(xs[0], axis=p["axis"])
    if n == "concatenate":
        return jnp.concatenate(xs, axis=p["axis"])
    if n == "tensordot":
        return jnp.tensordot(xs[0], xs[1], axes=1)
    if n == "bmm":
        return jnp.einsum("bij,bjk->bik", xs[0], xs[1])
    if n == "broadcast_to":
        return jnp.broadcast_to(xs[0], p["shape"])
    if n == "expand_dims":
        return jnp.expand_dims(xs[0], p["axis"])
    raise AssertionError(n)


# ----------------------------------------------------------------------------------------------------------------------
# strategies

ALL_SHAPES = [s for r in range(MAX_RANK + 1) for s in itertools.product(range(1, MAX_DIM + 1), repeat=r)]

shapes = st.integers(0, MAX_RANK).flatmap(
    lambda r: st.tuples(*[st.integers(1, MAX_DIM)] * r) if r else st.just(()))

OP_KINDS = ("unary", "binary", "reduce", "transpose", "reshape", "slice", "flip", "concatenate", "dot",
            "broadcast_to", "expand_dims")


def _broadcastable(a, b):
    try:
        s = np.broadcast_shapes(a, b)
    except ValueError:
        return False
    return len(s) <= MAX_RANK


@st.composite
def draw_op(draw, shapes_so_far, weights):
    """One op over the values whose shapes are ``shapes_so_far``; falls back to a unary op if the drawn kind
    has no valid operands."""
    n = len(shapes_so_far)
    kinds = [k for k, w in zip(OP_KINDS, weights) for _ in range(w)]
    kind = draw(st.sampled_from(kinds))
    a = draw(st.integers(0, n - 1))
    sa = shapes_so_far[a]
    if kind == "binary":
        partners = [b for b in range(n) if _broadcastable(sa, shapes_so_far[b])]
        b = draw(st.sampled_from(partners))
        name = draw(st.sampled_from(sorted(BINARY)))
        return Op(name, (a, b), (), tuple(np.broadcast_shapes(sa, shapes_so_far[b])))
    if kind == "reduce" and sa:
        axes = draw(st.lists(st.integers(0, len(sa) - 1), min_size=1, max_size=len(sa), unique=True))
        axes = tuple(sorted(axes))
        keepdims = draw(st.booleans())
        out = tuple(1 if k in axes else d for k, d in enumerate(sa)) if keepdims else \
            tuple(d for k, d in enumerate(sa) if k not in axes)
        return Op(draw(st.sampled_from(["sum", "mean"])), (a,), (("axes", axes), ("keepdims", keepdims)), out)
    if kind == "transpose" and len(sa) >= 2:
        perm = tuple(draw(st.permutations(range(len(sa)))))
        return Op("transpose", (a,), (("perm", perm),), tuple(sa[k] for k in perm))
    if kind == "reshape":
        size = int(np.prod(sa))
        candidates = [s for s in ALL_SHAPES if int(np.prod(s)) == size and s != sa]
        if candidates:
            new = draw(st.sampled_from(candidates))
            return Op("reshape", (a,), (("shape", new),), new)
    if kind == "slice" and sa:
        slices, out = [], []
        for d in sa:
            start = draw(st.integers(0, d - 1))
            stop = draw(st.integers(start + 1, d))
            step = draw(st.integers(1, 2))
            slices.append((start, stop, step))
            out.append(len(range(start, stop, step)))
        if tuple(out) != sa or any(s != (0, d, 1) for s, d in zip(slices, sa)):
            return Op("slice", (a,), (("slices", tuple(slices)),), tuple(out))
    if kind == "flip" and sa:
        axis = draw(st.integers(0, len(sa) - 1))
        return Op("flip", (a,), (("axis", axis),), sa)
    if kind == "concatenate" and sa:
        axis = draw(st.integers(0, len(sa) - 1))
        partners = [b for b in range(n) if len(shapes_so_far[b]) == len(sa)
                    and all(x == y for k, (x, y) in enumerate(zip(sa, shapes_so_far[b])) if k != axis)
                    and sa[axis] + shapes_so_far[b][axis] <= MAX_CONCAT_DIM]
        if partners:
            b = draw(st.sampled_from(partners))
            out = tuple(d + shapes_so_far[b][axis] if k == axis else d for k, d in enumerate(sa))
            return Op("concatenate", (a, b), (("axis", axis),), out)
    if kind == "dot" and sa:
        partners = [b for b in range(n) if shapes_so_far[b] and shapes_so_far[b][0] == sa[-1]
                    and len(sa) + len(shapes_so_far[b]) - 2 <= MAX_RANK]
        bmm = [b for b in range(n) if len(sa) == 3 and len(shapes_so_far[b]) == 3
               and shapes_so_far[b][0] == sa[0] and shapes_so_far[b][1] == sa[2]]
        if bmm and draw(st.booleans()):
            b = draw(st.sampled_from(bmm))
            return Op("bmm", (a, b), (), (sa[0], sa[1], shapes_so_far[b][2]))
        if partners:
            b = draw(st.sampled_from(partners))
            return Op("tensordot", (a, b), (), sa[:-1] + shapes_so_far[b][1:])
    if kind == "broadcast_to" and (len(sa) < MAX_RANK or 1 in sa):
        lead = draw(st.lists(st.integers(1, MAX_DIM), max_size=MAX_RANK - len(sa)))
        grown = [draw(st.integers(1, MAX_DIM)) if d == 1 else d for d in sa]
        new = tuple(lead) + tuple(grown)
        if new != sa:
            return Op("broadcast_to", (a,), (("shape", new),), new)
    if kind == "expand_dims" and len(sa) < MAX_RANK:
        axis = draw(st.integers(0, len(sa)))
        return Op("expand_dims", (a,), (("axis", axis),), sa[:axis] + (1,) + sa[axis:])
    return Op(draw(st.sampled_from(sorted(UNARY))), (a,), (), sa)


@st.composite
def programs(draw, *, n_inputs=(1, 3), n_ops=(3, 12), n_outputs=(1, 3), weights=(4, 4, 2, 1, 1, 1, 1, 1, 2, 1, 1)):
    input_shapes = tuple(draw(st.lists(shapes, min_size=n_inputs[0], max_size=n_inputs[1])))
    all_shapes = list(input_shapes)
    ops = []
    for _ in range(draw(st.integers(*n_ops))):
        op = draw(draw_op(tuple(all_shapes), weights))
        ops.append(op)
        all_shapes.append(op.shape)
    n_in, last = len(input_shapes), len(all_shapes) - 1
    k = draw(st.integers(n_outputs[0], n_outputs[1]))
    extra = draw(st.lists(st.integers(0, last - 1), max_size=k - 1, unique=True)) if last > 0 else []
    outputs = tuple([last] + [e for e in extra if e != last])
    output_kind = "single" if len(outputs) == 1 and draw(st.booleans()) else draw(st.sampled_from(["tuple", "dict"]))
    subset = draw(st.lists(st.integers(0, n_in - 1), min_size=1, max_size=n_in, unique=True))
    argnums = subset[0] if len(subset) == 1 and draw(st.booleans()) else tuple(subset)
    return Program(input_shapes, tuple(ops), outputs, output_kind, argnums, draw(st.integers(0, 2**16)))


# ----------------------------------------------------------------------------------------------------------------------
# the check


def check_program(program: Program):
    with x64_enabled(True):
        args = program.inputs()
        expected = jax.jit(jax.jacrev(program, program.argnums))(*args)  # jit: one compile, not one per op
        atol = 1e-8 * max(1.0, max((float(jnp.max(jnp.abs(leaf))) for leaf in jax.tree_util.tree_leaves(expected)
                                    if leaf.size), default=1.0))
        found = {}

        def vertices_of(*a):  # abstract evaluation: the vertex ids need no array values
            found["vertices"] = plastix.graph(program, program.argnums)(*a).vertices
            return 0

        jax.eval_shape(vertices_of, *args)
        orders = ["fwd", "rev"] + random_orders(found["vertices"], 1, seed=program.seed)
        # one compilation for all orders
        jacobians = jax.jit(lambda *a: [plastix.jacve(program, program.argnums, order=o)(*a) for o in orders])(*args)
        for order, actual in zip(orders, jacobians):
            assert_trees_close(actual, expected, rtol=1e-5, atol=atol, what=f"order={order!r}")


SETTINGS = dict(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow,
                                                                        HealthCheck.data_too_large])


@settings(max_examples=80, **SETTINGS)
@given(programs())
def test_random_programs(program):
    check_program(program)


@pytest.mark.slow  # 100 more programs of the default mix; the default suite keeps the other 320
@settings(max_examples=100, **SETTINGS)
@given(programs())
def test_random_programs_second_batch(program):
    check_program(program)


@settings(max_examples=80, **SETTINGS)
@given(programs(n_inputs=(2, 3), n_outputs=(2, 3), n_ops=(4, 12)))
def test_random_programs_multi_input_multi_output(program):
    check_program(program)


# index-map heavy: transposes, reshapes, slices, flips, broadcasts, concatenation
@settings(max_examples=80, **SETTINGS)
@given(programs(weights=(2, 2, 1, 3, 3, 3, 2, 3, 1, 3, 2)))
def test_random_programs_structural(program):
    check_program(program)


# contraction heavy: dot products, reductions and broadcasting binary ops
@settings(max_examples=80, **SETTINGS)
@given(programs(n_inputs=(2, 3), weights=(3, 4, 3, 1, 1, 0, 0, 1, 5, 2, 1)))
def test_random_programs_contractions(program):
    check_program(program)
