"""Training a spiking network on a spike dataset (the ``plastix train`` command).

The network (:mod:`plastix.network`) stacks ``layers`` hidden layers of one neuron model from
:mod:`plastix.neurons` (``lif``, ``alif``, ``rlif``, ``sigma-delta``, ``dendritic``) under a leaky,
non-spiking readout. The loss is the cross-entropy of the readout potentials against the label at every time
step, averaged over time and batch; the prediction is the class with the largest time-averaged
log-probability. The gradient comes from :func:`plastix.online.value_and_grad`: the online modes
``"diagonal"`` (default), ``"eprop"`` and ``"rtrl"`` carry eligibility traces forward in time (memory
independent of the number of steps), ``"bptt"`` backpropagates through ``lax.scan``. The optimizer is optax
Adam.

Data parallelism: every update runs under ``jax.jit`` on a 1-d ``jax.sharding.Mesh`` over the devices (all of
them by default), the batch sharded along it and parameters and optimizer state replicated; XLA inserts the
gradient reduction. ``batch_size`` must be divisible by the number of devices. On several hosts, start one
process per host with ``distributed=True`` (``plastix train --distributed``), which calls
``jax.distributed.initialize()`` first (see ``docs/training.md``); every process then reads only its rows of
each global batch, and process 0 writes checkpoints and results.

Checkpoints (``checkpoint.npz`` in ``out``) are written atomically after every epoch; ``resume=True``
continues from one and ends with the same weights as an uninterrupted run. A non-finite loss stops the run
with :class:`TrainingDiverged`, leaving the last good checkpoint in place.
"""

from __future__ import annotations

import io
import json
import math
import os
import resource
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from functools import lru_cache, partial
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax import lax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P
from tqdm.auto import tqdm

from . import data, online
from .network import MODELS, init_params, init_state, network_step
from .neurons import RESETS, SURROGATES, make_spike

__all__ = ["CHECKPOINT", "DATASETS", "MAX_TRACE_NUMBERS", "MODELS", "MODES", "ConfigError", "TrainConfig",
           "TrainingDiverged", "forward", "load_checkpoint", "loss_fn", "train"]

DATASETS = ("digits", "randman", "shd")
MODES = ("diagonal", "eprop", "rtrl", "bptt")
DEFAULT_STEPS = {"digits": 20, "randman": 50, "shd": 100}
CHECKPOINT = "checkpoint.npz"
MAX_TRACE_NUMBERS = 2**28  # eligibility-trace numbers per device (1 GiB of float32)
_EVAL_ROWS = 512  # samples per evaluation batch (rounded to a multiple of batch_size)
# the fields the jitted update and evaluation depend on (array shapes aside)
_COMPILED_FIELDS = ("model", "mode", "steps", "lr", "beta", "threshold", "reset", "kappa", "surrogate", "slope")


