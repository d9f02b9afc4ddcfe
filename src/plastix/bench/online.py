"""Online learning benchmark: time and memory of one training step, plastix vs BPTT vs BrainTrace.

Run ``plastix bench online`` or ``python -m plastix.bench.online`` (same options). The network is the one of
REFERENCE.md's BrainTrace measurement: 700 Bernoulli(0.05) input channels, ``n`` LIF neurons (β = 0.9,
threshold 1, subtractive detached reset, fast-sigmoid surrogate of slope 25), a linear readout to 20 classes,
softmax cross-entropy against the label at every step. ``network="recurrent"`` (default) adds recurrent
weights; its state is one membrane potential per neuron, exactly BrainTrace's model (:func:`step`);
``network="feedforward"`` has no recurrent weights (there ``diagonal`` is exact).
One *training step* (an *update*) is one gradient of ``sum_t mean_b CE`` over the whole sequence of ``T`` steps
for a batch (default 32): that is timed, and also reported per time step.

Methods: ``bptt`` (``jax.value_and_grad`` through ``lax.scan``), ``diagonal`` and ``eprop`` (plastix's online
traces, :func:`plastix.online.value_and_grad` with ``batched=True``, the whole input sequence in memory),
``diagonal-stream`` and ``eprop-stream`` (the same rules fed in segments of at most 512 steps by
:class:`plastix.online.Stream`, each segment's input spikes drawn on the device when it runs: nothing of length
``T`` exists, see :func:`stream_update`) and BrainTrace's ``D_RTRL`` and ``ES_D_RTRL`` (``braintrace-d_rtrl``,
``braintrace-es_d_rtrl``; optional package ``braintrace==0.2.6``, ``pip install 'plastix[bench]'``; see
:mod:`plastix.bench._braintrace`).

Every (method, n, T) runs in a fresh process (this module with the hidden ``--single`` option, which prints
one JSON line), so that peak memory is the configuration's own: the child's peak resident set size (VmHWM;
it includes the Python/JAX baseline, reported as ``baseline_rss_mb``, and the inputs, stored as uint8,
``input_mb``) and XLA's temporary buffers of the compiled update (``memory_analysis().temp_size_in_bytes``,
which excludes arguments and outputs: BrainTrace keeps its traces in brainstate states, which enter and leave
the compiled update as arguments and outputs, so for it see also ``xla_argument_mb`` and ``xla_output_mb``).

Time: the first call (trace + compile + run) is not counted; then up to ``repeats`` calls, stopping early once
``time_budget`` seconds are spent (at least one), and the median is reported (for plastix, whose compilation
is separate, a first run longer than ``time_budget`` is the sample). A child past ``timeout`` seconds is
killed and reported as ``timeout``. BrainTrace D_RTRL at n >= 512 and T >= 1000 is skipped unless
``include_hopeless`` (``--all``): REFERENCE.md measured 8.5 s per update at n=512, T=100 and gave up after
90 s at T=1000.

The gradient check (``--cosine``, on by default) runs one more child at the smallest (n, T): every method's
gradient of W_in and W_rec for the same weights and data, as cosine similarity to BPTT's, plus the loss of
each method (all see the same forward pass) and the network's spike rate (a silent network would make the
comparison vacuous). W_rec's scale (:data:`REC_GAIN`) keeps BPTT's gradient from exploding, which would make
every online estimate orthogonal to it; time and memory do not depend on it.
"""

from __future__ import annotations

import json
import math
import os
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated

import numpy as np
import typer

from ._cli import int_list, run_command
from ._io import write_json

__all__ = ["BRAINTRACE_METHODS", "DEFAULT_METHODS", "METHODS", "NETWORKS", "PLASTIX_METHODS", "REC_GAIN",
           "STREAM_METHODS", "command", "cosine_check", "format_cosine", "format_ratios", "format_table", "hopeless",
           "main", "measure", "plot", "ratios", "run", "run_child", "spike_source", "stream_update", "write_json"]

PLASTIX_METHODS = ("bptt", "diagonal", "eprop")
STREAM_METHODS = ("diagonal-stream", "eprop-stream")
BRAINTRACE_METHODS = ("braintrace-d_rtrl", "braintrace-es_d_rtrl")
METHODS = PLASTIX_METHODS + STREAM_METHODS + BRAINTRACE_METHODS
DEFAULT_METHODS = ("bptt", "diagonal", "eprop", "diagonal-stream", *BRAINTRACE_METHODS)
NETWORKS = ("recurrent", "feedforward")
ROW_KEYS = ("network", "method", "n", "steps", "seconds_per_update", "seconds_per_step", "peak_rss_mb", "xla_temp_mb",
            "status")

N_IN, N_OUT, INPUT_RATE = 700, 20, 0.05
BETA, THRESHOLD, SURROGATE, SLOPE = 0.9, 1.0, "fast_sigmoid", 25.0
INPUT_GAIN = 3.0  # W_in ~ N(0, (3 / sqrt(700))²): about 9 % of the neurons spike per step (see the cosine check)
# W_rec ~ N(0, (0.25 / sqrt(n))²). With gain 1 the surrogate (peak slope/2 = 12.5) times the recurrence makes the
# BPTT gradient explode (norm ~1e8-1e9 at n=128, T=100) and any online estimate is then orthogonal to it (cosine
# ~0.05); at 0.25 BPTT's gradient is of the size of the online ones and the comparison means something. Time and
# memory do not depend on this scale.
REC_GAIN = 0.25
MB = 1024.0 * 1024.0


