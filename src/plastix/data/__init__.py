"""Datasets as spike trains (Digits, Randman, SHD/SSC) and the batching interface they share."""

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
from .digits import ENCODINGS, NUM_CLASSES, NUM_INPUTS, digit_images, latency_encode, load_digits, rate_encode
from .randman import Randman, randman
from .shd import SpikeFile, load_shd

__all__ = [
    "ENCODINGS",
    "LAST_BATCH",
    "NUM_CLASSES",
    "NUM_INPUTS",
    "ArrayDataset",
    "Batch",
    "DataError",
    "Randman",
    "SpikeDataset",
    "SpikeFile",
    "Subset",
    "batches",
    "digit_images",
    "iterate",
    "latency_encode",
    "load_digits",
    "load_shd",
    "num_batches",
    "randman",
    "rate_encode",
    "split",
    "stratified_split",
    "train_test_split",
]
