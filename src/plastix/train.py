"""Training a feed-forward spiking network on a spike-encoded dataset (the ``plastix train`` command).

The network is one feed-forward LIF layer (:func:`plastix.neurons.lif_step`) followed by a leaky, non-spiking
readout (:func:`plastix.neurons.readout_step`). The loss is the cross-entropy of the readout potentials
against the label at every time step, averaged over time and batch; the prediction is the class with the
largest time-averaged log-probability. The gradient comes from :func:`plastix.online.value_and_grad`: the
online modes ``"diagonal"`` (default), ``"eprop"`` and ``"rtrl"`` carry eligibility traces forward in time
(memory independent of the number of steps), ``"bptt"`` backpropagates through ``lax.scan``. The optimizer
is optax Adam.
"""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from tqdm.auto import tqdm

from . import data, online
from .neurons import RESETS, SURROGATES, init_linear, lif_step, make_spike, readout_step

__all__ = ["DATASETS", "MODES", "ConfigError", "TrainConfig", "evaluate", "forward", "init_params", "loss_fn", "train"]

DATASETS = ("digits",)
MODES = ("diagonal", "eprop", "rtrl", "bptt")


class ConfigError(ValueError):
    """An invalid training configuration (the CLI reports these as one-line usage errors)."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (written verbatim into ``results.json``)."""

    dataset: str = "digits"
    encoding: str = "rate"
    steps: int = 20
    max_rate: float = 1.0
    hidden: int = 256
    epochs: int = 15
    batch_size: int = 64
    lr: float = 2e-3
    seed: int = 0
    mode: str = "diagonal"
    beta: float = 0.9
    threshold: float = 1.0
    reset: str = "subtract"
    kappa: float = 0.9
    surrogate: str = "fast_sigmoid"
    slope: float = 25.0
    input_gain: float = 1.0
    test_fraction: float = 0.2

    def check(self) -> None:
        """Raise :class:`ConfigError` with a one-line message for the first invalid field."""
        choices = {"dataset": DATASETS, "encoding": data.ENCODINGS, "mode": MODES, "reset": RESETS,
                   "surrogate": SURROGATES}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; expected one of {', '.join(map(repr, allowed))}")
        for name in ("steps", "hidden", "epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "slope", "threshold", "input_gain"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        for name in ("beta", "kappa"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if not 0.0 < self.max_rate <= 1.0:
            raise ConfigError(f"max_rate must lie in (0, 1], got {self.max_rate!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must lie strictly between 0 and 1, got {self.test_fraction!r}")


def init_params(key: jax.Array, n_in: int, hidden: int, n_out: int, *, input_gain: float = 1.0) -> dict:
    """``{"hidden": {"W": (hidden, n_in)}, "readout": {"W": (n_out, hidden)}}``."""
    k1, k2 = jax.random.split(key)
    return {"hidden": init_linear(k1, n_in, hidden, gain=input_gain), "readout": init_linear(k2, hidden, n_out)}


def network_step(params, state, x, *, config: TrainConfig, spike_fn: Callable):
    """One time step of the whole network: ``((u, v), x) -> ((u', v'), (logits, spikes))``."""
    u, v = state
    u, z = lif_step(params["hidden"], u, x, beta=config.beta, threshold=config.threshold, reset=config.reset,
                    spike_fn=spike_fn)
    v, logits = readout_step(params["readout"], v, z, kappa=config.kappa)
    return (u, v), (logits, z)


def forward(params, xs: jax.Array, config: TrainConfig, spike_fn: Callable):
    """Run a batch ``xs`` of shape ``(B, T, m)``; returns logits ``(T, B, k)`` and hidden spikes ``(T, B, n)``."""
    batch = xs.shape[0]
    state = (jnp.zeros((batch, params["hidden"]["W"].shape[0]), xs.dtype),
             jnp.zeros((batch, params["readout"]["W"].shape[0]), xs.dtype))
    step = partial(network_step, config=config, spike_fn=spike_fn)
    _, (logits, spikes) = lax.scan(lambda s, x: step(params, s, x), state, jnp.swapaxes(xs, 0, 1))
    return logits, spikes


def _metrics(logits, labels):
    """Per-step cross-entropy averaged over time and batch; accuracy of the time-averaged log-probabilities."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    loss = -jnp.mean(jnp.take_along_axis(logp, labels[None, :, None], axis=-1))
    acc = jnp.mean(jnp.argmax(jnp.mean(logp, axis=0), axis=-1) == labels)
    return loss, acc


def loss_fn(params, xs, labels, config: TrainConfig, spike_fn: Callable):
    """``(loss, (accuracy, mean hidden firing rate))`` for one batch."""
    logits, spikes = forward(params, xs, config, spike_fn)
    loss, acc = _metrics(logits, labels)
    return loss, (acc, jnp.mean(spikes))


def batch_value_and_grad(config: TrainConfig, spike_fn: Callable) -> Callable:
    """``(params, xs (B, T, m), labels (B,)) -> (loss, grads)`` of the batch loss, in ``config.mode``."""
    step = partial(network_step, config=config, spike_fn=spike_fn)

    def step_loss(out, label):
        logits, _ = out
        return -jax.nn.log_softmax(logits)[label] / config.steps

    per_example = online.value_and_grad(step, step_loss, config.mode)

    def gradient(params, xs, labels):
        state = (jnp.zeros(params["hidden"]["W"].shape[0], xs.dtype),
                 jnp.zeros(params["readout"]["W"].shape[0], xs.dtype))
        targets = jnp.broadcast_to(labels[:, None], labels.shape + (xs.shape[1],))
        losses, grads = jax.vmap(per_example, in_axes=(None, None, 0, 0))(params, state, xs, targets)
        return jnp.mean(losses), jax.tree.map(lambda g: jnp.mean(g, axis=0), grads)

    return gradient


def evaluate(params, xs, labels, config: TrainConfig, spike_fn: Callable) -> dict[str, float]:
    """Loss, accuracy and mean hidden firing rate on a whole set (one batch)."""
    loss, (acc, rate) = _eval(params, jnp.asarray(xs), jnp.asarray(labels), config, spike_fn)
    return {"loss": float(loss), "acc": float(acc), "rate": float(rate)}


@partial(jax.jit, static_argnames=("config", "spike_fn"))
def _eval(params, xs, labels, config, spike_fn):
    return loss_fn(params, xs, labels, config, spike_fn)


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _load(config: TrainConfig):
    xs, labels = data.load_digits(config.encoding, steps=config.steps, max_rate=config.max_rate, seed=config.seed)
    return data.train_test_split(xs, labels, config.test_fraction, seed=config.seed)


def train(config: TrainConfig = TrainConfig(), *, out: str | Path | None = None, progress: bool | None = True,
          echo: Callable[[str], Any] | None = None) -> dict:
    """Train, evaluate after every epoch, optionally write results and plots; returns the results dict.

    Args:
        config: the run's configuration.
        out: directory for ``results.json``, ``curves.png`` and ``raster.png`` (created if missing).
        progress: show a tqdm bar per epoch (``None``: only on a terminal).
        echo: where epoch summaries and the final line go (default: tqdm-safe print to stdout).
    """
    config.check()
    echo = echo or (lambda line: tqdm.write(line, file=sys.stdout))
    start = time.perf_counter()
    (x_train, y_train), (x_test, y_test) = _load(config)
    if config.batch_size > len(y_train):
        raise ConfigError(f"batch_size {config.batch_size} exceeds the {len(y_train)} training samples")
    spike_fn = make_spike(config.surrogate, config.slope)
    params = init_params(jax.random.PRNGKey(config.seed), x_train.shape[-1], config.hidden, data.NUM_CLASSES,
                         input_gain=config.input_gain)
    optimizer = optax.adam(config.lr)
    opt_state = optimizer.init(params)

    gradient = batch_value_and_grad(config, spike_fn)

    @jax.jit
    def update(params, opt_state, xs, labels):
        loss, grads = gradient(params, xs, labels)
        logits, _ = forward(params, xs, config, spike_fn)
        _, acc = _metrics(logits, labels)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss, acc

    n_batches = data.num_batches(len(y_train), config.batch_size, drop_last=True)
    history = []
    for epoch in range(1, config.epochs + 1):
        t0 = time.perf_counter()
        losses, accs = [], []
        bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{config.epochs}", unit="step", leave=False,
                   disable=None if progress is None else not progress, file=sys.stderr, dynamic_ncols=True)
        for xb, yb in data.batches(x_train, y_train, config.batch_size, seed=config.seed + epoch, drop_last=True):
            params, opt_state, loss, acc = update(params, opt_state, xb, yb)
            losses.append(float(loss))
            accs.append(float(acc))
            bar.set_postfix(loss=f"{losses[-1]:.3f}", acc=f"{accs[-1]:.3f}", refresh=False)
            bar.update()
        bar.close()
        seconds = time.perf_counter() - t0
        test = evaluate(params, x_test, y_test, config, spike_fn)
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "train_acc": float(np.mean(accs)),
                  "test_loss": test["loss"], "test_acc": test["acc"], "hidden_rate": test["rate"],
                  "seconds": seconds, "steps_per_s": n_batches / seconds}
        history.append(record)
        echo(f"epoch {epoch:>3}/{config.epochs}  loss {record['train_loss']:.4f}  "
             f"train acc {100 * record['train_acc']:5.1f} %  test loss {record['test_loss']:.4f}  "
             f"test acc {100 * record['test_acc']:5.1f} %  {seconds:5.2f} s  {record['steps_per_s']:6.1f} steps/s")

    wall = time.perf_counter() - start
    results = {
        "config": asdict(config),
        "epochs": history,
        "final": {"test_acc": history[-1]["test_acc"], "test_loss": history[-1]["test_loss"]},
        "train_samples": int(len(y_train)),
        "test_samples": int(len(y_test)),
        "wall_time_s": wall,
        "peak_rss_mb": _peak_rss_mb(),
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
    }
    echo(f"final test accuracy {100 * results['final']['test_acc']:.2f} % "
         f"({len(y_test)} samples) in {wall:.1f} s, peak RSS {results['peak_rss_mb']:.0f} MB")
    if out is not None:
        out = Path(out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        _plot_curves(history, out / "curves.png")
        logits, spikes = forward(params, jnp.asarray(x_test[:1]), config, spike_fn)
        _plot_raster(x_test[0], np.asarray(spikes[:, 0]), np.asarray(logits[:, 0]), int(y_test[0]),
                     out / "raster.png")
        echo(f"wrote {out / 'results.json'}, {out / 'curves.png'}, {out / 'raster.png'}")
    return results


def _plot_curves(history: list[dict], path: Path) -> None:
    from matplotlib.figure import Figure

    epochs = [r["epoch"] for r in history]
    fig = Figure(figsize=(9, 3.5), layout="constrained")
    ax_loss, ax_acc = fig.subplots(1, 2)
    for split in ("train", "test"):
        ax_loss.plot(epochs, [r[f"{split}_loss"] for r in history], marker="o", label=split)
        ax_acc.plot(epochs, [100 * r[f"{split}_acc"] for r in history], marker="o", label=split)
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy", title="loss")
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.savefig(path, dpi=100)


def _plot_raster(x: np.ndarray, spikes: np.ndarray, logits: np.ndarray, label: int, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(10, 3.5), layout="constrained")
    ax_in, ax_hid, ax_out = fig.subplots(1, 3)
    for ax, s, title in ((ax_in, x, "input spikes"), (ax_hid, spikes, "hidden spikes")):
        t, i = np.nonzero(s)
        ax.scatter(t, i, s=2, c="k", marker="|")
        ax.set(xlabel="time step", ylabel="neuron", title=title, xlim=(-0.5, s.shape[0] - 0.5),
               ylim=(-0.5, s.shape[1] - 0.5))
    for k in range(logits.shape[1]):
        ax_out.plot(logits[:, k], lw=2.5 if k == label else 1, label=str(k) if k == label else None)
    pred = int(np.argmax(np.mean(logits - logsumexp_np(logits), axis=0)))
    ax_out.set(xlabel="time step", ylabel="readout potential", title=f"readout (label {label}, predicted {pred})")
    ax_out.legend(title="label", fontsize="small")
    fig.savefig(path, dpi=100)


def logsumexp_np(logits: np.ndarray) -> np.ndarray:
    m = logits.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))


def with_overrides(config: TrainConfig, **overrides) -> TrainConfig:
    """``config`` with the given fields replaced (``None`` values are ignored)."""
    return replace(config, **{k: v for k, v in overrides.items() if v is not None})
