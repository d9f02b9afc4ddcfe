"""Online learning on a 10,000-step sequence that BPTT could not fit into a memory budget.

A LIF layer with a leaky readout decodes two slow latent signals from Poisson input spikes whose rates they
modulate. BPTT stores the step's residuals for every time step, so its memory grows linearly with the
sequence length T; the online method (``mode="diagonal"``) carries the state and its eligibility traces and
nothing else, so its memory does not depend on T.

Memory figures are XLA's own accounting of the compiled programs (``jax.jit(...).lower(...).compile()
.memory_analysis()``, temporary buffers), obtained without running them: BPTT's gradient over T steps
(``plastix.online.value_and_grad(..., "bptt")``; the input sequence is its argument and not counted) and the
online learner over T steps (``plastix.online.Learner`` in a ``fori_loop``, weights updated at every step, each
step's input generated on the fly). The script then streams the whole sequence through the learner, a tenth
of it per call, and prints the loss per block.

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
    parser.add_argument("--lr", type=float, default=2e-3, help="Adam learning rate (default 2e-3)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for tests (1000 steps, budget 1 MB)")
    args = parser.parse_args(argv)
    T, m, n, B, budget = args.steps, args.inputs, args.hidden, args.batch, args.budget_mb
    if args.quick:
        T, m, n, B, budget = 1000, 16, 32, 4, 1.0
    k_in, k_out = len(PERIODS), len(PERIODS)

    @jax.jit
    def setup():
        keys = jax.random.split(jax.random.PRNGKey(0), 4)
        params = {"hidden": init_linear(keys[0], m, n, gain=3.0), "readout": init_linear(keys[1], n, k_out)}
        return params, jax.random.normal(keys[2], (m, k_in)), keys[3]

    params, mixing, input_key = setup()
    inputs = make_inputs(input_key, mixing, B)
    state0 = (jnp.zeros((B, n)), jnp.zeros((B, k_out)))

    # Online learning: the Learner updates the weights at every step; run(carry, t0) advances `length` steps,
    # generating each step's input on the fly, and returns the new carry and the mean loss.
    learner = plastix.online.Learner(step, loss, optax.adam(args.lr), mode="diagonal", every=1)
    carry = learner.init(params, state0, jnp.zeros((B, m)))

    def stream(length):
        def run(carry, t0):
            def body(t, acc):
                c, total = acc
                c, metrics = learner.update(c, *inputs(t0 + t))
                return c, total + metrics["loss"]

            carry, total = lax.fori_loop(0, length, body, (carry, jnp.zeros(())))
            return carry, total / length

        return run

    # Memory of the compiled programs (not run): BPTT's gradient over T steps vs the online learner over T steps.
    probe = [T // 20, T // 10]
    bptt = plastix.online.value_and_grad(step, loss, "bptt", batched=True)
    memory = {}
    for t in probe + [T]:
        xs = jax.ShapeDtypeStruct((t, B, m), jnp.float32)
        ys = jax.ShapeDtypeStruct((t, B, k_out), jnp.float32)
        _, memory["bptt", t] = compiled_mb(bptt, params, state0, xs, ys)
    run_block, memory["online", T // 10] = compiled_mb(stream(T // 10), carry, jnp.int32(0))
    _, memory["online", T] = compiled_mb(stream(T), carry, jnp.int32(0))
    slope, intercept = np.polyfit(probe, [memory["bptt", t] for t in probe], 1)
    extrapolated = slope * T + intercept
    print(f"network: {m} inputs, {n} LIF neurons, {k_out} leaky readouts, batch {B}; budget {budget:g} MB")
    print("temporary memory of the compiled program (MB), T steps:")
    print("  T        " + "".join(f"{t:>10,}" for t in probe + [T]))
    for mode in ("bptt", "online"):
        print(f"  {mode:<9}" + "".join(f"{memory[mode, t]:>10.3f}" if (mode, t) in memory else f"{'':>10}"
                                       for t in probe + [T]))
    fits = lambda mb: "fits" if mb <= budget else "does NOT fit"
    print(f"BPTT at T={T:,}: {extrapolated:.1f} MB extrapolated from T<={probe[-1]:,} "
          f"({slope * 1e3:.2f} kB per step), {memory['bptt', T]:.1f} MB compiled: {fits(memory['bptt', T])}")
    print(f"online (Learner, mode 'diagonal') at T={T:,}: {memory['online', T]:.3f} MB: "
          f"{fits(memory['online', T])}")

    block = T // 10
    print(f"streaming {T:,} steps, {block:,} per call:")
    losses = []
    start = time.perf_counter()
    for t0 in range(0, T - block + 1, block):
        carry, value = run_block(carry, jnp.int32(t0))
        losses.append(float(value))
        print(f"  steps {t0:>6,}-{t0 + block - 1:>6,}: mean loss {losses[-1]:.4f}")
    seconds = time.perf_counter() - start
    print(f"{len(losses) * block:,} online steps in {seconds:.1f} s; loss {losses[0]:.4f} -> {losses[-1]:.4f}")
    return {"bptt_mb": memory["bptt", T], "bptt_extrapolated_mb": float(extrapolated),
            "online_mb": memory["online", T], "online_mb_by_T": [memory["online", T // 10], memory["online", T]],
            "budget_mb": budget, "losses": losses}


if __name__ == "__main__":
    main()
