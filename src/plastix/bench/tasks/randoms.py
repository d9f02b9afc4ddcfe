"""Machine-generated random functions: the literal f and g of TASKS.md (sections 7 and 8), and a seeded
generator of random programs with the same op mix.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

__all__ = ["f", "f_args", "g", "g_single", "g_args", "g_valid_args", "random_function", "UNARY", "BINARY"]


# ------------------------------------------------------------------------------------------------------ f
def _contract(a, b, ca, cb):
    """``dot_general`` contracting axis ``ca`` of ``a`` with axis ``cb`` of ``b`` (no batch axes)."""
    return lax.dot_general(a, b, (((ca,), (cb,)), ((), ())))


def f(v0, v1, v2, v4):
    """Random function f: inputs (4,), (2,3), (4,4), (4,1); outputs (1,4), (1,), (2,), (), (4,4).

    The parameter is named v4 and there is no v3 (a naming quirk of the reference).
    """
    v5 = v2**3
    v6 = _contract(v4, v5, 0, 0)  # [1,4]
    v7 = _contract(v5, v6, 0, 1)  # [4,1]
    v8 = v6**2
    v9 = _contract(v0, v8, 0, 1)  # [1]
    v10 = jnp.sqrt(v0)
    v11 = jnp.arccos(v7)
    v12 = lax.transpose(v1, (0, 1))  # identity transpose: a no-op vertex in the reference
    v13 = _contract(v11, v8, 1, 0)  # outer product over a size-1 axis, [4,4]
    v14 = v11 + jnp.reshape(v9, (1, 1))
    v15 = v14 - jnp.reshape(v9, (1, 1))  # v9 reshaped again
    v16 = jnp.cos(v9)
    v17 = jnp.reshape(v10, (4, 1)) + v13
    v18 = jnp.arcsinh(v17)
    v19 = v15 + jnp.reshape(v16, (1, 1))
    v20 = -v12
    v21 = jnp.sqrt(v10)
    v22 = _contract(v21, v18, 0, 1)  # [4]
    v23 = jnp.tanh(v12)
    v24 = jnp.arctan(v19)
    v25 = lax.square(v24)
    v26 = jnp.cos(v22)
    v27 = jnp.reshape(v16, (1, 1)) - v25
    v28 = jnp.cosh(v23)
    v29 = jnp.sum(v20, axis=0)  # [3]
    v30 = jnp.transpose(v28)  # [3,2]
    v31 = jnp.sum(v16)  # []
    v32 = jnp.squeeze(v26)  # no axis has size 1: a no-op
    v33 = jnp.reshape(v29, (3, 1)) - v30
    v34 = v31 / v33
    v35 = v13 + jnp.reshape(v10, (4, 1))  # same value as v17, a separate operation
    v36 = jnp.reshape(v32, (4, 1)) * v35
    v37 = v32**2
    v38 = jnp.max(v34, axis=1)  # [3]
    v39 = jnp.sinh(v36)
    v40 = jnp.exp(v27)
    v41 = v39[3:4, 3:4]
    v42 = jnp.sum(v37)
    v43 = v42 + v38
    v44 = _contract(v32, v40, 0, 0)  # [1]
    v45 = jnp.arcsinh(v43)
    v46 = _contract(v24, v15, 1, 1)  # outer product over a size-1 axis, [4,4]
    v47 = lax.stop_gradient(v41)
    v48 = jax.nn.sigmoid(v45)  # the logistic primitive
    v49 = _contract(v29, v48, 0, 0)  # []
    v50 = _contract(v22, v21, 0, 0)  # []
    v51 = _contract(v44, v47, 0, 1)  # [1]
    v52 = _contract(v30, v33, 0, 0)  # [2,2]
    v53 = v46 * v50
    v54 = jnp.sqrt(v37)
    v55 = jnp.sqrt(jnp.abs(v51))
    v56 = v52 - v49
    v57 = jnp.cosh(v54)
    v58 = -v37
    v59 = jnp.reshape(v57, (4, 1)) + v53
    v60 = lax.square(v57)
    v61 = jnp.sin(v58)
    v62 = jnp.arctan(v59)
    v63 = jnp.sum(v62, axis=0)  # [4]
    v64 = jnp.min(v63)  # []
    v65 = v64 - v55
    v66 = jnp.sqrt(v2)
    v67 = jnp.sum(v56, axis=1)  # [2]
    v68 = jnp.reshape(v61, (4, 1)) - v66
    v69 = _contract(v60, v61, 0, 0)  # []
    v70 = _contract(v68, v62, 0, 0)  # [4,4]
    v71 = jnp.reshape(v22, (4, 1)) + v2
    v72 = jax.nn.sigmoid(v70)
    v73 = _contract(v72, v71, 0, 0)  # [4,4]
    v74 = v6 / jnp.reshape(v37, (1, 4))
    return v74, v65, v67, v69, v73


_F_V0 = [0.82719874, 0.22110593, 0.31378567, 0.45137227]
_F_V1 = [[0.91257095, 0.30071104, 0.06734681],
         [0.30281198, 0.7009131, 0.203884]]
_F_V2 = [[0.18141913, 0.20888603, 0.4412961, 0.82847726],
         [0.06732464, 0.81941974, 0.24752283, 0.664063],
         [0.16345179, 0.38735092, 0.21998715, 0.5920646],
         [0.04229701, 0.11998558, 0.547657, 0.2174437]]


def f_args():
    """The example input: uniform[0,1) draws with PRNGKey(250197) (legacy threefry), embedded literally.

    Quirk of the reference: the same un-split key for every input, so v4 is v0 reshaped to (4, 1).
    """
    v0 = jnp.asarray(_F_V0, jnp.float32)
    return v0, jnp.asarray(_F_V1, jnp.float32), jnp.asarray(_F_V2, jnp.float32), jnp.reshape(v0, (4, 1))


# ------------------------------------------------------------------------------------------------------ g
def g_single(v0, v1, v2, v3, v4, v5, v6, v7, v8, v9, v10, v11, v12, v13, v14):
    """Random function g for one example: fifteen (1,) inputs, twenty (1,) outputs; ``a ^ b`` is ``pow``."""
    v15 = jnp.ones(())
    v16 = jnp.ones(())
    pw, at2 = jnp.power, jnp.arctan2
    v17 = at2(v15, v3)
    v18 = pw(v15, v14)
    v19 = at2(v13, v17)
    v20 = pw(v17, v5)
    v21 = v9 - v8
    v22 = jnp.arctan(v10)
    v23 = v21 * v0
    v24 = v22 - v18
    v25 = pw(v24, v11)
    v26 = v21 + v12
    v27 = jnp.exp(v2)
    v28 = v21 + v26
    v29 = pw(v16, v17)
    v30 = jnp.sin(v3)
    v31 = v2 / v23
    v32 = at2(v24, v26)
    v33 = v29 - v25
    v34 = jnp.arctan(v33)
    v35 = v7 * v27
    v36 = jnp.tan(v13)
    v37 = v27 + v19
    v38 = v7 / v6
    v39 = v25 - v34
    v40 = v29 - v6
    v41 = pw(v35, v4)
    v42 = jnp.cos(v0)
    v43 = v40 - v19
    v44 = v41 / v7
    v45 = v40 - v8
    v46 = at2(v16, v43)
    v47 = v8 / v30
    v48 = pw(v37, v36)
    v49 = pw(v47, v44)
    v50 = at2(v45, v40)
    v51 = at2(v44, v13)
    v52 = v4 / v34
    v53 = at2(v41, v1)
    v54 = at2(v25, v53)
    v55 = v12 + v51
    v56 = pw(v3, v48)
    v57 = v24 - v32
    v58 = jnp.arctanh(v48)
    v59 = jnp.arctanh(v54)
    v60 = at2(v2, v26)
    v61 = v52 - v18
    v62 = jnp.cos(v38)
    v63 = v8 / v32
    v64 = at2(v42, v46)
    v65 = jnp.sinh(v36)
    v66 = v61 - v50
    v67 = pw(v13, v39)
    v68 = pw(v37, v26)
    v69 = v68 - v43
    v70 = jnp.log(v65)
    v71 = pw(v23, v58)
    v72 = at2(v50, v69)
    v73 = v20 / v72
    v74 = v41 * v56
    v75 = v39 * v33
    v76 = v61 * v15
    v77 = pw(v66, v64)
    v78 = at2(v53, v25)
    v79 = v59 - v60
    v80 = at2(v73, v41)
    v81 = v74 * v46
    v82 = lax.square(v5)
    v83 = at2(v28, v62)
    v84 = at2(v39, v9)
    v85 = v4 * v12
    v86 = v57 / v56
    v87 = at2(v61, v63)
    v88 = jnp.arcsinh(v14)
    v89 = pw(v86, v83)
    v90 = jnp.arcsin(v66)
    v91 = v70 - v79
    v92 = at2(v37, v65)
    v93 = v67 * v77
    v94 = pw(v87, v55)
    v95 = lax.square(v49)
    v96 = v92 / v94
    v97 = v15 + v95
    v98 = v91 / v76
    v99 = jnp.arctanh(v46)
    v100 = v75 * v45
    v101 = v100 / v28
    v102 = v90 + v29
    v103 = at2(v80, v84)
    v104 = v20 - v91
    v105 = v82 + v90
    v106 = v102 / v103
    v107 = pw(v75, v42)
    v108 = v68 * v62
    v109 = v102 / v1
    v110 = pw(v98, v101)
    v111 = -v100
    v112 = v31 / v89
    v113 = v105 / v108
    v114 = v22 - v70
    v115 = v106 * v44
    v116 = v107 - v81
    v117 = pw(v58, v115)
    v118 = v78 - v108
    v119 = jnp.tan(v87)
    v120 = pw(v87, v48)
    v121 = v105 + v38
    return (v121, v71, v85, v88, v93, v96, v97, v99, v104, v109, v110, v111, v112, v113, v114, v116, v117,
            v118, v119, v120)


# AlphaGrad differentiates the vmapped function (batch 1).
g = jax.vmap(g_single)


def g_args():
    """The example input with the batch axis: fifteen float32 arrays of shape (1, 1), all 0.15."""
    return tuple(jnp.full((1, 1), 0.15, jnp.float32) for _ in range(15))


# A point where g and its Jacobian are finite: chosen by hand so that every pow base is positive and every
# asin/atanh argument lies inside (-1, 1) (for example v10 > tan(1) makes v24 = atan(v10) - 1 positive).
_G_VALID = (0.5, 0.3, -2.0, 0.1, 0.5, 0.5, -0.5, 1.0, 1.2, 1.7, 5.0, 0.5, 1.0, 1.2, 0.5)


def g_valid_args():
    """An input of the same shapes as :func:`g_args` where g and its Jacobian have no NaN or inf."""
    return tuple(jnp.full((1, 1), v, jnp.float32) for v in _G_VALID)


# ------------------------------------------------------------------------------------------ random programs
UNARY = {
    "neg": lambda x: -x,
    "square": lax.square,
    "sqrt": jnp.sqrt,
    "exp": jnp.exp,
    "log": jnp.log,
    "sin": jnp.sin,
    "cos": jnp.cos,
    "tan": jnp.tan,
    "sinh": jnp.sinh,
    "cosh": jnp.cosh,
    "tanh": jnp.tanh,
    "asin": jnp.arcsin,
    "acos": jnp.arccos,
    "atan": jnp.arctan,
    "asinh": jnp.arcsinh,
    "atanh": jnp.arctanh,
    "logistic": jax.nn.sigmoid,
    "abs": jnp.abs,
}
BINARY = {
    "add": jnp.add,
    "sub": jnp.subtract,
    "mul": jnp.multiply,
    "div": jnp.divide,
    "pow": jnp.power,
    "atan2": jnp.arctan2,
}


def _local_check(name, operands, limit):
    """Value and local partials of one candidate operation at concrete float32 operands, or None if any is
    non-finite or larger than ``limit`` in magnitude."""
    op = UNARY.get(name) or BINARY[name]
    out = op(*operands)
    grads = jax.grad(lambda *a: op(*a)[0], argnums=tuple(range(len(operands))))(*operands)
    vals = np.concatenate([np.asarray(out).ravel()] + [np.asarray(d).ravel() for d in grads])
    if not np.all(np.isfinite(vals)) or np.max(np.abs(vals)) > limit:
        return None
    return out


def random_function(seed: int, n_inputs: int = 15, n_ops: int = 100, n_outputs: int = 20, *,
                    binary_fraction: float = 0.65, finite: bool = True, limit: float = 100.0):
    """A seeded random straight-line program of elementwise ops, in the style of f and g.

    Every input and every intermediate has shape (1,). Each step applies either a unary op (``UNARY``: neg,
    square, sqrt, exp, log, trigonometric, hyperbolic and inverse ones including asin/asinh/atanh, logistic,
    abs) or a binary op (``BINARY``: add, sub, mul, div, pow, atan2) to operands drawn uniformly from all
    values computed so far. The outputs are the values no later step uses (the last ``n_outputs`` of them),
    topped up with the latest other values when there are fewer.

    Args:
        seed: seeds ``numpy.random.default_rng``; the same seed gives the same program and inputs.
        n_inputs, n_ops, n_outputs: sizes of the program.
        binary_fraction: probability that a step is a binary op.
        finite: redraw a step whose value or local partials at the example input are non-finite or exceed
            ``limit`` in magnitude, so that the function and its Jacobian are finite at the example input.
        limit: see ``finite``.

    Returns:
        ``(fun, args)``: ``fun(*args)`` returns a tuple of ``n_outputs`` arrays of shape (1,); ``args`` are
        ``n_inputs`` float32 arrays of shape (1,) drawn uniformly from [0.1, 0.9). ``fun.program`` lists the
        steps as ``(op name, operand indices)`` (inputs are indices ``0 .. n_inputs-1``), ``fun.outputs`` the
        indices returned.

    Raises:
        ValueError: ``n_inputs``, ``n_ops`` or ``n_outputs`` below 1.
        RuntimeError: with ``finite``, fewer than ``n_ops`` acceptable steps within ``1000 * n_ops`` draws.
    """
    if n_inputs < 1 or n_ops < 1 or n_outputs < 1:
        raise ValueError("random_function needs n_inputs, n_ops and n_outputs >= 1")
    rng = np.random.default_rng(seed)
    args = tuple(jnp.asarray([v], jnp.float32) for v in rng.uniform(0.1, 0.9, n_inputs))
    values = list(args)
    unary, binary = sorted(UNARY), sorted(BINARY)
    program: list[tuple[str, tuple[int, ...]]] = []
    tries = 0
    while len(program) < n_ops:
        tries += 1
        if tries > 1000 * n_ops:
            raise RuntimeError(f"random_function({seed}): could not draw {n_ops} finite steps")
        n = len(values)
        if rng.random() < binary_fraction and n >= 2:
            name = binary[rng.integers(len(binary))]
            operands = tuple(int(k) for k in rng.choice(n, size=2, replace=False))
        else:
            name = unary[rng.integers(len(unary))]
            operands = (int(rng.integers(n)),)
        if finite:
            out = _local_check(name, [values[k] for k in operands], limit)
            if out is None:
                continue
        else:
            out = (UNARY.get(name) or BINARY[name])(*[values[k] for k in operands])
        program.append((name, operands))
        values.append(out)
    used = {k for _, ops in program for k in ops}
    produced = range(n_inputs, n_inputs + n_ops)
    outputs = [k for k in produced if k not in used][-n_outputs:]
    for k in reversed(produced):
        if len(outputs) >= n_outputs:
            break
        if k not in outputs:
            outputs.append(k)
    outputs = sorted(outputs)

    def fun(*xs):
        if len(xs) != n_inputs:
            raise TypeError(f"random function of seed {seed} takes {n_inputs} inputs, got {len(xs)}")
        vals = list(xs)
        for name, operands in program:
            vals.append((UNARY.get(name) or BINARY[name])(*[vals[k] for k in operands]))
        return tuple(vals[k] for k in outputs)

    fun.__name__ = fun.__qualname__ = f"random_function_{seed}"
    fun.program = tuple(program)
    fun.outputs = tuple(outputs)
    return fun, args
