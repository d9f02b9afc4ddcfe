"""The training loop: load the data, set up (or resume) a run, train epoch by epoch, evaluate, write results."""

from __future__ import annotations

import json
import math
import resource
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from .. import data, online
from ..network import init_params, init_state
from ._checkpoints import CHECKPOINT, atomic_write, load_checkpoint, remove_stale, save_checkpoint
from ._config import MAX_TRACE_NUMBERS, ConfigError, TrainConfig, TrainingDiverged, compiled_key
from ._devices import compiled, initialize_distributed, to_global
from ._objective import forward, step_fn
from ._plots import plot_curves, plot_raster

__all__ = ["train"]

_EVAL_ROWS = 512  # samples per evaluation batch (rounded to a multiple of batch_size)
_DEFAULT = TrainConfig()


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _load(config: TrainConfig) -> tuple[data.SpikeDataset, data.SpikeDataset]:
    """``(train, test)`` of the configuration's dataset (:data:`plastix.data.DATASETS`)."""
    return data.DATASETS[config.dataset].load(config)


def _check_trace_size(config: TrainConfig, spike_fn: Callable, params, n_in: int, per_device: int) -> None:
    """Refuse an online mode whose eligibility traces would not fit (e.g. ``rtrl`` on a large network)."""
    if config.mode == "bptt":
        return
    state = init_state(params, config.model)
    plan = online.plan_traces(step_fn(config, spike_fn), params, state, jnp.zeros(n_in, jnp.float32), config.mode)
    if plan.stored_size * per_device > MAX_TRACE_NUMBERS:
        raise ConfigError(f"mode {config.mode!r} needs {plan.stored_size:,} trace numbers per example, "
                          f"{plan.stored_size * per_device:,} for {per_device} examples per device, more than "
                          f"the limit of {MAX_TRACE_NUMBERS:,}; use a smaller --hidden or --batch-size, or --mode "
                          f"diagonal, eprop or bptt")


@dataclass
class _Run:
    """A run in progress: its data, compiled functions, current parameters and history."""

    config: TrainConfig
    train_set: data.SpikeDataset
    test_set: data.SpikeDataset
    devices: list
    fns: tuple  # (spike_fn, optimizer, update, eval_sums, rows, replicated) of plastix.train._devices.compiled
    params: Any = None
    opt_state: Any = None
    checkpoint: Path | None = None
    history: list = field(default_factory=list)
    first_epoch: int = 1
    global_step: int = 0
    lead: bool = True
    shard: tuple[int, int] = (0, 1)


