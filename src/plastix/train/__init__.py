"""Training a spiking network on a spike dataset (the ``plastix train`` command).

The network (:mod:`plastix.network`) stacks ``layers`` hidden layers of one neuron model from
:data:`plastix.neurons.NEURONS` (``lif``, ``alif``, ``rlif``, ``sigma-delta``, ``dendritic``) under a leaky,
non-spiking readout. The loss is the cross-entropy of the readout potentials against the label at every time
step, averaged over time and batch; the prediction is the class with the largest time-averaged
log-probability. The gradient comes from :func:`plastix.online.value_and_grad`: the online modes
``"diagonal"`` (default), ``"eprop"`` and ``"rtrl"`` carry eligibility traces forward in time (memory
independent of the number of steps), ``"bptt"`` backpropagates through ``lax.scan``. The optimizer is optax
Adam. The datasets are the entries of :data:`plastix.data.DATASETS`; each recommends its own settings, which a
:class:`TrainConfig` uses where it leaves them ``None``.

Data parallelism: every update runs under ``jax.jit`` on a 1-d ``jax.sharding.Mesh`` over the devices (all of
them by default), the batch sharded along it and parameters and optimizer state replicated; XLA inserts the
gradient reduction. ``batch_size`` must be divisible by the number of devices. On several hosts, start one
process per host with ``distributed=True`` (``plastix train --distributed``), which calls
``jax.distributed.initialize()`` first (see ``docs/training.md``); every process then reads only its rows of
each global batch, and process 0 writes checkpoints and results.

Checkpoints (``checkpoint.npz`` in ``out``) are written atomically after every epoch; ``resume=True``
continues from one and ends with the same weights as an uninterrupted run. A non-finite loss stops the run
with :class:`TrainingDiverged`, leaving the last good checkpoint in place.

Modules, one job each: ``_config`` (:class:`TrainConfig`, validation, choices), ``_objective`` (forward pass,
loss, gradient per mode), ``_devices`` (mesh, sharding, jitted update, several hosts), ``_checkpoints``
(atomic save, load, resume), ``_loop`` (:func:`train`), ``_plots`` (figures).
"""

from ._checkpoints import CHECKPOINT, load_checkpoint
from ._checkpoints import save_checkpoint as save_checkpoint
from ._config import DATASETS, MAX_TRACE_NUMBERS, MODELS, MODES, ConfigError, TrainConfig, TrainingDiverged
from ._loop import train
from ._objective import batch_value_and_grad as batch_value_and_grad
from ._objective import forward, loss_fn

__all__ = ["CHECKPOINT", "DATASETS", "MAX_TRACE_NUMBERS", "MODELS", "MODES", "ConfigError", "TrainConfig",
           "TrainingDiverged", "forward", "load_checkpoint", "loss_fn", "train"]
