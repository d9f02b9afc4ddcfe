import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax.numpy as jnp
import numpy as np
import pytest

from plastix.network import MODELS
from plastix.train import (
    CHECKPOINT,
    MODES,
    ConfigError,
    TrainConfig,
    TrainingDiverged,
    save_checkpoint,
    train,
)
from plastix.train import _loop as train_loop

# a tiny Randman task: every run here compiles in a few seconds and trains in well under one
TINY = TrainConfig(dataset="randman", channels=12, randman_classes=3, randman_dim=2, randman_samples=12, steps=6,
                   hidden=4, batch_size=8, epochs=3, lr=1e-2, test_fraction=0.25)
QUIET = {"progress": False, "echo": lambda line: None}


def checkpoint_arrays(out: Path) -> dict:
    with np.load(out / CHECKPOINT) as f:
        return {k: f[k] for k in f.files}


def test_config_check():
    TrainConfig().check()
    TINY.check()
    for bad, match in [({"encoding": "poisson"}, "encoding"), ({"mode": "snap"}, "mode"), ({"hidden": 0}, "hidden"),
                       ({"lr": 0.0}, "lr"), ({"kappa": 1.5}, "kappa"), ({"dataset": "mnist"}, "dataset"),
                       ({"model": "hh"}, "model"), ({"layers": 0}, "layers"), ({"dataset": "shd"}, "data path"),
                       ({"dataset": "mnist1d", "steps": 41}, "has 40 steps per sample")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad).check()
    assert TrainConfig(dataset="shd").resolved().steps == 100 and TrainConfig(steps=7).resolved().steps == 7


# every model once and every mode at least once; the whole product runs with -m slow
ROTATION = [(model, MODES[i % len(MODES)]) for i, model in enumerate(MODELS)]


def _tiny_run(model, mode, layers=1, **overrides):
    config = TrainConfig(**{**TINY.__dict__, "model": model, "mode": mode, "epochs": 1, "layers": layers,
                            **overrides})
    results = train(config, **QUIET)
    assert np.isfinite(results["epochs"][0]["train_loss"]) and 0 <= results["final"]["test_acc"] <= 1


@pytest.mark.parametrize("model, mode", ROTATION)
def test_every_model_trains(model, mode):
    _tiny_run(model, mode, layers=2 if model == "dendritic" else 1)


@pytest.fixture(scope="module")
def tiny_shd(tmp_path_factory):
    """A directory with shd_train.h5 and shd_test.h5 of 12 channels, 3 classes."""
    import h5py

    root = tmp_path_factory.mktemp("shd")
    rng = np.random.default_rng(0)
    for name, n in (("shd_train.h5", 24), ("shd_test.h5", 9)):
        with h5py.File(root / name, "w") as f:
            times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
            units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
            for i in range(n):
                times[i] = np.sort(rng.uniform(0, 1.4, 30)).astype(np.float32)
                units[i] = rng.integers(0, 12, 30)
            f.create_dataset("labels", data=np.arange(n, dtype=np.uint16) % 3)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("dataset", ["digits", "randman", "shd", "mnist1d"])
@pytest.mark.parametrize("model, mode", [(m, o) for m in MODELS for o in MODES])
def test_every_dataset_model_and_mode_trains(model, mode, dataset, tiny_shd):
    overrides = {"dataset": dataset, "data_path": str(tiny_shd) if dataset == "shd" else None}
    if dataset == "digits":
        overrides["test_fraction"] = 0.98  # 36 training samples
    if dataset == "mnist1d":
        overrides.update(steps=None, batch_size=1000)  # its 40 steps; 4 steps of 1000 samples
    _tiny_run(model, mode, **overrides)


def test_rtrl_on_too_large_network_is_refused():
    with pytest.raises(ConfigError, match="mode 'rtrl' needs .* trace numbers per example.*smaller --hidden"):
        train(TrainConfig(**{**TINY.__dict__, "model": "rlif", "mode": "rtrl", "hidden": 256, "batch_size": 64,
                             "randman_samples": 40}), **QUIET)


