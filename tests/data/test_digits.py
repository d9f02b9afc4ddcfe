import numpy as np
import pytest

from plastix import data
from plastix.data import (
    batches,
    digit_images,
    latency_encode,
    load_digits,
    num_batches,
    rate_encode,
    stratified_split,
    train_test_split,
)


@pytest.fixture(scope="module")
def images():
    return digit_images()


def test_raw_images(images):
    pixels, labels = images
    assert pixels.shape == (1797, 64) and pixels.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int32
    assert pixels.min() == 0 and pixels.max() == 16
    assert set(np.unique(labels)) == set(range(10))


@pytest.mark.parametrize("encoding", data.ENCODINGS)
def test_load_digits_shapes(encoding):
    xs, labels = load_digits(encoding, steps=7)
    assert xs.shape == (1797, 7, 64) and xs.dtype == np.float32
    assert labels.shape == (1797,) and labels.dtype == np.int32
    assert set(np.unique(xs)) <= {0.0, 1.0}
    assert xs.sum() > 0


def test_rate_code_statistics():
    pixels = np.array([[0, 4, 8, 16]], np.float32)
    xs = rate_encode(pixels, 20000, seed=3)
    assert xs.shape == (1, 20000, 4)
    np.testing.assert_allclose(xs.mean(axis=1)[0], [0.0, 0.25, 0.5, 1.0], atol=0.02)
    half = rate_encode(pixels, 20000, max_rate=0.5, seed=3)
    np.testing.assert_allclose(half.mean(axis=1)[0], [0.0, 0.125, 0.25, 0.5], atol=0.02)


def test_rate_code_seeded(images):
    pixels = images[0][:50]
    a, b = rate_encode(pixels, 10, seed=1), rate_encode(pixels, 10, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, rate_encode(pixels, 10, seed=2))
    assert np.all(a[np.broadcast_to(pixels[:, None, :] == 0, a.shape)] == 0)


def test_latency_code_one_spike_at_formula_time(images):
    pixels = images[0][:100]
    steps = 12
    xs = latency_encode(pixels, steps)
    counts = xs.sum(axis=1)
    np.testing.assert_array_equal(counts, (pixels > 0).astype(np.float32))
    for i, j in zip(*np.nonzero(pixels)):
        expected = round((1 - pixels[i, j] / 16) * (steps - 1))
        assert xs[i, expected, j] == 1


def test_latency_extremes():
    xs = latency_encode(np.array([16.0, 8.0, 0.0], np.float32), 5)
    assert xs.shape == (5, 3)
    assert xs[0, 0] == 1 and xs[:, 0].sum() == 1  # full intensity fires first
    assert xs[2, 1] == 1 and xs[:, 1].sum() == 1  # half intensity in the middle
    assert xs[:, 2].sum() == 0  # zero never fires
    assert latency_encode(np.array([3.0]), 1).tolist() == [[1.0]]


def test_bad_arguments():
    with pytest.raises(ValueError, match="unknown encoding 'poisson'.*'rate', 'latency'"):
        load_digits("poisson")
    with pytest.raises(ValueError, match="steps"):
        load_digits("rate", steps=0)
    with pytest.raises(ValueError, match="max_rate"):
        rate_encode(np.zeros((1, 64)), 5, max_rate=1.5)
    with pytest.raises(ValueError, match="pixels"):
        latency_encode(np.full((1, 4), 17.0), 5)


def test_stratified_split():
    labels = np.repeat(np.arange(4), [10, 20, 30, 41])
    train, test = stratified_split(labels, 0.2, seed=0)
    assert len(np.intersect1d(train, test)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(labels.size))
    assert np.bincount(labels[test]).tolist() == [2, 4, 6, 8]
    again = stratified_split(labels, 0.2, seed=0)
    np.testing.assert_array_equal(test, again[1])
    assert not np.array_equal(test, stratified_split(labels, 0.2, seed=1)[1])


def test_train_test_split_on_digits(images):
    pixels, labels = images
    (x_tr, y_tr), (x_te, y_te) = train_test_split(pixels, labels, seed=0)
    assert len(y_tr) + len(y_te) == 1797
    assert abs(len(y_te) - 0.2 * 1797) <= 10
    frac = np.bincount(y_te, minlength=10) / np.bincount(labels, minlength=10)
    np.testing.assert_allclose(frac, 0.2, atol=0.01)
    assert x_tr.shape == (len(y_tr), 64)


def test_split_errors():
    with pytest.raises(ValueError, match="test_fraction"):
        stratified_split(np.arange(10), 1.0)
    with pytest.raises(ValueError, match="disagree"):
        train_test_split(np.zeros((5, 2)), np.zeros(4))


def test_batches_cover_and_shuffle():
    xs, labels = np.arange(10)[:, None] * np.ones((1, 3)), np.arange(10)
    got = list(batches(xs, labels, 4, seed=5))
    assert [len(y) for _, y in got] == [4, 4, 2] == [len(x) for x, _ in got]
    seen = np.concatenate([y for _, y in got])
    assert sorted(seen.tolist()) == list(range(10))
    for x, y in got:
        np.testing.assert_array_equal(x[:, 0], y)
    again = np.concatenate([y for _, y in batches(xs, labels, 4, seed=5)])
    np.testing.assert_array_equal(seen, again)
    other = np.concatenate([y for _, y in batches(xs, labels, 4, seed=6)])
    assert not np.array_equal(seen, other)
    ordered = np.concatenate([y for _, y in batches(xs, labels, 4, shuffle=False)])
    np.testing.assert_array_equal(ordered, labels)


def test_batches_drop_last():
    xs, labels = np.zeros((10, 2)), np.arange(10)
    got = list(batches(xs, labels, 4, drop_last=True))
    assert [len(y) for _, y in got] == [4, 4]
    assert num_batches(10, 4) == 3 and num_batches(10, 4, drop_last=True) == 2 and num_batches(8, 4) == 2
    with pytest.raises(ValueError, match="batch_size"):
        list(batches(xs, labels, 0))
