"""`plastix bench ad`: one small task through the CLI, JSON rows and PNG written; a bad task name is a one-line
usage error naming the valid tasks."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import plastix.bench.ad as ad
import plastix.bench.tasks as tasks
from plastix.ad.orders import Order
from plastix.cli import app

runner = CliRunner()
KEYS = {"task", "method", "median_s", "first_call_s", "muls"}


@pytest.fixture(autouse=True)
def order_cache(tmp_path, monkeypatch):
    """The "search" order source: a private order cache and a short search."""
    monkeypatch.setenv("PLASTIX_CACHE_DIR", str(tmp_path / "orders"))
    monkeypatch.setattr(ad, "SEARCH_SECONDS", 0.2)


def test_bench_ad_one_task_writes_json_and_png(tmp_path):
    out_json, out_png = tmp_path / "rows.json", tmp_path / "ratios.png"
    result = runner.invoke(app, ["bench", "ad", "--task", "HumanHeartDipole", "--batch", "8", "--repeats", "3",
                                 "--json", str(out_json), "--plot", str(out_png)])
    assert result.exit_code == 0, result.output
    assert "HumanHeartDipole" in result.output and "plastix-best" in result.output
    rows = json.loads(out_json.read_text())
    methods = [r["method"] for r in rows]
    expected = list(ad.METHODS) if ad.asdex_status()[0] else list(ad.METHODS[:-1])
    assert methods == expected
    if not ad.asdex_status()[0]:
        assert "asdex skipped" in result.output
    for r in rows:
        assert KEYS <= set(r), r
        assert r["task"] == "HumanHeartDipole"
        assert r["median_s"] > 0 and r["first_call_s"] > 0, r
    by = {r["method"]: r for r in rows}
    assert by["plastix-fwd"]["muls"] > 0 and by["plastix-rev"]["muls"] > 0
    assert by["plastix-best"]["muls"] <= min(by["plastix-fwd"]["muls"], by["plastix-rev"]["muls"])
    assert by["plastix-best"]["order"] in ad.ORDER_SOURCES
    assert by["jax-jacrev"]["muls"] is None
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_ad_unknown_task_is_one_line_error():
    result = runner.invoke(app, ["bench", "ad", "--task", "NoSuchTask"])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "NoSuchTask" in lines[0]
    for name in tasks.names():
        assert repr(name) in lines[0]


def test_batch_args_perturb_each_example_and_keep_zeros():
    x = (np.float32(2.0), np.zeros((2, 3), np.float32), np.ones(4, np.float32))
    xs = ad.batch_args(x, 5)
    assert [a.shape for a in xs] == [(5,), (5, 2, 3), (5, 4)]
    assert all(a.dtype == np.float32 for a in xs)
    assert len(set(np.asarray(xs[0]).tolist())) == 5
    np.testing.assert_allclose(xs[0], 2.0, rtol=ad.PERTURBATION)
    assert not np.asarray(xs[1]).any()


def test_order_sources_plug_in():
    task = tasks.get("HumanHeartDipole")
    sources = dict(ad.ORDER_SOURCES, also_rev=lambda fun, argnums, args: "rev")
    orders = ad.candidate_orders(task.fun, task.argnums, task.args, sources)
    assert list(orders) == ["fwd", "rev", "markowitz", "search", "also_rev"]
    assert orders["markowitz"] == "markowitz" and orders["also_rev"] == "rev"
    assert isinstance(orders["search"], Order)
    name, muls = ad.best_order(task.fun, task.argnums, task.args, orders)
    assert set(muls) == set(orders) and muls[name] <= (1 + ad.MULS_TOLERANCE) * min(muls.values())
    assert muls["search"] == orders["search"].muls <= min(muls["fwd"], muls["rev"], muls["markowitz"])


def test_best_order_prefers_fewer_contractions_among_near_ties(monkeypatch):
    task = tasks.get("Perceptron")  # fwd: 4858 multiplications, 4 contractions; rev: 223 and 7
    orders = {"rev": "rev", "fwd": "fwd"}
    name, muls = ad.best_order(task.fun, task.argnums, task.args, orders)
    assert name == "rev" and muls == {"rev": 223, "fwd": 4858}
    monkeypatch.setattr(ad, "MULS_TOLERANCE", 100.0)
    assert ad.best_order(task.fun, task.argnums, task.args, orders)[0] == "fwd"
