"""plastix.network: every entry of the neuron registry builds parameters and state and runs a step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plastix.network import MODELS, NEURONS, init_params, init_state, network_step, neuron_model
from plastix.neurons import NeuronModel, make_spike

SPIKE = make_spike("fast_sigmoid", 25.0)
N_IN, HIDDEN, N_OUT, BATCH = 3, 5, 2, 4


def test_models_are_the_registry():
    assert MODELS == tuple(NEURONS) and len(MODELS) >= 5
    for name, spec in NEURONS.items():
        assert isinstance(spec, NeuronModel) and callable(spec.step) and callable(spec.init)
        assert spec.description and "\n" not in spec.description, name
        assert set(spec.hyper) <= {"beta", "threshold", "reset"}, name
    with pytest.raises(TypeError):
        NEURONS["new"] = NEURONS["lif"]  # one read-only table
    with pytest.raises(AttributeError):
        NEURONS["lif"].step = None  # frozen records


@pytest.mark.parametrize("model", MODELS)
def test_every_model_builds_and_steps(model):
    params = init_params(jax.random.PRNGKey(0), model, N_IN, HIDDEN, N_OUT, layers=2, input_gain=3.0)
    assert [layer["W"].shape for layer in params["hidden"]] == [(HIDDEN, N_IN), (HIDDEN, HIDDEN)]
    assert params["readout"]["W"].shape == (N_OUT, HIDDEN)
    assert all(("R" in layer) == (model == "rlif") for layer in params["hidden"])
    state = init_state(params, model, (BATCH,))
    leaves = NEURONS[model].state_leaves
    for s in state[0]:
        assert [leaf.shape for leaf in jax.tree.leaves(s)] == [(BATCH, HIDDEN)] * leaves
    assert state[1].shape == (BATCH, N_OUT)

    x = jnp.ones((BATCH, N_IN), jnp.float32)

    @jax.jit
    def run(params, state):  # four steps
        def body(s, _):
            s, out = network_step(params, s, x, model=model, spike_fn=SPIKE)
            return s, out
        return jax.lax.scan(body, state, length=4)

    new_state, (logits, spikes) = run(params, state)
    assert jax.tree.structure(new_state) == jax.tree.structure(state)
    assert all(a.shape == b.shape for a, b in zip(jax.tree.leaves(new_state), jax.tree.leaves(state)))
    assert logits.shape == (4, BATCH, N_OUT) and spikes.shape == (4, BATCH, HIDDEN)
    assert bool(jnp.all(jnp.isfinite(logits)))
    # the first layer is driven, so its state moved (the checks above are not of an inert network)
    assert all(float(jnp.abs(leaf).sum()) > 0 for leaf in jax.tree.leaves(new_state[0][0]))


def test_hyper_parameters_reach_only_the_models_that_take_them():
    x = jnp.ones((1, N_IN), jnp.float32)

    def run(model, **hyper):
        params = init_params(jax.random.PRNGKey(1), model, N_IN, HIDDEN, N_OUT, input_gain=3.0)
        state = init_state(params, model, (1,))
        step = jax.jit(lambda p, s: network_step(p, s, x, model=model, spike_fn=SPIKE, **hyper)[1][1])
        return step(params, state)

    assert not np.array_equal(run("lif", threshold=0.1), run("lif", threshold=50.0))
    np.testing.assert_array_equal(run("sigma-delta", threshold=0.1), run("sigma-delta", threshold=50.0))


@pytest.mark.parametrize("call", [
    lambda: init_params(jax.random.PRNGKey(0), "hh", 3, 4, 2),
    lambda: init_state({"hidden": [], "readout": {"W": jnp.zeros((2, 4))}}, "hh"),
    lambda: network_step({}, ((), jnp.zeros(2)), jnp.zeros(3), model="hh", spike_fn=SPIKE),
    lambda: neuron_model(None),
])
def test_unknown_model_is_a_one_line_error(call):
    with pytest.raises(ValueError) as info:
        call()
    message = str(info.value)
    assert "\n" not in message and message.startswith("unknown model") and "'lif'" in message