# ---------------------------------------------------------------------------------------------------------------
# The network, the data and one training step (run inside a child process)


def check_network(network: str) -> None:
    if network not in NETWORKS:
        raise ValueError(f"unknown network {network!r}; expected one of {', '.join(NETWORKS)}")


def init_params(n: int, seed: int = 0, network: str = "recurrent") -> dict[str, np.ndarray]:
    """``{"W": (n, 700), "R": (n, n), "Wo": (20, n)}`` (no ``"R"`` for the feed-forward network), float32,
    Gaussian with ``1/sqrt(fan_in)`` scales."""
    check_network(network)
    rng = np.random.default_rng(seed)
    params = {"W": (INPUT_GAIN / math.sqrt(N_IN) * rng.standard_normal((n, N_IN))).astype(np.float32),
              "R": (REC_GAIN / math.sqrt(n) * rng.standard_normal((n, n))).astype(np.float32),
              "Wo": (1.0 / math.sqrt(n) * rng.standard_normal((N_OUT, n))).astype(np.float32)}
    if network == "feedforward":
        del params["R"]
    return params


def make_data(steps: int, batch: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Time-major Bernoulli(0.05) input spikes ``(T, batch, 700)`` as uint8, and labels ``(T, batch)``."""
    rng = np.random.default_rng(seed + 1)
    label = rng.integers(0, N_OUT, batch)
    xs = np.empty((steps, batch, N_IN), np.uint8)
    for t in range(0, steps, 64):  # in chunks: a float32 temporary of the whole sequence would dominate peak RSS
        xs[t:t + 64] = rng.random((min(64, steps - t), batch, N_IN), dtype=np.float32) < INPUT_RATE
    return xs, np.broadcast_to(label, (steps, batch)).astype(np.int32).copy()


def _spike():
    from plastix.neurons import make_spike

    return make_spike(SURROGATE, SLOPE)


def step(params, v, x, *, spike_fn=None):
    """One time step for :mod:`plastix.online` (one example); the state is the membrane ``v`` before the reset.

    The previous step's spikes and reset are recomputed from ``v``: ``z = spike(v - θ)``;
    ``v' = β (v - θ·stop_gradient(z)) + W x [+ R z]``; output ``Wo · spike(v' - θ)`` (``R`` only in the
    recurrent network). One state variable per neuron: e-prop's traces are then the filtered inputs alone.
    """
    from jax import lax

    spike_fn = spike_fn or _spike()
    z = spike_fn(v - THRESHOLD)
    drive = params["W"] @ x.astype(params["W"].dtype)
    if "R" in params:
        drive = drive + params["R"] @ z
    v = BETA * (v - THRESHOLD * lax.stop_gradient(z)) + drive
    return v, params["Wo"] @ spike_fn(v - THRESHOLD)


def loss(out, target):
    """Softmax cross-entropy of one step's logits against the label."""
    import jax

    return -jax.nn.log_softmax(out)[target]


def plastix_update(method: str, n: int, batch: int) -> Callable:
    """``f(params, xs, ys) -> (loss, grads)`` (not jitted): batch-mean loss and gradients over the sequence."""
    import jax
    import jax.numpy as jnp

    import plastix.online

    spike_fn = _spike()
    one = lambda p, s, x: step(p, s, x, spike_fn=spike_fn)
    vg = plastix.online.value_and_grad(one, loss, method, batched=True)

    def update(params, xs, ys):
        total, grads = vg(params, jnp.zeros((batch, n), jnp.float32), xs, ys)
        return total / batch, jax.tree.map(lambda g: g / batch, grads)

    return update


def spike_source(seed: int, first_step, shape: tuple[int, ...]):
    """Bernoulli(0.05) spikes ``(steps, batch, 700)`` as uint8 for the steps from ``first_step`` on, drawn on the
    device from a counter-based hash (the murmur3 finaliser of each spike's index in the sequence, mixed with the
    seed): about 3 ms per 125 x 32 x 700 spikes on 2 CPU cores, where ``jax.random.bernoulli`` takes ~95 ms, so a
    stream's input costs little next to its update. Counters wrap at 2**32 spikes (T = 190 000 at batch 32)."""
    import jax.numpy as jnp
    from jax import lax

    per_step = math.prod(shape[1:])
    index = lax.iota(jnp.uint32, math.prod(shape)).reshape(shape) + jnp.asarray(first_step, jnp.uint32) * per_step
    h = index ^ jnp.uint32((0x9E3779B9 * (seed + 1)) & 0xFFFFFFFF)
    h = (h ^ (h >> 16)) * jnp.uint32(0x85EBCA6B)
    h = (h ^ (h >> 13)) * jnp.uint32(0xC2B2AE35)
    h = h ^ (h >> 16)
    return (h < jnp.uint32(round(INPUT_RATE * 2**32))).astype(jnp.uint8)


