"""Randomised ground truth for the online modes: random feed-forward step functions against BPTT.

A *program* is one small network drawn from a grammar by an integer seed (``numpy.random.RandomState``):

* drives (from params and the input ``x`` only, mixing neurons freely): matmuls in several spellings
  (``W @ x``, ``x @ W.T``, ``einsum``, ``dot_general``), low rank ``A @ (B @ x)``, a fused matrix split into
  pieces, a 1-D convolution of ``x`` with a kernel param (``jnp.convolve`` / ``conv_general_dilated``), pooling
  of a wider product (``reduce_window`` sum/max, reshape-mean), bias adds, elementwise nonlinearities,
  ``where`` / ``select`` / ``cond`` on data-dependent predicates, inner ``fori_loop`` / ``scan`` of 2-3 steps,
  normalisation across neurons (``standardize``, ``softmax``, division by the norm), slices, concatenations,
  reversal and rolls, sums and products of drives;
* state updates per neuron (neuron = first axis of every state leaf): leaky integration with a constant or
  learned decay, multiplicative gating, ``tanh`` mixtures, a synaptic-current leaf read (new value) by the
  membrane leaf, a two-compartment leaf ``(n, 2)`` mixed within each neuron by a 2x2 param, surrogate spikes
  (``jax.custom_jvp``, fast-sigmoid derivative) with subtractive or zero reset, detached or not, and an
  adaptation leaf reading the new spikes (or the new membrane);
* readout ``V @ f(new state)``, optionally plus the old state and ``x`` directly; mean-squared error.

Each step function is feed-forward: a neuron's new state depends only on its own old state, so ``diagonal``
and ``eprop`` must equal BPTT exactly. The grammar is guarded: every group asserts that the true
``H = d new_state / d state`` (``jax.jacrev``) is per-neuron block diagonal at two states, and one group per
suite is also checked in ``rtrl``. ``PROGRAMS_PER_GROUP`` programs share one step function (a dict of
sub-networks, each with its own params, state leaves, input and target), so one compilation checks many
programs; the loss is their sum, so each program's gradients are its own. A failure names the program, the
mode and the parameter leaf, and prints the program as pseudo-code with its construct tags. The default suite
draws 200 programs with mostly shallow drives; the slow suite 200 more with deeper drives (``deep=True``).
Nearly all the time goes to tracing and compiling the online modes (about 1 s of CPU per program and mode).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import plastix.online as po

PROGRAMS_PER_GROUP = 10
GROUPS = 20  # 200 programs in the default suite
SLOW_GROUPS = 20  # 200 more, marked slow
RTRL_GROUPS = (0,)  # groups also checked in "rtrl" (exact for any step: guards the harness)
C = 2  # outputs per program
MODES = ("diagonal", "eprop")
# XLA's LLVM optimisations cost more compile time than these tiny programs ever run (same arithmetic)
FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True,
                "xla_cpu_use_fusion_emitters": False}


def run_compiled(f, *args):
    return jax.jit(f).lower(*args).compile(FAST_COMPILE)(*args)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@jax.custom_jvp
def spike(v):
    return (v > 0).astype(v.dtype)


@spike.defjvp
def _spike_jvp(primals, tangents):
    (v,), (t,) = primals, tangents
    return spike(v), t / (1.0 + 4.0 * jnp.abs(v)) ** 2


# ----------------------------------------------------------------------------------------------------------------------
# the grammar


@dataclass
class Program:
    """One sub-network: ``step(P, S, x) -> (new S, out)`` with its params ``P`` and state ``S`` (dicts)."""

    seed: int
    n: int
    m: int
    params: dict = field(default_factory=dict)
    state: dict = field(default_factory=dict)
    lines: list = field(default_factory=list)
    tags: set = field(default_factory=set)
    step: object = None

    def __repr__(self) -> str:
        head = f"Program(seed={self.seed}, n={self.n}, m={self.m}, params=" + \
            ", ".join(f"{k}{list(np.shape(v))}" for k, v in self.params.items()) + ", state=" + \
            ", ".join(f"{k}{list(np.shape(v))}" for k, v in self.state.items()) + "):"
        return "\n".join([head] + [f"  {line}" for line in self.lines])


class Draw:
    """Draws one :class:`Program` from ``seed``; drives are ``(fn(P, x) -> (n,), text)`` pairs."""

    def __init__(self, seed: int, deep: bool = False):
        self.rng = np.random.RandomState(seed)
        self.deep = deep
        self.p = Program(seed, n=int(self.rng.randint(3, 6)), m=int(self.rng.randint(2, 5)))
        self.count = 0

    def choice(self, options, weights=None):
        if weights is not None:
            weights = np.asarray(weights, float) / np.sum(weights)
        return options[self.rng.choice(len(options), p=weights)]

    def param(self, prefix, shape, scale=None, offset=0.0):
        name = f"{prefix}{self.count}"
        self.count += 1
        scale = 1.0 / math.sqrt(shape[-1]) if scale is None else scale
        self.p.params[name] = offset + scale * self.rng.normal(size=shape)
        return name

    def tag(self, t):
        self.p.tags.add(t)

    # -------------------------------------------------------------------------------- leaf drives (x only)
    def input_of(self):
        kind = self.choice(["x", "x", "x", "tanh(x)", "x*x"])
        fn = {"x": lambda x: x, "tanh(x)": jnp.tanh, "x*x": lambda x: x * x}[kind]
        return fn, kind

    def leaf(self):
        n, m = self.p.n, self.p.m
        kind = self.choice(["matmul", "lowrank", "split", "conv", "pool", "bias"], [6, 1.5, 1.5, 1.5, 1.5, 0.7])
        self.tag(kind)
        fx, tx = self.input_of()
        if kind == "matmul":
            spelling = self.choice(["W @ x", "x @ W.T", "einsum", "dot_general", "x @ Wt"])
            self.tag(f"matmul:{spelling}")
            if spelling == "x @ Wt":
                w = self.param("Wt", (m, n), scale=1.0 / math.sqrt(m))
                return (lambda P, x: fx(x) @ P[w]), f"{tx} @ {w}"
            w = self.param("W", (n, m))
            fn = {"W @ x": lambda W, v: W @ v,
                  "x @ W.T": lambda W, v: v @ W.T,
                  "einsum": lambda W, v: jnp.einsum("ij,j->i", W, v),
                  "dot_general": lambda W, v: lax.dot_general(W, v, (((1,), (0,)), ((), ())))}[spelling]
            text = {"W @ x": f"{w} @ {tx}", "x @ W.T": f"{tx} @ {w}.T", "einsum": f"einsum('ij,j->i', {w}, {tx})",
                    "dot_general": f"dot_general({w}, {tx})"}[spelling]
            return (lambda P, x: fn(P[w], fx(x))), text
        if kind == "lowrank":
            r = int(self.rng.randint(1, 3))
            a, b = self.param("A", (n, r)), self.param("B", (r, m))
            return (lambda P, x: P[a] @ (P[b] @ fx(x))), f"{a} @ ({b} @ {tx})"
        if kind == "split":
            k = int(self.rng.randint(2, 4))
            w = self.param("Wf", (k * n, m))
            combine = self.choice(["gru", "sum", "max"])
            self.tag(f"split:{combine}")

            def fn(P, x):
                parts = jnp.split(P[w] @ fx(x), k)
                if combine == "gru":
                    out = parts[0] * jax.nn.sigmoid(parts[1])
                    return out + jnp.tanh(parts[2]) if k == 3 else out
                if combine == "sum":
                    return sum(parts[1:], parts[0])
                return jnp.maximum(parts[0], parts[-1])

            return fn, f"split({w} @ {tx}, {k}) -> {combine}"
        if kind == "conv":
            lo = max(1, n - m + 1)
            K = lo + int(self.rng.randint(0, 3))
            full = m + K - 1
            off = int(self.rng.randint(0, full - n + 1))
            kern = self.param("k", (K,), scale=0.8)
            spelling = self.choice(["convolve", "conv_general_dilated"])
            self.tag(f"conv:{spelling}")
            if spelling == "convolve":
                return (lambda P, x: jnp.convolve(fx(x), P[kern], mode="full")[off:off + n]), \
                    f"convolve({tx}, {kern}, 'full')[{off}:{off + n}]"

            def conv(P, x):
                y = lax.conv_general_dilated(fx(x)[None, None, :], P[kern][::-1][None, None, :], (1,),
                                             [(K - 1, K - 1)])
                return y[0, 0, off:off + n]

            return conv, f"conv_general_dilated({tx}, {kern}[::-1], pad {K - 1})[{off}:{off + n}]"
        if kind == "pool":
            q = int(self.rng.randint(2, 4))
            w = self.param("Wp", (n * q, m))
            how = self.choice(["reduce_window_sum", "reduce_window_max", "reshape_mean"])
            self.tag(f"pool:{how}")
            if how == "reduce_window_sum":
                fn = lambda y: lax.reduce_window(y, 0.0, lax.add, (q,), (q,), "VALID") / q
            elif how == "reduce_window_max":
                fn = lambda y: lax.reduce_window(y, -jnp.inf, lax.max, (q,), (q,), "VALID")
            else:
                fn = lambda y: y.reshape(n, q).mean(axis=1)
            return (lambda P, x: fn(P[w] @ fx(x))), f"{how}({w} @ {tx}, {q})"
        b = self.param("b", (n,), scale=0.5)
        return (lambda P, x: P[b] + 0.0 * jnp.sum(x)), f"{b}"

    # -------------------------------------------------------------------------------- composite drives
    def drive(self, depth):
        if depth <= 0:
            return self.leaf()
        n = self.p.n
        kind = self.choice(["unary", "bias", "add", "mul", "branch", "loop", "norm", "struct", "conv_same",
                            "leaf"], [3, 1.5, 1.5, 1.5, 1.5, 0.7, 1, 1.5, 0.5, 1])
        if kind == "leaf":
            return self.leaf()
        self.tag(kind)
        if kind == "unary":
            name = self.choice(["tanh", "sigmoid", "relu", "softplus", "exp_clip", "square"])
            self.tag(f"unary:{name}")
            f = {"tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid, "relu": jax.nn.relu, "softplus": jax.nn.softplus,
                 "exp_clip": lambda v: jnp.exp(jnp.clip(v, -3.0, 2.0)), "square": jnp.square}[name]
            d, t = self.drive(depth - 1)
            return (lambda P, x: f(d(P, x))), f"{name}({t})"
        if kind == "bias":
            d, t = self.drive(depth - 1)
            b = self.param("b", (n,), scale=0.5)
            return (lambda P, x: d(P, x) + P[b]), f"({t} + {b})"
        if kind in ("add", "mul"):
            (d1, t1), (d2, t2) = self.drive(depth - 1), self.drive(depth - 1)
            if kind == "add":
                return (lambda P, x: d1(P, x) + d2(P, x)), f"({t1} + {t2})"
            return (lambda P, x: d1(P, x) * d2(P, x)), f"({t1} * {t2})"
        if kind == "branch":
            how = self.choice(["where", "select", "cond"])
            self.tag(f"branch:{how}")
            (c, tc), (d1, t1), (d2, t2) = self.drive(depth - 1), self.drive(depth - 1), self.drive(depth - 1)
            if how == "where":
                return (lambda P, x: jnp.where(c(P, x) > 0, d1(P, x), d2(P, x))), f"where({tc} > 0, {t1}, {t2})"
            if how == "select":
                return (lambda P, x: lax.select(c(P, x) > 0, d1(P, x), jnp.tanh(d2(P, x)))), \
                    f"select({tc} > 0, {t1}, tanh({t2}))"
            on_x = bool(self.rng.randint(2))
            pred = (lambda P, x: jnp.sum(x) > 0) if on_x else (lambda P, x: jnp.sum(c(P, x)) > 0)
            tp = "sum(x) > 0" if on_x else f"sum({tc}) > 0"
            return (lambda P, x: lax.cond(pred(P, x), lambda a, b: jnp.tanh(a) + b, lambda a, b: a * b,
                                          d1(P, x), d2(P, x))), \
                f"cond({tp}, tanh({t1}) + {t2}, {t1} * {t2})"
        if kind == "loop":
            steps = int(self.rng.randint(2, 4))
            how = self.choice(["fori_loop", "scan"])
            self.tag(f"loop:{how}")
            d, t = self.drive(depth - 1)
            if how == "fori_loop":
                r = self.param("R", (n, n), scale=0.5 / math.sqrt(n))
                return (lambda P, x: lax.fori_loop(0, steps, lambda i, h: jnp.tanh(P[r] @ h) + d(P, x), d(P, x))), \
                    f"fori_loop({steps}, h -> tanh({r} @ h) + D, h0=D), D = {t}"
            ws = self.param("Ws", (steps, n), scale=0.7)

            def scan(P, x):
                base = d(P, x)
                h, _ = lax.scan(lambda h, w: (jnp.tanh(w * h + base) + 0.1 * jnp.sum(h), None), base, P[ws])
                return h

            return scan, f"scan over {ws}: h -> tanh(w * h + D) + 0.1 sum(h), h0=D, D = {t}"
        if kind == "norm":
            how = self.choice(["standardize", "softmax", "unit_norm"])
            self.tag(f"norm:{how}")
            d, t = self.drive(depth - 1)
            f = {"standardize": jax.nn.standardize, "softmax": jax.nn.softmax,
                 "unit_norm": lambda v: v / jnp.linalg.norm(v)}[how]
            return (lambda P, x: f(d(P, x))), f"{how}({t})"
        if kind == "struct":
            how = self.choice(["reverse", "roll", "concat_slices", "permute"])
            self.tag(f"struct:{how}")
            if how == "concat_slices":
                (d1, t1), (d2, t2) = self.drive(depth - 1), self.drive(depth - 1)
                k = int(self.rng.randint(1, n))
                return (lambda P, x: jnp.concatenate([d1(P, x)[:k], d2(P, x)[k:]])), f"concat({t1}[:{k}], {t2}[{k}:])"
            d, t = self.drive(depth - 1)
            if how == "reverse":
                return (lambda P, x: d(P, x)[::-1]), f"{t}[::-1]"
            if how == "roll":
                k = int(self.rng.randint(1, n))
                return (lambda P, x: jnp.roll(d(P, x), k)), f"roll({t}, {k})"
            perm = [int(k) for k in self.rng.permutation(n)]
            return (lambda P, x: d(P, x)[np.asarray(perm)]), f"{t}[{perm}]"
        # conv_same: a kernel sliding over a drive (mixes neighbouring neurons' drives)
        d, t = self.drive(depth - 1)
        kern = self.param("k", (3,), scale=0.8)
        return (lambda P, x: jnp.convolve(d(P, x), P[kern], mode="same")), f"convolve({t}, {kern}, 'same')"

    def top_drive(self, secondary=False):
        if secondary:  # a gate's or a second compartment's drive
            depths, weights = ((0, 1), (1, 1)) if self.deep else ((0, 1), (4, 1))
        else:
            depths, weights = ((1, 2, 3), (3, 4, 3)) if self.deep else ((1, 2, 3), (12, 7, 1))
        fn, text = self.drive(int(self.choice(depths, weights)))
        scale = float(self.choice([1.0, 1.5, 2.0]))
        return (lambda P, x: scale * fn(P, x)), (f"{scale} * {text}" if scale != 1.0 else text)

    # -------------------------------------------------------------------------------- the state update
    def decay(self, name, trailing=0):
        """A per-neuron decay: constant, learned per neuron or learned scalar (through a sigmoid); ``trailing``
        axes of size one are appended to a per-neuron decay (for a leaf with compartments)."""
        how = self.choice(["const", "per_neuron", "scalar"])
        self.tag(f"decay:{how}")
        if how == "const":
            a = float(self.rng.uniform(0.5, 0.95))
            return (lambda P: a), f"{a:.2f}"
        shape = (self.p.n,) if how == "per_neuron" else ()
        raw = self.param(name, shape, scale=0.5, offset=1.5)
        return (lambda P: jax.nn.sigmoid(P[raw])[(...,) + (None,) * trailing]), f"sigmoid({raw})"

    def program(self) -> Program:
        p, n, L = self.p, self.p.n, self.p.lines
        drive, tdrive = self.top_drive()
        L.append(f"d = {tdrive}")
        has_i = self.rng.rand() < 0.3
        has_c = self.rng.rand() < 0.25
        spiking = self.rng.rand() < 0.55
        has_b = self.rng.rand() < 0.3
        leaves = ["v"] + ["i"] * has_i + ["c"] * has_c + ["b"] * has_b
        p.state = {k: 0.5 * self.rng.normal(size=(n, 2) if k == "c" else (n,)) for k in leaves}

        if has_i:
            self.tag("leaf:current")
            ai, tai = self.decay("ai")
        if has_c:
            self.tag("leaf:compartment")
            A = self.param("A", (2, 2), scale=0.6)
            dc, tdc = self.decay("ac", trailing=1)
            mix = self.choice(["c @ A.T", "einsum", "(A @ c.T).T"])
            self.tag(f"compartment:{mix}")
            cdrive, tcd = self.top_drive(secondary=True)
            L.append(f"e = {tcd}")
        gate = self.choice(["leaky", "gated", "tanh_mix", "tanh_mul", "where"])
        self.tag(f"update:{gate}")
        av, tav = self.decay("av")
        if gate == "gated":
            gdrive, tgd = self.top_drive(secondary=True)
            L.append(f"g = {tgd}")
        if spiking:
            self.tag("spike")
            thr_kind = self.choice(["const", "param"])
            thr_param = self.param("thr", (n,), scale=0.2, offset=1.0) if thr_kind == "param" else None
            reset = self.choice(["subtract", "zero", "none"])
            detach = bool(self.rng.randint(2))
            self.tag(f"reset:{reset}" + (":detached" if detach and reset != "none" else ""))
        if has_b:
            self.tag("leaf:adaptation")
            rho, trho = self.decay("rho")
            beta = float(self.rng.uniform(0.2, 0.8))
        readout_f = self.choice(["id", "tanh", "sigmoid"])
        read_old, read_x = self.rng.rand() < 0.3, self.rng.rand() < 0.3
        if read_old:
            self.tag("readout:old_state")
        if read_x:
            self.tag("readout:x")
        hidden = n * (1 + has_i + 2 * has_c + has_b + spiking)
        V = self.param("V", (C, hidden))
        U = self.param("U", (C, n)) if read_old else None
        Q = self.param("Q", (C, p.m)) if read_x else None

        if has_i:
            L.append(f"i' = {tai} * i + d")
        u = "i'" if has_i else "d"
        if has_c:
            L.append(f"c' = {tdc} * ({mix} with A={A}) + stack([e, {u}], -1)")
            L.append(f"u = {u} + 0.5 * c'[:, 1]")
            u = "u"
        b_term = f" - {beta:.2f} * b" if has_b and not spiking else ""
        text = {"leaky": f"v' = {tav} * v + {u}{b_term}",
                "gated": f"v' = {tav} * v * sigmoid(g) + {u}{b_term}",
                "tanh_mix": f"v' = {tav} * tanh(v) + (1 - {tav}) * {u}{b_term}",
                "tanh_mul": f"v' = {tav} * v + 0.5 * tanh(v) * {u}{b_term}",
                "where": f"v' = where(v > 0, {tav} * v, 0.5 * {tav} * v) + {u}{b_term}"}[gate]
        L.append(text)
        if spiking:
            thr_text = ("1.0" if thr_param is None else thr_param) + (f" + {beta:.2f} * b" if has_b else "")
            L.append(f"z = spike(v' - ({thr_text}))")
            if reset != "none":
                zt = "stop_gradient(z)" if detach else "z"
                L.append(f"v' = v' - {zt} * ({thr_text})" if reset == "subtract" else f"v' = v' * (1 - {zt})")
        if has_b:
            L.append(f"b' = {trho} * b + {'z' if spiking else 'tanh(v)'}'  # reads the new value")
        parts = ["f(v')"] + ["i'"] * has_i + ["c'"] * has_c + ["b'"] * has_b + ["z"] * spiking
        L.append(f"out = {V} @ concat({', '.join(parts)}), f = {readout_f}" + (f" + {U} @ v" if read_old else "")
                 + (f" + {Q} @ x" if read_x else ""))

        f_out = {"id": lambda v: v, "tanh": jnp.tanh, "sigmoid": jax.nn.sigmoid}[readout_f]

        def step(P, S, x):
            new = {}
            d = drive(P, x)
            u = d
            if has_i:
                new["i"] = ai(P) * S["i"] + d
                u = new["i"]
            if has_c:
                A_ = P[A]
                c = S["c"]
                mixed = {"c @ A.T": lambda: c @ A_.T, "einsum": lambda: jnp.einsum("ij,nj->ni", A_, c),
                         "(A @ c.T).T": lambda: (A_ @ c.T).T}[mix]()
                new["c"] = dc(P) * mixed + jnp.stack([cdrive(P, x), u], axis=-1)
                u = u + 0.5 * new["c"][:, 1]
            v, a = S["v"], av(P)
            if has_b and not spiking:
                u = u - beta * S["b"]
            if gate == "leaky":
                v = a * v + u
            elif gate == "gated":
                v = a * v * jax.nn.sigmoid(gdrive(P, x)) + u
            elif gate == "tanh_mix":
                v = a * jnp.tanh(v) + (1 - a) * u
            elif gate == "tanh_mul":
                v = a * v + 0.5 * jnp.tanh(v) * u
            else:
                v = jnp.where(v > 0, a * v, 0.5 * a * v) + u
            z = None
            if spiking:
                thr = 1.0 if thr_param is None else P[thr_param]
                if has_b:
                    thr = thr + beta * S["b"]
                z = spike(v - thr)
                zr = lax.stop_gradient(z) if detach else z
                if reset == "subtract":
                    v = v - zr * thr
                elif reset == "zero":
                    v = v * (1 - zr)
            new["v"] = v
            if has_b:
                new["b"] = rho(P) * S["b"] + (z if spiking else jnp.tanh(v))
            hid = [f_out(v)] + ([new["i"]] if has_i else []) + ([new["c"].reshape(-1)] if has_c else [])
            hid += ([new["b"]] if has_b else []) + ([z] if spiking else [])
            out = P[V] @ jnp.concatenate(hid)
            if read_old:
                out = out + P[U] @ S["v"]
            if read_x:
                out = out + P[Q] @ x
            return {k: new[k] for k in S}, out

        p.step = step
        return p


def draw_program(seed: int, deep: bool = False) -> Program:
    return Draw(seed, deep).program()


# ----------------------------------------------------------------------------------------------------------------------
# groups of programs in one step function


def group_step(programs):
    def step(params, state, x):
        new, out = {}, {}
        for k, prog in enumerate(programs):
            new[f"p{k}"], out[f"p{k}"] = prog.step(params[f"p{k}"], state[f"p{k}"], x[f"p{k}"])
        return new, out

    return step


def mse(out, target):
    return sum(jnp.mean((out[k] - target[k]) ** 2) for k in sorted(out))


def group_data(programs, seed):
    rng = np.random.RandomState(10_000 + seed)
    T = int(rng.randint(6, 11))
    params = {f"p{k}": {n: jnp.asarray(v) for n, v in p.params.items()} for k, p in enumerate(programs)}
    state0 = {f"p{k}": {n: jnp.asarray(v) for n, v in p.state.items()} for k, p in enumerate(programs)}
    xs = {f"p{k}": jnp.asarray(rng.normal(size=(T, p.m))) for k, p in enumerate(programs)}
    targets = {f"p{k}": jnp.asarray(rng.normal(size=(T, C))) for k, p in enumerate(programs)}
    return params, state0, xs, targets


def assert_feedforward(step, programs, params, state0, xs):
    """The grammar's promise: ``H = d new_state / d state`` is per-neuron block diagonal (at two states)."""

    rng = np.random.RandomState(len(programs))
    shaken = jax.tree.map(lambda v: v + rng.normal(size=v.shape), state0)
    states = jax.tree.map(lambda a, b: jnp.stack([a, b]), state0, shaken)
    jac = run_compiled(jax.vmap(jax.jacrev(lambda s, x: step(params, s, x)[0])), states,
                       jax.tree.map(lambda v: v[:2], xs))
    for ka, prog in enumerate(programs):
        n = prog.n
        for kb in range(len(programs)):
            for la, blocks in jac[f"p{ka}"].items():
                for lb, h in blocks[f"p{kb}"].items():
                    nb = programs[kb].n
                    h = np.asarray(h).reshape(h.shape[0], n, 2 if la == "c" else 1, nb, 2 if lb == "c" else 1)
                    if ka != kb:
                        assert not np.any(h), f"program {prog.seed} state {la} depends on program {programs[kb].seed}"
                        continue
                    off = h * (1 - np.eye(n))[None, :, None, :, None]
                    assert not np.any(off), (f"grammar produced a recurrent step: d{la}'/d{lb} couples neurons "
                                             f"in\n{prog!r}")


