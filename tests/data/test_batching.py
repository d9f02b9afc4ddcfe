import numpy as np
import pytest

from plastix.data import ArrayDataset, DataError, iterate, split


@pytest.fixture
def dataset():
    xs = np.arange(10, dtype=np.float32)[:, None, None] * np.ones((1, 2, 3), np.float32)
    return ArrayDataset(xs, np.arange(10) % 2)


def rows(batch):
    return batch.xs[:, 0, 0][batch.mask].astype(int).tolist()


def test_last_batch_drop_pad_keep(dataset):
    assert [len(b.labels) for b in iterate(dataset, 4, last="drop")] == [4, 4]
    assert [len(b.labels) for b in iterate(dataset, 4, last="keep")] == [4, 4, 2]
    padded = list(iterate(dataset, 4, shuffle=False, last="pad"))
    assert [b.xs.shape[0] for b in padded] == [4, 4, 4]
    assert padded[-1].mask.tolist() == [True, True, False, False] and rows(padded[-1]) == [8, 9]
    assert np.all(padded[-1].xs[2:] == 0) and padded[-1].labels[2:].tolist() == [0, 0]
    with pytest.raises(ValueError, match="last"):
        list(iterate(dataset, 4, last="wrap"))


def test_seeded_shuffle_and_labels_follow_rows(dataset):
    first = [r for b in iterate(dataset, 3, seed=5, last="keep") for r in rows(b)]
    assert sorted(first) == list(range(10)) and first != list(range(10))
    assert first == [r for b in iterate(dataset, 3, seed=5, last="keep") for r in rows(b)]
    assert first != [r for b in iterate(dataset, 3, seed=6, last="keep") for r in rows(b)]
    for b in iterate(dataset, 3, seed=5):
        assert (b.xs[:, 0, 0].astype(int) % 2).tolist() == b.labels.tolist()


def test_shards_partition_every_batch(dataset):
    whole = [rows(b) for b in iterate(dataset, 4, seed=1)]
    parts = [[rows(b) for b in iterate(dataset, 4, seed=1, shard=(i, 2))] for i in range(2)]
    assert [a + b for a, b in zip(*parts)] == whole
    with pytest.raises(ValueError, match="shard"):
        list(iterate(dataset, 4, shard=(0, 3)))


def test_split_views(dataset):
    train, test = split(dataset, 0.2, seed=0)
    assert len(train) + len(test) == 10 and sorted(test.labels.tolist()) == [0, 1]
    np.testing.assert_array_equal(test.take(np.arange(len(test)))[:, 0, 0] % 2, test.labels)
    with pytest.raises(DataError, match="disagree"):
        ArrayDataset(np.zeros((3, 2, 2)), np.zeros(4))
