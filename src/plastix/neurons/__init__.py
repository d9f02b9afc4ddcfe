"""Neuron models as pure JAX step functions ``step(params, state, x) -> (new_state, out)``.

Spiking models use surrogate-gradient spike nonlinearities (:func:`make_spike`). Hyper-parameters such as
decays and thresholds are keyword arguments, or trained when present in ``params``. :data:`NEURONS` is the
table of models :mod:`plastix.network` stacks into hidden layers (name -> :class:`NeuronModel`).
"""

from ._registry import NEURONS, NeuronModel
from .alif import alif_step
from .dendritic import dendritic_step
from .lif import RESETS, init_linear, lif_step, readout_step
from .recurrent import leaky_rnn_step, recurrent_lif_step
from .sigma_delta import sigma_delta_step
from .surrogate import SURROGATES, heaviside, make_spike, surrogate_derivative

__all__ = [
    "NEURONS",
    "RESETS",
    "SURROGATES",
    "NeuronModel",
    "alif_step",
    "dendritic_step",
    "heaviside",
    "init_linear",
    "leaky_rnn_step",
    "lif_step",
    "make_spike",
    "readout_step",
    "recurrent_lif_step",
    "sigma_delta_step",
    "surrogate_derivative",
]