def check_group(group: int, modes=MODES, deep=False):
    seeds = range(group * PROGRAMS_PER_GROUP, (group + 1) * PROGRAMS_PER_GROUP)
    programs = [draw_program(s, deep) for s in seeds]
    step = group_step(programs)
    params, state0, xs, targets = group_data(programs, group)
    assert_feedforward(step, programs, params, state0, xs)
    ref_loss, ref = run_compiled(po.value_and_grad(step, mse, "bptt"), params, state0, xs, targets)
    failures = []
    for mode in modes:
        try:
            loss, grads = run_compiled(po.value_and_grad(step, mse, mode), params, state0, xs, targets)
        except Exception:  # find the programs that raise, one by one, and check the others alone
            loss, grads = None, None
            for k, prog in enumerate(programs):
                one = lambda tree: {"p0": tree[f"p{k}"]}  # noqa: B023
                try:
                    _, g = run_compiled(po.value_and_grad(group_step([prog]), mse, mode), one(params), one(state0),
                                        one(xs), one(targets))
                    failures += compare(prog, mode, g["p0"], ref[f"p{k}"])
                except Exception as e:
                    failures.append((prog, f"{mode}: raises {type(e).__name__}: {str(e).splitlines()[0][:200]}"))
        if loss is not None:
            if not np.isclose(loss, ref_loss, rtol=1e-10, atol=0):
                failures.append((None, f"{mode}: group {group} total loss {float(loss)!r} != BPTT {float(ref_loss)!r}"))
            for k, prog in enumerate(programs):
                failures += compare(prog, mode, grads[f"p{k}"], ref[f"p{k}"])
    if failures:
        lines = [msg if prog is None else f"program {prog.seed} {msg}" for prog, msg in failures]
        shown = {prog.seed: prog for prog, _ in failures if prog is not None}
        pytest.fail(f"{len(shown)} of {len(programs)} programs differ from BPTT:\n" + "\n".join(lines) + "\n\n"
                    + "\n\n".join(f"{p!r}\n  tags: {sorted(p.tags)}" for p in shown.values()), pytrace=False)


