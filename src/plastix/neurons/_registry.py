"""The table of hidden-layer neuron models that :mod:`plastix.network` (and ``plastix train --model``) can stack.

A new model is one module with its step function plus one entry in :data:`NEURONS`; the network, the training
configuration's choices and the command line's ``--model`` are derived from this table.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

import jax
import jax.numpy as jnp

from .alif import alif_step
from .dendritic import dendritic_step
from .lif import init_linear, lif_step
from .recurrent import recurrent_lif_step
from .sigma_delta import sigma_delta_step

__all__ = ["NEURONS", "RECURRENT_GAIN", "NeuronModel", "init_feedforward", "init_recurrent"]

RECURRENT_GAIN = 0.5  # recurrent weights R ~ N(0, (0.5 / sqrt(n))²)


def init_feedforward(keys: jax.Array, n_in: int, n: int, *, gain: float = 1.0) -> dict:
    """``{"W": (n, n_in)}`` from ``keys[0]`` (:func:`~plastix.neurons.init_linear` with ``gain``)."""
    return init_linear(keys[0], n_in, n, gain=gain)


def init_recurrent(keys: jax.Array, n_in: int, n: int, *, gain: float = 1.0) -> dict:
    """``{"W": (n, n_in), "R": (n, n)}``: ``W`` from ``keys[0]`` with ``gain``, ``R`` from ``keys[1]`` with
    :data:`RECURRENT_GAIN`."""
    return {"W": init_linear(keys[0], n_in, n, gain=gain)["W"],
            "R": init_linear(keys[1], n, n, gain=RECURRENT_GAIN)["W"]}


@dataclass(frozen=True)
class NeuronModel:
    """What the network needs to know about one neuron model.

    Attributes:
        step: ``step(params, state, x, *, spike_fn, **hyper) -> (new_state, spikes)``.
        description: one line for the documentation and ``plastix train --help``.
        hyper: the network-level hyper-parameters (of ``beta``, ``threshold``, ``reset``) that ``step`` takes
            as keyword arguments; the others keep the step's own defaults.
        state_leaves: ``1``: the state is one ``(..., n)`` array; ``k > 1``: a tuple of ``k`` such arrays.
        init: ``init(keys, n_in, n, *, gain) -> layer params`` with two PRNG keys (input weights, others).
    """

    step: Callable
    description: str
    hyper: tuple[str, ...] = ("beta", "threshold", "reset")
    state_leaves: int = 1
    init: Callable[..., dict] = init_feedforward

    def init_state(self, n: int, batch: tuple[int, ...] = (), dtype=jnp.float32):
        """All-zero state of a layer of ``n`` neurons with leading ``batch`` axes."""
        if self.state_leaves == 1:
            return jnp.zeros(batch + (n,), dtype)
        return tuple(jnp.zeros(batch + (n,), dtype) for _ in range(self.state_leaves))


NEURONS: MappingProxyType[str, NeuronModel] = MappingProxyType({
    "lif": NeuronModel(lif_step, "feed-forward leaky integrate-and-fire: u' = beta u + W x, spike, reset"),
    "alif": NeuronModel(alif_step, "adaptive LIF (Bellec et al. 2018): the threshold rises with each spike and "
                                   "decays back", hyper=("beta", "threshold"), state_leaves=2),
    "rlif": NeuronModel(recurrent_lif_step, "recurrent LIF: u' = beta u + W x + R z, spike, reset",
                        state_leaves=2, init=init_recurrent),
    "sigma-delta": NeuronModel(sigma_delta_step, "sigma-delta (as on Loihi 2): graded events when the activation "
                                                 "has moved by more than a threshold", hyper=(), state_leaves=2),
    "dendritic": NeuronModel(dendritic_step, "two compartments: a leaky dendrite drives a spiking soma through "
                                             "tanh", hyper=("beta", "threshold"), state_leaves=2),
})
