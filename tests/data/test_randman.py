import numpy as np
import pytest

from plastix.data import Randman, randman


def test_shapes_one_spike_per_channel_and_seeded():
    ds = randman(classes=3, samples_per_class=5, dimensions=2, channels=16, steps=9, seed=1)
    assert isinstance(ds, Randman) and len(ds) == 15 and ds.num_classes == 3 and (ds.steps, ds.num_inputs) == (9, 16)
    assert ds.labels.tolist() == [0] * 5 + [1] * 5 + [2] * 5
    xs = ds.take(np.arange(15))
    assert xs.shape == (15, 9, 16) and xs.dtype == np.float32
    np.testing.assert_array_equal(xs.sum(axis=1), 1.0)  # exactly one spike per channel
    assert ds.times.min() == 0 and ds.times.max() == 8  # each channel's range is stretched over [0, steps)
    again = randman(classes=3, samples_per_class=5, dimensions=2, channels=16, steps=9, seed=1)
    np.testing.assert_array_equal(ds.times, again.times)
    assert not np.array_equal(ds.times, randman(classes=3, samples_per_class=5, dimensions=2, channels=16, steps=9,
                                                seed=2).times)


def test_samples_lie_on_their_class_manifold():
    # low-dimensional smooth manifolds: a sample's nearest neighbour belongs to its own class
    ds = randman(classes=3, samples_per_class=60, dimensions=1, channels=40, steps=200, seed=0)
    t = ds.times.astype(np.float64)
    dist = np.linalg.norm(t[:, None] - t[None], axis=-1)
    np.fill_diagonal(dist, np.inf)
    assert np.mean(ds.labels[dist.argmin(axis=1)] == ds.labels) > 0.95
    assert t[:60].std(axis=0).mean() > 20  # samples spread along the manifold, not one point


def test_bad_options():
    for kwargs, match in [({"classes": 0}, "classes"), ({"dimensions": 1.5}, "dimensions"), ({"steps": 0}, "steps"),
                          ({"alpha": -1.0}, "alpha"), ({"steps": 40000}, "steps")]:
        with pytest.raises(ValueError, match=match):
            randman(**kwargs)