def _start(config: TrainConfig, out, resume: bool, devices, echo) -> _Run:
    """Load the data, check the batch size, initialise (or resume) parameters and optimizer state."""
    train_set, test_set = _load(config)
    devices = list(jax.devices() if devices is None else devices)
    if config.batch_size % len(devices):
        raise ConfigError(f"batch_size {config.batch_size} must be divisible by the number of devices "
                          f"({len(devices)})")
    if config.batch_size > len(train_set):
        raise ConfigError(f"batch_size {config.batch_size} exceeds the {len(train_set)} training samples")
    run = _Run(config, train_set, test_set, devices, compiled(compiled_key(config), tuple(devices)),
               lead=jax.process_index() == 0, shard=(jax.process_index(), jax.process_count()))
    spike_fn, optimizer, *_, replicated = run.fns
    run.params = init_params(jax.random.PRNGKey(config.seed), config.model, train_set.num_inputs, config.hidden,
                             train_set.num_classes, layers=config.layers, input_gain=config.input_gain)
    _check_trace_size(config, spike_fn, run.params, train_set.num_inputs, config.batch_size // len(devices))
    run.opt_state = optimizer.init(run.params)
    if out is not None:
        run.checkpoint = Path(out) / CHECKPOINT
        run.checkpoint.parent.mkdir(parents=True, exist_ok=True)
        remove_stale(run.checkpoint.parent)
    if resume:
        run.params, run.opt_state, meta = load_checkpoint(run.checkpoint, run.params, run.opt_state, config)
        run.history, run.first_epoch, run.global_step = meta["history"], meta["epoch"] + 1, meta["step"]
        echo(f"resuming from {run.checkpoint} after epoch {meta['epoch']} (step {run.global_step})")
    run.params, run.opt_state = jax.device_put((run.params, run.opt_state), replicated)
    return run


def _evaluate(run: _Run) -> dict[str, float]:
    """Test loss, accuracy and hidden firing rate of the current parameters (padded last batch masked)."""
    batch_size, n = run.config.batch_size, len(run.test_set)
    eval_batch = batch_size * max(1, min(-(-n // batch_size), _EVAL_ROWS // batch_size))
    eval_sums, rows = run.fns[3], run.fns[4]
    sums = np.zeros(3)
    for batch in data.iterate(run.test_set, eval_batch, shuffle=False, last="pad", shard=run.shard):
        sums += np.asarray(eval_sums(run.params, *to_global(rows, batch)))
    loss, correct, rate = sums / n
    return {"loss": float(loss), "acc": float(correct), "rate": float(rate)}


def _diverged(run: _Run, epoch: int, step: int, loss: float, grad_norm: float) -> TrainingDiverged | None:
    bad = [f"{name} became {value}" for name, value in (("loss", loss), ("gradient norm", grad_norm))
           if not math.isfinite(value)]
    if not bad:
        return None
    kept = (f"the last good checkpoint (epoch {epoch - 1}) is kept in {run.checkpoint}"
            if run.checkpoint is not None and epoch > 1 else "no checkpoint was written")
    return TrainingDiverged(f"{' and '.join(bad)} at epoch {epoch}, step {step} (global step "
                            f"{run.global_step + step}); {kept}; try a smaller --lr")


def _train_epoch(run: _Run, epoch: int, progress: bool | None, on_step) -> tuple[list[float], list[float]]:
    """One pass over the training set in the epoch's seeded order; the per-step losses and accuracies."""
    config, update, rows = run.config, run.fns[2], run.fns[4]
    n_batches = data.num_batches(len(run.train_set), config.batch_size, drop_last=True)
    losses, accs = [], []
    bar = tqdm(total=n_batches, desc=f"epoch {epoch}/{config.epochs}", unit="step", leave=False,
               disable=not run.lead or (None if progress is None else not progress), file=sys.stderr,
               dynamic_ncols=True)
    batches = data.iterate(run.train_set, config.batch_size, seed=config.seed + epoch, last="drop", shard=run.shard)
    for i, batch in enumerate(batches, start=1):
        xs, labels, _ = to_global(rows, batch)
        run.params, run.opt_state, loss, acc, grad_norm = update(run.params, run.opt_state, xs, labels)
        losses.append(float(loss))
        error = _diverged(run, epoch, i, losses[-1], float(grad_norm))
        if error is not None:
            bar.close()
            raise error
        accs.append(float(acc))
        bar.set_postfix(loss=f"{losses[-1]:.3f}", acc=f"{accs[-1]:.3f}", refresh=False)
        bar.update()
        if on_step is not None:
            on_step(epoch, i)
    bar.close()
    run.global_step += n_batches
    return losses, accs


def _epoch(run: _Run, epoch: int, progress: bool | None, on_step, echo) -> None:
    """Train one epoch, evaluate, append the record to the history, checkpoint and print the summary line."""
    config = run.config
    t0 = time.perf_counter()
    losses, accs = _train_epoch(run, epoch, progress, on_step)
    seconds = time.perf_counter() - t0
    test = _evaluate(run)
    record = {"epoch": epoch, "train_loss": float(np.mean(losses)), "train_acc": float(np.mean(accs)),
              "test_loss": test["loss"], "test_acc": test["acc"], "hidden_rate": test["rate"],
              "seconds": seconds, "steps_per_s": len(losses) / seconds}
    run.history.append(record)
    if not run.lead:
        return
    if run.checkpoint is not None:
        save_checkpoint(run.checkpoint, run.params, run.opt_state,
                        {"epoch": epoch, "step": run.global_step, "history": run.history, "config": asdict(config),
                         "shuffle_seed": config.seed + epoch + 1})
    echo(f"epoch {epoch:>3}/{config.epochs}  loss {record['train_loss']:.4f}  "
         f"train acc {100 * record['train_acc']:5.1f} %  test loss {record['test_loss']:.4f}  "
         f"test acc {100 * record['test_acc']:5.1f} %  {seconds:5.2f} s  {record['steps_per_s']:6.1f} steps/s")


def _results(run: _Run, wall: float) -> dict:
    return {
        "config": asdict(run.config),
        "epochs": run.history,
        "final": {"test_acc": run.history[-1]["test_acc"], "test_loss": run.history[-1]["test_loss"]},
        "train_samples": len(run.train_set),
        "test_samples": len(run.test_set),
        "devices": len(run.devices),
        "processes": jax.process_count(),
        "resumed_from_epoch": run.first_epoch - 1 if run.first_epoch > 1 else None,
        "wall_time_s": wall,
        "peak_rss_mb": _peak_rss_mb(),
        "jax_version": jax.__version__,
        "backend": jax.default_backend(),
    }


def _write_outputs(run: _Run, results: dict, out: Path, echo) -> None:
    """``results.json``, ``curves.png`` and ``raster.png`` (the first test sample) in ``out``."""
    atomic_write(out / "results.json", lambda f: f.write((json.dumps(results, indent=2) + "\n").encode()))
    plot_curves(run.history, out / "curves.png")
    x0 = run.test_set.take(np.array([0]))
    logits, spikes = forward(jax.device_put(run.params, run.devices[0]), jnp.asarray(x0), run.config, run.fns[0])
    plot_raster(x0[0], np.asarray(spikes[:, 0]), np.asarray(logits[:, 0]), int(run.test_set.labels[0]),
                out / "raster.png")
    echo(f"wrote {out / 'results.json'}, {out / 'curves.png'}, {out / 'raster.png'}, {run.checkpoint}")


def train(config: TrainConfig = _DEFAULT, *, out: str | Path | None = None, resume: bool = False,
          progress: bool | None = True, echo: Callable[[str], Any] | None = None,
          devices: Sequence[jax.Device] | None = None, distributed: bool = False,
          on_step: Callable[[int, int], Any] | None = None) -> dict:
    """Train, evaluate after every epoch, checkpoint, and write results and plots; returns the results dict.

    Args:
        config: the run's configuration (``None`` fields are filled in from the dataset, see
            :meth:`TrainConfig.resolved`).
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
        initialize_distributed()
    echo = echo or (lambda line: tqdm.write(line, file=sys.stdout))
    start = time.perf_counter()
    run = _start(config, out, resume, devices, echo)
    for epoch in range(run.first_epoch, config.epochs + 1):
        _epoch(run, epoch, progress, on_step, echo)
    results = _results(run, time.perf_counter() - start)
    if not run.lead:
        return results
    echo(f"final test accuracy {100 * results['final']['test_acc']:.2f} % "
         f"({len(run.test_set)} samples) in {results['wall_time_s']:.1f} s, peak RSS {results['peak_rss_mb']:.0f} MB")
    if out is not None:
        _write_outputs(run, results, Path(out), echo)
    return results
