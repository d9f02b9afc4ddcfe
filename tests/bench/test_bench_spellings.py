"""The spellings benchmark: every spelling is chunked, exact, and the command line checks its options."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plastix.online as po
from plastix.bench import spellings


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


@pytest.mark.parametrize("name", list(spellings.SPELLINGS))
def test_every_spelling_advances_all_its_traces_in_chunks(name):
    spelling = spellings.SPELLINGS[name]
    params = spellings._params(spelling, 6, 5)
    assert spellings.plastix_plan(spelling, params, 6, 5) in ("1/1", "2/2")
    plan = po.plan_traces(spelling.step, params, spelling.state(6), jnp.zeros(5, jnp.float32), "diagonal")
    assert not plan.unchunked, plan.unchunked


def exactness(name):
    """diagonal in chunks of 5 (T = 12) equals BPTT for the spelling's single feed-forward layer, in float64."""
    spelling = spellings.SPELLINGS[name]
    params = jax.tree.map(lambda v: v.astype(jnp.float64), spellings._params(spelling, 6, 5))
    params["W"] = 4 * params["W"]
    rng = np.random.default_rng(0)
    xs = jnp.asarray(rng.random((12, 2, 5)) < 0.4, jnp.float64)
    ys = jnp.asarray(rng.integers(0, spellings.N_OUT, (12, 2)))
    s0 = jax.tree.map(lambda v: jnp.zeros((2,) + v.shape, jnp.float64), spelling.state(6))
    _, ref = po.value_and_grad(spelling.step, spellings._loss, "bptt", batched=True)(params, s0, xs, ys)
    _, got = po.value_and_grad(spelling.step, spellings._loss, "diagonal", batched=True, chunk=5)(params, s0, xs, ys)
    for k in ref:
        np.testing.assert_allclose(got[k], ref[k], rtol=1e-9, atol=1e-12, err_msg=k)
    assert float(jnp.abs(ref["W"]).sum()) > 0  # the spikes' surrogate reached W: the layer was active


@pytest.mark.parametrize("name", ["alif", "cuba", "transposed"])
def test_spellings_are_exact_in_diagonal(name):
    exactness(name)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["zoo-lif", "zero-reset", "reset-through", "einsum"])
def test_other_spellings_are_exact_in_diagonal(name):
    exactness(name)


def test_unknown_spelling_is_a_one_line_usage_error(capsys):
    with pytest.raises(SystemExit) as e:
        spellings.main(["--spellings", "lif,nope"])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown spelling(s) 'lif', 'nope'" in err


def test_table_reports_the_ratios():
    row = {"spelling": "alif", "status": "ok", "chunked": "2/2",
           "seconds": {"bptt": 2.0, "diagonal": 2.2, "eprop": 1.8, "vmap": 4.4},
           "memory": {"short": 100.0, "long": 105.0, "multiple": 40}}
    line = spellings.format_table([row]).splitlines()[1].split()
    assert line[:2] == ["alif", "2/2"] and line[-4:] == ["1.10", "0.90", "2.00", "1.05"]
