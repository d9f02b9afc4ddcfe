"""The table of datasets ``plastix train --dataset`` knows: name -> :class:`DatasetSpec`.

A new dataset is one module (its loader and a ``train_test(options)`` function) plus one entry in
:data:`DATASETS`; the training configuration's choices, its per-dataset defaults and the command line's
``--dataset`` are derived from this table.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from . import digits, mnist1d, randman, shd
from ._batching import SpikeDataset

__all__ = ["DATASETS", "DatasetSpec"]


@dataclass(frozen=True)
class DatasetSpec:
    """One dataset as the training loop sees it.

    Attributes:
        load: ``load(options) -> (train, test)`` datasets; ``options`` is any object with the attributes of
            :class:`plastix.train.TrainConfig` the loader reads (``steps`` is always resolved, see ``steps``).
        description: one line for the documentation and ``plastix train --help``.
        steps: time steps per sample when ``--steps`` is not given.
        fixed_steps: ``steps`` is the only length the dataset has (``--steps`` must be left out or equal it).
        num_inputs: input channels per step where fixed (``None``: set by the options, e.g. ``channels``).
        num_classes: number of classes where fixed (``None``: set by the options or the files).
        defaults: recommended training settings that a run on this dataset uses unless they are given (any of
            the :class:`~plastix.train.TrainConfig` fields ``model``, ``hidden``, ``layers``, ``epochs``,
            ``batch_size``, ``lr``, ``beta``: the keys of :data:`plastix.train._config.GENERAL_DEFAULTS`).
        data_path: what ``--data-path`` must point at, for datasets read from files (``None``: generated or
            bundled, no path).
    """

    load: Callable[[Any], tuple[SpikeDataset, SpikeDataset]]
    description: str
    steps: int
    fixed_steps: bool = False
    num_inputs: int | None = None
    num_classes: int | None = None
    defaults: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    data_path: str | None = None


DATASETS: MappingProxyType[str, DatasetSpec] = MappingProxyType({
    "digits": DatasetSpec(digits.train_test, "scikit-learn's bundled 8x8 digits, rate or latency coded (no download)",
                          steps=20, num_inputs=digits.NUM_INPUTS, num_classes=digits.NUM_CLASSES),
    "randman": DatasetSpec(randman.train_test, "generated Randman manifolds (Zenke & Vogels 2021), one spike per "
                                               "channel", steps=50),
    "shd": DatasetSpec(shd.train_test, "Spiking Heidelberg Digits / Spiking Speech Commands from their HDF5 files",
                       steps=100, data_path="a directory with shd_train.h5 and shd_test.h5, or one .h5 file"),
    "mnist1d": DatasetSpec(mnist1d.train_test, "MNIST-1D (Greydanus & Kobak 2020), generated locally; "
                                               "value and change population-coded", steps=mnist1d.STEPS,
                           fixed_steps=True, num_inputs=mnist1d.NUM_INPUTS, num_classes=mnist1d.NUM_CLASSES,
                           defaults=MappingProxyType({"model": "lif", "layers": 2, "hidden": 128, "beta": 0.7,
                                                      "epochs": 100, "lr": 2e-3})),
})
