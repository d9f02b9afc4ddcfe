import h5py
import numpy as np
import pytest

from plastix.data import DataError, SpikeFile, iterate, load_shd

FLOAT_VLEN, INT_VLEN = h5py.vlen_dtype(np.float32), h5py.vlen_dtype(np.uint16)


def write_shd(path, times, units, labels, *, times_dtype=FLOAT_VLEN, units_dtype=INT_VLEN, skip=()):
    """A file in the official SHD layout (plus the ``extra`` group the real files carry)."""
    with h5py.File(path, "w") as f:
        if "spikes/times" not in skip:
            ds = f.create_dataset("spikes/times", (len(times),), dtype=times_dtype)
            for i, t in enumerate(times):
                ds[i] = t
        if "spikes/units" not in skip:
            ds = f.create_dataset("spikes/units", (len(units),), dtype=units_dtype)
            for i, u in enumerate(units):
                ds[i] = u
        if "labels" not in skip:
            f.create_dataset("labels", data=np.asarray(labels, np.uint16))
        f.create_dataset("extra/speaker", data=np.zeros(len(labels), np.uint16))
    return path


def sample_file(path, n=6, channels=10, seed=0):
    rng = np.random.default_rng(seed)
    times = [np.sort(rng.uniform(0, 1.2, size=k)).astype(np.float32) for k in rng.integers(0, 30, n)]
    units = [rng.integers(0, channels, size=t.size) for t in times]
    return write_shd(path, times, units, np.arange(n) % 3), times, units


def test_binning_matches_formula(tmp_path):
    path, times, units = sample_file(tmp_path / "s.h5")
    ds = SpikeFile(path, steps=7, duration=1.0, channels=10)
    assert len(ds) == 6 and ds.num_classes == 3 and (ds.steps, ds.num_inputs) == (7, 10)
    xs = ds.take(np.array([4, 1]))
    assert xs.shape == (2, 7, 10) and xs.dtype == np.float32
    for row, i in enumerate([4, 1]):
        expected = np.zeros((7, 10), np.float32)
        for t, u in zip(times[i], units[i]):
            if t < 1.0:  # spikes at or after the duration are dropped
                expected[int(t * 7), u] = 1
        np.testing.assert_array_equal(xs[row], expected)


def test_streaming_batches_and_directory_pair(tmp_path):
    sample_file(tmp_path / "shd_train.h5", n=9, seed=1)
    write_shd(tmp_path / "shd_test.h5", [np.array([0.1], np.float32)], [np.array([2])], [4])
    train, test = load_shd(tmp_path, steps=5, duration=1.0, channels=10)
    assert (len(train), len(test)) == (9, 1) and train.num_classes == test.num_classes == 5
    got = list(iterate(train, 4, seed=0, last="pad"))
    assert [b.xs.shape for b in got] == [(4, 5, 10)] * 3 and got[-1].mask.tolist() == [True, False, False, False]
    assert sorted(np.concatenate([b.labels[b.mask] for b in got]).tolist()) == sorted(train.labels.tolist())
    assert test.take(np.array([0]))[0, 0, 2] == 1


def test_single_file_is_split(tmp_path):
    path, _, _ = sample_file(tmp_path / "one.h5", n=12)
    train, test = load_shd(path, steps=4, duration=1.0, channels=10, test_fraction=0.25)
    assert len(train) + len(test) == 12 and len(test) == 3
    assert train.take(np.arange(len(train))).shape == (9, 4, 10)


def test_errors_name_file_key_and_expectation(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.h5"):
        SpikeFile(tmp_path / "missing.h5")
    with pytest.raises(FileNotFoundError, match="shd_train.h5 and shd_test.h5"):
        load_shd(tmp_path)
    (tmp_path / "text.h5").write_text("not hdf5")
    with pytest.raises(DataError, match="text.h5.*not a readable HDF5"):
        SpikeFile(tmp_path / "text.h5")
    one = [np.array([0.5], np.float32)]
    path = write_shd(tmp_path / "nounits.h5", one, [np.array([1])], [0], skip=("spikes/units",))
    with pytest.raises(DataError, match=r"nounits.h5: missing key 'spikes/units'"):
        SpikeFile(path)
    path = write_shd(tmp_path / "inttimes.h5", [np.array([1])], [np.array([1])], [0], times_dtype=INT_VLEN)
    with pytest.raises(DataError, match=r"inttimes.h5: key 'spikes/times' has dtype uint16.*expected variable-length "
                                        r"float"):
        SpikeFile(path)
    path = write_shd(tmp_path / "dense.h5", [np.array([0.5], np.float32)], [np.array([1])], [0],
                     units_dtype=np.float32)
    with pytest.raises(DataError, match=r"'spikes/units' has dtype float32; expected variable-length integer"):
        SpikeFile(path)
    path = write_shd(tmp_path / "wide.h5", [np.array([0.1, 0.2], np.float32)], [np.array([3, 700])], [0])
    ds = SpikeFile(path, channels=700)
    with pytest.raises(DataError, match=r"wide.h5: key 'spikes/units' of sample 0 holds unit index 700; "
                                        r"expected 0 <= unit < channels=700"):
        ds.take(np.array([0]))
    with pytest.raises(DataError, match="labels.*expected 0 <= label < 2"):
        SpikeFile(sample_file(tmp_path / "l.h5")[0], num_classes=2)
