"""The network of a configuration run over a batch, its loss and metrics, and the gradient in each mode."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import jax
import jax.numpy as jnp
from jax import lax

from .. import online
from ..network import init_state, network_step
from ._config import TrainConfig

__all__ = ["batch_value_and_grad", "forward", "loss_fn", "metric_sums", "step_fn"]


def step_fn(config: TrainConfig, spike_fn: Callable) -> Callable:
    """The network step ``(params, state, x) -> (state', (logits, spikes))`` of ``config``."""
    return partial(network_step, model=config.model, spike_fn=spike_fn, beta=config.beta,
                   threshold=config.threshold, reset=config.reset, kappa=config.kappa)


def forward(params, xs: jax.Array, config: TrainConfig, spike_fn: Callable):
    """Run the network of ``config`` over a batch from a zero initial state.

    Args:
        params: network parameters (see :func:`plastix.network.init_params`).
        xs: input spikes of shape ``(B, T, m)``.
        config: the :class:`TrainConfig` (``model``, ``beta``, ``threshold``, ``reset``, ``kappa``).
        spike_fn: spike nonlinearity, e.g. ``plastix.neurons.make_spike(config.surrogate, config.slope)``.

    Returns:
        ``(logits, spikes)``: readout logits ``(T, B, k)`` and last hidden layer spikes ``(T, B, n)``,
        time-major.
    """
    step = step_fn(config, spike_fn)
    state = init_state(params, config.model, (xs.shape[0],), xs.dtype)
    _, (logits, spikes) = lax.scan(lambda s, x: step(params, s, x), state, jnp.swapaxes(xs, 0, 1))
    return logits, spikes


def metric_sums(logits, spikes, labels, mask):
    """Sums over the masked batch: per-sample time-averaged cross-entropy, correct predictions, firing rate."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    loss = -jnp.mean(jnp.take_along_axis(logp, labels[None, :, None], axis=-1)[..., 0], axis=0)
    correct = jnp.argmax(jnp.mean(logp, axis=0), axis=-1) == labels
    rate = jnp.mean(spikes, axis=(0, 2))
    return jnp.stack([jnp.sum(jnp.where(mask, v, 0.0)) for v in (loss, correct, rate)])


def loss_fn(params, xs, labels, config: TrainConfig, spike_fn: Callable):
    """Batch loss and metrics, for ``jax.value_and_grad(loss_fn, has_aux=True)`` (BPTT).

    Args:
        params: network parameters.
        xs: input spikes of shape ``(B, T, m)``.
        labels: ``(B,)`` int class labels.
        config: the :class:`TrainConfig`.
        spike_fn: spike nonlinearity with a surrogate derivative.

    Returns:
        ``(loss, (accuracy, rate))``, scalars averaged over the batch: the time-averaged cross-entropy of the
        logits, the accuracy of the time-averaged log-probabilities, and the mean firing rate of the last
        hidden layer.
    """
    logits, spikes = forward(params, xs, config, spike_fn)
    sums = metric_sums(logits, spikes, labels, jnp.ones(labels.shape, bool)) / labels.shape[0]
    return sums[0], (sums[1], sums[2])


def batch_value_and_grad(config: TrainConfig, spike_fn: Callable) -> Callable:
    """``(params, xs (B, T, m), labels (B,)) -> (loss, grads)`` of the batch loss, in ``config.mode``.

    Uses the batched form of :func:`plastix.online.value_and_grad` (gradients contracted over the batch at
    every step) and divides its sums by the batch size.
    """
    step, steps = step_fn(config, spike_fn), config.resolved().steps

    def step_loss(out, label):
        logits, _ = out
        return -jax.nn.log_softmax(logits)[label] / steps

    summed = online.value_and_grad(step, step_loss, config.mode, batched=True)

    def gradient(params, xs, labels):
        batch = xs.shape[0]
        state = init_state(params, config.model, (batch,), xs.dtype)
        targets = jnp.broadcast_to(labels, (xs.shape[1], batch))
        total, grads = summed(params, state, jnp.swapaxes(xs, 0, 1), targets)
        return total / batch, jax.tree.map(lambda g: g / batch, grads)

    return gradient
