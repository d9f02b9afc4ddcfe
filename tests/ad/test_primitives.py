"""Every differentiable primitive of ``jax.lax`` (a JVP rule in JAX) is covered: a plastix rule, an in-place
expansion or the dense fallback, never an error, with the Jacobian of ``jax.jacrev`` (``jax.jacfwd`` where
``jacrev`` refuses) on a small input.

The walk is over the primitives JAX exports (``jax.lax``, ``jax.extend.core.primitives``) that have a JVP rule
(``jax.interpreters.ad.primitive_jvps``); a primitive JAX adds later fails ``test_every_lax_primitive_has_a_case``
until it gets a case here.
"""

from __future__ import annotations

import warnings

import jax
import jax.numpy as jnp
import jax.scipy as jsp
import numpy as np
import pytest
from jax import lax
from jax.ad_checkpoint import checkpoint_name
from jax.extend.core import Primitive
from jax.extend.core import primitives as jex_primitives
from jax.interpreters import ad as jax_ad

import plastix
from plastix.ad._rules import expansions, rules

from .conftest import assert_trees_close

pytestmark = pytest.mark.usefixtures("x64")

# Primitives that cannot occur with an array of the differentiated inputs flowing through them in a jaxpr that
# plastix traces: collectives need a named (mapped) axis, get/swap move values through state references, stage
# is internal to JAX's eager evaluation.
EXCLUDED = {
    "all_gather": "collective (needs a mapped axis)",
    "all_to_all": "collective (needs a mapped axis)",
    "ppermute": "collective (needs a mapped axis)",
    "psum": "collective (needs a mapped axis)",
    "ragged_all_to_all": "collective (needs a mapped axis)",
    "get": "state reference (jax.experimental state), not an array",
    "swap": "state reference (jax.experimental state), not an array",
    "stage": "internal to JAX's eager evaluation, never in a jaxpr",
}


def _x():
    return jnp.asarray(np.random.default_rng(0).uniform(0.2, 1.4, 4))


def _sq():
    rng = np.random.default_rng(0)
    return jnp.asarray(rng.uniform(-0.5, 0.5, (3, 3)) + np.diag(rng.uniform(1.5, 2.5, 3)))


_i32 = lambda v: v.astype(jnp.int32)
_key = lambda: jax.random.key(0)

