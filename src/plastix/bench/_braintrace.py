"""The benchmark network of :mod:`plastix.bench.online` as a BrainTrace learner (optional package ``braintrace``).

Only the minimal model definition needed to benchmark BrainTrace (PyPI ``braintrace==0.2.6``, ``pip install
'plastix[bench]'``) on the same LIF network (recurrent or feed-forward), weights and data as plastix;
nothing else of BrainTrace is reproduced here. Importing this module imports ``braintrace`` and
``brainstate``, so only the benchmark's child processes for BrainTrace methods (and the cosine check) import it.

The network is :func:`plastix.bench.online.step` exactly: the one hidden state is the membrane *before* the
reset, ``v``, and the previous step's spikes and reset are recomputed from it at the start of the step:
``z = spike(v - θ)``; ``v' = β (v - θ·stop_gradient(z)) + W x [+ R z]``; output ``Wo · spike(v' - θ)``.
All three weights go through BrainTrace's ETP primitives (``braintrace.nn.Linear``) so its compiler sees them.
"""

from __future__ import annotations

import brainstate
import braintrace
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["ALGORITHMS", "make_update", "to_plastix_grads"]

# plastix.bench.online method name -> BrainTrace algorithm (class, compile options)
ALGORITHMS = {
    "braintrace-d_rtrl": (braintrace.D_RTRL, {}),
    # ES-D-RTRL (pp_prop) low-pass filters the presynaptic side; its decay is the membrane's beta here.
    "braintrace-es_d_rtrl": (braintrace.ES_D_RTRL, {"decay_or_rank": "beta"}),
}


class _RecurrentLIF(brainstate.nn.Module):
    def __init__(self, params: dict, *, beta: float, threshold: float, spike_fn):
        super().__init__()
        W, Wo = np.asarray(params["W"]), np.asarray(params["Wo"])
        n, m = W.shape
        self.n, self.beta, self.threshold, self.spike_fn = n, beta, threshold, spike_fn
        # braintrace.nn.Linear computes x @ weight with weight (in, out): the transposes of plastix's (out, in).
        self.inp = braintrace.nn.Linear(m, n, w_init=jnp.asarray(W.T), b_init=None)
        self.rec = None
        if "R" in params:
            self.rec = braintrace.nn.Linear(n, n, w_init=jnp.asarray(np.asarray(params["R"]).T), b_init=None)
        self.out = braintrace.nn.Linear(n, Wo.shape[0], w_init=jnp.asarray(Wo.T), b_init=None)

    def init_state(self, batch_size=None, **kwargs):
        self.v = brainstate.HiddenState(jnp.zeros((batch_size, self.n), jnp.float32))

    def reset_state(self, batch_size=None, **kwargs):
        self.v.value = jnp.zeros((batch_size, self.n), jnp.float32)

    def update(self, x):
        v = self.v.value
        z = self.spike_fn(v - self.threshold)
        v = self.beta * (v - self.threshold * jax.lax.stop_gradient(z)) + self.inp(x)
        if self.rec is not None:
            v = v + self.rec(z)
        self.v.value = v
        return self.out(self.spike_fn(v - self.threshold))


def make_update(method: str, params: dict, batch: int, x0, *, beta: float, threshold: float, spike_fn):
    """A jitted ``f(xs, ys) -> (grads, total_loss)`` for one training step on a time-major batch.

    ``xs``: ``(T, batch, m)`` (any dtype, cast to float32 per step); ``ys``: ``(T, batch)`` integer labels. The
    objective is ``sum_t mean_b CE(out_t, y_t)``, the same as plastix's. Hidden states and traces are reset at the
    start of every call, so each call is one independent gradient over the whole sequence. ``grads`` is
    BrainTrace's dict of parameter states (see :func:`to_plastix_grads`). ``f.compile(xs, ys)`` compiles it
    ahead of time (for XLA's memory analysis).
    """
    cls, options = ALGORITHMS[method]
    options = {k: beta if v == "beta" else v for k, v in options.items()}
    model = _RecurrentLIF(params, beta=beta, threshold=threshold, spike_fn=spike_fn)
    learner = braintrace.compile(model, cls, jnp.asarray(x0, jnp.float32), batch_size=batch, **options)

    def step_loss(x, y):
        out = learner(x.astype(jnp.float32))
        return jnp.mean(-jnp.take_along_axis(jax.nn.log_softmax(out), y[:, None].astype(jnp.int32), axis=1))

    @brainstate.transform.jit
    def update(xs, ys):
        brainstate.nn.reset_all_states(learner, batch_size=batch)
        return learner.etrace_grad(xs, ys, step_fn=step_loss, reduction="sum", return_value=True,
                                   loss_output="scalar")

    return update


def to_plastix_grads(grads: dict) -> dict:
    """BrainTrace's gradient dict as plastix's ``{"W", "R", "Wo"}`` (no ``"R"`` without recurrence), (out, in)."""
    by = {path[0]: leaf for path, leaf in grads.items()}
    pick = lambda g: g["weight"] if isinstance(g, dict) else g
    out = {"W": pick(by["inp"]).T, "Wo": pick(by["out"]).T}
    if "rec" in by:
        out["R"] = pick(by["rec"]).T
    return out