class ConfigError(ValueError):
    """An invalid training configuration (the CLI reports these as one-line usage errors)."""


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite; the message names the epoch and step."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (written verbatim into ``results.json``).

    ``steps=None`` means the dataset's default (digits 20, randman 50, shd 100). ``encoding`` and
    ``max_rate`` apply to digits; ``randman_*`` to randman; ``data_path`` and ``duration`` to shd;
    ``channels`` to randman and shd.
    """

    dataset: str = "digits"
    data_path: str | None = None
    encoding: str = "rate"
    steps: int | None = None
    max_rate: float = 1.0
    duration: float = 1.4
    channels: int = 700
    randman_classes: int = 10
    randman_dim: int = 20
    randman_samples: int = 100
    randman_alpha: float = 2.0
    model: str = "lif"
    hidden: int = 256
    layers: int = 1
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

    def resolved(self) -> TrainConfig:
        """This configuration with ``steps`` filled in from the dataset's default."""
        if self.steps is None and self.dataset in DEFAULT_STEPS:
            return replace(self, steps=DEFAULT_STEPS[self.dataset])
        return self

    def check(self) -> None:
        """Raise :class:`ConfigError` with a one-line message for the first invalid field."""
        choices = {"dataset": DATASETS, "encoding": data.ENCODINGS, "model": MODELS, "mode": MODES,
                   "reset": RESETS, "surrogate": SURROGATES}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; expected one of {', '.join(map(repr, allowed))}")
        for name in ("steps", "hidden", "layers", "epochs", "batch_size", "channels", "randman_classes",
                     "randman_dim", "randman_samples"):
            value = getattr(self, name)
            if name == "steps" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        for name in ("lr", "slope", "threshold", "input_gain", "duration"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")
        for name in ("beta", "kappa"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must lie in [0, 1], got {getattr(self, name)!r}")
        if not (math.isfinite(self.randman_alpha) and self.randman_alpha >= 0):
            raise ConfigError(f"randman_alpha must be a non-negative number, got {self.randman_alpha!r}")
        if not 0.0 < self.max_rate <= 1.0:
            raise ConfigError(f"max_rate must lie in (0, 1], got {self.max_rate!r}")
        if not 0.0 < self.test_fraction < 1.0:
            raise ConfigError(f"test_fraction must lie strictly between 0 and 1, got {self.test_fraction!r}")
        if self.dataset == "shd" and not self.data_path:
            raise ConfigError("dataset 'shd' needs a data path (a directory with shd_train.h5 and shd_test.h5, "
                              "or one .h5 file)")


def _step_fn(config: TrainConfig, spike_fn: Callable) -> Callable:
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
    step = _step_fn(config, spike_fn)
    state = init_state(params, config.model, (xs.shape[0],), xs.dtype)
    _, (logits, spikes) = lax.scan(lambda s, x: step(params, s, x), state, jnp.swapaxes(xs, 0, 1))
    return logits, spikes


def _metric_sums(logits, spikes, labels, mask):
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
    sums = _metric_sums(logits, spikes, labels, jnp.ones(labels.shape, bool)) / labels.shape[0]
    return sums[0], (sums[1], sums[2])


def batch_value_and_grad(config: TrainConfig, spike_fn: Callable) -> Callable:
    """``(params, xs (B, T, m), labels (B,)) -> (loss, grads)`` of the batch loss, in ``config.mode``.

    Uses the batched form of :func:`plastix.online.value_and_grad` (gradients contracted over the batch at
    every step) and divides its sums by the batch size.
    """
    step, steps = _step_fn(config, spike_fn), config.resolved().steps

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


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _load(config: TrainConfig) -> tuple[data.SpikeDataset, data.SpikeDataset]:
    if config.dataset == "digits":
        xs, labels = data.load_digits(config.encoding, steps=config.steps, max_rate=config.max_rate,
                                      seed=config.seed)
        return data.split(data.ArrayDataset(xs, labels, data.NUM_CLASSES), config.test_fraction, seed=config.seed)
    if config.dataset == "randman":
        full = data.randman(classes=config.randman_classes, samples_per_class=config.randman_samples,
                            dimensions=config.randman_dim, channels=config.channels, steps=config.steps,
                            alpha=config.randman_alpha, seed=config.seed)
        return data.split(full, config.test_fraction, seed=config.seed)
    return data.load_shd(config.data_path, steps=config.steps, duration=config.duration, channels=config.channels,
                         test_fraction=config.test_fraction, seed=config.seed)


def _check_trace_size(config: TrainConfig, spike_fn: Callable, params, n_in: int, per_device: int) -> None:
    """Refuse an online mode whose eligibility traces would not fit (e.g. ``rtrl`` on a large network)."""
    if config.mode == "bptt":
        return
    state = init_state(params, config.model)
    plan = online.plan_traces(_step_fn(config, spike_fn), params, state, jnp.zeros(n_in, jnp.float32), config.mode)
    if plan.stored_size * per_device > MAX_TRACE_NUMBERS:
        raise ConfigError(f"mode {config.mode!r} needs {plan.stored_size:,} trace numbers per example, "
                          f"{plan.stored_size * per_device:,} for {per_device} examples per device, more than "
                          f"the limit of {MAX_TRACE_NUMBERS:,}; use a smaller --hidden or --batch-size, or --mode "
                          f"diagonal, eprop or bptt")


def _norm(tree) -> jax.Array:
    return jnp.sqrt(sum(jnp.sum(jnp.square(leaf)) for leaf in jax.tree.leaves(tree)))


@lru_cache(maxsize=8)
def _compiled(config: TrainConfig, devices: tuple[jax.Device, ...]):
    """The jitted update and evaluation of a configuration on a 1-d data-parallel mesh over ``devices``.

    Returns ``(spike_fn, optimizer, update, eval_sums, rows, replicated)``: ``update(params, opt_state, xs,
    labels) -> (params, opt_state, loss, accuracy, gradient norm)`` and ``eval_sums(params, xs, labels, mask)``
    (see :func:`_metric_sums`), batches sharded by ``rows`` and everything else ``replicated``. Cached on
    the fields in ``_COMPILED_FIELDS``, so runs of one network in one process compile once per shape.
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
        return _metric_sums(logits, spikes, labels, mask)

    return spike_fn, optimizer, update, eval_sums, rows, replicated


def _atomic_write(path: Path, write: Callable[[io.BufferedWriter], Any]) -> None:
    """Write ``path`` through a temporary file in the same directory and ``os.replace`` (never half-written)."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _host(tree) -> list[np.ndarray]:
    """The leaves of a (replicated) pytree as NumPy arrays, read from this process's first device."""
    return [np.asarray(leaf.addressable_data(0) if isinstance(leaf, jax.Array) else leaf)
            for leaf in jax.tree.leaves(tree)]


def save_checkpoint(path: Path, params, opt_state, meta: dict) -> None:
    """Atomically write ``params``, ``opt_state`` and the JSON-able ``meta`` to ``path`` (``.npz``)."""
    arrays = {f"params_{i:04d}": a for i, a in enumerate(_host(params))}
    arrays.update({f"opt_{i:04d}": a for i, a in enumerate(_host(opt_state))})
    arrays["meta"] = np.array(json.dumps(meta))
    _atomic_write(path, lambda f: np.savez(f, **arrays))


def load_checkpoint(path: str | Path, params, opt_state, config: TrainConfig | None = None) -> tuple[Any, Any, dict]:
    """Read a checkpoint written by :func:`train` into pytrees shaped like ``params`` and ``opt_state``.

    Args:
        path: the checkpoint ``.npz`` file (``CHECKPOINT`` in a run's output directory).
        params: a parameter pytree of the expected structure and shapes (values are ignored).
        opt_state: an optimizer state pytree of the expected structure and shapes (values are ignored).
        config: if given, the configuration the checkpoint must have been written with.

    Returns:
        ``(params, opt_state, meta)``: the stored pytrees as JAX arrays and the checkpoint's metadata dict
        (including ``"config"``, ``"epoch"``, ``"step"`` and ``"history"``).

    Raises:
        ConfigError: the file is not a checkpoint of a network of this shape, or was written with a
            configuration other than ``config`` (``epochs`` may differ).
    """
    path = Path(path)
    try:
        with np.load(path) as f:
            stored = dict(f)
        meta = json.loads(str(stored.pop("meta")))
    except (OSError, ValueError, KeyError) as e:
        raise ConfigError(f"{path}: not a readable plastix checkpoint ({e})") from None
    if config is not None:
        current = asdict(config)
        mismatch = [f"{name} {meta['config'].get(name)!r} vs {value!r}" for name, value in current.items()
                    if name != "epochs" and meta["config"].get(name) != value]
        if mismatch:
            raise ConfigError(f"{path} was written with a different configuration: {'; '.join(mismatch)}")

    def fill(prefix, like):
        leaves, treedef = jax.tree.flatten(like)
        got = [stored.get(f"{prefix}_{i:04d}") for i in range(len(leaves))]
        for i, (a, b) in enumerate(zip(got, leaves)):
            if a is None or a.shape != np.shape(b):
                raise ConfigError(f"{path}: {prefix} leaf {i} has shape {None if a is None else a.shape}, expected "
                                  f"{np.shape(b)} for this configuration")
        return jax.tree.unflatten(treedef, [jnp.asarray(a) for a in got])

    return fill("params", params), fill("opt", opt_state), meta


def train(config: TrainConfig = TrainConfig(), *, out: str | Path | None = None, resume: bool = False,
          progress: bool | None = True, echo: Callable[[str], Any] | None = None,
          devices: Sequence[jax.Device] | None = None, distributed: bool = False,
          on_step: Callable[[int, int], Any] | None = None) -> dict:
    """Train, evaluate after every epoch, checkpoint, and write results and plots; returns the results dict.

    Args:
        config: the run's configuration.
        out: directory for ``checkpoint.npz``, ``results.json``, ``curves.png`` and ``raster.png`` (created).
        resume: continue from ``out/checkpoint.npz`` (its configuration must equal ``config`` except for
            ``epochs``); without one, a ``ConfigError`` (a mistyped ``out`` must not start a fresh run).
        progress: show a tqdm bar per epoch (``None``: only on a terminal).
        echo: where epoch summaries and the final line go (default: tqdm-safe print to stdout).
        devices: devices of the data-parallel mesh (default: all of ``jax.devices()``).
        distributed: call ``jax.distributed.initialize()`` first (multi-host runs; one process per host).
        on_step: called as ``on_step(epoch, step)`` after every optimizer step (``step`` counts from 1 within
            the epoch); an exception raised there stops the run (tests use it to interrupt one).

    Returns:
        ``{"config", "epochs" (per-epoch metrics), "final", "wall_time_s", "peak_rss_mb", ...}``.

    Raises:
        ConfigError: an invalid configuration or combination (e.g. ``rtrl`` on a network too large for it).
        FileNotFoundError, plastix.data.DataError: missing or malformed data files.
        TrainingDiverged: the training loss or gradient norm became NaN or infinite.
    """
    config = config.resolved()
    config.check()
    if resume and out is None:
        raise ConfigError("resume needs an output directory (--out) holding the checkpoint")
    if resume and not (Path(out) / CHECKPOINT).exists():
        raise ConfigError(f"--resume: no checkpoint in {Path(out)} (expected {Path(out) / CHECKPOINT}); "
                          f"run without --resume to start afresh")
    if distributed:
        _initialize_distributed()
    echo = echo or (lambda line: tqdm.write(line, file=sys.stdout))
    lead = jax.process_index() == 0
    start = time.perf_counter()
    train_set, test_set = _load(config)

    devices = list(jax.devices() if devices is None else devices)
    if config.batch_size % len(devices):
        raise ConfigError(f"batch_size {config.batch_size} must be divisible by the number of devices "
                          f"({len(devices)})")
    if config.batch_size > len(train_set):
        raise ConfigError(f"batch_size {config.batch_size} exceeds the {len(train_set)} training samples")
    params = init_params(jax.random.PRNGKey(config.seed), config.model, train_set.num_inputs, config.hidden,
                         train_set.num_classes, layers=config.layers, input_gain=config.input_gain)
    key = TrainConfig(**{name: getattr(config, name) for name in _COMPILED_FIELDS})
    spike_fn, optimizer, update, eval_sums, rows, replicated = _compiled(key, tuple(devices))
    _check_trace_size(config, spike_fn, params, train_set.num_inputs, config.batch_size // len(devices))
    opt_state = optimizer.init(params)

    history, first_epoch, global_step = [], 1, 0
    checkpoint = Path(out) / CHECKPOINT if out is not None else None
    if checkpoint is not None:
        checkpoint.parent.mkdir(parents=True, exist_ok=True)
        for stale in checkpoint.parent.glob(f".{CHECKPOINT}.*.tmp"):  # left by a process killed mid-write
            stale.unlink(missing_ok=True)
    if resume:
        params, opt_state, meta = load_checkpoint(checkpoint, params, opt_state, config)
        history, first_epoch, global_step = meta["history"], meta["epoch"] + 1, meta["step"]
        echo(f"resuming from {checkpoint} after epoch {meta['epoch']} (step {global_step})")

    params, opt_state = jax.device_put((params, opt_state), replicated)

    shard = (jax.process_index(), jax.process_count())

    def to_global(batch: data.Batch):
        return [jax.make_array_from_process_local_data(rows, a, (a.shape[0] * shard[1],) + a.shape[1:])
                for a in batch]

    def evaluate(params) -> dict[str, float]:
        eval_batch = config.batch_size * max(1, min(-(-len(test_set) // config.batch_size),
                                                    _EVAL_ROWS // config.batch_size))
        sums = np.zeros(3)
        for batch in data.iterate(test_set, eval_batch, shuffle=False, last="pad", shard=shard):
            sums += np.asarray(eval_sums(params, *to_global(batch)))
        loss, correct, rate = sums / len(test_set)
        return {"loss": float(loss), "acc": float(correct), "rate": float(rate)}

    n_batches = data.num_batches(len(train_set), config.batch_size, drop_last=True)
    for epoch in range(first_epoch, config.epochs + 1):
        t0 = time.perf_counter()
        losses, accs = [], []
        bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{config.epochs}", unit="step", leave=False,
                   disable=not lead or (None if progress is None else not progress), file=sys.stderr,
                   dynamic_ncols=True)
        batches = data.iterate(train_set, config.batch_size, seed=config.seed + epoch, last="drop", shard=shard)
        for i, batch in enumerate(batches, start=1):
            xs, labels, _ = to_global(batch)
            params, opt_state, loss, acc, grad_norm = update(params, opt_state, xs, labels)
            losses.append(float(loss))
            bad = [f"{name} became {value}" for name, value in (("loss", losses[-1]), ("gradient norm",
                                                                                        float(grad_norm)))
                   if not math.isfinite(value)]
            if bad:
                bar.close()
                kept = (f"the last good checkpoint (epoch {epoch - 1}) is kept in {checkpoint}"
                        if checkpoint is not None and epoch > 1 else "no checkpoint was written")
                raise TrainingDiverged(f"{' and '.join(bad)} at epoch {epoch}, step {i} (global step "
                                       f"{global_step + i}); {kept}; try a smaller --lr")
            accs.append(float(acc))
            bar.set_postfix(loss=f"{losses[-1]:.3f}", acc=f"{accs[-1]:.3f}", refresh=False)
            bar.update()
            if on_step is not None:
                on_step(epoch, i)
        bar.close()
        global_step += n_batches
        seconds = time.perf_counter() - t0
        test = evaluate(params)
        record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "train_acc": float(np.mean(accs)),
                  "test_loss": test["loss"], "test_acc": test["acc"], "hidden_rate": test["rate"],
                  "seconds": seconds, "steps_per_s": n_batches / seconds}
        history.append(record)
        if checkpoint is not None and lead:
            save_checkpoint(checkpoint, params, opt_state, {"epoch": epoch, "step": global_step,
                                                            "history": history, "config": asdict(config),
                                                            "shuffle_seed": config.seed + epoch + 1})
        if lead:
            echo(f"epoch {epoch:>3}/{config.epochs}  loss {record['train_loss']:.4f}  "
                 f"train acc {100 * record['train_acc']:5.1f} %  test loss {record['test_loss']:.4f}  "
                 f"test acc {100 * record['test_acc']:5.1f} %  {seconds:5.2f} s  "
                 f"{record['steps_per_s']:6.1f} steps/s")

    wall = time.perf_counter() - start
    results = {
        "config": asdict(config),
        "epochs": history,
        "final": {"test_acc": history[-1]["test_acc"], "test_loss": history[-1]["test_loss"]},
        "train_samples": len(train_set),
        "test_samples": len(test_set),
        "devices": len(devices),
        "processes": jax.process_count(),
        "resumed_from_epoch": first_epoch - 1 if first_epoch > 1 else None,
        "wall_time_s": wall,
        "peak_rss_mb": _peak_rss_mb(),
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
    }
    if not lead:
        return results
    echo(f"final test accuracy {100 * results['final']['test_acc']:.2f} % "
         f"({len(test_set)} samples) in {wall:.1f} s, peak RSS {results['peak_rss_mb']:.0f} MB")
    if out is not None:
        out = Path(out)
        _atomic_write(out / "results.json", lambda f: f.write((json.dumps(results, indent=2) + "\n").encode()))
        _plot_curves(history, out / "curves.png")
        x0 = test_set.take(np.array([0]))
        logits, spikes = forward(jax.device_put(params, devices[0]), jnp.asarray(x0), config, spike_fn)
        _plot_raster(x0[0], np.asarray(spikes[:, 0]), np.asarray(logits[:, 0]), int(test_set.labels[0]),
                     out / "raster.png")
        echo(f"wrote {out / 'results.json'}, {out / 'curves.png'}, {out / 'raster.png'}, {checkpoint}")
    return results


def _initialize_distributed() -> None:
    """``jax.distributed.initialize()``; ``JAX_NUM_PROCESSES``/``JAX_PROCESS_ID`` are passed on when set (the
    coordinator address comes from ``JAX_COORDINATOR_ADDRESS``; on SLURM and other clusters JAX detects all)."""
    kwargs = {}
    for name, key in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if os.environ.get(name):
            kwargs[key] = int(os.environ[name])
    jax.distributed.initialize(**kwargs)


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
    pred = int(np.argmax(np.mean(logits - _logsumexp(logits), axis=0)))
    ax_out.set(xlabel="time step", ylabel="readout potential", title=f"readout (label {label}, predicted {pred})")
    ax_out.legend(title="label", fontsize="small")
    fig.savefig(path, dpi=100)


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    m = logits.max(axis=-1, keepdims=True)
    return m + np.log(np.exp(logits - m).sum(axis=-1, keepdims=True))

