import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from plastix.cli import app

runner = CliRunner()


def one_line_error(result):
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "train" in result.output
    bare = runner.invoke(app, [])
    assert bare.exit_code == 0 and "train" in bare.output


def test_train_help_lists_options():
    result = runner.invoke(app, ["train", "--help"])
    assert result.exit_code == 0
    for option in ("--dataset", "--data-path", "--encoding", "--model", "--hidden", "--layers", "--beta", "--epochs",
                   "--batch-size", "--lr", "--seed", "--out", "--resume", "--distributed", "--mode", "bptt", "rate",
                   "latency", "digits", "randman", "shd", "mnist1d", "sigma-delta", "rlif"):
        assert option in result.output


def test_tiny_train_run_writes_results(tmp_path):
    out = tmp_path / "run"
    result = runner.invoke(app, ["train", "--epochs", "2", "--hidden", "32", "--batch-size", "64",
                                 "--encoding", "rate", "--seed", "3", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "final test accuracy" in result.output
    results = json.loads((out / "results.json").read_text())
    assert results["config"]["hidden"] == 32 and results["config"]["encoding"] == "rate"
    assert results["config"]["mode"] == "diagonal" and results["config"]["seed"] == 3
    assert [e["epoch"] for e in results["epochs"]] == [1, 2]
    for key in ("train_loss", "train_acc", "test_loss", "test_acc", "seconds", "steps_per_s"):
        assert key in results["epochs"][0]
    assert results["epochs"][1]["train_loss"] < results["epochs"][0]["train_loss"]  # it learns
    assert results["final"]["test_acc"] == results["epochs"][1]["test_acc"] > 0.5  # chance is 0.1
    assert results["wall_time_s"] > 0 and results["peak_rss_mb"] > 0
    for name in ("curves.png", "raster.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "checkpoint.npz").is_file()


@pytest.mark.parametrize("args, fragment", [
    (["train", "--bogus"], "--bogus"),
    (["train", "--epochs", "0"], "--epochs"),
    (["train", "--hidden", "many"], "--hidden"),
    (["train", "--encoding", "poisson"], "poisson"),
    (["train", "--dataset", "mnist"], "mnist"),
    (["train", "--mode", "snap"], "snap"),
    (["train", "--lr", "-1"], "lr"),
    (["trian"], "trian"),
    (["train", "--model", "hh"], "hh"),
    (["train", "--layers", "0"], "--layers"),
    (["train", "--beta", "1.5"], "--beta"),
    (["train", "--dataset", "shd"], "needs a data path"),
    (["train", "--dataset", "shd", "--data-path", "/no/such/dir"], "/no/such/dir: no such file or directory"),
    (["train", "--resume"], "resume needs an output directory"),
    (["train", "--model", "rlif", "--mode", "rtrl", "--steps", "2"], "mode 'rtrl' needs"),
    (["train", "--dataset", "mnist1d", "--steps", "50"], "dataset 'mnist1d' has 40 steps per sample"),
])
def test_bad_options_fail_with_one_line(args, fragment):
    line = one_line_error(runner.invoke(app, args))
    assert fragment in line


def test_dataset_recommendations_apply_unless_given(monkeypatch):
    import plastix.train
    from plastix.data import DATASETS

    seen = []
    monkeypatch.setattr(plastix.train, "train", lambda config, **kwargs: seen.append(config.resolved()))
    assert runner.invoke(app, ["train", "--dataset", "mnist1d"]).exit_code == 0
    assert runner.invoke(app, ["train", "--dataset", "mnist1d", "--model", "alif", "--epochs", "2"]).exit_code == 0
    assert runner.invoke(app, ["train"]).exit_code == 0
    recommended, given, digits = seen
    assert {k: getattr(recommended, k) for k in DATASETS["mnist1d"].defaults} == dict(DATASETS["mnist1d"].defaults)
    assert recommended.steps == 40 and recommended.mode == "diagonal"
    assert (given.model, given.epochs, given.hidden) == ("alif", 2, recommended.hidden)
    assert (digits.model, digits.hidden, digits.epochs, digits.lr, digits.steps) == ("lif", 256, 15, 2e-3, 20)


def test_resume_without_a_checkpoint_exits_2_naming_the_directory(tmp_path):
    """A mistyped --out with --resume must not start a fresh run that looks like success."""
    missing = tmp_path / "runs" / "typo"
    result = runner.invoke(app, ["train", "--resume", "--out", str(missing), "--epochs", "1"])
    assert result.exit_code == 2
    assert f"no checkpoint in {missing}" in one_line_error(result)
    assert not missing.exists()


def _write_shd(path, n, seed):
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    with h5py.File(path, "w") as f:
        times = f.create_dataset("spikes/times", (n,), dtype=h5py.vlen_dtype(np.float32))
        units = f.create_dataset("spikes/units", (n,), dtype=h5py.vlen_dtype(np.uint16))
        for i in range(n):
            times[i] = np.sort(rng.uniform(0, 1.4, 200)).astype(np.float32)
            units[i] = rng.integers(0, 700, 200)
        f.create_dataset("labels", data=np.arange(n, dtype=np.uint16) % 10)


TINY_ARGS = ["--epochs", "1", "--hidden", "4", "--steps", "4", "--batch-size", "8"]


@pytest.mark.parametrize("dataset", ["randman", "shd"])
def test_tiny_runs_of_generated_and_file_datasets(tmp_path, dataset):
    extra = ["--samples-per-class", "2"]
    if dataset == "shd":
        _write_shd(tmp_path / "shd_train.h5", 16, 0)
        _write_shd(tmp_path / "shd_test.h5", 10, 1)
        extra = ["--data-path", str(tmp_path)]
    result = runner.invoke(app, ["train", "--dataset", dataset, *TINY_ARGS, *extra, "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    # the same shapes for both datasets (10 classes, 700 channels, 10 test samples): one compilation
    assert results["train_samples"] == (16 if dataset == "shd" else 10) and results["test_samples"] == 10


def test_bad_data_file_fails_with_one_line(tmp_path):
    (tmp_path / "shd_train.h5").write_text("not hdf5")
    (tmp_path / "shd_test.h5").write_text("not hdf5")
    line = one_line_error(runner.invoke(app, ["train", "--dataset", "shd", "--data-path", str(tmp_path)]))
    assert "shd_train.h5: not a readable HDF5 file" in line


def test_diverged_run_exits_1_with_one_line(monkeypatch):
    import plastix.train

    def diverge(config, **kwargs):
        raise plastix.train.TrainingDiverged("loss became nan at epoch 3, step 5 (global step 49); ...")

    monkeypatch.setattr(plastix.train, "train", diverge)
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 1
    assert one_line_error(result) == "Error: loss became nan at epoch 3, step 5 (global step 49); ..."


def test_console_entry_point_has_no_traceback():
    proc = subprocess.run([sys.executable, "-m", "plastix.cli", "train", "--mode", "online"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and proc.stderr.startswith("Error: ")


# --- plastix orders ----------------------------------------------------------------------------------------------


def test_orders_one_task_writes_json(tmp_path, monkeypatch):
    monkeypatch.setenv("PLASTIX_CACHE_DIR", str(tmp_path / "cache"))
    out = tmp_path / "orders.json"
    result = runner.invoke(app, ["orders", "--task", "PropaneCombustion", "--seconds", "0.2", "--seed", "1",
                                 "--json", str(out), "--no-cache"])
    assert result.exit_code == 0, result.output
    assert "PropaneCombustion" in result.output and "AlphaGrad" in result.output
    (row,) = json.loads(out.read_text())
    for key in ("task", "fwd", "rev", "markowitz", "search", "search_seconds", "order"):
        assert key in row, key
    assert row["search"] <= min(row["fwd"], row["rev"], row["markowitz"])
    assert not (tmp_path / "cache").exists()


@pytest.mark.parametrize("args, fragment", [
    (["orders"], "--all"),
    (["orders", "--task", "NoSuchTask"], "NoSuchTask"),
    (["orders", "--all", "--seconds", "-1"], "--seconds"),
])
def test_orders_bad_options_fail_with_one_line(args, fragment):
    assert fragment in one_line_error(runner.invoke(app, args))
