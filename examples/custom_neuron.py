"""A neuron model written from scratch — a resonate-and-fire layer — trained online with plastix.

The resonate-and-fire neuron (Izhikevich 2001) has a complex membrane potential ``u + i·w`` that rotates by
``omega`` radians and shrinks by ``decay`` each step, so it responds to inputs at its own frequency. One step is
plain JAX; the spike uses a surrogate derivative from ``plastix.neurons.make_spike``. Nothing else is declared:
plastix finds from the step that each neuron's (u, w) pair forms a 2×2 block of ``H = ∂s'/∂s`` and keeps traces
for ``W`` and ``omega`` in that layout (printed by ``plastix.online.describe``).

The script checks the online gradient (``mode="diagonal"``) against BPTT on a short sequence — they agree to
float32 precision because the layer has no recurrent connections — then trains input weights, frequencies and
a linear readout with ``plastix.online.Learner`` (weights change at every step) to reproduce a target signal
from frozen random input spikes, and prints the loss per epoch.

Run: ``python examples/custom_neuron.py [--neurons 64] [--steps 200] [--epochs 40] [--quick]``
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
from plastix.neurons import make_spike


def rf_step(params, state, x, *, decay=0.95, threshold=1.0, spike_fn=None):
    """One step of a resonate-and-fire layer: ``params = {"W": (n, m), "omega": (n,)}``, ``state = (u, w)``.

    ``(u, w) <- decay · R(omega) (u, w) + (W x, 0)``; spike where ``u > threshold``; subtractive reset of ``u``
    (without a gradient through the reset, as in ``lif_step``).
    """
    spike_fn = spike_fn or make_spike("fast_sigmoid", slope=10.0)
    u, w = state
    c, s = jnp.cos(params["omega"]), jnp.sin(params["omega"])
    u_new = decay * (c * u - s * w) + params["W"] @ x
    w_new = decay * (s * u + c * w)
    z = spike_fn(u_new - threshold)
    u_new = u_new - threshold * lax.stop_gradient(z)
    return (u_new, w_new), z


def step(params, state, x):
    """The network: a resonate-and-fire layer and a memoryless linear readout of its spikes."""
    state, z = rf_step(params["rf"], state, x)
    return state, params["readout"] @ z


def loss(out, target):
    return jnp.mean((out - target) ** 2)


def init(rng, n_in, n, n_out):
    """Parameters (drawn with NumPy: no XLA compilation for a handful of random numbers)."""
    f32 = lambda a: jnp.asarray(a, jnp.float32)
    return {"rf": {"W": f32(1.5 * rng.standard_normal((n, n_in)) / np.sqrt(n_in * 0.1)),
                   "omega": f32(rng.uniform(0.05, 0.6, n))},
            "readout": f32(0.1 * rng.standard_normal((n_out, n)))}


def task(rng, n_in, steps):
    """Frozen Poisson input spikes (rate 0.1 per step) and a two-frequency target."""
    xs = (rng.random((steps, n_in)) < 0.1).astype(np.float32)
    t = np.arange(steps)
    target = np.sin(2 * np.pi * t / 50) + 0.5 * np.sin(2 * np.pi * t / 17 + 1.0)
    return jnp.asarray(xs), jnp.asarray(target[:, None], jnp.float32)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=50, help="input channels (default 50)")
    parser.add_argument("--neurons", type=int, default=64, help="resonate-and-fire neurons (default 64)")
    parser.add_argument("--steps", type=int, default=200, help="sequence length (default 200)")
    parser.add_argument("--epochs", type=int, default=40, help="passes over the sequence (default 40)")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default 1e-3)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes for tests")
    args = parser.parse_args(argv)
    n_in, n, steps, epochs = (args.inputs, args.neurons, args.steps, args.epochs)
    if args.quick:
        n_in, n, steps, epochs = 20, 16, 60, 8

    rng = np.random.default_rng(0)
    params = init(rng, n_in, n, 1)
    xs, targets = task(rng, n_in, steps)
    state0 = (jnp.zeros(n), jnp.zeros(n))
    plastix.online.describe(step, params, state0, xs[0])

    # 1. The online gradient equals BPTT here (feed-forward layer, memoryless readout).
    short = min(steps, 30)
    both = jax.jit(lambda *a: [plastix.online.value_and_grad(step, loss, mode)(*a)[1] for mode in ("bptt", "diagonal")])
    bptt, online = both(params, state0, xs[:short], targets[:short])
    rel = lambda a, b: float(jnp.max(jnp.abs(a - b)) / (jnp.max(jnp.abs(b)) + 1e-12))
    grad_err = max(jax.tree.leaves(jax.tree.map(rel, online, bptt)))
    print(f"gradient over {short} steps, diagonal vs bptt: max relative difference {grad_err:.1e}")

    # 2. Online learning: the Learner updates the weights at every step while the sequence runs.
    learner = plastix.online.Learner(step, loss, optax.adam(args.lr), mode="diagonal", every=1)
    batch = lambda v: v[None]
    carry = learner.init(params, jax.tree.map(batch, state0), batch(xs[0]))

    @jax.jit
    def epoch(carry):
        carry = carry._replace(state=jax.tree.map(jnp.zeros_like, carry.state),
                               traces=jax.tree.map(jnp.zeros_like, carry.traces))
        carry, metrics = lax.scan(lambda c, inp: learner.update(c, inp[0][None], inp[1][None]), carry,
                                  (xs, targets))
        return carry, jnp.mean(metrics["loss"])

    losses = []
    t0 = time.perf_counter()
    for k in range(epochs):
        carry, value = epoch(carry)
        losses.append(float(value))
        if k == 0 or (k + 1) % max(1, epochs // 8) == 0 or k == epochs - 1:
            print(f"epoch {k + 1:>3}: mean loss per step {losses[-1]:.4f}")
    seconds = time.perf_counter() - t0
    moved = float(jnp.max(jnp.abs(carry.params["rf"]["omega"] - params["rf"]["omega"])))
    print(f"{epochs} epochs of {steps} steps in {seconds:.1f} s (with compilation); "
          f"loss {losses[0]:.4f} -> {losses[-1]:.4f}; frequencies moved by up to {moved:.3f} rad/step")
    return {"grad_error": grad_err, "losses": losses}


if __name__ == "__main__":
    main()
