"""`plastix bench online`: a tiny run through the CLI (fresh process per configuration), JSON rows and PNG written;
bad method names are one-line usage errors; skipped, unavailable and timed-out configurations are reported."""

import json

from typer.testing import CliRunner

import plastix.bench.online as online
from plastix.cli import app

runner = CliRunner()
KEYS = {"method", "n", "steps", "seconds_per_update", "seconds_per_step", "peak_rss_mb", "xla_temp_mb", "status"}


def test_bench_online_tiny_run_writes_json_and_png(tmp_path):
    out_json, out_png = tmp_path / "rows.json", tmp_path / "online.png"
    result = runner.invoke(app, ["bench", "online", "--sizes", "16", "--steps", "5,10", "--methods",
                                 "bptt,diagonal,diagonal-stream", "--batch", "4", "--repeats", "2",
                                 "--json", str(out_json), "--plot", str(out_png)])
    assert result.exit_code == 0, result.output
    assert "gradient cosine to BPTT" in result.output and "diagonal time / bptt time" in result.output
    assert "diagonal-stream peak RSS" in result.output
    rows = json.loads(out_json.read_text())
    assert [(r["method"], r["steps"]) for r in rows] == [(m, T) for T in (5, 10)
                                                         for m in ("bptt", "diagonal", "diagonal-stream")]
    assert all(r["input_mb"] == 0 for r in rows if r["method"] == "diagonal-stream")
    for r in rows:
        assert KEYS <= set(r), r
        assert r["status"] == "ok" and r["n"] == 16 and r["batch"] == 4, r
        assert r["seconds_per_update"] > 0 and r["peak_rss_mb"] > 0 and r["xla_temp_mb"] >= 0, r
        assert abs(r["seconds_per_step"] * r["steps"] - r["seconds_per_update"]) < 1e-12
    # every method sees the same forward pass, and the cosine check ran at the smallest (n, T)
    first = [r for r in rows if r["steps"] == 5]
    assert abs(first[0]["loss"] - first[1]["loss"]) < 1e-4 * abs(first[0]["loss"])
    assert first[0]["cos_w_in"] == 1.0 and 0.5 < first[1]["cos_w_in"] <= 1.0 + 1e-9
    assert first[1]["spike_rate"] > 0  # a silent network would make the comparison vacuous
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_online_bad_method_is_one_line_error():
    result = runner.invoke(app, ["bench", "online", "--methods", "bptt,nope"])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.output
    assert "'nope'" in lines[0] and all(m in lines[0] for m in online.METHODS)


def test_bench_online_bad_sizes_is_one_line_error():
    result = runner.invoke(app, ["bench", "online", "--sizes", "12x"])
    assert result.exit_code != 0
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "--sizes" in lines[0], result.output


def test_hopeless_braintrace_d_rtrl_is_skipped_without_running(tmp_path):
    rows = online.run([512], [1000], ["braintrace-d_rtrl"], cosine=False, echo=lambda s: None)
    assert len(rows) == 1 and KEYS <= set(rows[0])
    assert rows[0]["status"].startswith(("skipped", "unavailable")), rows[0]
    assert rows[0]["seconds_per_update"] is None


def test_timeout_is_reported():
    rows = online.run([16], [5], ["bptt"], timeout=0.2, cosine=False, echo=lambda s: None)
    assert rows[0]["status"].startswith("timeout"), rows[0]
    assert "timeout" in online.format_table(rows)


def test_ratios_and_table_from_rows():
    def row(method, n, steps, s, rss, temp):
        return {"method": method, "n": n, "steps": steps, "batch": 32, "seconds_per_update": s,
                "seconds_per_step": s / steps, "peak_rss_mb": rss, "xla_temp_mb": temp, "status": "ok"}

    rows = [row("bptt", 512, 100, 0.1, 500, 30), row("bptt", 512, 1000, 1.0, 700, 300),
            row("diagonal", 512, 100, 0.2, 400, 90), row("diagonal", 512, 1000, 1.5, 410, 90),
            row("diagonal", 512, 4000, 6.0, 440, 90), row("braintrace-d_rtrl", 512, 100, 8.0, 900, 50)]
    r = online.ratios(rows)
    assert r["diagonal_peak_rss_Tmax_over_Tmin"] == 440 / 400 and r["diagonal_xla_temp_Tmax_over_Tmin"] == 1.0
    assert r["diagonal_over_bptt_time"] == 1.5 and r["braintrace_d_rtrl_over_diagonal_time"] == 40.0
    table = online.format_table(rows)
    assert "n=512 T=4000" in table and "braintrace-d_rtrl" in table
    assert online.ratios([row("bptt", 128, 100, 0.1, 1, 1)])["diagonal_over_bptt_time"] is None


def test_stream_method_equals_the_rule_on_the_whole_sequence():
    """``diagonal-stream`` (segments of one chunk, inputs drawn per segment) computes what ``diagonal`` computes
    on the same spikes held whole; the spike source is deterministic, of rate 0.05 and live."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    n, batch, steps, chunk = 16, 3, 23, 8
    params = {k: jnp.asarray(v) for k, v in online.init_params(n, 0).items()}
    update, memory = online.stream_update("diagonal-stream", n, batch, steps, chunk=chunk, segment_steps=chunk)
    loss, grads = update(params)
    xs = jnp.concatenate([online.spike_source(0, k * 8, (min(8, steps - 8 * k), batch, online.N_IN))
                          for k in range(3)])
    np.testing.assert_array_equal(xs, online.spike_source(0, 0, (steps, batch, online.N_IN)))
    assert 0.045 < float(jnp.mean(xs)) < 0.055
    labels = jnp.asarray(np.random.default_rng(1).integers(0, online.N_OUT, batch), jnp.int32)
    ys = jnp.broadcast_to(labels, (steps, batch))
    ref_loss, ref = jax.jit(online.plastix_update("diagonal", n, batch))(params, xs, ys)
    np.testing.assert_allclose(loss, ref_loss, rtol=1e-5)
    for k in ref:
        np.testing.assert_allclose(grads[k], ref[k], rtol=1e-4, atol=1e-6, err_msg=k)
    assert memory(params).temp_size_in_bytes > 0