def test_resume_after_an_interrupted_epoch_gives_the_same_weights(tmp_path):
    whole = train(TINY, out=tmp_path / "whole", **QUIET)

    def interrupt(epoch, step):
        if (epoch, step) == (2, 2):
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train(TINY, out=tmp_path / "cut", on_step=interrupt, **QUIET)
    assert sorted(p.name for p in (tmp_path / "cut").iterdir()) == [CHECKPOINT]  # no temporary file left behind
    assert json.loads(str(checkpoint_arrays(tmp_path / "cut")["meta"]))["epoch"] == 1

    lines = []
    resumed = train(TINY, out=tmp_path / "cut", resume=True, progress=False, echo=lines.append)
    assert lines[0].startswith("resuming from") and "after epoch 1" in lines[0]
    assert resumed["resumed_from_epoch"] == 1
    a, b = checkpoint_arrays(tmp_path / "whole"), checkpoint_arrays(tmp_path / "cut")
    assert a.keys() == b.keys()
    for key in a:
        if key != "meta":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)
    assert [e["test_loss"] for e in whole["epochs"]] == [e["test_loss"] for e in resumed["epochs"]]

    with pytest.raises(ConfigError, match="different configuration: hidden 4 vs 5"):
        train(TrainConfig(**{**TINY.__dict__, "hidden": 5}), out=tmp_path / "cut", resume=True, **QUIET)
    with pytest.raises(ConfigError, match="resume needs an output directory"):
        train(TINY, resume=True, **QUIET)


def test_checkpoint_write_is_atomic(tmp_path, monkeypatch):
    path = tmp_path / CHECKPOINT
    save_checkpoint(path, {"w": jnp.ones(3)}, (), {"epoch": 1})
    before = path.read_bytes()

    def broken(f, **arrays):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", broken)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"w": jnp.zeros(3)}, (), {"epoch": 2})
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [CHECKPOINT]


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    poisoned = []
    load = train_loop._load

    class Poisoned:
        def __init__(self, ds):
            self.ds, self.labels = ds, ds.labels
            self.num_classes, self.steps, self.num_inputs = ds.num_classes, ds.steps, ds.num_inputs

        def __len__(self):
            return len(self.ds)

        def take(self, indices):
            return self.ds.take(indices) * (np.nan if poisoned else 1.0)

    monkeypatch.setattr(train_loop, "_load", lambda config: tuple(map(Poisoned, load(config))))
    with pytest.raises(TrainingDiverged, match=r"gradient norm became nan at epoch 2, step 2 .*last good "
                                               r"checkpoint \(epoch 1\)"):
        train(TINY, out=tmp_path, on_step=lambda epoch, step: epoch == 2 and poisoned.append(step), **QUIET)
    assert json.loads(str(checkpoint_arrays(tmp_path)["meta"]))["epoch"] == 1
    assert all(np.isfinite(v).all() for k, v in checkpoint_arrays(tmp_path).items() if k != "meta")


_DEVICES_SCRIPT = """
import json, jax
from plastix.train import ConfigError, TrainConfig, train
config = TrainConfig(**json.loads({config!r}))
quiet = dict(progress=False, echo=lambda line: None)
one = train(config, devices=jax.devices()[:1], **quiet)
four = train(config, **quiet)
try:
    train(TrainConfig(**{{**config.__dict__, "batch_size": 6}}), **quiet)
    error = None
except ConfigError as e:
    error = str(e)
print(json.dumps({{"devices": [one["devices"], four["devices"]], "one": one["epochs"], "four": four["epochs"],
                  "error": error}}))
"""


def test_data_parallel_over_four_cpu_devices_matches_one():
    env = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=4", "JAX_PLATFORMS": "cpu"}
    script = _DEVICES_SCRIPT.format(config=json.dumps({**TINY.__dict__, "epochs": 2}))
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["devices"] == [1, 4]
    for key in ("train_loss", "test_loss", "test_acc"):
        np.testing.assert_allclose([e[key] for e in got["four"]], [e[key] for e in got["one"]], rtol=2e-3,
                                   atol=1e-5, err_msg=key)
    assert "batch_size 6 must be divisible by the number of devices (4)" in got["error"]


@pytest.mark.slow
def test_resume_after_sigkill_mid_epoch(tmp_path):
    config = TrainConfig(**{**TINY.__dict__, "epochs": 4, "randman_samples": 200})
    whole = tmp_path / "whole"
    train(config, out=whole, **QUIET)
    cut = tmp_path / "cut"
    script = (f"import json; from plastix.train import TrainConfig, train; "
              f"train(TrainConfig(**json.loads({json.dumps(config.__dict__)!r})), out={str(cut)!r}, progress=False, "
              f"on_step=lambda e, s: e == 2 and s == 3 and print('mid-epoch', flush=True) or "
              f"(e == 2 and __import__('time').sleep(0.05)))")
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if line.startswith("mid-epoch"):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    time.sleep(0.1)
    assert sorted(p.name for p in cut.iterdir()) == [CHECKPOINT]
    assert json.loads(str(checkpoint_arrays(cut)["meta"]))["epoch"] == 1
    train(config, out=cut, resume=True, **QUIET)
    a, b = checkpoint_arrays(whole), checkpoint_arrays(cut)
    for key in a:
        if key != "meta":
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


@pytest.mark.slow
def test_default_run_reaches_90_percent():
    results = train(**QUIET)
    assert results["final"]["test_acc"] >= 0.90
