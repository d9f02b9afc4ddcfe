"""MNIST-1D: generated locally and deterministically, the published split, balanced classes, a population code
that never needs the network."""

import ast
import random
from pathlib import Path

import numpy as np
import pytest

import plastix.data.mnist1d as mnist1d
from plastix.data import DATASETS, DataError, load_mnist1d, mnist1d_signals, population_code
from plastix.data.mnist1d import encode

SMALL = 200  # samples of the quick sets (20 per class)


def test_deterministic_for_a_seed_and_leaves_global_generators_alone():
    np.random.seed(7)
    random.seed(7)
    before = np.random.random(), random.random()
    np.random.seed(7)
    random.seed(7)
    first = mnist1d_signals(num_samples=SMALL, seed=3)
    mnist1d._generate.cache_clear()  # generate again, not from the cache
    second = mnist1d_signals(num_samples=SMALL, seed=3)
    assert (np.random.random(), random.random()) == before  # make_dataset's global seeding was undone
    assert first is not second
    for a, b in zip(first, second):
        np.testing.assert_array_equal(a, b)
    other = mnist1d_signals(num_samples=SMALL, seed=4)
    assert not np.array_equal(first[0], other[0])
    assert mnist1d_signals(num_samples=SMALL, seed=3) is second  # cached
    assert not second[0].flags.writeable  # the cached arrays cannot be changed by a caller


def test_shapes_dtypes_and_class_balance():
    x, y, x_test, y_test = mnist1d_signals(num_samples=SMALL, seed=0)
    assert x.shape == (160, 40) and x_test.shape == (40, 40) and x.dtype == np.float32
    assert y.dtype == np.int32 and y.shape == (160,) and y_test.shape == (40,)
    counts = np.bincount(np.concatenate([y, y_test]), minlength=10)
    assert counts.tolist() == [20] * 10  # make_dataset draws the same number of each class
    assert set(np.unique(y)) == set(range(10)) and set(np.unique(y_test)) <= set(range(10))
    train, test = load_mnist1d(num_samples=SMALL, seed=0, channels=8)
    assert (len(train), len(test), train.steps, train.num_inputs, train.num_classes) == (160, 40, 40, 16, 10)
    batch = train.take(np.array([3, 0, 3]))
    assert batch.shape == (3, 40, 16) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[0], batch[2])
    # the value's population code, then the change's (scaled by the training set's spread of changes)
    assert train.change_scale == test.change_scale == pytest.approx(float(np.diff(x, axis=1, prepend=0).std()))
    np.testing.assert_array_equal(batch[1, :, :8], population_code(x[0], 8))
    change = np.concatenate([[x[0, 0]], np.diff(x[0])]) / train.change_scale
    np.testing.assert_allclose(batch[1, :, 8:], population_code(change, 8), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(test.take(np.array([1]))[0], encode(x_test[1], 8, train.change_scale))


def test_published_split_is_the_default():
    spec = DATASETS["mnist1d"]
    assert (spec.steps, spec.num_inputs, spec.num_classes) == (40, 64, 10)
    assert (mnist1d.TRAIN_SAMPLES, mnist1d.TEST_SAMPLES, mnist1d.SEED) == (4000, 1000, 42)
    defaults = mnist1d.mnist1d_signals.__kwdefaults__
    assert defaults == {"num_samples": 5000, "seed": 42} and mnist1d.load_mnist1d.__kwdefaults__["seed"] == 42


@pytest.mark.slow
def test_published_split_sizes():
    x, y, x_test, y_test = mnist1d_signals()  # 5000 samples, a few seconds
    assert x.shape == (4000, 40) and x_test.shape == (1000, 40)
    assert np.bincount(np.concatenate([y, y_test])).tolist() == [500] * 10
    assert abs(float(np.concatenate([x, x_test]).mean())) < 1e-3  # standardised as a whole
    assert float(np.concatenate([x, x_test]).std()) == pytest.approx(1.0, abs=1e-3)


def test_population_code():
    currents = population_code(np.array([[-3.0, 0.0, 3.0, 10.0]]), channels=7)
    assert currents.shape == (1, 4, 7) and currents.dtype == np.float32
    assert currents.max() <= 1.0 and currents.min() >= 0.0
    np.testing.assert_array_equal(np.argmax(currents[0], axis=-1), [0, 3, 6, 6])  # value -> its tuning curve
    np.testing.assert_allclose(currents[0, 1, [2, 3, 4]], [np.exp(-0.5), 1.0, np.exp(-0.5)], rtol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        population_code(np.zeros(3), channels=1)


def test_registry_loader_checks_steps():
    class Options:
        steps = 50

    with pytest.raises(DataError, match="mnist1d has 40 steps"):
        DATASETS["mnist1d"].load(Options())


def test_never_downloads_and_never_touches_the_network():
    """The module imports only NumPy, the standard library, mnist1d's generator and plastix.data's own helpers;
    it never calls mnist1d's downloading get_dataset."""
    source = Path(mnist1d.__file__).read_text()
    imported = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            imported.add("." * node.level + (node.module or ""))
    assert imported <= {"__future__", "random", "functools", "numpy", "._batching", "mnist1d.data"}, imported
    calls = {node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
             for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Call)}
    assert "get_dataset" not in calls and "make_dataset" in calls
