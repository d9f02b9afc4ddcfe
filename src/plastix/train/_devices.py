"""Data parallelism: the jitted update and evaluation on a 1-d mesh of devices, global batches, several hosts."""

from __future__ import annotations

import os
from functools import lru_cache, partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .. import data
from ..neurons import make_spike
from ._config import TrainConfig
from ._objective import batch_value_and_grad, forward, loss_fn, metric_sums

__all__ = ["compiled", "initialize_distributed", "to_global"]


def _norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree)))


@lru_cache(maxsize=8)
def compiled(config: TrainConfig, devices: tuple[jax.Device, ...]):
    """The jitted update and evaluation of a configuration on a 1-d data-parallel mesh over ``devices``.

    Returns ``(spike_fn, optimizer, update, eval_sums, rows, replicated)``: ``update(params, opt_state, xs,
    labels) -> (params, opt_state, loss, accuracy, gradient norm)`` and ``eval_sums(params, xs, labels, mask)``
    (see :func:`~plastix.train._objective.metric_sums`), batches sharded by ``rows`` and everything else
    ``replicated``. Cached on ``config`` (pass :func:`~plastix.train._config.compiled_key`), so runs of one
    network in one process compile once per shape.
    """
    spike_fn, optimizer = make_spike(config.surrogate, config.slope), optax.adam(config.lr)
    mesh = Mesh(np.array(devices), ("batch",))
    rows, replicated = NamedSharding(mesh, P("batch")), NamedSharding(mesh, P())
    gradient = batch_value_and_grad(config, spike_fn)

    @partial(jax.jit, in_shardings=(replicated, replicated, rows, rows), out_shardings=replicated)
    def update(params, opt_state, xs, labels):
        loss, grads = gradient(params, xs, labels)
        _, (acc, _) = loss_fn(params, xs, labels, config, spike_fn)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, acc, _norm(grads)

    @partial(jax.jit, in_shardings=(replicated, rows, rows, rows), out_shardings=replicated)
    def eval_sums(params, xs, labels, mask):
        logits, spikes = forward(params, xs, config, spike_fn)
        return metric_sums(logits, spikes, labels, mask)

    return spike_fn, optimizer, update, eval_sums, rows, replicated


def to_global(rows: NamedSharding, batch: data.Batch) -> list[jax.Array]:
    """This process's rows of a global batch as global arrays sharded by ``rows``."""
    processes = jax.process_count()
    return [jax.make_array_from_process_local_data(rows, a, (a.shape[0] * processes,) + a.shape[1:])
            for a in batch]


def initialize_distributed() -> None:
    """``jax.distributed.initialize()``; ``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID`` are passed on when set (the
    coordinator address comes from ``JAX_COORDINATOR_ADDRESS``; on SLURM and other clusters JAX detects all)."""
    kwargs = {}
    for name, key in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if os.environ.get(name):
            kwargs[key] = int(os.environ[name])
    jax.distributed.initialize(**kwargs)
