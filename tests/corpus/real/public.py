"""Custom gradients from public code, re-implemented here with their mathematics and their bugs.

Each function is written anew in this project's words (no code copied); the comment above it
names where the original lives and what it computes. Where the code index that found it names
no repository, the comment says so and quotes the original's identifying names. PyTorch
``autograd.Function``s are re-implemented as ``tf.custom_gradient``: their mathematics is what
is under test. Intended surrogates (straight-through, reversal, clipping) carry ``surrogate``.
"""

import mpmath as mp
import tensorflow as tf

from tests.corpus.real import RealTarget

UNNAMED = "public code found through the code index, which names no repository for it; "


# tensorflow/docs, site/en/api_docs/python/tf/custom_gradient.md (the `tf.custom_gradient` docstring,
# tensorflow/python/ops/custom_gradient.py): log(1 + eˣ) with the gradient 1 - 1/(1 + eˣ).
@tf.custom_gradient
def log1pexp(x):
    e = tf.exp(x)
    return tf.math.log(1 + e), lambda dy: dy * (1 - 1 / (1 + e))


# Scarlettg/models, official/resnet/activations.py (a fork of tensorflow/models): swish x·σ(x) as a
# Defun whose gradient is σ(x)·(1 + x·(1 - σ(x))).
@tf.custom_gradient
def swish_models(x):
    def grad(dy):
        s = tf.sigmoid(x)
        return dy * (s * (1.0 + x * (1.0 - s)))

    return x * tf.sigmoid(x), grad


# leesharkey/deep_attractor_network, lib/custom_components/custom_swish_activation.py (PyTorch): swish
# whose backward reuses the forward's result r = x·σ(x): g·(r + σ(x)·(1 - r)).
@tf.custom_gradient
def swish_from_result(x):
    result = x * tf.sigmoid(x)
    return result, lambda dy: dy * (result + tf.sigmoid(x) * (1 - result))


# UNNAMED: `_mish` in a Keras `Mish` layer: x·tanh(softplus(x)), gradient
# t + x·σ(x)·(1 - t²) with t = tanh(softplus(x)).
@tf.custom_gradient
def mish(x):
    t = tf.tanh(tf.nn.softplus(x))
    return x * t, lambda dy: dy * (t + x * tf.sigmoid(x) * (1 - t * t))


# UNNAMED: `log_cosh` next to `log_sinh` (imports `reduce_logsumexp as log_sum_exp`): log cosh x computed
# as x + log1p(expm1(-2x)/2), gradient tanh x.
@tf.custom_gradient
def log_cosh(x):
    return x + tf.math.log1p(tf.math.expm1(-2 * x) / 2), lambda dy: dy * tf.tanh(x)


# UNNAMED: `custom_norm` in a geometric-algebra Keras module (HUGE_FLOAT = 1e9, `bivec_dual`): the norm
# over the last axis with the gradient x/(‖x‖ + 1e-19). A stabiliser in a float32 gradient: for
# ‖x‖ near 1e-19 and below the gradient is far from x/‖x‖ (a thin-region bug at tiny inputs).
@tf.custom_gradient
def custom_norm(x):
    y = tf.linalg.norm(x, axis=-1, keepdims=True)
    return y, lambda dy: dy * (x / (y + 1e-19))


# UNNAMED: `Utility.norm_kdf` (module imports `src.utils.TMatrix`): the row norms sqrt(Σx² + 1e-19),
# but grad_fn reads the *output* (the norms, shape [rows]) where it means the input: the gradient
# has the output's shape, not the input's.
@tf.custom_gradient
def norm_kdf(x):
    norms = tf.sqrt(tf.reduce_sum(x * x, axis=1) + 1e-19)
    return norms, lambda dy: dy * (norms / (tf.norm(norms, axis=0) + 1e-19))


# UNNAMED: `layer_norm` decorated with `node.utils.nest.nest_map`: (x - mean)/(std + eps) whose grad_fn
# subtracts 1 where the layer-norm gradient subtracts the mean of the upstream gradient.
@tf.custom_gradient
def layer_norm(x):
    mean, variance = tf.nn.moments(x, [-1], keepdims=True)
    std = tf.sqrt(variance) + 1e-8
    y = (x - mean) / std

    def grad(dy):
        return 1 / std * (dy - 1 - tf.reduce_mean(dy * y, axis=-1, keepdims=True) * y)

    return y, grad


# UNNAMED: `SinhDiv` (PyTorch, EPS = {float32: 1e-4, float64: 1e-7}): sinh(x)/x, and below EPS in |x|
# its limit 1 with gradient 0 — where the true gradient is x/3 (a dropped higher-order term).
@tf.custom_gradient
def sinh_div(x):
    eps = 1e-4 if x.dtype == tf.float32 else 1e-7
    small = tf.abs(x) < eps
    safe = tf.where(small, tf.ones_like(x), x)

    def grad(dy):
        slope = (safe * tf.cosh(safe) - tf.sinh(safe)) / safe**2
        return dy * tf.where(small, tf.zeros_like(x), slope)

    return tf.where(small, tf.ones_like(x), tf.sinh(safe) / safe), grad


# -- intended surrogates ---------------------------------------------------------------------------


# mycal-tucker/fair-baselines, models/flip_gradient_tf.py: the gradient reversal layer (identity forward, -dy).
@tf.custom_gradient
def grad_reverse(x):
    return tf.identity(x), lambda dy: -dy


# takumi0shibata/Adversarial-AES, custom_layers/gradient_reversal.py: reversal scaled by lamda (no gradient for lamda).
@tf.custom_gradient
def gradient_reverse(x, lamda):
    return tf.identity(x), lambda dy: (lamda * -dy, None)


