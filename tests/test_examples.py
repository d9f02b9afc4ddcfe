"""Each script in examples/ runs in its quick mode and reports what its docstring promises."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def run(name: str) -> dict:
    spec = importlib.util.spec_from_file_location(f"plastix_example_{name}", EXAMPLES / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main(["--quick"])


def test_hessian_matches_jax(capsys):
    result = run("hessian")
    assert result["max_error"] < 1e-5 * max(1.0, result["max_abs"])
    assert result["asymmetry"] < 1e-5
    assert "max |jacve(jacve) - jax.hessian|" in capsys.readouterr().out


def test_custom_order_is_cheaper_and_exact(capsys):
    result = run("custom_order")
    muls = result["muls"]
    assert muls["custom"] < min(muls["fwd"], muls["rev"])
    assert result["max_error"] < 1e-5
    assert sorted(result["order"]) == list(result["vertices"]) != result["order"]
    assert "custom order:" in capsys.readouterr().out


def test_custom_neuron_online_gradient_and_learning():
    result = run("custom_neuron")
    assert result["grad_error"] < 1e-4
    losses = result["losses"]
    assert losses[-1] < 0.75 * losses[0]


def test_long_sequence_memory_flat_and_learning():
    result = run("long_sequence")
    assert result["bptt_mb"] > result["budget_mb"] >= result["online_mb"]
    assert result["bptt_mb"] > 5 * result["online_mb_by_T"][0]
    low, high = result["online_mb_by_T"]
    assert high == pytest.approx(low, rel=0.05)
    assert result["bptt_extrapolated_mb"] == pytest.approx(result["bptt_mb"], rel=0.2)
    assert result["losses"][-1] < result["losses"][0]


GUIDE = Path(__file__).resolve().parents[1] / "docs" / "guide.md"
README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_code_blocks_run_as_written(tmp_path, monkeypatch, capsys):
    """Every ```python block of README.md runs as written, in order, in one fresh namespace."""
    import re

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the searched order's cache
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    assert blocks
    namespace = {"__name__": "__readme__"}
    for code in blocks:
        exec(compile(code, str(README), "exec"), namespace)
    assert namespace["carry"][0] is not None and "traces in mode 'diagonal'" in capsys.readouterr().out


@pytest.mark.slow
def test_guide_code_blocks_run_and_print_what_the_guide_shows():
    """Every ```python block of docs/guide.md runs in order in one namespace; a ```text block right after it
    is its exact output (on one CPU device)."""
    import contextlib
    import io
    import re

    import jax

    namespace = {"__name__": "__guide__"}
    blocks = re.findall(r"```python\n(.*?)```\n(?:\s*```text\n(.*?)```\n)?", GUIDE.read_text(), flags=re.S)
    assert len(blocks) >= 15
    for code, expected in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, str(GUIDE), "exec"), namespace)
        if expected and jax.device_count() == 1:
            assert out.getvalue().rstrip("\n") == expected.rstrip("\n"), code
