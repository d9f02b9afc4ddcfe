"""`plastix orders` internals: rows, AlphaGrad's reference ratios, table and JSON, the order cache."""

import json

import pytest

import plastix.bench.orders as bench_orders
from plastix.ad import orders


@pytest.fixture(autouse=True)
def order_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("PLASTIX_CACHE_DIR", str(tmp_path / "orders"))
    return tmp_path / "orders"


def test_alphagrad_reference_ratios():
    assert set(bench_orders.ALPHAGRAD) == set(bench_orders._tasks.names())
    assert bench_orders.alphagrad_ratio("RoeFlux_1d") == pytest.approx(320 / 364)
    assert bench_orders.alphagrad_ratio("BlackScholes_Jacobian") == pytest.approx(312 / 350)
    assert bench_orders.alphagrad_ratio("f") == pytest.approx(6374 / 8859)
    for name in bench_orders.ALPHAGRAD:
        assert 0.7 < bench_orders.alphagrad_ratio(name) < 1.0


def test_run_task_row(order_cache):
    row = bench_orders.run_task("PropaneCombustion", seconds=30, max_evals=50)
    for key in ("task", "fwd", "rev", "markowitz", "search", "search_seconds", "order", *orders.HEURISTICS):
        assert key in row, key
    assert row["task"] == "PropaneCombustion" and sorted(row["order"]) == list(range(1, row["vertices"] + 1))
    assert row["search"] <= min(row[name] for name in orders.HEURISTICS)
    assert row["ratio"] == pytest.approx(row["search"] / min(row["fwd"], row["rev"], row["markowitz"]))
    assert row["alphagrad_ratio"] == pytest.approx(88 / 90)
    # PropaneCombustion's optimum is proven at the root of the exact search: no order beats 36
    assert row["lower_bound"] == row["search"] == 36 and row["proven_optimal"]
    assert row["alphagrad_count"] == 37  # floor(88 / 90 * min(43, 38, 41))
    cached = orders.load_order(order_cache / f"{row['fingerprint']}.json")
    assert list(cached.vertices) == row["order"] and cached.muls == row["search"]


def test_run_prints_a_table_and_writes_json(tmp_path, order_cache):
    lines = []
    rows = bench_orders.run(["HumanHeartDipole"], seconds=0.2, cache=False, echo=lines.append)
    text = "\n".join(lines)
    assert "HumanHeartDipole" in text and "AlphaGrad" in text and "markowitz" in text
    assert not order_cache.exists()
    assert bench_orders.format_table(rows).splitlines()[1].startswith("HumanHeartDipole")
    # HumanHeartDipole: every order costs >= 70 on our graph, AlphaGrad's ratio would need <= 63
    assert rows[0]["lower_bound"] == 70 and rows[0]["alphagrad_count"] == 63
    assert "unreachable, optimum >= 70" in text
    bench_orders.write_json(rows, tmp_path / "out" / "rows.json")
    assert json.loads((tmp_path / "out" / "rows.json").read_text()) == rows


def test_unknown_task_is_named():
    with pytest.raises(KeyError, match="NoSuchTask"):
        bench_orders.run(["NoSuchTask"], seconds=0.1)
