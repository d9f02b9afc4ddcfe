"""Online learning on a 10,000-step sequence that BPTT could not fit into a memory budget.

A LIF layer with a leaky readout decodes two slow latent signals from Poisson input spikes whose rates they
modulate. BPTT stores the step's residuals for every time step, so its memory grows linearly with the
sequence length T; the online method (``mode="diagonal"``) carries the state and its eligibility traces and
nothing else, so its memory does not depend on T.

Memory figures are XLA's own accounting of the compiled programs (``jax.jit(...).lower(...).compile()
.memory_analysis()``, temporary buffers), obtained without running them. The input sequence is an argument
of both and is not counted; the online learner below generates each step's input on the fly and never holds
the sequence. The script then streams the whole sequence through ``plastix.online.Learner`` (weights updated
at every step) and prints the loss per block of steps.

Run: ``python examples/long_sequence.py [--steps 10000] [--budget-mb 64] [--quick]``
"""

from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax

import plastix.online
from plastix.neurons import init_linear, lif_step, make_spike, readout_step

SPIKE = make_spike("fast_sigmoid", slope=25.0)
PERIODS = (300.0, 770.0)


def step(params, state, x):
    u, v = state
    u, z = lif_step(params["hidden"], u, x, spike_fn=SPIKE)
    v, out = readout_step(params["readout"], v, z, kappa=0.9)
    return (u, v), out


def loss(out, target):
    return jnp.mean((out - target) ** 2)


def latent(t):
    """The two target signals at (integer) time ``t``."""
    t = jnp.asarray(t, jnp.float32)
    return jnp.stack([jnp.sin(2 * jnp.pi * t / p) for p in PERIODS], axis=-1)


def make_inputs(key, mixing, batch):
    """``inputs(t) -> (x, target)`` for one step: Poisson spikes with rates modulated by the latents."""

    def inputs(t):
        rate = 0.05 * (1.0 + 0.9 * jnp.tanh(mixing @ latent(t)))
        x = (jax.random.uniform(jax.random.fold_in(key, t), (batch, mixing.shape[0])) < rate).astype(jnp.float32)
        return x, jnp.broadcast_to(latent(t), (batch, len(PERIODS)))

    return inputs


def compiled_mb(fun, *args):
    """``fun`` compiled for ``args`` (not run) and its temporary memory in MB."""
    compiled = jax.jit(fun).lower(*args).compile()
    return compiled, compiled.memory_analysis().temp_size_in_bytes / 1e6


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="sequence length (default 10000)")
    parser.add_argument("--inputs", type=int, default=64, help="input channels (default 64)")
    parser.add_argument("--hidden", type=int, default=128, help="LIF neurons (default 128)")
    parser.add_argument("--batch", type=int, default=16, help="sequences in parallel (default 16)")
    parser.add_argument("--budget-mb", type=float, default=64.0, help="memory budget in MB (default 64)")
    parser.add_argument("--block", type=int, default=1000, help="steps per reported block (default 1000)")
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for tests (1000 steps, budget 1 MB)")
    args = parser.parse_args(argv)
    T, m, n, B, budget, block = args.steps, args.inputs, args.hidden, args.batch, args.budget_mb, args.block
    if args.quick:
        T, m, n, B, budget, block = 1000, 16, 32, 4, 1.0, 250
    k_in, k_out = len(PERIODS), len(PERIODS)

    @jax.jit
    def setup():
        keys = jax.random.split(jax.random.PRNGKey(0), 4)
        params = {"hidden": init_linear(keys[0], m, n, gain=3.0), "readout": init_linear(keys[1], n, k_out)}
        return params, jax.random.normal(keys[2], (m, k_in)), keys[3]

    params, mixing, input_key = setup()
    inputs = make_inputs(input_key, mixing, B)
    state0 = (jnp.zeros((B, n)), jnp.zeros((B, k_out)))

    # Memory: gradient of the summed loss over T steps, batched, BPTT vs online.
    probe = [T // 20, T // 10]
    memory = {}
    for mode, lengths in (("bptt", probe + [T]), ("diagonal", [T // 10, T])):
        vg = jax.vmap(plastix.online.value_and_grad(step, loss, mode), in_axes=(None, 0, 1, 1))
        for t in lengths:
            xs = jax.ShapeDtypeStruct((t, B, m), jnp.float32)
            ys = jax.ShapeDtypeStruct((t, B, k_out), jnp.float32)
            _, memory[mode, t] = compiled_mb(vg, params, state0, xs, ys)
    slope, intercept = np.polyfit(probe, [memory["bptt", t] for t in probe], 1)
    extrapolated = slope * T + intercept
    print(f"network: {m} inputs, {n} LIF neurons, {k_out} leaky readouts, batch {B}; budget {budget:g} MB")
    print("temporary memory of the compiled gradient (MB):")
    print("  T        " + "".join(f"{t:>10,}" for t in probe + [T]))
    for mode in ("bptt", "diagonal"):
        print(f"  {mode:<9}" + "".join(f"{memory[mode, t]:>10.3f}" if (mode, t) in memory else f"{'':>10}"
                                       for t in probe + [T]))
    fits = lambda mb: "fits" if mb <= budget else "does NOT fit"
    print(f"BPTT at T={T:,}: {extrapolated:.1f} MB extrapolated from T<={probe[-1]:,} "
          f"({slope * 1e3:.2f} kB per step), {memory['bptt', T]:.1f} MB compiled: {fits(memory['bptt', T])}")
    print(f"online (diagonal) at T={T:,}: {memory['diagonal', T]:.3f} MB: {fits(memory['diagonal', T])}")

    # Online learning over the whole sequence, one block of steps per compiled call.
    learner = plastix.online.Learner(step, loss, optax.adam(args.lr), mode="diagonal", every=1)
    carry = learner.init(params, state0, jnp.zeros((B, m)))

    def run_block(carry, t0):
        def body(c, t):
            c, metrics = learner.update(c, *inputs(t))
            return c, metrics["loss"]

        def summed(acc, t):
            c, total = acc
            c, value = body(c, t)
            return (c, total + value), None

        (carry, total), _ = lax.scan(summed, (carry, jnp.zeros(())), t0 + jnp.arange(block))
        return carry, total / block

    run_block, learner_mb = compiled_mb(run_block, carry, jnp.int32(0))
    print(f"Learner, {block} steps per call: {learner_mb:.3f} MB temporary memory; streaming {T:,} steps:")
    losses = []
    start = time.perf_counter()
    for t0 in range(0, T - block + 1, block):
        carry, value = run_block(carry, jnp.int32(t0))
        losses.append(float(value))
        print(f"  steps {t0:>6,}-{t0 + block - 1:>6,}: mean loss {losses[-1]:.4f}")
    seconds = time.perf_counter() - start
    print(f"{len(losses) * block:,} online steps in {seconds:.1f} s; loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return {"bptt_mb": memory["bptt", T], "bptt_extrapolated_mb": float(extrapolated),
            "online_mb": memory["diagonal", T], "online_mb_by_T": [memory["diagonal", T // 10], memory["diagonal", T]],
            "learner_mb": learner_mb, "budget_mb": budget, "losses": losses}


if __name__ == "__main__":
    main()
