"""plastix: sparse vertex-elimination autodiff and gradient-based synaptic plasticity for JAX."""

from . import ad, data, neurons, online
from .ad import count_muls, graph, jacve

__version__ = "0.1.0"

__all__ = ["ad", "data", "neurons", "online", "count_muls", "graph", "jacve", "__version__"]
