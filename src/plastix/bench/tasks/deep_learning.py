"""Small neural networks with a softmax cross-entropy loss: the 2-layer perceptron and the 2-block
transformer encoder (TASKS.md sections 9 and 10).

Example parameters are normal draws with the legacy (non-partitionable) threefry PRNG, embedded literally.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

__all__ = ["perceptron", "perceptron_single", "perceptron_args", "encoder", "encoder_args"]

EPS = 1e-6


def _softmax_cross_entropy(logits, y):
    """-sum_j y_j log(softmax(logits)_j) over the last axis: the log of the softmax, not a fused log-softmax."""
    return -jnp.sum(y * jnp.log(jax.nn.softmax(logits, axis=-1)), axis=-1)


# ------------------------------------------------------------------------------------------------ perceptron
def perceptron_single(x, y, W1, b1, W2, b2, gamma, beta):
    """Loss of one example: x, y of shape (4,); W1 (8,4), b1 (8,), W2 (4,8), b2 (4,), gamma and beta ()."""
    h1 = jnp.tanh(W1 @ x + b1)
    n = h1.shape[-1]
    mu = jnp.sum(h1) / n
    var = jnp.sum((h1 - mu) ** 2) / n  # biased variance
    h2 = ((h1 - mu) / jnp.sqrt(var + EPS)) * gamma + beta
    o = jnp.tanh(W2 @ h2 + b2)  # quirk: tanh applied to the logits
    return _softmax_cross_entropy(o, y)  # quirk: the "labels" y are Gaussian noise


# AlphaGrad differentiates the vmapped function: batch 1 over x and y only.
perceptron = jax.vmap(perceptron_single, in_axes=(0, 0, None, None, None, None, None, None))

_MLP_Y = [[-0.01978116, -0.14368236, -1.0782456, -1.2608526]]
_MLP_W1 = [[-0.03940896, -0.93903947, -0.24570589, -0.5855365],
           [-1.9080896, 1.0270329, 0.8329007, 0.8868685],
           [0.23845139, 0.31597817, 0.87136364, 0.01055884],
           [-0.31346643, 2.477195, -0.11893765, -0.14236885],
           [1.1712366, 0.41637045, -2.3326504, 0.05649149],
           [0.90465665, 1.4728675, -0.9526632, -0.2755593],
           [-0.80088156, 1.4517143, -0.2667769, 0.6268431],
           [-0.20281489, 0.60308164, -0.5419129, 0.55371445]]
_MLP_B1 = [-0.9106365, 0.75681925, 0.41009578, 0.59144366, -0.41671768, 0.21662152, 0.24821521, 0.6555333]
_MLP_W2 = [[2.121342, 0.49071938, 1.9218205, 0.22890288, -0.39943483, 0.17326134, 0.01182021, 0.84679145],
           [0.23453319, 0.8208642, 0.23945343, -0.789623, -0.57651174, 0.2150106, -0.3916978, -0.3504016],
           [-0.3876161, 0.9862584, -0.8733036, 0.15326595, 0.05948106, 0.18284988, 1.3283886, -0.72435504],
           [-1.031249, -0.5377371, 2.1548645, 1.1154015, -0.97180843, -1.2953625, 1.6780772, 0.09693342]]
_MLP_B2 = [-0.92864424, -0.3169657, 1.7850554, -0.92357886]


def perceptron_args():
    """(x, y, W1, b1, W2, b2, gamma, beta): x and y with the batch axis (1, 4); PRNGKey(1234) draws."""
    f32 = lambda v: jnp.asarray(v, jnp.float32)
    return (jnp.ones((1, 4), jnp.float32), f32(_MLP_Y), f32(_MLP_W1), f32(_MLP_B1), f32(_MLP_W2), f32(_MLP_B2),
            f32(0.0), f32(1.0))


# --------------------------------------------------------------------------------------------------- encoder
def _encoder_block(X, WQ, WK, WV, W, b, gamma, beta):
    Q = WQ @ X
    K = WK @ X
    V = WV @ X
    A = Q.T @ K  # one head, no 1/sqrt(d) scaling, no mask
    Z = jax.nn.softmax(A, axis=1)
    att = Z @ V  # quirk: contracts the key-token index with V's feature index (all sizes are 4)
    R = X + att
    # quirk: row statistics broadcast along the last axis, so column j uses row j's mean and variance
    n = R.shape[-1]
    mu = jnp.sum(R, axis=-1) / n
    D = R - mu
    s = jnp.sum(D**2, axis=-1) / n
    LN = (D / jnp.sqrt(s + EPS)) * gamma + beta
    P = W @ LN + b  # quirk: b (4,) is indexed by column in block 1, b (2,1) by row in block 2
    return P * (1.0 / (1.0 + jnp.exp(-P)))  # SiLU with the sigmoid written out


def encoder(x, y, WQ1, WQ2, WK1, WK2, WV1, WV2, W1, W2, b1, b2, gamma0, beta0, gamma1, beta1):
    """Two encoder blocks and a per-row softmax cross-entropy; the loss has shape (2,) (not reduced)."""
    z1 = _encoder_block(x, WQ1, WK1, WV1, W1, b1, gamma0, beta0)
    z2 = _encoder_block(z1, WQ2, WK2, WV2, W2, b2, gamma1, beta1)
    return _softmax_cross_entropy(z2, y)  # quirk: y is Gaussian noise


_ENC = {
    "y": [[-0.8398955, 0.41077062, 0.11723227, -2.1500726],
          [-1.1253395, -1.6256372, 1.0019449, 0.17389837]],
    "WQ1": [[-0.61725974, 0.9977264, 0.00539039, -0.50838524],
            [-0.17853007, -1.3604745, 0.99612534, -0.3579005],
            [-1.6709313, 0.55287206, 0.03369915, 1.3427582],
            [0.89492095, -0.9084078, -0.04227398, 0.13736747]],
    "WK1": [[-1.2333239, -1.2501636, -0.90347743, -1.379942],
            [0.19167608, 1.2018946, 0.24692361, 1.3758126],
            [0.40557432, -0.05662512, -0.46766028, -0.71945596],
            [-1.1917254, 0.15763992, -1.025938, -0.19911787]],
    "WV1": [[0.2963239, -0.16990033, -0.15677574, 1.797948],
            [0.23757347, -0.5858912, -0.26904815, -1.0346364],
            [1.6394367, 1.5281491, 0.22154897, -0.58201444],
            [0.48441988, -1.658464, -1.7993783, -1.7340004]],
    "WQ2": [[1.4240236, -0.13576245, 3.004086, -0.11404254],
            [0.44127476, 0.37427285, 0.9557551, -1.1915995],
            [1.1005335, -0.7904858, 0.89039904, -0.18021417],
            [-0.19032599, 0.2405403, 0.7952238, -0.3416693]],
    "WK2": [[0.51607573, -1.3225807, -0.0283079, 0.4682919],
            [-1.3356571, -0.9329419, -0.3810688, 1.0927368],
            [0.5708373, -0.88479924, 0.1457802, 0.97512066],
            [-2.0310118, -2.5304186, 0.76931727, 0.63557285]],
    "WV2": [[0.04549307, 1.4531901, -0.65943176, -0.898424],
            [0.74453336, -1.2664897, 0.07344055, 1.2390509],
            [-1.81584, -0.08454549, 0.12431362, -1.6533588],
            [0.7722894, 0.10089862, -0.6891245, 0.29942232]],
    "W1": [[-0.41417134, 0.48360288, -1.329697, 0.1710814],
           [2.1205149, -1.1628033, 0.42784134, 0.9593092],
           [0.9313655, -0.7860623, 0.36562642, 1.7412148],
           [-0.4878567, -0.42376596, 0.9680098, 1.9668666]],
    "b1": [1.9813964, -0.9609794, 0.06605446, 0.76863545],
    "W2": [[-0.16822743, 0.5463766, 1.433962, -1.1113708],
           [-0.0433501, 0.4825911, -1.6224709, 0.58113384]],
    "b2": [[-0.5844111], [1.2077239]],
}


def encoder_args():
    """(x, y, WQ1, WQ2, WK1, WK2, WV1, WV2, W1, W2, b1, b2, gamma0, beta0, gamma1, beta1); PRNGKey(250197)."""
    f32 = lambda v: jnp.asarray(v, jnp.float32)
    names = ("y", "WQ1", "WQ2", "WK1", "WK2", "WV1", "WV2", "W1", "W2", "b1", "b2")
    return (jnp.ones((4, 4), jnp.float32), *(f32(_ENC[k]) for k in names), f32(0.0), f32(1.0), f32(0.0), f32(1.0))
