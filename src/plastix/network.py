"""Stacked spiking layers from the :mod:`plastix.neurons` zoo with a leaky readout, as one step function.

``params = {"hidden": [layer_0, ..., layer_{L-1}], "readout": {"W": (k, n)}}`` where every hidden layer has
``"W"`` of shape ``(n, m)`` (``m`` = inputs of the first layer, ``n`` afterwards) and a recurrent layer
(``"rlif"``) also ``"R"`` of shape ``(n, n)``. The state is ``(layer_states, v)``: one state per hidden layer
(see :func:`init_state`) and the readout potentials ``v``.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from .neurons import (
    alif_step,
    dendritic_step,
    init_linear,
    lif_step,
    readout_step,
    recurrent_lif_step,
    sigma_delta_step,
)

__all__ = ["MODELS", "init_params", "init_state", "network_step"]

MODELS = ("lif", "alif", "rlif", "sigma-delta", "dendritic")
_RECURRENT_GAIN = 0.5


def init_params(key: jax.Array, model: str, n_in: int, hidden: int, n_out: int, *, layers: int = 1,
                input_gain: float = 1.0) -> dict:
    """Gaussian initial weights (:func:`plastix.neurons.init_linear`); ``input_gain`` scales every hidden ``W``."""
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; expected one of {', '.join(map(repr, MODELS))}")
    keys = jax.random.split(key, 2 * layers + 1)
    hidden_params = []
    for i in range(layers):
        layer = init_linear(keys[2 * i], n_in if i == 0 else hidden, hidden, gain=input_gain)
        if model == "rlif":
            layer["R"] = init_linear(keys[2 * i + 1], hidden, hidden, gain=_RECURRENT_GAIN)["W"]
        hidden_params.append(layer)
    return {"hidden": hidden_params, "readout": init_linear(keys[-1], hidden, n_out)}


def init_state(params: dict, model: str, batch: tuple[int, ...] = (), dtype=jnp.float32):
    """All-zero network state with leading ``batch`` axes."""
    def zeros(n):
        return jnp.zeros(batch + (n,), dtype)

    layers = []
    for layer in params["hidden"]:
        n = layer["W"].shape[0]
        layers.append(zeros(n) if model == "lif" else (zeros(n), zeros(n)))
    return tuple(layers), zeros(params["readout"]["W"].shape[0])


def network_step(params, state, x, *, model: str, spike_fn: Callable, beta: float = 0.9, threshold: float = 1.0,
                 reset: str = "subtract", kappa: float = 0.9):
    """One time step: ``((layer_states, v), x) -> ((layer_states', v'), (logits, spikes of the last layer))``.

    ``beta``, ``threshold`` and ``reset`` apply to the LIF-like models (``threshold`` is not used by
    ``"sigma-delta"``, whose event threshold keeps its own default); ``kappa`` is the readout leak.
    """
    layer_states, v = state
    new_states = []
    z = x
    for layer, s in zip(params["hidden"], layer_states):
        if model == "lif":
            s, z = lif_step(layer, s, z, beta=beta, threshold=threshold, reset=reset, spike_fn=spike_fn)
        elif model == "alif":
            s, z = alif_step(layer, s, z, beta=beta, threshold=threshold, spike_fn=spike_fn)
        elif model == "rlif":
            s, z = recurrent_lif_step(layer, s, z, beta=beta, threshold=threshold, reset=reset, spike_fn=spike_fn)
        elif model == "sigma-delta":
            s, z = sigma_delta_step(layer, s, z, spike_fn=spike_fn)
        else:
            s, z = dendritic_step(layer, s, z, beta=beta, threshold=threshold, spike_fn=spike_fn)
        new_states.append(s)
    v, logits = readout_step(params["readout"], v, z, kappa=kappa)
    return (tuple(new_states), v), (logits, z)