def compare(prog, mode, got, ref):
    out = []
    for name in ref:
        g, r = np.asarray(got[name]), np.asarray(ref[name])
        if g.shape != r.shape or not np.allclose(g, r, atol=1e-6, rtol=1e-6):
            err = np.max(np.abs(g - r)) if g.shape == r.shape else f"shape {g.shape} vs {r.shape}"
            out.append((prog, f"{mode}: d/d{name}{list(r.shape)} max |err| {err:.3g} (max |ref| "
                              f"{np.max(np.abs(r)):.3g})"))
    return out


# ----------------------------------------------------------------------------------------------------------------------
# the tests


def test_grammar_draws_every_construct():
    """The default groups cover the grammar: every construct appears in at least one program."""
    tags = set().union(*(draw_program(s).tags for s in range(GROUPS * PROGRAMS_PER_GROUP)))
    expected = {"matmul:W @ x", "matmul:x @ W.T", "matmul:einsum", "matmul:dot_general", "matmul:x @ Wt",
                "lowrank", "split:gru", "split:sum", "split:max", "conv:convolve", "conv:conv_general_dilated",
                "pool:reduce_window_sum", "pool:reduce_window_max", "pool:reshape_mean", "bias",
                "unary:tanh", "unary:sigmoid", "unary:relu", "unary:softplus", "unary:exp_clip", "unary:square",
                "branch:where", "branch:select", "branch:cond", "loop:fori_loop", "loop:scan",
                "norm:standardize", "norm:softmax", "norm:unit_norm", "struct:reverse", "struct:roll",
                "struct:concat_slices", "struct:permute", "conv_same", "add", "mul",
                "decay:const", "decay:per_neuron", "decay:scalar", "leaf:current", "leaf:compartment",
                "leaf:adaptation", "compartment:c @ A.T", "compartment:einsum", "compartment:(A @ c.T).T",
                "update:leaky", "update:gated", "update:tanh_mix", "update:tanh_mul", "update:where", "spike",
                "reset:subtract", "reset:zero", "reset:none", "reset:subtract:detached", "reset:zero:detached",
                "readout:old_state", "readout:x"}
    assert not expected - tags, sorted(expected - tags)


@pytest.mark.parametrize("group", RTRL_GROUPS)
def test_random_steps_rtrl_is_exact(group):
    check_group(group, modes=("rtrl",))


@pytest.mark.parametrize("group", range(GROUPS))
def test_random_feedforward_steps_are_exact(group):
    check_group(group)


@pytest.mark.slow  # 200 more programs, with deeper drives
@pytest.mark.parametrize("group", range(GROUPS, GROUPS + SLOW_GROUPS))
def test_random_feedforward_steps_are_exact_second_batch(group):
    check_group(group, deep=True)


@pytest.mark.slow
def test_random_deep_steps_rtrl_is_exact():
    check_group(GROUPS, modes=("rtrl",), deep=True)