# MasatoMiyoshi/tensorflow_tutorial, high_level_api/auto_diff_custom.py: identity forward, gradient clipped to a norm.
@tf.custom_gradient
def clip_gradient_by_norm(x, norm):
    return tf.identity(x), lambda dy: [tf.clip_by_norm(dy, norm), None]


# UNNAMED: `ste_quantize` in a QAT module (QUANT_MODE = 'BNN'): sign(x) forward, straight-through (identity) gradient.
@tf.custom_gradient
def ste_sign(x):
    return tf.where(x >= 0, 1.0, -1.0), lambda dy: dy


def _sigmoid(x):
    return 1 / (1 + mp.exp(-x))


def _unary(f):
    return lambda a: [f(x) for x in a[0]]


def _norm_rows(a, columns):
    rows = [a[0][k:k + columns] for k in range(0, len(a[0]), columns)]
    return [mp.sqrt(mp.fsum(x * x for x in row)) for row in rows]


def _layer_norm(a):
    x = a[0]
    mean = mp.fsum(x) / len(x)
    std = mp.sqrt(mp.fsum((v - mean) ** 2 for v in x) / len(x)) + mp.mpf("1e-8")
    return [(v - mean) / std for v in x]


TARGETS = [
    RealTarget("log1pexp", log1pexp, ("float32[]@-50..50",), _unary(lambda x: mp.log1p(mp.exp(x))),
               "tensorflow/docs: site/en/api_docs/python/tf/custom_gradient.md", category="precision",
               note="1 - 1/(1 + eˣ) cancels to 0 below x ≈ -17 (float32), -37 (float64), where σ(x) ≈ eˣ is accurate"),
    RealTarget("swish (tensorflow/models)", swish_models, ("float32[3]@-20..20",), _unary(lambda x: x * _sigmoid(x)),
               "Scarlettg/models: official/resnet/activations.py"),
    RealTarget("swish from its result", swish_from_result, ("float32[3]@-20..20",), _unary(lambda x: x * _sigmoid(x)),
               "leesharkey/deep_attractor_network: lib/custom_components/custom_swish_activation.py"),
    RealTarget("mish", mish, ("float32[3]@-20..20",), _unary(lambda x: x * mp.tanh(mp.log1p(mp.exp(x)))), UNNAMED + "`_mish`"),
    RealTarget("log_cosh", log_cosh, ("float64[]@-20..20",), _unary(lambda x: mp.log(mp.cosh(x))), UNNAMED + "`log_cosh`"),
    RealTarget("custom_norm", custom_norm, ("float32[3]@-3..3",), lambda a: [mp.sqrt(mp.fsum(x * x for x in a[0]))],
               UNNAMED + "`custom_norm`", category="mismatch", probes=((1e-18, 0.0, 0.0),),
               note="at ‖x‖ = 1e-18 the gradient is x/(‖x‖ + 1e-19) ≈ 0.91 where x/‖x‖ = 1; worse below"),
    RealTarget("norm_kdf", norm_kdf, ("float32[2,3]@-3..3",), lambda a: _norm_rows(a, 3), UNNAMED + "`Utility.norm_kdf`",
               category="shape", note="the gradient has the output's shape [2], not the input's [2, 3]"),
    RealTarget("layer_norm", layer_norm, ("float64[4]@-3..3",), _layer_norm, UNNAMED + "`layer_norm` (node.utils.nest)",
               category="mismatch", note="subtracts 1 where the gradient subtracts mean(dy)"),
    RealTarget("sinh_div", sinh_div, ("float64[]@-3..3",), _unary(lambda x: mp.sinh(x) / x if x != 0 else mp.mpf(1)),
               UNNAMED + "`SinhDiv` (PyTorch)", category="approximation", probes=((5e-8,),),
               note="below |x| = 1e-7 (float64) the gradient is 0 where it is x/3"),
    RealTarget("grad_reverse", grad_reverse, ("float32[3]@-3..3",), _unary(lambda x: x),
               "mycal-tucker/fair-baselines: models/flip_gradient_tf.py", surrogate="gradient reversal (-dy) for adversarial training"),
    RealTarget("gradient_reverse (lamda)", gradient_reverse, ("float32[3]@-3..3", "float32[]@0..2"), lambda a: list(a[0]),
               "takumi0shibata/Adversarial-AES: custom_layers/gradient_reversal.py",
               surrogate="gradient reversal scaled by lamda; lamda itself gets no gradient"),
    RealTarget("clip_gradient_by_norm", clip_gradient_by_norm, ("float32[3]@-3..3", "float32[]@0.5..2"), lambda a: list(a[0]),
               "MasatoMiyoshi/tensorflow_tutorial: high_level_api/auto_diff_custom.py",
               surrogate="identity forward whose gradient is clipped to a norm"),
    RealTarget("ste_sign", ste_sign, ("float32[3]@-2..2",), _unary(lambda x: mp.mpf(1) if x >= 0 else mp.mpf(-1)),
               UNNAMED + "`ste_quantize` (QUANT_MODE = 'BNN')", surrogate="straight-through estimator of sign(x)"),
    RealTarget("tf.nn.silu (TensorFlow's own custom gradient)", tf.nn.silu, ("float32[3]@-20..20",), _unary(lambda x: x * _sigmoid(x)),
               "https://github.com/tensorflow/tensorflow/blob/v2.21.0/tensorflow/python/ops/nn_impl.py (swish, @custom_gradient)"),
    RealTarget("tf.recompute_grad (TensorFlow's own custom gradient)", tf.recompute_grad(lambda x: tf.sin(x) * x),
               ("float64[3]@-5..5",), _unary(lambda x: mp.sin(x) * x),
               "https://github.com/tensorflow/tensorflow/blob/v2.21.0/tensorflow/python/ops/custom_gradient.py (recompute_grad)"),
]
