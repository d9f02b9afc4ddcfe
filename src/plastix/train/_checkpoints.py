"""Checkpoints: atomic writes, and reading one back into pytrees of the expected shapes (for ``--resume``)."""

from __future__ import annotations

import io
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ._config import ConfigError, TrainConfig

__all__ = ["CHECKPOINT", "atomic_write", "load_checkpoint", "remove_stale", "save_checkpoint"]

CHECKPOINT = "checkpoint.npz"


def atomic_write(path: Path, write: Callable[[io.BufferedWriter], Any]) -> None:
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


def remove_stale(directory: Path) -> None:
    """Delete the temporary checkpoint files a process killed mid-write left in ``directory``."""
    for stale in directory.glob(f".{CHECKPOINT}.*.tmp"):
        stale.unlink(missing_ok=True)


def _host(tree) -> list[np.ndarray]:
    """The leaves of a (replicated) pytree as NumPy arrays, read from this process's first device."""
    return [np.asarray(leaf.addressable_data(0) if isinstance(leaf, jax.Array) else leaf)
            for leaf in jax.tree.leaves(tree)]


def save_checkpoint(path: Path, params, opt_state, meta: dict) -> None:
    """Atomically write ``params``, ``opt_state`` and the JSON-able ``meta`` to ``path`` (``.npz``)."""
    arrays = {f"params_{i:04d}": a for i, a in enumerate(_host(params))}
    arrays.update({f"opt_{i:04d}": a for i, a in enumerate(_host(opt_state))})
    arrays["meta"] = np.array(json.dumps(meta))
    atomic_write(path, lambda f: np.savez(f, **arrays))


def _fill(path: Path, stored: dict, prefix: str, like):
    leaves, treedef = jax.tree.flatten(like)
    got = [stored.get(f"{prefix}_{i:04d}") for i in range(len(leaves))]
    for i, (a, b) in enumerate(zip(got, leaves)):
        if a is None or a.shape != np.shape(b):
            raise ConfigError(f"{path}: {prefix} leaf {i} has shape {None if a is None else a.shape}, expected "
                              f"{np.shape(b)} for this configuration")
    return jax.tree.unflatten(treedef, [jnp.asarray(a) for a in got])


def load_checkpoint(path: str | Path, params, opt_state, config: TrainConfig | None = None) -> tuple[Any, Any, dict]:
    """Read a checkpoint written by :func:`~plastix.train.train` into pytrees shaped like ``params`` and
    ``opt_state``.

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
        mismatch = [f"{name} {meta['config'].get(name)!r} vs {value!r}" for name, value in asdict(config).items()
                    if name != "epochs" and meta["config"].get(name) != value]
        if mismatch:
            raise ConfigError(f"{path} was written with a different configuration: {'; '.join(mismatch)}")
    return _fill(path, stored, "params", params), _fill(path, stored, "opt", opt_state), meta
