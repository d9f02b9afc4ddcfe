"""Spiking neuron models as pure JAX step functions, with surrogate-gradient spike nonlinearities."""

from .lif import RESETS, init_linear, lif_step, readout_step
from .surrogate import SURROGATES, heaviside, make_spike, surrogate_derivative

__all__ = [
    "RESETS",
    "SURROGATES",
    "heaviside",
    "init_linear",
    "lif_step",
    "make_spike",
    "readout_step",
    "surrogate_derivative",
]
