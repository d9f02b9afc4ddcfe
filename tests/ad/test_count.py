"""count_muls: computed abstractly, equal to what the elimination performs, and hand-checkable."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import plastix
from plastix.ad import eliminate, resolve_order


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def _mlp(W1, W2, x):
    return W2 @ jnp.tanh(W1 @ x)


ARGS = (jnp.ones((4, 3)) / 3, jnp.ones((2, 4)) / 4, jnp.arange(3.0))


@pytest.mark.parametrize("order", ["fwd", "rev", "random"])
def test_count_equals_performed_multiplications(order):
    g = plastix.graph(_mlp, (0, 1, 2))(*ARGS)
    if order == "random":
        order = list(np.random.default_rng(0).permutation(g.vertices))
        order = [int(v) for v in order]
    _, performed = eliminate(g, resolve_order(g, order))
    assert plastix.count_muls(_mlp, (0, 1, 2), order=order)(*ARGS) == performed


def test_count_does_not_evaluate_arrays():
    calls = []

    def f(x):
        calls.append(type(x))
        return jnp.sin(x) * 2.0

    plastix.count_muls(f)(jnp.ones(3))
    assert all(issubclass(t, jax.core.Tracer) for t in calls)


def test_hand_counted_chain():
    # x (3) -> W1 @ x (4) -> tanh (4) -> W2 @ . (2); w.r.t. x only.
    # fwd: tanh∘(W1@x): diag(4)·dense(4x3) = 12, then W2: dense(2x4)·dense(4x3) = 24 -> 36.
    # rev: W2·diag(tanh): 2x4 -> 8, then ·W1: 2x4·4x3 = 24 -> 32.
    f = lambda x: _mlp(ARGS[0], ARGS[1], x)
    assert plastix.count_muls(f, order="fwd")(ARGS[2]) == 36
    assert plastix.count_muls(f, order="rev")(ARGS[2]) == 32


def test_index_maps_are_free():
    assert plastix.count_muls(lambda x: x.T.reshape(-1)[::2], order="fwd")(jnp.ones((3, 4))) == 0
