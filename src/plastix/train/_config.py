"""The configuration of a training run: :class:`TrainConfig`, its validation and the choices it accepts."""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from .. import data, online
from ..network import MODELS
from ..neurons import RESETS, SURROGATES

__all__ = ["DATASETS", "DEFAULT_STEPS", "GENERAL_DEFAULTS", "MAX_TRACE_NUMBERS", "MODELS", "MODES", "ConfigError",
           "TrainConfig", "TrainingDiverged", "compiled_key"]

DATASETS = tuple(data.DATASETS)
DEFAULT_STEPS = {name: spec.steps for name, spec in data.DATASETS.items()}
_MODE_ORDER = ("diagonal", "eprop", "rtrl", "bptt")  # how they are listed; modes plastix.online adds come last
MODES = tuple(sorted(online.MODES, key=lambda m: (_MODE_ORDER.index(m) if m in _MODE_ORDER else len(_MODE_ORDER),
                                                  m)))
# settings a dataset may recommend (plastix.data.DatasetSpec.defaults) and what they are where it does not
GENERAL_DEFAULTS = {"model": "lif", "hidden": 256, "layers": 1, "epochs": 15, "batch_size": 64, "lr": 2e-3,
                    "beta": 0.9}
MAX_TRACE_NUMBERS = 2**28  # eligibility-trace numbers per device (1 GiB of float32)
# the fields the jitted update and evaluation depend on (array shapes aside)
_COMPILED_FIELDS = ("model", "mode", "steps", "lr", "beta", "threshold", "reset", "kappa", "surrogate", "slope")
_POSITIVE_INTS = ("steps", "hidden", "layers", "epochs", "batch_size", "channels", "randman_classes", "randman_dim",
                  "randman_samples")


class ConfigError(ValueError):
    """An invalid training configuration (the CLI reports these as one-line usage errors)."""


class TrainingDiverged(RuntimeError):
    """The loss or the gradient norm became NaN or infinite; the message names the epoch and step."""


@dataclass(frozen=True)
class TrainConfig:
    """Everything that defines a training run (written verbatim into ``results.json``).

    ``None`` means the dataset's choice (:func:`resolved`): ``steps`` its default length (digits 20, randman
    50, shd 100, mnist1d 40), and ``model``, ``hidden``, ``layers``, ``epochs``, ``batch_size``, ``lr`` and
    ``beta`` its recommended setting (:attr:`plastix.data.DatasetSpec.defaults`), else :data:`GENERAL_DEFAULTS`
    (lif, 256 neurons, 1 layer, 15 epochs, batch 64, 2e-3, 0.9). ``encoding`` and ``max_rate`` apply to digits;
    ``randman_*`` to randman; ``data_path`` and ``duration`` to shd; ``channels`` to randman and shd.
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
    model: str | None = None
    hidden: int | None = None
    layers: int | None = None
    epochs: int | None = None
    batch_size: int | None = None
    lr: float | None = None
    seed: int = 0
    mode: str = "diagonal"
    beta: float | None = None
    threshold: float = 1.0
    reset: str = "subtract"
    kappa: float = 0.9
    surrogate: str = "fast_sigmoid"
    slope: float = 25.0
    input_gain: float = 1.0
    test_fraction: float = 0.2

    def resolved(self) -> TrainConfig:
        """This configuration with every ``None`` filled in from the dataset (see the class docstring)."""
        spec = data.DATASETS.get(self.dataset)
        recommended = {**GENERAL_DEFAULTS, **(spec.defaults if spec is not None else {})}
        if spec is not None:
            recommended["steps"] = spec.steps
        missing = {f.name: recommended[f.name] for f in fields(self)
                   if getattr(self, f.name) is None and f.name in recommended}
        return replace(self, **missing) if missing else self

    def check(self) -> None:
        """Raise :class:`ConfigError` with a one-line message for the first invalid field (of the resolved
        configuration)."""
        config = self.resolved()
        config._check_choices()
        config._check_numbers()
        spec = data.DATASETS[config.dataset]
        if spec.data_path is not None and not config.data_path:
            raise ConfigError(f"dataset {config.dataset!r} needs a data path ({spec.data_path})")
        if spec.fixed_steps and config.steps != spec.steps:
            raise ConfigError(f"dataset {config.dataset!r} has {spec.steps} steps per sample, got steps "
                              f"{config.steps}; leave --steps out or give {spec.steps}")

    def _check_choices(self) -> None:
        choices = {"dataset": DATASETS, "encoding": data.ENCODINGS, "model": MODELS, "mode": MODES,
                   "reset": RESETS, "surrogate": SURROGATES}
        for name, allowed in choices.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ConfigError(f"unknown {name} {value!r}; expected one of {', '.join(map(repr, allowed))}")

    def _check_numbers(self) -> None:
        for name in _POSITIVE_INTS:
            value = getattr(self, name)
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


def compiled_key(config: TrainConfig) -> TrainConfig:
    """``config`` reduced to the fields the jitted update and evaluation depend on (a cache key)."""
    return TrainConfig(**{name: getattr(config, name) for name in _COMPILED_FIELDS})
