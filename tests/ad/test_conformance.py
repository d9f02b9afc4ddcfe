"""Ground truth: ``plastix.jacve`` agrees with ``jax.jacrev`` (tree, dtype, shape, values) on every supported
primitive and on common compositions, for orders "fwd", "rev" and random permutations of the graph vertices.

All cases run in float64 (enabled locally by the ``x64`` fixture), rtol 1e-5, except the explicit float32
section (rtol 1e-4). Inputs are built inside the test (so that they are float64) and keep away from domain
boundaries and from ties of max/min unless a tie is the point of the case.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import plastix

from .conftest import assert_trees_close, check_jacobian, x64_enabled

pytestmark = pytest.mark.usefixtures("x64")


# ----------------------------------------------------------------------------------------------------------------------
# input builders (called inside the test, so that arrays are float64 under the x64 fixture)


def U(shape, lo=-1.0, hi=1.0, seed=0):
    """Uniform in [lo, hi)."""
    return jnp.asarray(np.random.default_rng(seed).uniform(lo, hi, size=shape))


def A(shape, lo=0.3, hi=1.5, seed=0):
    """Magnitude in [lo, hi) with random signs: away from zero."""
    rng = np.random.default_rng(seed)
    return jnp.asarray(rng.uniform(lo, hi, size=shape) * rng.choice([-1.0, 1.0], size=shape))


def distinct(shape, seed=0):
    """Well separated values (no ties): a shuffled grid with small jitter."""
    rng = np.random.default_rng(seed)
    n = int(np.prod(shape))
    vals = np.linspace(-1.5, 1.5, n) + rng.uniform(-0.02, 0.02, size=n)
    return jnp.asarray(rng.permutation(vals).reshape(shape))


CASES = []


def case(name, fun, make_args, argnums=0, *, has_aux=False):
    """Register ``fun`` at ``make_args()`` (a thunk) for the parametrized jacrev comparison."""
    CASES.append(pytest.param(fun, make_args, argnums, has_aux, id=name))


# ----------------------------------------------------------------------------------------------------------------------
# elementwise unary math primitives

case("exp", jnp.exp, lambda: (U((5,), seed=1),))
case("exp2", lax.exp2, lambda: (U((5,), seed=2),))
case("log", jnp.log, lambda: (U((5,), 0.5, 2.0, seed=3),))
case("log1p", jnp.log1p, lambda: (U((5,), -0.5, 1.0, seed=4),))
case("expm1", jnp.expm1, lambda: (U((5,), seed=5),))
case("sin", jnp.sin, lambda: (U((2, 3), -2.0, 2.0, seed=6),))
case("cos", jnp.cos, lambda: (U((2, 3), -2.0, 2.0, seed=7),))
case("tan", jnp.tan, lambda: (U((5,), seed=8),))
case("asin", jnp.arcsin, lambda: (U((5,), -0.9, 0.9, seed=9),))
case("acos", jnp.arccos, lambda: (U((5,), -0.9, 0.9, seed=10),))
case("atan", jnp.arctan, lambda: (U((5,), -2.0, 2.0, seed=11),))
case("sinh", jnp.sinh, lambda: (U((5,), seed=12),))
case("cosh", jnp.cosh, lambda: (A((5,), seed=13),))
case("tanh", jnp.tanh, lambda: (U((2, 3), -2.0, 2.0, seed=14),))
case("asinh", jnp.arcsinh, lambda: (U((5,), -2.0, 2.0, seed=15),))
case("acosh", jnp.arccosh, lambda: (U((5,), 1.2, 3.0, seed=16),))
case("atanh", jnp.arctanh, lambda: (U((5,), -0.9, 0.9, seed=17),))
case("logistic", lax.logistic, lambda: (U((5,), -3.0, 3.0, seed=18),))
case("erf", lax.erf, lambda: (U((5,), -1.5, 1.5, seed=19),))
case("erfc", lax.erfc, lambda: (U((5,), -1.5, 1.5, seed=20),))
case("erf_inv", lax.erf_inv, lambda: (U((5,), -0.9, 0.9, seed=21),))
case("sqrt", jnp.sqrt, lambda: (U((5,), 0.5, 2.0, seed=22),))
case("rsqrt", lax.rsqrt, lambda: (U((5,), 0.5, 2.0, seed=23),))
case("cbrt", jnp.cbrt, lambda: (A((5,), 0.3, 2.0, seed=24),))
case("square", jnp.square, lambda: (U((2, 3), seed=25),))
case("integer_pow_3", lambda x: x**3, lambda: (U((5,), seed=26),))
case("integer_pow_neg2", lambda x: lax.integer_pow(x, -2), lambda: (A((5,), seed=27),))
case("integer_pow_5_matrix", lambda x: lax.integer_pow(x, 5), lambda: (U((2, 3), seed=28),))
case("neg", lambda x: -x, lambda: (U((2, 2), seed=29),))
case("abs", jnp.abs, lambda: (A((6,), seed=30),))
case("sign_times_x", lambda x: jnp.sign(x) * x**2 + jnp.sign(x), lambda: (A((5,), seed=31),))
case("floor", lambda x: jnp.floor(3.0 * x) + x**2, lambda: (U((5,), 0.05, 0.3, seed=32) + jnp.arange(5.0) / 3,))
case("ceil", lambda x: jnp.ceil(3.0 * x) * x, lambda: (U((5,), 0.05, 0.3, seed=33) + jnp.arange(5.0) / 3,))
case("round", lambda x: jnp.round(3.0 * x) - jnp.sin(x), lambda: (U((5,), 0.05, 0.1, seed=34) + jnp.arange(5.0) / 3,))
case("copy", lambda x: jnp.copy(x) * jnp.sin(x), lambda: (U((4,), seed=35),))

# ----------------------------------------------------------------------------------------------------------------------
# elementwise binary primitives (w.r.t. both arguments)

case("add", jnp.add, lambda: (U((2, 3), seed=40), U((2, 3), seed=41)), (0, 1))
case("sub", jnp.subtract, lambda: (U((2, 3), seed=42), U((2, 3), seed=43)), (0, 1))
case("mul", jnp.multiply, lambda: (U((2, 3), seed=44), U((2, 3), seed=45)), (0, 1))
case("div", jnp.divide, lambda: (U((5,), seed=46), A((5,), seed=47)), (0, 1))
case("pow_both", lax.pow, lambda: (U((5,), 0.5, 2.0, seed=48), U((5,), -1.5, 1.5, seed=49)), (0, 1))
case("pow_float_exponent", lambda x: jnp.power(x, 2.7), lambda: (U((5,), 0.5, 2.0, seed=50),))
case("pow_base_constant", lambda y: jnp.power(1.7, y), lambda: (U((5,), seed=51),))
case("max", jnp.maximum, lambda: (distinct((6,), seed=52), distinct((6,), seed=53)), (0, 1))
case("min", jnp.minimum, lambda: (distinct((6,), seed=54), distinct((6,), seed=55)), (0, 1))
case("max_with_constant", lambda x: jnp.maximum(x, 0.1) * x, lambda: (A((6,), seed=56),))
case("atan2", jnp.arctan2, lambda: (A((5,), seed=57), A((5,), seed=58)), (0, 1))
case("rem", lax.rem, lambda: (jnp.array([2.3, -3.7, 5.1, 0.4, -1.2]), jnp.array([0.9, 1.6, -2.2, 0.7, 0.5])), (0, 1))
case("mul_broadcast_row_col", lambda x, y: x * y, lambda: (U((3, 1), seed=59), U((1, 4), seed=60)), (0, 1))
case("add_scalar_array", lambda s, x: s + x * s, lambda: (jnp.asarray(0.7), U((2, 3), seed=61)), (0, 1))
case("div_broadcast_vector_matrix", lambda v, m: m / (2.0 + v), lambda: (U((3,), seed=62), U((2, 3), seed=63)), (0, 1))

# ----------------------------------------------------------------------------------------------------------------------
# select / clamp / comparisons / logic

case("select_n", lambda x, y: lax.select_n(x > 0, jnp.sin(y), x * y), lambda: (A((5,), seed=70), U((5,), seed=71)),
     (0, 1))
case("select_n_three_way", lambda x, y: lax.select_n(jnp.clip(jnp.floor(x + 1.5), 0, 2).astype(jnp.int32),
                                                     x, y, x * y),
     lambda: (jnp.array([-1.2, -0.1, 0.3, 1.1, -0.9, 0.8]), U((6,), seed=72)), (0, 1))
case("where", lambda x, y: jnp.where(x > y, x**2, jnp.cos(y)), lambda: (distinct((5,), 73), distinct((5,), 74)),
     (0, 1))
case("where_scalar_branch", lambda x: jnp.where(x > 0.0, x, 0.0) + jnp.where(x < 0.5, 1.0, x),
     lambda: (A((6,), seed=75),))
case("where_logic", lambda x, y: jnp.where(((x > 0) & (y < 0.3)) | ~(x < -0.5) ^ (y >= 0.9), x * y, x + y),
     lambda: (A((6,), seed=76), A((6,), seed=77)), (0, 1))
case("where_eq_ne_le", lambda x: jnp.where(jnp.round(x) == 1.0, x, -x) + jnp.where(x != 0.5, x**2, 0.0)
     + jnp.where(x <= 0.2, jnp.sin(x), 0.0), lambda: (jnp.array([0.3, 1.2, -0.7, 0.9, 0.51, 2.0]),))
case("clamp_lax", lambda x: lax.clamp(-0.5, x, 0.5), lambda: (jnp.array([-0.9, -0.3, 0.1, 0.45, 0.8, -0.6]),))
case("clamp_all_args", lambda lo, x, hi: lax.clamp(lo, x, hi),
     lambda: (jnp.array([-0.5, -0.5, -0.5, -0.5]), jnp.array([-0.9, -0.2, 0.3, 0.8]),
              jnp.array([0.5, 0.5, 0.5, 0.5])), (0, 1, 2))
case("clip_jnp", lambda x: jnp.clip(x, -0.5, 0.5) * x, lambda: (jnp.array([-0.9, -0.3, 0.1, 0.45, 0.8, -0.6]),))

# ----------------------------------------------------------------------------------------------------------------------
# reductions and cumulative ops

case("sum_all", jnp.sum, lambda: (U((2, 3), seed=80),))
case("sum_axis0", lambda x: jnp.sum(jnp.sin(x), axis=0), lambda: (U((2, 3, 2), seed=81),))
case("sum_axis1_keepdims", lambda x: jnp.sum(x * x, axis=1, keepdims=True), lambda: (U((3, 4), seed=82),))
case("mean_axes", lambda x: jnp.mean(jnp.exp(x), axis=(0, 2)), lambda: (U((2, 3, 2), seed=83),))
case("max_all", lambda x: jnp.max(x), lambda: (distinct((2, 3), 84),))
case("max_axis", lambda x: jnp.max(x, axis=1), lambda: (distinct((3, 4), 85),))
case("min_axis", lambda x: jnp.min(x**3, axis=0), lambda: (distinct((3, 4), 86),))
case("prod_all", jnp.prod, lambda: (A((5,), 0.5, 1.5, seed=87),))
case("prod_axis", lambda x: jnp.prod(x, axis=1), lambda: (A((3, 4), 0.5, 1.5, seed=88),))
case("prod_with_exact_zero", jnp.prod, lambda: (jnp.array([0.5, 0.0, 2.0, -1.5]),))
case("argmax_take", lambda x: x[jnp.argmax(x)] * x, lambda: (distinct((6,), 89),))
case("argmin_take_other", lambda x, y: jnp.take(y, jnp.argmin(x)) * jnp.sin(x), lambda: (distinct((5,), 90),
                                                                                         U((5,), seed=91)), (0, 1))
case("cumsum", lambda x: jnp.cumsum(x, axis=1), lambda: (U((2, 4), seed=92),))
case("cumprod", lambda x: jnp.cumprod(x), lambda: (A((5,), 0.5, 1.5, seed=93),))
case("cummax", lambda x: lax.cummax(x, axis=0), lambda: (distinct((6,), 94),))
case("cumsum_reverse", lambda x: lax.cumsum(x, axis=0, reverse=True), lambda: (U((5,), seed=95),))
case("cumsum_reverse_via_flip", lambda x: jnp.flip(jnp.cumsum(jnp.flip(x * x))), lambda: (U((5,), seed=96),))
case("var_std", lambda x: jnp.var(x) + jnp.std(x, axis=0).sum(), lambda: (U((4, 3), seed=97),))
case("norm", lambda x: jnp.linalg.norm(x), lambda: (U((5,), seed=98),))

# ----------------------------------------------------------------------------------------------------------------------
# dot_general

case("matvec", lambda W, x: W @ x, lambda: (U((3, 4), seed=100), U((4,), seed=101)), (0, 1))
case("matmat", lambda a, b: a @ b, lambda: (U((2, 3), seed=102), U((3, 4), seed=103)), (0, 1))
case("vector_dot", jnp.dot, lambda: (U((5,), seed=104), U((5,), seed=105)), (0, 1))
case("einsum_batched", lambda a, b: jnp.einsum("bij,bjk->bik", a, b), lambda: (U((2, 3, 2), seed=106),
                                                                               U((2, 2, 4), seed=107)), (0, 1))
case("einsum_batch_last", lambda a, b: jnp.einsum("ijb,jkb->bik", a, b),
     lambda: (U((2, 3, 2), seed=108), U((3, 2, 2), seed=109)), (0, 1))
case("tensordot_two_axes", lambda a, b: jnp.tensordot(a, b, axes=([1, 2], [0, 1])),
     lambda: (U((2, 3, 2), seed=110), U((3, 2, 4), seed=111)), (0, 1))
case("outer", jnp.outer, lambda: (U((3,), seed=112), U((4,), seed=113)), (0, 1))
case("vecmat_then_tanh", lambda x, W: jnp.tanh(x @ W), lambda: (U((3,), seed=114), U((3, 2), seed=115)), (0, 1))

# ----------------------------------------------------------------------------------------------------------------------
# structural (index-map) primitives

case("transpose_2d", lambda x: x.T * 2.0, lambda: (U((2, 3), seed=120),))
case("transpose_3d", lambda x: jnp.transpose(jnp.sin(x), (2, 0, 1)), lambda: (U((2, 3, 4), seed=121),))
case("reshape_6_to_2x3", lambda x: jnp.sin(x).reshape(2, 3), lambda: (U((6,), seed=122),))
case("reshape_2x3_to_3x2", lambda x: (x * x).reshape(3, 2), lambda: (U((2, 3), seed=123),))
case("reshape_3d_to_2d", lambda x: x.reshape(6, 4) @ jnp.ones(4), lambda: (U((2, 3, 4), seed=124),))
case("reshape_add_unit_axes", lambda x: jnp.exp(x).reshape(1, 4, 1), lambda: (U((4,), seed=125),))
case("broadcast_scalar", lambda s: jnp.broadcast_to(s, (2, 3)) * jnp.arange(6.0).reshape(2, 3),
     lambda: (jnp.asarray(0.3),))
case("broadcast_new_leading_axis", lambda x: jnp.broadcast_to(x, (2, 3)) * jnp.array([[1.0], [2.0]]),
     lambda: (U((3,), seed=126),))
case("broadcast_new_trailing_axis", lambda x: x[:, None] * jnp.ones((1, 4)), lambda: (U((3,), seed=127),))
case("broadcast_size1_axis", lambda x: jnp.broadcast_to(x, (3, 4)) + 0.0, lambda: (U((3, 1), seed=128),))
case("reshape_then_broadcast_size1_axis", lambda x: jnp.broadcast_to(x.reshape(4, 1, 2), (4, 2, 2)),
     lambda: (U((2, 4), seed=161),))
case("squeeze", lambda x: jnp.squeeze(jnp.sin(x)), lambda: (U((1, 3, 1), seed=129),))
case("squeeze_one_axis", lambda x: jnp.squeeze(x, axis=2) ** 2, lambda: (U((2, 3, 1), seed=130),))
case("expand_dims", lambda x: jnp.expand_dims(x, (0, 2)) * 3.0, lambda: (U((2, 3), seed=131),))
case("slice_strided", lambda x: x[1:5:2] * x[0:2], lambda: (U((6,), seed=132),))
case("slice_2d", lambda x: x[::2, 1:] + 1.0, lambda: (U((4, 3), seed=133),))
case("slice_lax_strides", lambda x: lax.slice(x, (0, 1), (3, 4), (2, 2)), lambda: (U((3, 4), seed=134),))
case("static_int_index", lambda x: x[1] * x[2, 0], lambda: (U((3, 2), seed=135),))
case("dynamic_slice_const", lambda x: lax.dynamic_slice(x, (1,), (3,)) ** 2, lambda: (U((6,), seed=136),))
case("dynamic_slice_2d_const", lambda x: lax.dynamic_slice(x, (1, 0), (2, 2)), lambda: (U((3, 3), seed=137),))
case("dynamic_slice_traced_from_argmax", lambda x: lax.dynamic_slice(x, (jnp.argmax(x) // 2,), (3,)) * x[:3],
     lambda: (distinct((6,), 138),))
case("dynamic_slice_int_argument", lambda x, i: jnp.sin(lax.dynamic_slice(x, (i, 0), (2, 3))),
     lambda: (U((4, 3), seed=139), jnp.asarray(1)))
case("dynamic_slice_clamped_start", lambda x: lax.dynamic_slice(x, (4,), (3,)), lambda: (U((5,), seed=140),))
case("dynamic_update_slice", lambda x, u: lax.dynamic_update_slice(x, jnp.sin(u), (1, 1)),
     lambda: (U((3, 4), seed=141), U((2, 2), seed=142)), (0, 1))
case("dynamic_update_slice_traced", lambda x, u: lax.dynamic_update_slice(x, u * u, (jnp.argmin(x),)),
     lambda: (distinct((5,), 143), U((2,), seed=144)), (0, 1))
case("pad_jnp", lambda x: jnp.pad(x, (1, 2)) * 2.0, lambda: (U((3,), seed=145),))
case("pad_negative_interior", lambda x: lax.pad(x, 0.0, [(1, -1, 1)]), lambda: (U((4,), seed=146),))
case("pad_negative_both_ends", lambda x: lax.pad(jnp.exp(x), 0.0, [(-1, -2, 0)]), lambda: (U((6,), seed=147),))
case("pad_2d_interior", lambda x: lax.pad(x, 0.0, [(0, 1, 1), (2, -1, 2)]), lambda: (U((2, 3), seed=148),))
case("pad_wrt_padding_value", lambda x, v: lax.pad(x, v, [(2, 1, 1)]), lambda: (U((3,), seed=149), jnp.asarray(0.4)),
     (0, 1))
case("concatenate_axis0", lambda x, y: jnp.concatenate([x, jnp.sin(y), x]), lambda: (U((2,), seed=150),
                                                                                       U((3,), seed=151)), (0, 1))
case("concatenate_axis1", lambda x, y: jnp.concatenate([x, y], axis=1), lambda: (U((2, 2), seed=152),
                                                                                  U((2, 3), seed=153)), (0, 1))
case("split_all_outputs_used", lambda x: (lambda a, b, c: (a * 2.0, jnp.sin(b), c.sum() * a))(*jnp.split(x, [2, 4])),
     lambda: (U((6,), seed=154),))
case("split_axis1", lambda x: (lambda a, b: a @ b.T)(*jnp.split(x, 2, axis=1)), lambda: (U((3, 4), seed=155),))
case("rev_flip", lambda x: jnp.flip(x) * x, lambda: (U((5,), seed=156),))
case("rev_flip_axis1", lambda x: jnp.flip(x, axis=1), lambda: (U((2, 3), seed=157),))
case("roll", lambda x: jnp.roll(x, 2) - x, lambda: (U((5,), seed=158),))
case("repeat", lambda x: jnp.repeat(x, 2) * 2.0, lambda: (U((3,), seed=159),))
case("tile", lambda x: jnp.tile(x, 2) + 1.0, lambda: (U((3,), seed=159),))
case("triu_trace_diag", lambda x: jnp.triu(x).sum(0) * jnp.trace(x) + jnp.diag(x), lambda: (U((3, 3), seed=160),))

# ----------------------------------------------------------------------------------------------------------------------
# gather / scatter

case("gather_static_indices", lambda x: x[jnp.array([2, 0, 2])], lambda: (U((4,), seed=170),))
case("gather_column", lambda x: x[:, 1] * 3.0, lambda: (U((3, 4), seed=171),))
case("gather_fancy_2d", lambda x: x[jnp.array([[0, 1], [2, 0]]), jnp.array([[1, 1], [0, 2]])],
     lambda: (U((3, 3), seed=172),))
case("gather_rows", lambda x: jnp.sin(x)[jnp.array([1, 1, 0])], lambda: (U((2, 3), seed=173),))
case("take_along_axis", lambda x: jnp.take_along_axis(x, jnp.array([[0, 2], [1, 1], [2, 0]]), axis=1),
     lambda: (U((3, 3), seed=174),))
case("take_clip_mode", lambda x: jnp.take(x, jnp.array([0, 4, 7]), mode="clip"), lambda: (U((5,), seed=175),))
case("scatter_add_both", lambda x, y: x.at[jnp.array([0, 2, 0])].add(y * y), lambda: (U((4,), seed=176),
                                                                                      U((3,), seed=177)), (0, 1))
case("scatter_add_column", lambda x, y: x.at[:, 1].add(jnp.sin(y)), lambda: (U((3, 3), seed=178),
                                                                             U((3,), seed=179)), (0, 1))
case("scatter_set_both", lambda x, y: x.at[jnp.array([3, 1])].set(jnp.exp(y)) * 2.0,
     lambda: (U((5,), seed=180), U((2,), seed=181)), (0, 1))
case("scatter_set_2d", lambda x, y: x.at[1].set(y), lambda: (U((3, 2), seed=182), U((2,), seed=183)), (0, 1))
case("scatter_add_traced_index", lambda x, y: x.at[jnp.argmax(y)].add(y.sum()), lambda: (U((4,), seed=184),
                                                                                         distinct((3,), 185)), (0, 1))

# ----------------------------------------------------------------------------------------------------------------------
# dtypes, constants, stop_gradient, higher-order primitives


def _f64_through_f32(x):
    return jnp.sin(x.astype(jnp.float32)).astype(jnp.float64) * x


def _f32_in_f64_inside(x):
    return (jnp.exp(x.astype(jnp.float64)) * 2.0).astype(jnp.float32)


case("convert_f64_f32_f64", _f64_through_f32, lambda: (U((4,), seed=190),))
case("convert_f32_input_f64_inside", _f32_in_f64_inside, lambda: (U((4,), seed=191).astype(jnp.float32),))
case("convert_mixed_inputs", lambda a, b: a * b.astype(jnp.float64),
     lambda: (U((3,), seed=192), U((3,), seed=193).astype(jnp.float32)), (0, 1))
case("iota_arange", lambda x: jnp.arange(5) * x + lax.iota(jnp.float64, 5) * x**2, lambda: (U((5,), seed=194),))
case("constant_closure", lambda x: x * jnp.array([1.0, -2.0, 3.0]) + jnp.full((3,), 0.5), lambda: (U((3,), seed=195),))
case("stop_gradient_zero_path", lambda x, y: lax.stop_gradient(jnp.sin(x)) * 2.0 + y,
     lambda: (U((3,), seed=196), U((3,), seed=197)), (0, 1))
case("stop_gradient_partial", lambda x: x * lax.stop_gradient(x) + jnp.sin(lax.stop_gradient(x)),
     lambda: (U((4,), seed=198),))
case("nested_jit", lambda x, W: jax.jit(lambda a, b: jnp.tanh(b @ a))(jnp.sin(x), W) * 2.0,
     lambda: (U((3,), seed=199), U((2, 3), seed=200)), (0, 1))
case("doubly_nested_jit", lambda x: jax.jit(lambda a: jax.jit(jnp.exp)(a) * a)(x).sum(), lambda: (U((4,), seed=201),))
case("checkpoint", lambda x: jax.checkpoint(lambda a: jnp.sin(jnp.cos(a)) * a)(x), lambda: (U((4,), seed=202),))
case("cond_true_branch", lambda x: lax.cond(x[0] > 0, jnp.sin, lambda a: a**2, x),
     lambda: (jnp.array([0.5, -1.0, 0.3]),))
case("cond_false_branch", lambda x: lax.cond(x[0] > 0, jnp.sin, lambda a: a**2, x),
     lambda: (jnp.array([-0.5, -1.0, 0.3]),))
case("cond_operands_both", lambda x, y: lax.cond(jnp.sum(x) > 0, lambda a, b: a * b, lambda a, b: a - b, x, y),
     lambda: (jnp.array([0.5, 0.2]), jnp.array([1.5, -0.7])), (0, 1))


def _rnn(W, h0, xs):
    def step(h, x):
        h = jnp.tanh(W @ h + x)
        return h, h.sum()

    h, ys = lax.scan(step, h0, xs)
    return h, ys


case("scan_rnn", _rnn, lambda: (U((3, 3), -0.5, 0.5, seed=203), U((3,), seed=204), U((4, 3), seed=205)), (0, 1, 2))
case("fori_loop_fixed", lambda x: lax.fori_loop(0, 3, lambda i, c: jnp.sin(c) * x + i, x), lambda: (U((3,), seed=206),))

# ----------------------------------------------------------------------------------------------------------------------
# jax.nn and common compositions

case("softmax", jax.nn.softmax, lambda: (U((5,), -2.0, 2.0, seed=210),))
case("softmax_axis0", lambda x: jax.nn.softmax(x, axis=0), lambda: (U((3, 2), -2.0, 2.0, seed=211),))
case("log_softmax", jax.nn.log_softmax, lambda: (U((2, 4), -2.0, 2.0, seed=212),))
case("logsumexp", lambda x: jax.nn.logsumexp(x, axis=-1), lambda: (U((3, 4), -2.0, 2.0, seed=213),))
case("relu", jax.nn.relu, lambda: (A((6,), seed=214),))
case("gelu_tanh_approx", lambda x: jax.nn.gelu(x, approximate=True), lambda: (U((5,), -2.0, 2.0, seed=215),))
case("gelu_exact", lambda x: jax.nn.gelu(x, approximate=False), lambda: (U((5,), -2.0, 2.0, seed=216),))
case("sigmoid", jax.nn.sigmoid, lambda: (U((5,), -3.0, 3.0, seed=217),))
case("silu", jax.nn.silu, lambda: (U((5,), -3.0, 3.0, seed=218),))
case("elu", jax.nn.elu, lambda: (A((6,), seed=219),))
case("softplus", jax.nn.softplus, lambda: (U((5,), -3.0, 3.0, seed=220),))
case("standardize", lambda x: jax.nn.standardize(x, axis=-1), lambda: (U((2, 4), seed=221),))
case("logaddexp", jnp.logaddexp, lambda: (U((4,), seed=222), U((4,), seed=223)), (0, 1))
case("one_hot_weighted", lambda x: (jax.nn.one_hot(jnp.array([0, 2, 1]), 3) * x).sum(1), lambda: (U((3, 3), seed=224),))


def _layer_norm(x, g, b):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return g * (x - mu) / jnp.sqrt(var + 1e-5) + b


case("layer_norm", _layer_norm, lambda: (U((2, 4), seed=225), U((4,), 0.5, 1.5, seed=226), U((4,), seed=227)),
     (0, 1, 2))


def _mlp(params, x):
    h = jnp.tanh(params["W1"] @ x + params["b1"])
    return params["W2"] @ h + params["b2"]


def _mlp_params(seed):
    return {"W1": U((4, 3), seed=seed), "b1": U((4,), seed=seed + 1), "W2": U((2, 4), seed=seed + 2),
            "b2": U((2,), seed=seed + 3)}


case("mlp_tanh_params_dict", _mlp, lambda: (_mlp_params(230), U((3,), seed=234)))
case("mlp_tanh_both_args", _mlp, lambda: (_mlp_params(235), U((3,), seed=239)), (0, 1))
case("mlp_loss", lambda p, x, y: jnp.mean((_mlp(p, x) - y) ** 2), lambda: (_mlp_params(240), U((3,), seed=244),
                                                                            U((2,), seed=245)), (0, 1))


def _attention(x, Wq, Wk, Wv):
    q, k, v = x @ Wq, x @ Wk, x @ Wv
    a = jax.nn.softmax(q @ k.T / jnp.sqrt(q.shape[-1]), axis=-1)
    return a @ v


case("attention", _attention, lambda: (U((3, 4), seed=246), U((4, 2), seed=247), U((4, 2), seed=248),
                                       U((4, 2), seed=249)), (0, 1, 2, 3))
case("cross_entropy", lambda logits, y: -jnp.sum(y * jax.nn.log_softmax(logits)),
     lambda: (U((5,), -2.0, 2.0, seed=250), jax.nn.softmax(U((5,), seed=251))), (0, 1))
case("cosine_similarity", lambda a, b: a @ b / (jnp.linalg.norm(a) * jnp.linalg.norm(b)),
     lambda: (U((4,), seed=252), U((4,), seed=253)), (0, 1))

# ----------------------------------------------------------------------------------------------------------------------
# pytrees, argnums, shapes of inputs/outputs

case("scalar_in_scalar_out", lambda x: jnp.sin(x) * jnp.exp(x), lambda: (jnp.asarray(0.7),))
case("python_float_input", lambda x: jnp.sin(x) * x, lambda: (0.7,))
case("vector_in_scalar_out", lambda x: jnp.sum(jnp.tanh(x) ** 2), lambda: (U((5,), seed=260),))
case("scalar_in_matrix_out", lambda s: jnp.outer(jnp.arange(3.0), jnp.arange(2.0)) * jnp.sin(s),
     lambda: (jnp.asarray(0.4),))
case("argnums_int_second", lambda x, y: jnp.sin(x) * y, lambda: (U((3,), seed=261), U((3,), seed=262)), 1)
case("argnums_negative", lambda x, y: jnp.sin(x) * y**2, lambda: (U((3,), seed=263), U((3,), seed=264)), -1)
case("argnums_tuple_single", lambda x, y: jnp.sin(x) * y, lambda: (U((3,), seed=265), U((3,), seed=266)), (0,))
case("argnums_tuple_reordered", lambda x, y, z: x * y + z, lambda: (U((3,), seed=267), U((3,), seed=268),
                                                                    U((3,), seed=269)), (2, 0))
case("dict_input", lambda p: jnp.sin(p["a"]) * p["b"].sum(),
     lambda: ({"a": U((3,), seed=270), "b": U((2,), seed=271)},))
case("tuple_input", lambda t: t[0] @ t[1], lambda: ((U((2, 3), seed=272), U((3,), seed=273)),))
case("list_input", lambda ls: ls[0] * ls[1] + ls[2], lambda: ([U((2,), seed=274), U((2,), seed=275),
                                                               U((2,), seed=276)],))
case("nested_pytree_inputs_tuple_argnums",
     lambda p, c, t: jnp.tanh(p["w"] @ t[0] + p["b"]) * c + t[1]["z"],
     lambda: ({"w": U((2, 3), seed=277), "b": U((2,), seed=278)}, U((2,), seed=279),
              (U((3,), seed=280), {"z": U((2,), seed=281)})), (0, 2))
case("dict_output", lambda x: {"s": jnp.sin(x), "sum": x.sum(), "m": jnp.outer(x, x)}, lambda: (U((3,), seed=282),))
case("tuple_output", lambda x, y: (x * y, jnp.exp(x), y.sum()), lambda: (U((3,), seed=283), U((3,), seed=284)), (0, 1))
case("nested_output", lambda x: {"a": (jnp.sin(x), [x**2, x.sum()]), "b": {"c": jnp.cos(x)[:2]}},
     lambda: (U((3,), seed=285),))
case("output_is_input", lambda x, y: (x, y * 2.0), lambda: (U((3,), seed=286), U((2,), seed=287)), (0, 1))
case("output_independent_of_input", lambda x, y: (jnp.sin(y), jnp.ones(2) * 3.0), lambda: (U((3,), seed=288),
                                                                                            U((2,), seed=289)), 0)
case("repeated_output", lambda x: (jnp.sin(x), jnp.sin(x)), lambda: (U((3,), seed=290),))
case("has_aux", lambda x: (jnp.sin(x) * x, {"norm": jnp.sum(x**2), "n": 3}), lambda: (U((4,), seed=291),), 0,
     has_aux=True)
case("has_aux_tuple_argnums", lambda x, y: ((x * y, jnp.exp(y)), jnp.cos(x)),
     lambda: (U((3,), seed=292), U((3,), seed=293)), (0, 1), has_aux=True)


@pytest.mark.parametrize("fun, make_args, argnums, has_aux", CASES)
def test_matches_jacrev(fun, make_args, argnums, has_aux):
    check_jacobian(fun, make_args(), argnums, has_aux=has_aux)


# ----------------------------------------------------------------------------------------------------------------------
# float32 cases (x64 disabled locally; rtol 1e-4)

F32_CASES = [
    pytest.param(lambda x: jnp.tanh(x) * jnp.exp(x), ((5,),), 0, id="f32_tanh_exp"),
    pytest.param(lambda W, x: jax.nn.softmax(W @ x), ((3, 4), (4,)), (0, 1), id="f32_softmax_matvec"),
    pytest.param(_layer_norm, ((2, 4), (4,), (4,)), (0, 1, 2), id="f32_layer_norm"),
    pytest.param(lambda x: jnp.cumsum(jnp.sin(x)).reshape(2, 3).T, ((6,),), 0, id="f32_cumsum_reshape_T"),
    pytest.param(lambda x, y: x.at[jnp.array([0, 2])].add(y) / (1.0 + y.sum() ** 2), ((4,), (2,)), (0, 1),
                 id="f32_scatter_add"),
]


@pytest.mark.parametrize("fun, shapes, argnums", F32_CASES)
def test_float32_matches_jacrev(fun, shapes, argnums):
    with x64_enabled(False):
        args = tuple(jnp.asarray(np.random.default_rng(k).uniform(0.2, 1.0, s), jnp.float32)
                     for k, s in enumerate(shapes))
        assert all(a.dtype == jnp.float32 for a in args)
        check_jacobian(fun, args, argnums, rtol=1e-4, atol=1e-6)


# ----------------------------------------------------------------------------------------------------------------------
# custom rules: the rule, not the primal derivative, must be used


@jax.custom_jvp
def _spike(v):
    return (v > 0).astype(v.dtype)


@_spike.defjvp
def _spike_jvp(primals, tangents):
    (v,), (t,) = primals, tangents
    return _spike(v), t / (1.0 + 10.0 * jnp.abs(v)) ** 2


@pytest.mark.parametrize("order", ["fwd", "rev"])
def test_custom_jvp_surrogate_gradient_is_used(order):
    v = jnp.array([-0.5, 0.2, 1.5, -0.05])
    W = U((3, 4), seed=300)
    f = lambda v: W @ _spike(jnp.sin(v))
    expected = jax.jacrev(f)(v)
    surrogate = W * (jnp.cos(v) / (1.0 + 10.0 * jnp.abs(jnp.sin(v))) ** 2)
    np.testing.assert_allclose(expected, surrogate, rtol=1e-12)  # jax honours the rule
    assert float(jnp.abs(expected).max()) > 0.0  # the primal derivative would be exactly zero
    actual = plastix.jacve(f, order=order)(v)
    assert_trees_close(actual, expected, rtol=1e-5, atol=1e-8, what=f"order={order}")


def test_custom_jvp_random_orders():
    v = jnp.array([-0.5, 0.2, 1.5])
    check_jacobian(lambda v: jnp.tanh(_spike(v * 2.0) * v + v), (v,))


@jax.custom_vjp
def _scaled_sin(x):
    return jnp.sin(x)


def _scaled_sin_fwd(x):
    return jnp.sin(x), x


def _scaled_sin_bwd(x, g):
    return (3.0 * g * jnp.cos(x),)  # deliberately 3x the true derivative


_scaled_sin.defvjp(_scaled_sin_fwd, _scaled_sin_bwd)


@pytest.mark.parametrize("order", ["fwd", "rev"])
def test_custom_vjp_rule_is_used(order):
    x = U((4,), seed=301)
    f = lambda x: _scaled_sin(x) * x
    expected = jax.jacrev(f)(x)
    np.testing.assert_allclose(expected, jnp.diag(3.0 * jnp.cos(x) * x + jnp.sin(x)), rtol=1e-12)
    assert_trees_close(plastix.jacve(f, order=order)(x), expected, rtol=1e-5, atol=1e-8, what=f"order={order}")


def test_custom_vjp_random_orders():
    check_jacobian(lambda x, W: W @ _scaled_sin(W.T @ x), (U((2,), seed=302), U((2, 3), seed=303)), (0, 1))


# ----------------------------------------------------------------------------------------------------------------------
# transformations: jit, vmap, nesting

TRANSFORM_FUNS = [
    pytest.param(lambda x, W: jnp.tanh(W @ x), lambda: (U((3,), seed=310), U((2, 3), seed=311)), (0, 1), id="tanh_Wx"),
    pytest.param(lambda x: jax.nn.softmax(jnp.sin(x)) * x, lambda: (U((4,), seed=312),), 0, id="softmax_sin"),
    pytest.param(lambda x: {"a": jnp.cumsum(x), "b": (x[::2] ** 2, x.sum())}, lambda: (U((5,), seed=313),), 0,
                 id="pytree_out"),
]


@pytest.mark.parametrize("order", ["fwd", "rev"])
@pytest.mark.parametrize("fun, make_args, argnums", TRANSFORM_FUNS)
def test_jit_of_jacve_equals_jacve(fun, make_args, argnums, order):
    args = make_args()
    eager = plastix.jacve(fun, argnums, order=order)(*args)
    jitted = jax.jit(plastix.jacve(fun, argnums, order=order))(*args)
    assert_trees_close(jitted, eager, rtol=1e-10, atol=1e-12, what=f"jit, order={order}")
    assert_trees_close(jitted, jax.jacrev(fun, argnums)(*args), rtol=1e-5, atol=1e-8, what=f"jit vs jax, {order}")


def test_jit_with_traced_dynamic_slice_index():
    f = lambda x, i: jnp.sin(lax.dynamic_slice(x, (i,), (3,))) * x[:3]
    x = U((6,), seed=314)
    for i in range(4):
        expected = jax.jacrev(f)(x, jnp.int32(i))
        for order in ("fwd", "rev"):
            actual = jax.jit(plastix.jacve(f, order=order))(x, jnp.int32(i))
            assert_trees_close(actual, expected, rtol=1e-5, atol=1e-8, what=f"i={i}, order={order}")


def test_jit_with_traced_scatter_index():
    f = lambda x, y, i: x.at[i].add(jnp.exp(y)) * 2.0
    x, y = U((5,), seed=315), U((2,), seed=316)
    i = jnp.array([4, 1])
    expected = jax.jacrev(f, (0, 1))(x, y, i)
    actual = jax.jit(plastix.jacve(f, (0, 1)))(x, y, i)
    assert_trees_close(actual, expected, rtol=1e-5, atol=1e-8, what="jit scatter traced index")


@pytest.mark.parametrize("order", ["fwd", "rev"])
@pytest.mark.parametrize("fun, make_args, argnums", TRANSFORM_FUNS)
def test_vmap_of_jacve_equals_vmap_of_jacrev(fun, make_args, argnums, order):
    args = make_args()
    batched = tuple(jnp.stack([a * (1.0 + 0.1 * k) for k in range(3)]) for a in args)
    expected = jax.vmap(jax.jacrev(fun, argnums))(*batched)
    actual = jax.vmap(plastix.jacve(fun, argnums, order=order))(*batched)
    assert_trees_close(actual, expected, rtol=1e-5, atol=1e-8, what=f"vmap, order={order}")


def test_vmap_with_unbatched_argument():
    f = lambda x, W: jnp.tanh(W @ x)
    xs, W = U((4, 3), seed=317), U((2, 3), seed=318)
    expected = jax.vmap(jax.jacrev(f, (0, 1)), in_axes=(0, None))(xs, W)
    actual = jax.vmap(plastix.jacve(f, (0, 1)), in_axes=(0, None))(xs, W)
    assert_trees_close(actual, expected, rtol=1e-5, atol=1e-8, what="vmap in_axes=(0, None)")


def test_jit_of_vmap_of_jacve():
    f = lambda x: jnp.sin(x) * jnp.cumsum(x)
    xs = U((3, 4), seed=319)
    expected = jax.vmap(jax.jacrev(f))(xs)
    actual = jax.jit(jax.vmap(plastix.jacve(f, order="fwd")))(xs)
    assert_trees_close(actual, expected, rtol=1e-5, atol=1e-8, what="jit(vmap(jacve))")


def _softmax_loss(x):
    W = jnp.arange(12.0).reshape(3, 4) / 10.0 - 0.5
    y = jnp.array([0.2, 0.5, 0.3])
    return -jnp.sum(y * jax.nn.log_softmax(W @ x)) + jnp.sum(jax.nn.softmax(x) ** 2)


HESSIAN_FUNS = [
    pytest.param(lambda x: jnp.sum(jnp.sin(x) * jnp.exp(x)), lambda: (U((4,), seed=320),), id="sin_exp"),
    pytest.param(lambda x: jnp.sum(jnp.tanh(jnp.arange(12.0).reshape(3, 4) / 6.0 - 1.0) @ x),
                 lambda: (U((4,), seed=321),), id="tanh_W_const_x_sum"),
    pytest.param(lambda x: jnp.sum(jnp.tanh((jnp.arange(12.0).reshape(3, 4) / 6.0 - 1.0) @ x)),
                 lambda: (U((4,), seed=322),), id="tanh_Wx_sum"),
    pytest.param(_softmax_loss, lambda: (U((4,), seed=323),), id="softmax_loss"),
]


@pytest.mark.parametrize("outer", ["fwd", "rev"])
@pytest.mark.parametrize("inner", ["fwd", "rev"])
@pytest.mark.parametrize("fun, make_args", HESSIAN_FUNS)
def test_nested_jacve_is_hessian(fun, make_args, inner, outer):
    args = make_args()
    expected = jax.hessian(fun)(*args)
    actual = plastix.jacve(plastix.jacve(fun, order=inner), order=outer)(*args)
    assert_trees_close(actual, expected, rtol=1e-5, atol=1e-8, what=f"inner={inner}, outer={outer}")


def test_nested_jacve_hessian_wrt_matrix():
    f = lambda W, x: jnp.sum(jnp.tanh(W @ x))
    W, x = U((2, 3), seed=324), U((3,), seed=325)
    expected = jax.hessian(f)(W, x)
    actual = plastix.jacve(plastix.jacve(f))(W, x)
    assert_trees_close(actual, expected, rtol=1e-5, atol=1e-8, what="hessian wrt W")


def _hess_f(x):
    return jnp.sum(jnp.sin(x) * jnp.exp(x)) + jnp.prod(x)


@pytest.mark.parametrize("outer", [jax.jacrev, jax.jacfwd], ids=["jacrev", "jacfwd"])
def test_jax_jacobian_of_jacve_is_hessian(outer):
    x = A((4,), 0.5, 1.5, seed=326)
    assert_trees_close(outer(plastix.jacve(_hess_f))(x), jax.hessian(_hess_f)(x), rtol=1e-5, atol=1e-8,
                       what=f"{outer.__name__}(jacve)")


def test_jacve_of_jax_jacrev_is_hessian():
    x = A((4,), 0.5, 1.5, seed=327)
    assert_trees_close(plastix.jacve(jax.jacrev(_hess_f))(x), jax.hessian(_hess_f)(x), rtol=1e-5, atol=1e-8,
                       what="jacve(jacrev)")


# ----------------------------------------------------------------------------------------------------------------------
# sparse=True


def _is_partial(x):
    return hasattr(x, "todense")


SPARSE_CASES = [
    pytest.param(lambda x: jnp.sin(x) * 2.0, lambda: (U((4,), seed=330),), 0, id="diagonal"),
    pytest.param(lambda W, x: jnp.tanh(W @ x), lambda: (U((2, 3), seed=331), U((3,), seed=332)), (0, 1), id="tanh_Wx"),
    pytest.param(lambda x: x.T.reshape(-1)[::2], lambda: (U((3, 4), seed=333),), 0, id="index_map"),
    pytest.param(lambda x, y: {"a": jnp.sin(y), "b": (x.sum(), jnp.cumsum(x))},
                 lambda: (U((3,), seed=334), U((2,), seed=335)), (0, 1), id="pytree_with_zero_blocks"),
    pytest.param(lambda x: x[jnp.array([2, 0, 2])] * jnp.broadcast_to(x[:1], (3,)), lambda: (U((4,), seed=336),), 0,
                 id="gather_broadcast"),
]


@pytest.mark.parametrize("order", ["fwd", "rev"])
@pytest.mark.parametrize("fun, make_args, argnums", SPARSE_CASES)
def test_sparse_todense_equals_dense(fun, make_args, argnums, order):
    args = make_args()
    dense = plastix.jacve(fun, argnums, order=order)(*args)
    sparse = plastix.jacve(fun, argnums, order=order, sparse=True)(*args)
    leaves, treedef = jax.tree_util.tree_flatten(sparse, is_leaf=_is_partial)
    assert all(_is_partial(p) for p in leaves), [type(p) for p in leaves]
    assert treedef == jax.tree_util.tree_structure(dense)
    densified = jax.tree_util.tree_unflatten(treedef, [p.todense() for p in leaves])
    assert_trees_close(densified, dense, rtol=1e-12, atol=0.0, what=f"sparse todense, order={order}")
    assert_trees_close(densified, jax.jacrev(fun, argnums)(*args), rtol=1e-5, atol=1e-8, what="sparse vs jax")


# ----------------------------------------------------------------------------------------------------------------------
# count_muls


@pytest.mark.parametrize("order", ["fwd", "rev"])
@pytest.mark.parametrize("n", [1, 3, 6])
def test_count_muls_sin_cos_is_n(n, order):
    assert plastix.count_muls(lambda x: jnp.sin(jnp.cos(x)), order=order)(U((n,), seed=340)) == n


@pytest.mark.parametrize("order", ["fwd", "rev"])
def test_count_muls_index_maps_are_free(order):
    f = lambda x: jnp.transpose(x.reshape(4, 3)).reshape(2, 6).T
    assert plastix.count_muls(f, order=order)(U((3, 4), seed=341)) == 0


@pytest.mark.parametrize("order", ["fwd", "rev", "random"])
@pytest.mark.parametrize("fun, make_args, argnums", TRANSFORM_FUNS + SPARSE_CASES)
def test_count_muls_nonnegative_int(fun, make_args, argnums, order):
    args = make_args()
    if order == "random":
        rng = np.random.default_rng(342)
        order = [int(v) for v in rng.permutation(np.asarray(plastix.graph(fun, argnums)(*args).vertices,
                                                            dtype=np.int64))]
    count = plastix.count_muls(fun, argnums, order=order)(*args)
    assert isinstance(count, int) and not isinstance(count, bool)
    assert count >= 0


# ----------------------------------------------------------------------------------------------------------------------
# graph


def test_graph_vertices_are_forward_ordered_ints_and_summary_is_str():
    f = lambda x, W: jnp.tanh(W @ jnp.sin(x)).sum()
    g = plastix.graph(f, (0, 1))(U((3,), seed=350), U((2, 3), seed=351))
    assert isinstance(g.vertices, tuple) and len(g.vertices) >= 2
    assert all(isinstance(v, int) and not isinstance(v, bool) for v in g.vertices)
    assert list(g.vertices) == sorted(g.vertices) and len(set(g.vertices)) == len(g.vertices)
    assert isinstance(g.summary(), str) and g.summary()


def test_identity_function():
    check_jacobian(lambda x: x, (U((3,), seed=352),))


def test_identity_on_pytree_with_tuple_argnums():
    check_jacobian(lambda a, b: {"b": b, "a": a}, ({"p": U((2,), seed=353)}, U((2, 1), seed=354)), (0, 1))
