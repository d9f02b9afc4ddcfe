"""Spellings benchmark: the same neurons written the ways people write them, BPTT vs online, side by side.

Run ``plastix bench spellings`` or ``python -m plastix.bench.spellings`` (same options). Theory does not care
how a step is spelled: wherever a trace's recurrence acts per neuron (a diagonal, or a small per-neuron block for
neurons with several state variables) and ``F_t`` is a per-neuron factor times a shared input row, plastix
advances it in chunks by matrix products. This benchmark checks that the speed follows the theory and not one
idiom. Each spelling (:data:`SPELLINGS`) is a layer of ``n`` neurons driven by ``m`` Bernoulli(0.05) input
channels with a linear readout to 20 classes and softmax cross-entropy at every step.

Every spelling runs in its own fresh process, which compiles one training step (a gradient over ``T`` steps for
a batch) per method and times them *interleaved* (round-robin, median of ``repeats``), so each ratio compares
calls made side by side:

* ``bptt``: ``plastix.online.value_and_grad(..., "bptt", batched=True)`` (``jax.value_and_grad`` through
  ``lax.scan``);
* ``diagonal`` and ``eprop``: the online rules with ``batched=True``;
* ``vmap``: ``jax.vmap`` of the unbatched ``diagonal`` function, then a sum over the batch — what a JAX user
  writes first. It returns per-example gradients (``batch`` times the parameters) before the sum, which the
  batched form never forms.

With ``--memory``, each spelling also runs ``diagonal`` fed by :class:`plastix.online.Stream` in segments at
``T`` and ``multiple × T`` steps, each in a fresh process, and reports the ratio of peak resident memory.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, NamedTuple

import numpy as np
import typer

from ._cli import run_command
from ._io import write_json

__all__ = ["METHODS", "SPELLINGS", "Spelling", "command", "format_table", "main", "measure", "run"]

METHODS = ("bptt", "diagonal", "eprop", "vmap")
N_OUT, INPUT_RATE, BETA, THRESHOLD = 20, 0.05, 0.9, 1.0


class Spelling(NamedTuple):
    """One way of writing a spiking layer: ``step(params, state, x) -> (state', logits)`` for one example."""

    description: str
    step: Callable
    state: Callable[[int], object]  # n -> the initial state of one example
    transposed: bool = False  # the input weight is stored (m, n)


def _spike():
    from plastix.neurons import make_spike

    return make_spike("fast_sigmoid", 25.0)


def _zoo_lif(params, u, x):
    from plastix.neurons import lif_step

    u, z = lif_step({"W": params["W"]}, u, x, beta=BETA, threshold=THRESHOLD, spike_fn=_spike())
    return u, params["Wo"] @ z


def _zero_reset(params, u, x):
    u = BETA * u + params["W"] @ x
    z = _spike()(u - THRESHOLD)
    return u * (1.0 - z), params["Wo"] @ z


def _reset_through(params, u, x):
    u = BETA * u + params["W"] @ x
    z = _spike()(u - THRESHOLD)
    return u - THRESHOLD * z, params["Wo"] @ z


def _einsum(params, u, x):
    import jax.numpy as jnp
    from jax import lax

    u = BETA * u + jnp.einsum("nm,m->n", params["W"], x)
    z = _spike()(u - THRESHOLD)
    return u - THRESHOLD * lax.stop_gradient(z), jnp.einsum("kn,n->k", params["Wo"], z)


def _transposed(params, u, x):
    from jax import lax

    u = BETA * u + x @ params["W"]  # W stored (m, n), as torch.nn.Linear's transpose
    z = _spike()(u - THRESHOLD)
    return u - THRESHOLD * lax.stop_gradient(z), z @ params["Wo"].T


def _alif(params, state, x):
    from plastix.neurons import alif_step

    state, z = alif_step({"W": params["W"]}, state, x, beta=BETA, threshold=THRESHOLD, spike_fn=_spike())
    return state, params["Wo"] @ z


def _cuba(params, state, x):
    i, v = state
    i = 0.8 * i + params["W"] @ x
    v = BETA * v + i
    z = _spike()(v - THRESHOLD)
    return (i, v * (1.0 - z)), params["Wo"] @ z


def _one(n):
    import jax.numpy as jnp

    return jnp.zeros(n, jnp.float32)


def _two(n):
    import jax.numpy as jnp

    return jnp.zeros(n, jnp.float32), jnp.zeros(n, jnp.float32)


SPELLINGS: dict[str, Spelling] = {
    "zoo-lif": Spelling("plastix.neurons.lif_step, subtractive detached reset", _zoo_lif, _one),
    "zero-reset": Spelling("textbook LIF, u * (1 - z)", _zero_reset, _one),
    "reset-through": Spelling("u - z, reset not detached", _reset_through, _one),
    "einsum": Spelling("einsum for both weights", _einsum, _one),
    "transposed": Spelling("x @ W with W stored (m, n)", _transposed, _one, transposed=True),
    "alif": Spelling("plastix.neurons.alif_step: membrane and adaptive threshold (two leaves)", _alif, _two),
    "cuba": Spelling("current-based synapse feeding the membrane (two leaves), zero reset", _cuba, _two),
}


def _params(spelling: Spelling, n: int, m: int, seed: int = 0):
    import jax.numpy as jnp

    rng = np.random.default_rng(seed)
    W = 3.0 / math.sqrt(m) * rng.standard_normal((n, m))
    return {"W": jnp.asarray(W.T if spelling.transposed else W, jnp.float32),
            "Wo": jnp.asarray(rng.standard_normal((N_OUT, n)) / math.sqrt(n), jnp.float32)}


def _data(steps: int, batch: int, m: int, seed: int = 0):
    import jax.numpy as jnp

    rng = np.random.default_rng(seed + 1)
    xs = (rng.random((steps, batch, m), dtype=np.float32) < INPUT_RATE).astype(np.float32)
    labels = np.broadcast_to(rng.integers(0, N_OUT, batch), (steps, batch)).astype(np.int32)
    return jnp.asarray(xs), jnp.asarray(labels)


def _loss(out, label):
    import jax

    return -jax.nn.log_softmax(out)[label]


def _update(spelling: Spelling, method: str, n: int, batch: int):
    """``f(params, xs, labels) -> grads`` of one training step in ``method``."""
    import jax
    import jax.numpy as jnp

    import plastix.online

    state0 = jax.tree.map(lambda v: jnp.zeros((batch,) + v.shape, v.dtype), spelling.state(n))
    if method == "vmap":
        vg = plastix.online.value_and_grad(spelling.step, _loss, "diagonal")
        per_example = jax.vmap(vg, in_axes=(None, 0, 1, 1))
        return lambda p, xs, ys: jax.tree.map(lambda g: jnp.sum(g, 0), per_example(p, state0, xs, ys)[1])
    vg = plastix.online.value_and_grad(spelling.step, _loss, method, batched=True)
    return lambda p, xs, ys: vg(p, state0, xs, ys)[1]


def measure(name: str, n: int, m: int, steps: int, batch: int, methods=METHODS, repeats: int = 5) -> dict:
    """Seconds per training step of each method for one spelling, timed interleaved in this process."""
    import jax

    from ._timing import interleaved_medians

    spelling = SPELLINGS[name]
    params, (xs, ys) = _params(spelling, n, m), _data(steps, batch, m)
    fns = {method: jax.jit(_update(spelling, method, n, batch)) for method in methods}
    for fn in fns.values():
        jax.block_until_ready(fn(params, xs, ys))
    seconds = interleaved_medians(fns, (params, xs, ys), repeats)
    plan = plastix_plan(spelling, params, n, m)
    return {"spelling": name, "n": n, "m": m, "steps": steps, "batch": batch, "seconds": seconds,
            "chunked": plan, "status": "ok"}


def plastix_plan(spelling: Spelling, params, n: int, m: int) -> str:
    """``"k/total"`` traced blocks that advance in chunks in ``diagonal``."""
    import jax.numpy as jnp

    import plastix.online

    plan = plastix.online.plan_traces(spelling.step, params, spelling.state(n), jnp.zeros(m, jnp.float32),
                                      "diagonal")
    return f"{len(plan.chunks)}/{len(plan.blocks)}"


def stream_peak_mb(name: str, n: int, m: int, steps: int, batch: int, segment: int = 512) -> dict:
    """Peak resident memory of ``diagonal`` fed by :class:`plastix.online.Stream` in segments (this process)."""
    import jax
    import jax.numpy as jnp

    import plastix.online

    from .online import _peak_rss_mb

    spelling = SPELLINGS[name]
    params = _params(spelling, n, m)
    stream = plastix.online.Stream(spelling.step, _loss, "diagonal", batched=True)
    update = jax.jit(stream.update, donate_argnums=1)
    state0 = jax.tree.map(lambda v: jnp.zeros((batch,) + v.shape, v.dtype), spelling.state(n))
    xs, ys = _data(min(segment, steps), batch, m)
    carry = stream.init(params, state0, xs[0], ys[0])
    for _ in range(-(-steps // segment)):
        carry = update(params, carry, xs, ys)
    jax.block_until_ready(carry.grads)
    return {"spelling": name, "steps": steps, "peak_rss_mb": _peak_rss_mb(), "status": "ok"}


def _child(job: dict, timeout: float) -> dict:
    cmd = [sys.executable, "-m", "plastix.bench.spellings", "--single", json.dumps(job)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"status": "timeout"}
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if lines:
        return json.loads(lines[-1])
    err = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    return {"status": f"error (exit {proc.returncode}): {err[-1] if err else 'no output'}"}


def run(names, n: int, m: int, steps: int, batch: int, *, repeats: int = 5, memory_multiple: int = 0,
        timeout: float = 1800, echo=print) -> list[dict]:
    """One fresh process per spelling (and two more per spelling with ``memory_multiple``)."""
    rows = []
    for name in names:
        row = _child({"kind": "time", "name": name, "n": n, "m": m, "steps": steps, "batch": batch,
                      "repeats": repeats}, timeout) | {"spelling": name}
        if memory_multiple:
            short, long = (_child({"kind": "memory", "name": name, "n": n, "m": m, "steps": t, "batch": batch},
                                  timeout) for t in (steps, memory_multiple * steps))
            row["memory"] = {"short": short.get("peak_rss_mb"), "long": long.get("peak_rss_mb"),
                             "multiple": memory_multiple}
        echo(format_table([row], header=not rows))
        rows.append(row)
    return rows


def _ratio(seconds: dict, a: str, b: str) -> str:
    return f"{seconds[a] / seconds[b]:.2f}" if a in seconds and b in seconds else "-"


def format_table(rows, header: bool = True) -> str:
    """One line per spelling: seconds per training step of each method and the ratios the targets name."""
    lines = []
    if header:
        lines.append(f"{'spelling':<14} {'chunked':>7} {'bptt':>8} {'diagonal':>8} {'eprop':>8} {'vmap':>8} "
                     f"{'diag/bptt':>9} {'eprop/bptt':>10} {'vmap/diag':>9} {'RSS long/short':>14}")
    for row in rows:
        if row.get("status") != "ok":
            lines.append(f"{row['spelling']:<14} {row.get('status')}")
            continue
        s = row["seconds"]
        cell = lambda k, s=s: f"{s[k]:8.3f}" if k in s else f"{'-':>8}"
        memory = row.get("memory")
        rss = (f"{memory['long'] / memory['short']:.2f}" if memory and memory["short"] and memory["long"] else "-")
        lines.append(f"{row['spelling']:<14} {row['chunked']:>7} {cell('bptt')} {cell('diagonal')} {cell('eprop')} "
                     f"{cell('vmap')} {_ratio(s, 'diagonal', 'bptt'):>9} {_ratio(s, 'eprop', 'bptt'):>10} "
                     f"{_ratio(s, 'vmap', 'diagonal'):>9} {rss:>14}")
    return "\n".join(lines)


def command(
    spellings: Annotated[str, typer.Option(help="Comma-separated, from: " + ", ".join(SPELLINGS) + ".")]
    = ",".join(SPELLINGS),
    n: Annotated[int, typer.Option(min=1, help="Neurons.")] = 512,
    m: Annotated[int, typer.Option(min=1, help="Input channels.")] = 700,
    steps: Annotated[int, typer.Option(min=1, help="Sequence length T.")] = 1000,
    batch: Annotated[int, typer.Option(min=1, help="Sequences per training step.")] = 32,
    repeats: Annotated[int, typer.Option(min=1, help="Interleaved timed calls per method.")] = 5,
    memory: Annotated[int, typer.Option(min=0, help="Also stream diagonal at T and this multiple of T and "
                                                    "compare peak RSS (0: off).")] = 0,
    json_path: Annotated[Path | None, typer.Option("--json", dir_okay=False, help="Write the rows here.")] = None,
) -> None:
    """Seconds per training step of BPTT, diagonal, eprop and vmapped diagonal for each spelling of a neuron."""
    names = [s.strip() for s in spellings.split(",") if s.strip()]
    unknown = [s for s in names if s not in SPELLINGS]
    if unknown or not names:
        raise typer.BadParameter(f"unknown spelling(s) {', '.join(map(repr, unknown)) or repr(spellings)} for "
                                 f"--spellings; choose from {', '.join(SPELLINGS)}")
    rows = run(names, n, m, steps, batch, repeats=repeats, memory_multiple=memory, echo=typer.echo)
    if json_path is not None:
        write_json(rows, json_path)
        typer.echo(f"wrote {json_path}")


def _single(job: dict) -> dict:
    if job["kind"] == "time":
        return measure(job["name"], job["n"], job["m"], job["steps"], job["batch"], repeats=job["repeats"])
    return stream_peak_mb(job["name"], job["n"], job["m"], job["steps"], job["batch"])


def main(argv: list[str] | None = None) -> None:
    """``python -m plastix.bench.spellings [options]``: the same as ``plastix bench spellings [options]``."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--single"]:  # hidden: one spelling in this (fresh) process, one JSON line on stdout
        print(json.dumps(_single(json.loads(argv[1]))), flush=True)
        return
    run_command(command, argv, "python -m plastix.bench.spellings")


if __name__ == "__main__":
    main()