def stream_update(method: str, n: int, batch: int, steps: int, seed: int = 0, chunk: int = 128,
                  segment_steps: int = 4 * 128):
    """``(f(params) -> (loss, grads), memory(params))`` for a ``*-stream`` method: the sequence fed in segments.

    :class:`plastix.online.Stream` runs ``ceil(T / segment_steps)`` equal segments (each cut into chunks of at
    most ``chunk`` steps); each segment's input spikes are drawn on the device when it runs (:func:`spike_source`)
    and the carry is donated, so nothing of length ``T`` exists at any time: the point of an online rule. A
    segment of several chunks amortises what every call costs: XLA's temporary buffers are fresh pages at each
    call (one-chunk segments fault in ~6x more pages than one call over the whole sequence and were 20-30 %
    slower). ``memory(params)`` is XLA's memory analysis of the compiled segment (the traces enter and leave it as
    its arguments and outputs).
    """
    import jax
    import jax.numpy as jnp

    import plastix.online

    mode = method.removesuffix("-stream")
    spike_fn = _spike()
    one = lambda p, s, x: step(p, s, x, spike_fn=spike_fn)
    stream = plastix.online.Stream(one, loss, mode, batched=True, chunk=chunk)
    count = -(-steps // segment_steps)
    size = -(-steps // count)
    lengths = [size] * (steps // size) + ([steps % size] if steps % size else [])
    labels = jnp.asarray(np.random.default_rng(seed + 1).integers(0, N_OUT, batch), jnp.int32)
    state0 = jnp.zeros((batch, n), jnp.float32)

    def draw(k, length):
        return spike_source(seed, k * size, (length, batch, N_IN)), jnp.broadcast_to(labels, (length, batch))

    def segment(params, carry, k, length):
        return stream.update(params, carry, *draw(k, length))

    segment = jax.jit(segment, static_argnums=3, donate_argnums=1)
    first = jax.tree.map(lambda v: v[0], draw(0, 1))

    def update(params):
        carry = stream.init(params, state0, *first)
        for k, length in enumerate(lengths):
            carry = segment(params, carry, k, length)
        return carry.total / batch, jax.tree.map(lambda g: g / batch, carry.grads)

    def segment_memory(params):
        carry = stream.init(params, state0, *first)
        return segment.lower(params, carry, 0, lengths[0]).compile().memory_analysis()

    return update, segment_memory


def _peak_rss_mb() -> float:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return peak / (MB if sys.platform == "darwin" else 1024.0)


def _time_calls(fn: Callable, repeats: int, time_budget: float, first: float | None = None) -> tuple[float, int]:
    """Median seconds of up to ``repeats`` calls, stopping once ``time_budget`` is spent (at least one call).

    ``first``: the time of an earlier call that ran already-compiled code; when it alone exceeds the budget it is
    the one sample (a run of minutes is not repeated only to be timed again).
    """
    import jax

    if first is not None and first >= time_budget:
        return first, 1
    times: list[float] = []
    while len(times) < max(1, repeats):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - start)
        if sum(times) >= time_budget:
            break
    return float(np.median(times)), len(times)


def measure(method: str, n: int, steps: int, batch: int = 32, *, repeats: int = 5, time_budget: float = 20.0,
            seed: int = 0, network: str = "recurrent") -> dict:
    """Time and memory of one configuration, measured in *this* process (the child's job).

    Args:
        method: one of :data:`METHODS` (plastix ``"bptt"``/``"diagonal"``/``"eprop"`` or a BrainTrace method).
        n: number of LIF neurons.
        steps: sequence length ``T``.
        batch: batch size.
        repeats: at most this many timed calls after the first (compiling) one.
        time_budget: stop timing once this many seconds of calls are spent (at least one call).
        seed: seed of the parameters and the input spikes.
        network: ``"recurrent"`` or ``"feedforward"`` (see :data:`NETWORKS`).

    Returns:
        A row dict with the keys of :data:`ROW_KEYS` (``status`` ``"ok"``) plus ``batch``, ``first_call_s``,
        ``timed_calls``, ``baseline_rss_mb``, ``input_mb``, ``xla_argument_mb``, ``xla_output_mb`` and
        ``loss``; times in seconds (median over the timed calls), memory in MiB.

    Raises:
        ValueError: unknown ``method`` or ``network``.
        ImportError: a BrainTrace method without ``braintrace`` installed.
    """
    import jax
    import jax.numpy as jnp

    baseline = _peak_rss_mb()
    params = {k: jnp.asarray(v) for k, v in init_params(n, seed, network).items()}
    input_mb = 0.0  # a stream draws each segment's inputs when it runs (see stream_update)
    if method not in STREAM_METHODS:
        xs_np, ys_np = make_data(steps, batch, seed)
        xs, ys = jnp.asarray(xs_np), jnp.asarray(ys_np)
        input_mb = (xs_np.nbytes + ys_np.nbytes) / MB
        del xs_np, ys_np
    start = time.perf_counter()
    if method in PLASTIX_METHODS:
        compiled = jax.jit(plastix_update(method, n, batch)).lower(params, xs, ys).compile()
        analysis = compiled.memory_analysis()
        run_start = time.perf_counter()
        value = jax.block_until_ready(compiled(params, xs, ys))[0]
        first = time.perf_counter() - start
        median, calls = _time_calls(lambda: compiled(params, xs, ys), repeats, time_budget,
                                    first=time.perf_counter() - run_start)
        peak = _peak_rss_mb()
    elif method in STREAM_METHODS:
        update, segment_memory = stream_update(method, n, batch, steps, seed)
        value = jax.block_until_ready(update(params))[0]
        first = time.perf_counter() - start
        median, calls = _time_calls(lambda: update(params), repeats, time_budget)
        peak = _peak_rss_mb()
        analysis = segment_memory(params)
    elif method in BRAINTRACE_METHODS:
        from . import _braintrace

        update = _braintrace.make_update(method, params, batch, xs[0], beta=BETA, threshold=THRESHOLD,
                                         spike_fn=_spike())
        value = jax.block_until_ready(update(xs, ys))[1]
        first = time.perf_counter() - start
        median, calls = _time_calls(lambda: update(xs, ys), repeats, time_budget)
        peak = _peak_rss_mb()  # before the second compilation below, which is only for XLA's memory analysis
        analysis = update.compile(xs, ys).memory_analysis()
    else:
        raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")
    return {"network": network, "method": method, "n": n, "steps": steps, "batch": batch, "seconds_per_update": median,
            "seconds_per_step": median / steps, "peak_rss_mb": peak,
            "xla_temp_mb": analysis.temp_size_in_bytes / MB, "status": "ok", "first_call_s": first,
            "timed_calls": calls, "baseline_rss_mb": baseline, "input_mb": input_mb,
            "xla_argument_mb": analysis.argument_size_in_bytes / MB,
            "xla_output_mb": analysis.output_size_in_bytes / MB, "loss": float(value)}


def _cosine(a, b) -> float:
    a, b = np.ravel(np.asarray(a, np.float64)), np.ravel(np.asarray(b, np.float64))
    den = np.linalg.norm(a) * np.linalg.norm(b)
    return float(a @ b / den) if den > 0 else float("nan")


def cosine_check(methods: Sequence[str], n: int, steps: int, batch: int = 32, *, seed: int = 0,
                 network: str = "recurrent") -> dict:
    """Cosine similarity to BPTT of each method's W_in and W_rec gradients (same weights and data), in-process.

    Returns ``{"n", "steps", "batch", "spike_rate", "methods": {method: {"cos_w_in", "cos_w_rec", "loss",
    "status"}}}``; ``bptt`` itself is the reference (cosine 1).
    """
    import jax
    import jax.numpy as jnp

    params = {k: jnp.asarray(v) for k, v in init_params(n, seed, network).items()}
    xs_np, ys_np = make_data(steps, batch, seed)
    xs, ys = jnp.asarray(xs_np), jnp.asarray(ys_np)
    spike_fn = _spike()

    def rate(params, xs):
        def body(v, x):
            v, _ = jax.vmap(lambda v, x: step(params, v, x, spike_fn=spike_fn))(v, x)
            return v, jnp.mean(spike_fn(v - THRESHOLD))

        _, r = jax.lax.scan(body, jnp.zeros((batch, n), jnp.float32), xs)
        return jnp.mean(r)

    ref_loss, ref = jax.jit(plastix_update("bptt", n, batch))(params, xs, ys)
    cos_rec = (lambda g: _cosine(g["R"], ref["R"])) if "R" in params else (lambda g: None)
    out = {"network": network, "n": n, "steps": steps, "batch": batch, "spike_rate": float(jax.jit(rate)(params, xs)),
           "bptt_norm_w_in": float(np.linalg.norm(ref["W"])), "methods": {}}
    found = {}
    for method in methods:
        try:
            if method in PLASTIX_METHODS:
                value, grads = jax.jit(plastix_update(method, n, batch))(params, xs, ys)
            else:
                from . import _braintrace

                update = _braintrace.make_update(method, params, batch, xs[0], beta=BETA, threshold=THRESHOLD,
                                                 spike_fn=spike_fn)
                raw, value = update(xs, ys)
                grads = _braintrace.to_plastix_grads(raw)
            found[method] = grads
            out["methods"][method] = {"cos_w_in": _cosine(grads["W"], ref["W"]),
                                      "cos_w_rec": cos_rec(grads),
                                      "cos_w_out": _cosine(grads["Wo"], ref["Wo"]),
                                      "norm_w_in": float(np.linalg.norm(grads["W"])), "loss": float(value),
                                      "bptt_loss": float(ref_loss), "status": "ok"}
        except Exception as e:  # one method failing must not hide the others
            out["methods"][method] = {"status": _one_line(f"error: {type(e).__name__}: {e}")}
    if "diagonal" in found and "braintrace-d_rtrl" in found:  # two implementations of the same D-RTRL rule
        a, b = found["braintrace-d_rtrl"], found["diagonal"]
        out["braintrace_d_rtrl_vs_diagonal"] = {"cos_w_in": _cosine(a["W"], b["W"]),
                                                "cos_w_rec": _cosine(a["R"], b["R"]) if "R" in a else None}
    return out


# ---------------------------------------------------------------------------------------------------------------
# The parent: one child process per configuration


def hopeless(method: str, n: int, steps: int) -> bool:
    """Configurations skipped by default: BrainTrace D_RTRL at n >= 512 and T >= 1000 (REFERENCE.md).

    Args:
        method: a method name (see :data:`METHODS`).
        n: number of neurons.
        steps: sequence length ``T``.

    Returns:
        ``True`` when :func:`run` skips the configuration unless ``include_hopeless`` is set.
    """
    return method == "braintrace-d_rtrl" and n >= 512 and steps >= 1000


def _one_line(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _child_env() -> dict:
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])  # so a separate interpreter (e.g. a braintrace venv) finds plastix
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def run_child(job: dict, *, timeout: float, python: str | None = None) -> dict:
    """Run ``job`` in a fresh process (``python -m plastix.bench.online --single JOB``).

    Args:
        job: ``{"kind": "measure", ...}`` with the arguments of :func:`measure`, or ``{"kind": "cosine", ...}``
            with those of :func:`cosine_check`.
        timeout: seconds before the child is killed.
        python: interpreter to run the child with (default: this one), e.g. a separate BrainTrace venv.

    Returns:
        The child's JSON result (the last stdout line starting with ``{``), ``{"status": "timeout"}``, or
        ``{"status": "error (exit N): <last line of stderr>"}``. Never raises for a failing child.
    """
    cmd = [python or sys.executable, "-m", "plastix.bench.online", "--single", json.dumps(job)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=_child_env())
    except subprocess.TimeoutExpired:
        return {"status": "timeout"}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    lines = [ln for ln in (proc.stderr or proc.stdout).splitlines() if ln.strip()]
    return {"status": _one_line(f"error (exit {proc.returncode}): {lines[-1] if lines else 'no output'}")}


def _row(method: str, n: int, steps: int, batch: int, status: str) -> dict:
    return {"method": method, "n": n, "steps": steps, "batch": batch, "seconds_per_update": None,
            "seconds_per_step": None, "peak_rss_mb": None, "xla_temp_mb": None, "status": status}


def _braintrace_missing(python: str | None) -> str | None:
    if python:
        return None  # another interpreter: let its child say so
    import importlib.util

    if importlib.util.find_spec("braintrace") is None:
        return "unavailable: braintrace not installed (pip install 'plastix[bench]')"
    return None


def _fmt_row(r: dict) -> str:
    if r["status"] != "ok":
        return f"{r['method']:>22}  n={r['n']:<5} T={r['steps']:<6} {r['status']}"
    return (f"{r['method']:>22}  n={r['n']:<5} T={r['steps']:<6} {r['seconds_per_update']:9.4g} s/update "
            f"{1e3 * r['seconds_per_step']:8.3g} ms/step  peak RSS {r['peak_rss_mb']:7.0f} MB  "
            f"XLA temp {r['xla_temp_mb']:8.1f} MB  (first call {r['first_call_s']:.1f} s, {r['timed_calls']} timed)")


def run(sizes: Sequence[int] = (128, 512), steps: Sequence[int] = (100, 1000, 4000),
        methods: Sequence[str] = DEFAULT_METHODS, *, batch: int = 32, timeout: float = 300.0, repeats: int = 5,
        time_budget: float = 20.0, include_hopeless: bool = False, cosine: bool = True, network: str = "recurrent",
        braintrace_python: str | None = None, echo: Callable[[str], None] = print) -> list[dict]:
    """Measure every (method, n, T) in its own process; returns the rows (see :data:`ROW_KEYS`).

    With ``cosine``, the rows of the smallest (n, T) also carry ``cos_w_in``, ``cos_w_rec`` (to BPTT) and
    ``spike_rate`` from :func:`cosine_check`, run in one more child.

    Args:
        sizes: numbers of neurons ``n``.
        steps: sequence lengths ``T``.
        methods: methods to measure (a subset of :data:`METHODS`).
        batch: batch size.
        timeout: seconds per child process; a slower configuration gets status ``"timeout (>... s)"``.
        repeats: timed calls per configuration (see :func:`measure`).
        time_budget: seconds of timed calls per configuration (see :func:`measure`).
        include_hopeless: also run the configurations :func:`hopeless` marks.
        cosine: also run the gradient check against BPTT at the smallest ``(n, T)``.
        network: ``"recurrent"`` or ``"feedforward"``.
        braintrace_python: interpreter for the BrainTrace children (default: this one).
        echo: called with one line of text per row and for the gradient check.

    Returns:
        One row dict per ``(n, T, method)``, in that nesting order; a configuration that was skipped, timed
        out or failed has ``None`` measurements and the reason in ``status``.

    Raises:
        ValueError: unknown ``network`` or an unknown method in ``methods``.
    """
    check_network(network)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown method(s) {', '.join(map(repr, unknown))}; expected some of {', '.join(METHODS)}")
    missing = _braintrace_missing(braintrace_python) if any(m in BRAINTRACE_METHODS for m in methods) else None
    rows = []
    for n in sizes:
        for T in steps:
            for method in methods:
                python = braintrace_python if method in BRAINTRACE_METHODS else None
                if method in BRAINTRACE_METHODS and missing:
                    row = _row(method, n, T, batch, missing)
                elif hopeless(method, n, T) and not include_hopeless:
                    row = _row(method, n, T, batch, "skipped (hopeless per REFERENCE.md; --all to run)")
                else:
                    job = {"kind": "measure", "method": method, "n": n, "steps": T, "batch": batch, "network": network,
                           "repeats": repeats, "time_budget": time_budget}
                    result = run_child(job, timeout=timeout, python=python)
                    if result.get("status") == "timeout":
                        result = _row(method, n, T, batch, f"timeout (>{timeout:g} s)")
                    elif result.get("status") != "ok":
                        result = _row(method, n, T, batch, result["status"])
                    row = result
                row["network"] = network
                rows.append(row)
                echo(_fmt_row(row))
    if cosine and rows:
        n0, T0 = min(sizes), min(steps)
        others = [m for m in methods if m != "bptt" and m not in STREAM_METHODS  # = the rule fed whole, tested
                  and not (m in BRAINTRACE_METHODS and missing)]
        job = {"kind": "cosine", "methods": others, "n": n0, "steps": T0, "batch": batch, "network": network}
        python = braintrace_python if any(m in BRAINTRACE_METHODS for m in others) else None
        result = run_child(job, timeout=timeout, python=python)
        if result.get("status", "ok") != "ok" or "methods" not in result:
            echo(f"gradient check (n={n0}, T={T0}) failed: {result.get('status')}")
        else:
            result["methods"]["bptt"] = {"cos_w_in": 1.0, "cos_w_rec": 1.0, "status": "ok"}
            for r in rows:
                if (r["n"], r["steps"]) == (n0, T0):
                    c = result["methods"].get(r["method"])
                    r["spike_rate"] = result["spike_rate"]
                    r["cos_w_in"] = c.get("cos_w_in") if c else None
                    r["cos_w_rec"] = c.get("cos_w_rec") if c else None
            echo(format_cosine(result))
    return rows


def format_cosine(result: dict) -> str:
    """The gradient check as lines of text."""
    c3 = lambda v: "    n/a" if v is None else "   zero" if math.isnan(v) else f"{v:7.4f}"  # nan: a zero gradient
    lines = [f"gradient cosine to BPTT, n={result['n']}, T={result['steps']}, batch {result['batch']} "
             f"(spike rate {result['spike_rate']:.3f} per neuron per step, |dL/dW_in| bptt "
             f"{result['bptt_norm_w_in']:.3g}):",
             f"{'method':>22}  {'W_in':>7}  {'W_rec':>7}  {'W_out':>7}  {'|dW_in|':>8}  loss (bptt loss)"]
    for m, c in result["methods"].items():
        if m == "bptt":
            continue
        if c.get("status") != "ok":
            lines.append(f"{m:>22}  {c.get('status')}")
            continue
        lines.append(f"{m:>22}  {c3(c['cos_w_in'])}  {c3(c['cos_w_rec'])}  {c3(c['cos_w_out'])}  "
                     f"{c['norm_w_in']:8.3g}  {c['loss']:.6g} ({c['bptt_loss']:.6g})")
    if "braintrace_d_rtrl_vs_diagonal" in result:
        c = result["braintrace_d_rtrl_vs_diagonal"]
        rec = "" if c["cos_w_rec"] is None else f", {c['cos_w_rec']:.4f} (W_rec)"
        lines.append(f"BrainTrace D_RTRL vs plastix diagonal: cosine {c['cos_w_in']:.4f} (W_in){rec}")
    return "\n".join(lines)


def _cell(r: dict | None) -> str:
    if r is None:
        return "-"
    if r["status"] != "ok":
        return r["status"].split(" (")[0].split(":")[0]
    return f"{r['seconds_per_update']:.3g}s {r['peak_rss_mb']:.0f}/{r['xla_temp_mb']:.3g}MB"


def format_table(rows: Sequence[dict]) -> str:
    """Method × (n, T): ``seconds per update, peak RSS / XLA temp MB``."""
    configs = list(dict.fromkeys((r["n"], r["steps"]) for r in rows))
    methods = list(dict.fromkeys(r["method"] for r in rows))
    by = {(r["method"], r["n"], r["steps"]): r for r in rows}
    head = ["method"] + [f"n={n} T={T}" for n, T in configs]
    body = [[m] + [_cell(by.get((m, n, T))) for n, T in configs] for m in methods]
    widths = [max(len(line[k]) for line in [head, *body]) for k in range(len(head))]
    fmt = lambda line: "  ".join(c.rjust(w) if k else c.ljust(w) for k, (c, w) in enumerate(zip(line, widths)))
    return "\n".join([fmt(head), fmt(["-" * w for w in widths]), *map(fmt, body)])


def _get(rows, method, n, steps, key):
    for r in rows:
        if (r["method"], r["n"], r["steps"]) == (method, n, steps) and r["status"] == "ok":
            return r.get(key)
    return None


def _without_inputs(rows, method, n, steps):
    peak, inputs = _get(rows, method, n, steps, "peak_rss_mb"), _get(rows, method, n, steps, "input_mb")
    return None if peak is None or inputs is None else peak - inputs


def ratios(rows: Sequence[dict]) -> dict[str, float | None]:
    """The three target ratios (at n=512, T ∈ {100, 1000, 4000}, or the largest n and the nearest T present).

    * ``diagonal_peak_rss_Tmax_over_Tmin``: diagonal's peak RSS at the longest T over the shortest (flat in T is
      the point of online traces); also without the input sequence (``T × batch × 700`` bytes, the same for every
      method) and for XLA temp memory; ``diagonal_stream_peak_rss_Tmax_over_Tmin`` the same for ``diagonal-stream``
      (which holds no sequence: its inputs are drawn per segment) and ``diagonal_stream_over_bptt_time`` its time;
    * ``diagonal_over_bptt_time``: diagonal's time per update over BPTT's at T=1000;
    * ``braintrace_d_rtrl_over_diagonal_time``: BrainTrace D_RTRL's time over diagonal's at the shortest T.
    """
    if not rows:
        return {}
    sizes = sorted({r["n"] for r in rows})
    steps = sorted({r["steps"] for r in rows})
    n = 512 if 512 in sizes else sizes[-1]
    lo, hi, mid = steps[0], steps[-1], 1000 if 1000 in steps else steps[-1]

    def div(a, b):
        return a / b if a is not None and b else None

    return {
        "n": n, "T_min": lo, "T_mid": mid, "T_max": hi,
        "diagonal_peak_rss_Tmax_over_Tmin": div(_get(rows, "diagonal", n, hi, "peak_rss_mb"),
                                                _get(rows, "diagonal", n, lo, "peak_rss_mb")),
        "diagonal_xla_temp_Tmax_over_Tmin": div(_get(rows, "diagonal", n, hi, "xla_temp_mb"),
                                                _get(rows, "diagonal", n, lo, "xla_temp_mb")),
        "diagonal_rss_without_inputs_Tmax_over_Tmin": div(_without_inputs(rows, "diagonal", n, hi),
                                                          _without_inputs(rows, "diagonal", n, lo)),
        "diagonal_stream_peak_rss_Tmax_over_Tmin": div(_get(rows, "diagonal-stream", n, hi, "peak_rss_mb"),
                                                       _get(rows, "diagonal-stream", n, lo, "peak_rss_mb")),
        "diagonal_stream_over_bptt_time": div(_get(rows, "diagonal-stream", n, mid, "seconds_per_update"),
                                              _get(rows, "bptt", n, mid, "seconds_per_update")),
        "diagonal_over_bptt_time": div(_get(rows, "diagonal", n, mid, "seconds_per_update"),
                                       _get(rows, "bptt", n, mid, "seconds_per_update")),
        "braintrace_d_rtrl_over_diagonal_time": div(_get(rows, "braintrace-d_rtrl", n, lo, "seconds_per_update"),
                                                    _get(rows, "diagonal", n, lo, "seconds_per_update")),
    }


def format_ratios(r: dict) -> str:
    """The target ratios of :func:`ratios` as four lines of text (``n/a`` where a measurement is missing).

    Args:
        r: the dict returned by :func:`ratios`.

    Returns:
        The text, or ``""`` for an empty dict.
    """
    if not r:
        return ""
    f = lambda v: "n/a" if v is None else f"{v:.3g}"
    n, lo, mid, hi = r["n"], r["T_min"], r["T_mid"], r["T_max"]
    return "\n".join([
        f"diagonal peak RSS, T={hi} / T={lo} at n={n}: {f(r['diagonal_peak_rss_Tmax_over_Tmin'])} "
        f"(without the input sequence: {f(r['diagonal_rss_without_inputs_Tmax_over_Tmin'])}; "
        f"XLA temp: {f(r['diagonal_xla_temp_Tmax_over_Tmin'])})",
        f"diagonal-stream peak RSS, T={hi} / T={lo} at n={n}: {f(r['diagonal_stream_peak_rss_Tmax_over_Tmin'])}; "
        f"its time / bptt time at T={mid}: {f(r['diagonal_stream_over_bptt_time'])}",
        f"diagonal time / bptt time at n={n}, T={mid}: {f(r['diagonal_over_bptt_time'])}",
        f"BrainTrace D_RTRL time / diagonal time at n={n}, T={lo}: {f(r['braintrace_d_rtrl_over_diagonal_time'])}",
    ])


def plot(rows: Sequence[dict], path: str | Path, n: int | None = None) -> None:
    """Time per update and memory vs T (log-log) per method at ``n`` (default 512, else the largest n).

    Args:
        rows: the rows returned by :func:`run`; only those with status ``"ok"`` at ``n`` are drawn.
        path: the output image file (format from its suffix; parent directories are created).
        n: number of neurons to plot (default 512 if measured, else the largest).

    Returns:
        None; writes the figure to ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = sorted({r["n"] for r in rows})
    n = n if n is not None else (512 if 512 in sizes else (sizes[-1] if sizes else 0))
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.5))
    for k, method in enumerate(dict.fromkeys(r["method"] for r in rows)):
        ok = sorted((r for r in rows if r["method"] == method and r["n"] == n and r["status"] == "ok"),
                    key=lambda r: r["steps"])
        if not ok:
            continue
        color = f"C{k}"
        T = [r["steps"] for r in ok]
        ax_t.plot(T, [r["seconds_per_update"] for r in ok], "o-", color=color, label=method)
        ax_m.plot(T, [r["peak_rss_mb"] for r in ok], "o-", color=color, label=f"{method} peak RSS")
        ax_m.plot(T, [max(r["xla_temp_mb"], 1e-3) for r in ok], "s--", color=color, label=f"{method} XLA temp")
    batch = rows[0].get("batch") if rows else None
    ax_t.set(xscale="log", yscale="log", xlabel="time steps T", ylabel="seconds per update (log)",
             title=f"one gradient over T steps, n={n}, batch {batch}")
    ax_m.set(xscale="log", yscale="log", xlabel="time steps T", ylabel="MB (log)", title="peak RSS and XLA temp")
    for ax in (ax_t, ax_m):
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _single(job: dict) -> dict:
    if job["kind"] == "measure":
        return measure(job["method"], job["n"], job["steps"], job["batch"], repeats=job.get("repeats", 5),
                       network=job.get("network", "recurrent"),
                       time_budget=job.get("time_budget", 20.0))
    if job["kind"] == "cosine":
        return cosine_check(job["methods"], job["n"], job["steps"], job["batch"],
                            network=job.get("network", "recurrent")) | {"status": "ok"}
    raise ValueError(f"unknown job kind {job['kind']!r}")


def command(
    sizes: Annotated[str, typer.Option(help="Hidden sizes n, comma-separated.")] = "128,512",
    steps: Annotated[str, typer.Option(help="Sequence lengths T, comma-separated.")] = "100,1000,4000",
    methods: Annotated[str, typer.Option(help="Comma-separated, from: bptt, diagonal, eprop, diagonal-stream, "
                                              "eprop-stream (fed in segments, no sequence in memory), "
                                              "braintrace-d_rtrl, braintrace-es_d_rtrl.")] = ",".join(DEFAULT_METHODS),
    batch: Annotated[int, typer.Option(min=1, help="Sequences per training step.")] = 32,
    timeout: Annotated[float, typer.Option(min=1, help="Seconds allowed per configuration (its own process).")] = 300,
    repeats: Annotated[int, typer.Option(min=1, help="Timed calls per configuration (fewer past 20 s).")] = 5,
    network: Annotated[str, typer.Option(help="recurrent (LIF with recurrent weights, BrainTrace's model) or "
                                              "feedforward.")] = "recurrent",
    all_: Annotated[bool, typer.Option("--all", help="Also run BrainTrace D_RTRL at n>=512, T>=1000.")] = False,
    cosine: Annotated[bool, typer.Option(help="Gradient cosine to BPTT at the smallest n and T.")] = True,
    braintrace_python: Annotated[str | None, typer.Option(help="Python interpreter with braintrace installed "
                                                               "(default: this one).")] = None,
    json_path: Annotated[Path | None, typer.Option("--json", dir_okay=False,
                                                   help="Write the rows as JSON here.")] = None,
    plot_path: Annotated[Path | None, typer.Option("--plot", dir_okay=False,
                                                   help="Write a PNG of time and memory vs T.")] = None,
) -> None:
    """Seconds and peak memory of one training step (a gradient over T steps): plastix vs BPTT vs BrainTrace."""
    size_list, step_list = int_list(sizes, "--sizes"), int_list(steps, "--steps")
    method_list = [m.strip().lower() for m in methods.split(",") if m.strip()]
    unknown = [m for m in method_list if m not in METHODS]
    if unknown or not method_list:
        raise typer.BadParameter(f"unknown method(s) {', '.join(map(repr, unknown)) or repr(methods)} for --methods; "
                                 f"choose from {', '.join(METHODS)}")
    if network not in NETWORKS:
        raise typer.BadParameter(f"unknown network {network!r} for --network; choose from {', '.join(NETWORKS)}")
    rows = run(size_list, step_list, method_list, batch=batch, timeout=timeout, repeats=repeats, network=network,
               include_hopeless=all_, cosine=cosine, braintrace_python=braintrace_python, echo=typer.echo)
    typer.echo("")
    typer.echo("seconds per update, peak RSS / XLA temp MB:")
    typer.echo(format_table(rows))
    typer.echo("")
    typer.echo(format_ratios(ratios(rows)))
    if json_path is not None:
        write_json(rows, json_path)
        typer.echo(f"wrote {json_path}")
    if plot_path is not None:
        plot(rows, plot_path)
        typer.echo(f"wrote {plot_path}")


def main(argv: list[str] | None = None) -> None:
    """``python -m plastix.bench.online [options]``: the same as ``plastix bench online [options]``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--single"]:  # hidden: one configuration in this (fresh) process, one JSON line on stdout
        try:
            result = _single(json.loads(argv[1]))
        except Exception as e:
            import traceback

            traceback.print_exc()
            result = {"status": _one_line(f"error: {type(e).__name__}: {e}")}
        print(json.dumps(result), flush=True)
        return
    run_command(command, argv, "python -m plastix.bench.online")


if __name__ == "__main__":
    main()
