"""Datasets as spike trains (Digits, Randman, SHD/SSC, MNIST-1D) and the batching interface they share.

:data:`DATASETS` is the table ``plastix train --dataset`` reads (name -> :class:`DatasetSpec`: loader,
description, steps, inputs and classes where fixed, recommended training settings).
"""

from ._batching import (
    LAST_BATCH,
    ArrayDataset,
    Batch,
    DataError,
    SpikeDataset,
    Subset,
    batches,
    iterate,
    num_batches,
    split,
    stratified_split,
    train_test_split,
)
from ._registry import DATASETS, DatasetSpec
from .digits import ENCODINGS, NUM_CLASSES, NUM_INPUTS, digit_images, latency_encode, load_digits, rate_encode
from .mnist1d import Mnist1d, load_mnist1d, mnist1d_signals, population_code
from .randman import Randman, randman
from .shd import SpikeFile, load_shd

__all__ = [
    "DATASETS",
    "ENCODINGS",
    "LAST_BATCH",
    "NUM_CLASSES",
    "NUM_INPUTS",
    "ArrayDataset",
    "Batch",
    "DataError",
    "DatasetSpec",
    "Mnist1d",
    "Randman",
    "SpikeDataset",
    "SpikeFile",
    "Subset",
    "batches",
    "digit_images",
    "iterate",
    "latency_encode",
    "load_digits",
    "load_mnist1d",
    "load_shd",
    "mnist1d_signals",
    "num_batches",
    "population_code",
    "randman",
    "rate_encode",
    "split",
    "stratified_split",
    "train_test_split",
]
