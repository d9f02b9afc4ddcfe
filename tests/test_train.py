import jax
import jax.numpy as jnp
import numpy as np
import pytest

from plastix.neurons import make_spike
from plastix.train import TrainConfig, forward, init_params, loss_fn, train


def test_config_check():
    TrainConfig().check()
    for bad, match in [({"encoding": "poisson"}, "encoding"), ({"mode": "snap"}, "mode"), ({"hidden": 0}, "hidden"),
                       ({"lr": 0.0}, "lr"), ({"kappa": 1.5}, "kappa"), ({"dataset": "shd"}, "dataset")]:
        with pytest.raises(ValueError, match=match):
            TrainConfig(**bad).check()


def test_forward_shapes_and_gradient():
    config = TrainConfig(hidden=12, steps=6)
    spike = make_spike(config.surrogate, config.slope)
    params = init_params(jax.random.PRNGKey(0), 64, 12, 10)
    xs = jnp.asarray(np.random.default_rng(0).random((3, 6, 64)) < 0.3, jnp.float32)
    labels = jnp.array([0, 3, 9])
    logits, spikes = jax.jit(lambda p, x: forward(p, x, config, spike))(params, xs)
    assert logits.shape == (6, 3, 10) and spikes.shape == (6, 3, 12)
    assert float(spikes.sum()) > 0  # the network is not silent
    grads = jax.jit(jax.grad(lambda p: loss_fn(p, xs, labels, config, spike)[0]))(params)
    assert float(jnp.abs(grads["hidden"]["W"]).sum()) > 0 and float(jnp.abs(grads["readout"]["W"]).sum()) > 0


@pytest.mark.slow
def test_default_run_reaches_90_percent():
    results = train(progress=False, echo=lambda line: None)
    assert results["final"]["test_acc"] >= 0.90
