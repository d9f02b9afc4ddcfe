"""Stacked spiking layers from the :mod:`plastix.neurons` zoo with a leaky readout, as one step function.

``params = {"hidden": [layer_0, ..., layer_{L-1}], "readout": {"W": (k, n)}}`` where every hidden layer has
``"W"`` of shape ``(n, m)`` (``m`` = inputs of the first layer, ``n`` afterwards) and a recurrent layer
(``"rlif"``) also ``"R"`` of shape ``(n, n)``. The state is ``(layer_states, v)``: one state per hidden layer
(see :func:`init_state`) and the readout potentials ``v``. The models are the entries of
:data:`plastix.neurons.NEURONS` (:data:`MODELS` lists their names).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from .neurons import NEURONS, NeuronModel, init_linear, readout_step

__all__ = ["MODELS", "NEURONS", "init_params", "init_state", "network_step", "neuron_model"]

MODELS = tuple(NEURONS)


def neuron_model(name: str) -> NeuronModel:
    """The :class:`~plastix.neurons.NeuronModel` called ``name``; a one-line ``ValueError`` for an unknown one."""
    try:
        return NEURONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown model {name!r}; expected one of {', '.join(map(repr, NEURONS))}") from None


def init_params(key: jax.Array, model: str, n_in: int, hidden: int, n_out: int, *, layers: int = 1,
                input_gain: float = 1.0) -> dict:
    """Gaussian initial weights (:func:`plastix.neurons.init_linear`); ``input_gain`` scales every hidden ``W``."""
    spec = neuron_model(model)
    keys = jax.random.split(key, 2 * layers + 1)
    hidden_params = [spec.init(keys[2 * i:2 * i + 2], n_in if i == 0 else hidden, hidden, gain=input_gain)
                     for i in range(layers)]
    return {"hidden": hidden_params, "readout": init_linear(keys[-1], hidden, n_out)}


def init_state(params: dict, model: str, batch: tuple[int, ...] = (), dtype=jnp.float32):
    """All-zero network state with leading ``batch`` axes."""
    spec = neuron_model(model)
    layers = tuple(spec.init_state(layer["W"].shape[0], batch, dtype) for layer in params["hidden"])
    return layers, jnp.zeros(batch + (params["readout"]["W"].shape[0],), dtype)


def network_step(params, state, x, *, model: str, spike_fn: Callable, beta: float = 0.9, threshold: float = 1.0,
                 reset: str = "subtract", kappa: float = 0.9):
    """One time step: ``((layer_states, v), x) -> ((layer_states', v'), (logits, spikes of the last layer))``.

    ``beta``, ``threshold`` and ``reset`` go to the models that take them (:attr:`NeuronModel.hyper
    <plastix.neurons.NeuronModel.hyper>`; e.g. ``"sigma-delta"`` keeps its own event threshold); ``kappa`` is the
    readout leak.
    """
    spec = neuron_model(model)
    hyper = {name: value for name, value in (("beta", beta), ("threshold", threshold), ("reset", reset))
             if name in spec.hyper}
    layer_states, v = state
    new_states = []
    z = x
    for layer, s in zip(params["hidden"], layer_states):
        s, z = spec.step(layer, s, z, spike_fn=spike_fn, **hyper)
        new_states.append(s)
    v, logits = readout_step(params["readout"], v, z, kappa=kappa)
    return (tuple(new_states), v), (logits, z)
