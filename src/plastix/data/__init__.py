"""Datasets as spike trains, and the small batching utilities the training loop uses."""

from ._batching import batches, num_batches, stratified_split, train_test_split
from .digits import ENCODINGS, NUM_CLASSES, NUM_INPUTS, digit_images, latency_encode, load_digits, rate_encode

__all__ = [
    "ENCODINGS",
    "NUM_CLASSES",
    "NUM_INPUTS",
    "batches",
    "digit_images",
    "latency_encode",
    "load_digits",
    "num_batches",
    "rate_encode",
    "stratified_split",
    "train_test_split",
]
