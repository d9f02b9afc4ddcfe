"""plastix.data.DATASETS: one read-only table of frozen records from which the training choices are derived."""

import dataclasses

import pytest

from plastix.data import DATASETS, DatasetSpec
from plastix.train import DATASETS as TRAIN_DATASETS
from plastix.train import TrainConfig
from plastix.train._config import GENERAL_DEFAULTS


def test_every_entry_is_complete():
    assert TRAIN_DATASETS == tuple(DATASETS) and {"digits", "randman", "shd", "mnist1d"} <= set(DATASETS)
    recommendable = set(GENERAL_DEFAULTS)  # the TrainConfig fields that default to None (the dataset's choice)
    assert recommendable == {f.name for f in dataclasses.fields(TrainConfig) if f.default is None} - {
        "steps", "data_path"}
    for name, spec in DATASETS.items():
        assert isinstance(spec, DatasetSpec) and callable(spec.load), name
        assert spec.description and "\n" not in spec.description, name
        assert isinstance(spec.steps, int) and spec.steps > 0, name
        assert set(spec.defaults) <= recommendable, name  # a recommendation for another field would be ignored
    with pytest.raises(TypeError):
        DATASETS["new"] = DATASETS["digits"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        DATASETS["digits"].steps = 3


def test_recommended_settings_fill_only_what_is_not_given():
    for name, spec in DATASETS.items():
        config = TrainConfig(dataset=name).resolved()
        assert config.steps == spec.steps
        for key, value in spec.defaults.items():
            assert getattr(config, key) == value, (name, key)
        assert all(value is not None for value in dataclasses.asdict(config).values() if value != config.data_path)
    mnist = TrainConfig(dataset="mnist1d", hidden=7, steps=40).resolved()
    assert mnist.hidden == 7 and mnist.model == DATASETS["mnist1d"].defaults["model"]
    assert TrainConfig().resolved() == TrainConfig().resolved().resolved()  # idempotent
    assert TrainConfig().resolved().model == "lif" and TrainConfig().resolved().epochs == 15  # digits: as before