MATRIX = "matrix"
# name -> (function, input): the function of the shared vector ``_x()`` (its input mapped by a function, or as is
# for None) or of the shared matrix ``_sq()`` (MATRIX); every function returns floats
CASES = {
    "abs": (jnp.abs, lambda x: x - 0.7),
    "acos": (jnp.arccos, lambda x: x / 2),
    "acosh": (jnp.arccosh, lambda x: x + 1.0),
    "add": (lambda x: x + x[::-1], None),
    "add_any": (jax.grad(lambda y: jnp.sum(jnp.sin(y) * y)), None),
    "and": (lambda x: jnp.where((x > 0.5) & (x < 1.0), x, 2 * x), None),
    "approx_top_k": (lambda x: lax.approx_max_k(x, 2)[0], None),
    "argmax": (lambda x: x * jnp.argmax(x), None),
    "argmin": (lambda x: x * jnp.argmin(x), None),
    "asin": (jnp.arcsin, lambda x: x / 2),
    "asinh": (jnp.arcsinh, None),
    "atan": (jnp.arctan, None),
    "atan2": (lambda x: jnp.arctan2(x, x[::-1]), None),
    "atanh": (jnp.arctanh, lambda x: x / 2),
    "bessel_i0e": (jsp.special.i0e, None),
    "bessel_i1e": (jsp.special.i1e, None),
    "bitcast_convert_type": (lambda x: x * lax.bitcast_convert_type(x.astype(jnp.float32), jnp.int32)
                             .astype(x.dtype) * 0 + x, None),
    "broadcast_in_dim": (lambda x: jnp.broadcast_to(x, (2, 4)) * 2.0, None),
    "cbrt": (jnp.cbrt, None),
    "ceil": (lambda x: jnp.ceil(x) * x, None),
    "cholesky": (lambda a: jnp.linalg.cholesky(a @ a.T), MATRIX),
    "clamp": (lambda x: lax.clamp(0.5, x, 1.0), None),
    "complex": (lambda x: jnp.abs(lax.complex(x, x[::-1] ** 2)), None),
    "concatenate": (lambda x: jnp.concatenate([x, x[:2] * 2]), None),
    "cond": (lambda x: lax.cond(x[0] > 0, jnp.sin, jnp.cos, x), None),
    "conj": (lambda x: jnp.imag(jnp.conj(x * (1 + 2j)) * (0.5 - 1j)), None),
    "conv_general_dilated": (lambda x: jnp.convolve(x, jnp.array([1.0, -2.0, 0.5])), None),
    "convert_element_type": (lambda x: x.astype(jnp.float32).astype(x.dtype) * x, None),
    "copy": (lambda x: jnp.copy(x) * x, None),
    "cos": (jnp.cos, None),
    "cosh": (jnp.cosh, None),
    "cumlogsumexp": (lambda x: lax.cumlogsumexp(x), None),
    "cummax": (lambda x: lax.cummax(x), None),
    "cummin": (lambda x: lax.cummin(x), None),
    "cumprod": (jnp.cumprod, None),
    "cumsum": (jnp.cumsum, None),
    "custom_linear_solve": (lambda a: jsp.sparse.linalg.cg(a @ a.T, jnp.ones(3))[0], MATRIX),
    "dce_sink": (lambda x: (lax.dce_sink(x), jnp.sin(x))[1], None),
    "device_put": (lambda x: jax.device_put(x) * x, None),
    "digamma": (jsp.special.digamma, lambda x: x + 0.5),
    "div": (lambda x: x / x[::-1], None),
    "dot_general": (lambda x: jnp.outer(x, x) @ x, None),
    "dynamic_slice": (lambda x: lax.dynamic_slice(x, (jnp.argmax(x) // 2,), (2,)), None),
    "dynamic_update_slice": (lambda x: lax.dynamic_update_slice(x, x[:2] ** 2, (1,)), None),
    "eig": (lambda a: jnp.real(jnp.linalg.eigvals(a)), MATRIX),
    "eigh": (lambda a: jnp.linalg.eigh(a + a.T)[0], MATRIX),
    "eq": (lambda x: jnp.where(jnp.round(x) == 1.0, x, -x), None),
    "eq_to": (lambda x: jnp.where(jex_primitives.eq_to_p.bind(jnp.round(x), 1.0), x, x**2), None),
    "erf": (lax.erf, None),
    "erf_inv": (lax.erf_inv, lambda x: x / 2),
    "erfc": (lax.erfc, None),
    "exp": (jnp.exp, None),
    "exp2": (lax.exp2, None),
    "expm1": (jnp.expm1, None),
    "fft": (lambda x: jnp.abs(jnp.fft.fft(x)), None),
    "floor": (lambda x: jnp.floor(x) * x, None),
    "gather": (lambda x: x[jnp.array([2, 0, 2])], None),
    "ge": (lambda x: jnp.where(x >= 0.7, x, x**2), None),
    "gt": (lambda x: jnp.where(x > 0.7, x, x**2), None),
    "igamma": (lambda x: jsp.special.gammainc(x, x[::-1]), lambda x: x + 0.3),
    "igammac": (lambda x: jsp.special.gammaincc(x, x[::-1]), lambda x: x + 0.3),
    "imag": (lambda x: jnp.imag(jnp.exp(1j * x)), None),
    "integer_pow": (lambda x: x**3, None),
    "is_finite": (lambda x: jnp.where(jnp.isfinite(1 / (x - 0.2)), x, 0.0), None),
    "jit": (jax.jit(jnp.sin), None),
    "le": (lambda x: jnp.where(x <= 0.7, x, x**2), None),
    "le_to": (lambda x: jnp.where(jex_primitives.le_to_p.bind(x, 0.7), x, x**2), None),
    "lgamma": (lax.lgamma, None),
    "log": (jnp.log, None),
    "log1p": (jnp.log1p, None),
    "logistic": (lax.logistic, None),
    "lt": (lambda x: jnp.where(x < 0.7, x, x**2), None),
    "lt_to": (lambda x: jnp.where(jex_primitives.lt_to_p.bind(x, 0.7), x, x**2), None),
    "lu": (lambda a: jsp.linalg.lu_factor(a)[0], MATRIX),
    "max": (lambda x: jnp.maximum(x, x[::-1] + 0.01), None),
    "min": (lambda x: jnp.minimum(x, x[::-1] + 0.01), None),
    "mul": (lambda x: x * x[::-1], None),
    "mulhi": (lambda x: x * lax.mulhi(_i32(x * 1e6), _i32(x * 1e6)).astype(x.dtype), None),
    "name": (lambda x: checkpoint_name(jnp.sin(x), "h") * x, None),
    "ne": (lambda x: jnp.where(x != x[0], x, -x), None),
    "neg": (lambda x: -x, None),
    "not": (lambda x: jnp.where(~(x > 0.7), x, x**2), None),
    "optimization_barrier": (lambda x: jnp.sum(jnp.stack(lax.optimization_barrier((x, x * 2))), 0), None),
    "or": (lambda x: jnp.where((x > 1.0) | (x < 0.5), x, x**2), None),
    "pad": (lambda x: jnp.pad(x, (1, 2)) * 2.0, None),
    "polygamma": (lambda x: jsp.special.polygamma(1, x), lambda x: x + 0.5),
    "pow": (lambda x: x ** x[::-1], None),
    "qr": (lambda a: jnp.linalg.qr(a)[1], MATRIX),
    "random_bits": (lambda x: x * jax.random.uniform(_key(), x.shape, x.dtype), None),
    "random_fold_in": (lambda x: x * jax.random.normal(jax.random.fold_in(_key(), 3), x.shape, x.dtype),
                       None),
    "random_gamma": (lambda x: jax.random.gamma(_key(), x), lambda x: x + 0.5),
    "random_seed": (lambda x: x * jax.random.uniform(jax.random.key(1), x.shape, x.dtype), None),
    "random_split": (lambda x: x * jax.random.uniform(jax.random.split(_key())[1], x.shape, x.dtype),
                     None),
    "real": (lambda x: jnp.real(jnp.exp(1j * x) * (2 - 1j)), None),
    "reduce": (lambda x: jnp.stack(lax.reduce((x, 2 * x), (0.0, 1.0), lambda a, b: (a[0] + b[0], a[1] * b[1]),
                                              (0,))), None),
    "reduce_max": (jnp.max, None),
    "reduce_min": (jnp.min, None),
    "reduce_precision": (lambda x: lax.reduce_precision(x * 1.1, 5, 10) ** 2, None),
    "reduce_prod": (jnp.prod, None),
    "reduce_sum": (jnp.sum, None),
    "reduce_window": (lambda x: lax.reduce_window(x, 1.0, lax.mul, (2,), (1,), "VALID"), None),
    "reduce_window_max": (lambda x: lax.reduce_window(x, -jnp.inf, lax.max, (2,), (1,), "VALID"), None),
    "reduce_window_min": (lambda x: lax.reduce_window(x, jnp.inf, lax.min, (2,), (1,), "VALID"), None),
    "reduce_window_sum": (lambda x: lax.reduce_window(x, 0.0, lax.add, (2,), (1,), "VALID"), None),
    "regularized_incomplete_beta": (lambda x: jsp.special.betainc(2.0, 3.0, x), lambda x: x / 2),
    "rem": (lambda x: lax.rem(x * 3, x[::-1]), None),
    "remat2": (jax.checkpoint(lambda x: jnp.sin(x) * x), None),
    "reshape": (lambda x: x.reshape(2, 2).T, None),
    "rev": (jnp.flip, None),
    "round": (lambda x: jnp.round(x) * x, None),
    "rsqrt": (lax.rsqrt, None),
    "scan": (lambda x: lax.scan(lambda c, xi: (c * xi, c), x[0], x)[1], None),
    "scatter": (lambda x: x.at[jnp.array([1, 3])].set(x[:2] ** 2), None),
    "scatter-add": (lambda x: x.at[jnp.array([1, 1])].add(x[:2] ** 2), None),
    "scatter-max": (lambda x: x.at[jnp.array([1, 3, 1])].max(x[:3] ** 2), None),
    "scatter-min": (lambda x: x.at[jnp.array([1, 3, 1])].min(x[:3] ** 2), None),
    "scatter-mul": (lambda x: x.at[jnp.array([1, 3])].multiply(x[:2] ** 2, unique_indices=True), None),
    "scatter-sub": (lambda x: x.at[jnp.array([1, 1])].subtract(x[:2] ** 2), None),
    "select_and_gather_add": (lambda x: jax.jvp(lambda y: lax.reduce_window(y, -jnp.inf, lax.max, (2,), (1,), "VALID"),
                                                (x,), (jnp.sin(x),))[1], None),
    "select_and_scatter_add": (jax.grad(lambda y: jnp.sum(lax.reduce_window(y, -jnp.inf, lax.max, (2,), (1,),
                                                                            "VALID") ** 2)), None),
    "select_n": (lambda x: lax.select_n(x > 0.7, x, jnp.sin(x)), None),
    "sharding_constraint": (lambda x: lax.with_sharding_constraint(
        x * 2, jax.sharding.SingleDeviceSharding(jax.devices()[0])), None),
    "shift_left": (lambda x: x * lax.shift_left(_i32(x * 10), jnp.int32(1)).astype(x.dtype), None),
    "shift_right_arithmetic": (lambda x: x * lax.shift_right_arithmetic(_i32(x * 10), jnp.int32(1)).astype(x.dtype),
                               None),
    "shift_right_logical": (lambda x: x * lax.shift_right_logical(_i32(x * 10), jnp.int32(1)).astype(x.dtype),
                            None),
    "sign": (lambda x: jnp.sign(x - 0.7) * x, None),
    "sin": (jnp.sin, None),
    "sinh": (jnp.sinh, None),
    "slice": (lambda x: x[1:3], None),
    "sort": (jnp.sort, None),
    "split": (lambda x: jnp.split(x, 2)[1] * 2.0, None),
    "sqrt": (jnp.sqrt, None),
    "square": (jnp.square, None),
    "squeeze": (lambda x: jnp.squeeze(x[None]), None),
    "stack": (lambda x: lax.stack([x, x**2]), None),
    "stop_gradient": (lambda x: lax.stop_gradient(x) * x, None),
    "sub": (lambda x: x - x[::-1] ** 2, None),
    "svd": (lambda a: jnp.linalg.svd(a, compute_uv=False), MATRIX),
    "tan": (jnp.tan, None),
    "tanh": (jnp.tanh, None),
    "tile": (lambda x: lax.tile(x, (2,)), None),
    "top_k": (lambda x: lax.top_k(x, 2)[0], None),
    "transpose": (lambda a: a.T @ jnp.arange(3.0), MATRIX),
    "triangular_solve": (lambda a: jsp.linalg.solve_triangular(a, jnp.ones(3), lower=False), MATRIX),
    "tridiagonal_solve": (lambda x: lax.linalg.tridiagonal_solve(
        jnp.concatenate([jnp.zeros(1), x[:3] * 0.1]), x[:4] + 2.0, jnp.concatenate([x[1:] * 0.1, jnp.zeros(1)]),
        jnp.ones((4, 1), x.dtype))[:, 0], None),
    "unstack": (lambda x: lax.unstack(x.reshape(2, 2))[1] * 2.0, None),
    "while": (lambda x: lax.while_loop(lambda v: v[0] < 3.0, lambda v: v * 1.5, x), None),
    "xor": (lambda x: jnp.where((x > 0.5) ^ (x < 1.0), x, x**2), None),
}
# jax.jacrev refuses these (a while loop; the generic reduce_window, whose JVP JAX cannot batch either)
FORWARD_ONLY = {"while", "reduce_window"}


def _jacfwd_by_jvps(fun):
    """``jax.jacfwd`` of a function of one array without ``vmap`` (JAX cannot batch every JVP)."""
    def jac(x):
        columns = [jax.jvp(fun, (x,), (e.reshape(x.shape),))[1] for e in jnp.eye(x.size, dtype=x.dtype)]
        return jnp.stack(columns, -1).reshape(columns[0].shape + x.shape)

    return jac


def _lax_differentiable() -> set[str]:
    names = set()
    for module in (lax, jex_primitives):
        for attr in dir(module):
            p = getattr(module, attr)
            if isinstance(p, Primitive) and p in jax_ad.primitive_jvps:
                names.add(p.name)
    return names


def test_every_lax_primitive_has_a_case():
    missing = sorted(_lax_differentiable() - set(CASES) - set(EXCLUDED))
    assert not missing, f"differentiable jax.lax primitives without a case here: {missing}"


def _covered(name: str) -> bool:
    return any(p.name == name for p in (*rules, *expansions))


SLOW = {"random_gamma", "igamma", "igammac"}  # JAX's own JVPs of these compile for several seconds each


def _case(name):
    fun, prep = CASES[name]
    return fun if prep is None or prep is MATRIX else (lambda x: fun(prep(x)))


def _chunks(names, size):
    return [names[k:k + size] for k in range(0, len(names), size)]


_VECTOR = sorted(n for n in CASES if CASES[n][1] is not MATRIX and n not in FORWARD_ONLY | SLOW)
# the cases are checked in groups (one compilation of each group's functions together instead of one each)
GROUPS = [pytest.param(names, id=f"{names[0]}..{names[-1]}") for names in _chunks(_VECTOR, 16)]
GROUPS += [pytest.param(sorted(n for n in CASES if CASES[n][1] is MATRIX), id="matrix"),
           pytest.param(sorted(FORWARD_ONLY), id="forward-only"),
           pytest.param(sorted(SLOW), id="slow", marks=pytest.mark.slow)]


@pytest.mark.parametrize("names", GROUPS)
def test_primitives_match_jax(names, monkeypatch):
    monkeypatch.setattr(plastix.ad._rules, "_warned", set())  # the fallback warns once per process
    x = _sq() if CASES[names[0]][1] is MATRIX else _x()
    sizes = []
    for name in names:
        text = str(jax.make_jaxpr(_case(name))(x))
        assert f" {name}[" in text or f" {name} " in text, f"the case for {name!r} does not use it:\n{text}"
        sizes.append(jax.eval_shape(_case(name), x).size)

    def fun(x):
        return jnp.concatenate([jnp.ravel(_case(name)(x)) for name in names])

    if names[0] in FORWARD_ONLY:
        expected = jax.jit(_jacfwd_by_jvps(fun))(x)
    else:
        expected = jax.jit(jax.jacrev(fun))(x)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        actual = plastix.jacve(fun)(x)
    rows = np.cumsum([0] + sizes)
    for k, name in enumerate(names):
        warned = any(f"'{name}'" in str(w.message) for w in caught)
        assert _covered(name) or warned, f"{name!r}: neither a rule nor the dense fallback"
        assert_trees_close(actual[rows[k]:rows[k + 1]], expected[rows[k]:rows[k + 1]], rtol=1e-6, atol=1e-9,
                           what=name)
