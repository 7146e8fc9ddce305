"""TensorFlow's registered gradients, called as TensorFlow ships them (plain functions).

The code under test is TensorFlow's (tensorflow/python/ops/*_grad.py, v2.21); here are only
the call, the input specs, and an independent mpmath definition of each forward (``truth``:
per-argument lists of elements in, output elements out) from which the labeller derives
whether the registered gradient is right. ``category`` names the failure of the ones that are
not (established by `scripts/label_real_corpus.py`, never by gradfuzz).
"""

import mpmath as mp
import tensorflow as tf

from tests.corpus.real import RealTarget

OPS = "https://github.com/tensorflow/tensorflow/blob/v2.21.0/tensorflow/python/ops/"
NN, MATH, ARRAY, LINALG = OPS + "nn_grad.py", OPS + "math_grad.py", OPS + "array_grad.py", OPS + "linalg_grad.py"


def _elementwise(f):
    return lambda a: [f(x) for x in a[0]]


def _det3(m):
    a = [m[0:3], m[3:6], m[6:9]]
    return [a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0])
            + a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0])]


def _inv2(m):
    a, b, c, d = m
    det = a * d - b * c
    return [d / det, -b / det, -c / det, a / det]


def _where_square_or_negate(x):
    return x * x if x > 0 else -x


TARGETS = [
    RealTarget("tf.nn.relu", tf.nn.relu, ("float32[4]@-3..3",), _elementwise(lambda x: max(x, mp.mpf(0))), NN, kinks=(0,)),
    RealTarget("tf.nn.leaky_relu", lambda x: tf.nn.leaky_relu(x, alpha=0.2), ("float32[4]@-3..3",),
               _elementwise(lambda x: x if x > 0 else x / 5), NN, kinks=(0,)),
    RealTarget("tf.nn.relu6", tf.nn.relu6, ("float32[3]@-2..8",), _elementwise(lambda x: min(max(x, mp.mpf(0)), mp.mpf(6))), NN,
               kinks=(0, 6)),
    RealTarget("tf.nn.elu", tf.nn.elu, ("float64[3]@-5..5",), _elementwise(lambda x: x if x > 0 else mp.expm1(x)), NN),
    RealTarget("tf.nn.softplus", tf.nn.softplus, ("float32[]@-30..30",), _elementwise(lambda x: mp.log1p(mp.exp(x))), NN),
    RealTarget("tf.math.abs", tf.math.abs, ("float64[3]@-3..3",), _elementwise(abs), MATH, kinks=(0,)),
    RealTarget("tf.clip_by_value", lambda x: tf.clip_by_value(x, -1.0, 1.0), ("float32[4]@-2..2",),
               _elementwise(lambda x: min(max(x, mp.mpf(-1)), mp.mpf(1))), OPS + "clip_ops.py", kinks=(-1, 1)),
    RealTarget("tf.reduce_max (ties)", tf.reduce_max, ("float32[4]@-2..2",), lambda a: [max(a[0])], MATH,
               note="ties share the gradient equally: a convex combination of the active pieces, a valid subgradient"),
    RealTarget("tf.reduce_min (ties)", tf.reduce_min, ("float64[3]@-2..2",), lambda a: [min(a[0])], MATH),
    RealTarget("tf.reduce_prod (zeros)", tf.reduce_prod, ("float32[4]@-2..2",), lambda a: [mp.fprod(a[0])], MATH,
               note="a polynomial: derivatives exist everywhere, also with several zeros"),
    RealTarget("tf.reduce_logsumexp", tf.reduce_logsumexp, ("float32[5]@-30..30",),
               lambda a: [mp.log(mp.fsum(mp.exp(x) for x in a[0]))], MATH),
    RealTarget("tf.norm", tf.norm, ("float32[3]@-3..3",), lambda a: [mp.sqrt(mp.fsum(x * x for x in a[0]))], LINALG,
               category="non-finite", probes=((0.0, 0.0, 0.0),),
               note="at the origin the gradient x/‖x‖ is 0/0 = NaN, outside the subdifferential (the unit ball)"),
    RealTarget("tf.pow", tf.pow, ("float64[]@0..3", "float64[]@0..3"), lambda a: [a[0][0] ** a[1][0]], MATH,
               category="non-finite", probes=((0.0, 0.0),),
               note="at (0, 0) the gradient in x is y·x^(y-1) = 0·inf = NaN; the function x^0 = 1 has derivative 0"),
    RealTarget("tf.math.xlogy", tf.math.xlogy, ("float64[]@-2..2", "float64[]@0.1..3"), lambda a: [a[0][0] * mp.log(a[1][0])],
               MATH, category="mismatch", probes=((0.0, 2.0),),
               note="at x = 0 the gradient in x is set to 0 (to spare y = 0), but x·log y has slope log y there"),
    RealTarget("tf.math.xdivy", tf.math.xdivy, ("float64[]@-2..2", "float64[]@0.1..3"), lambda a: [a[0][0] / a[1][0]], MATH,
               category="mismatch", probes=((0.0, 2.0),),
               note="at x = 0 the gradient in x is set to 0, but x/y has slope 1/y there"),
    RealTarget("tf.math.igamma", tf.math.igamma, ("float64[]@0.5..3", "float64[]@0..5"),
               lambda a: [mp.gammainc(a[0][0], 0, a[1][0], regularized=True) if a[1][0] >= 0 else mp.nan], MATH, category="non-finite",
               probes=((1.0, 0.0),), note="at x = 0, a = 1 the gradient in x is exp((a-1)·log x - x)/Γ(a) = exp(0·-inf) = NaN; it is 1"),
    RealTarget("tf.math.zeta", tf.math.zeta, ("float64[]@2..6", "float64[]@0.5..4"),
               lambda a: [mp.zeta(a[0][0], a[1][0]) if a[1][0] > 0 else mp.nan], MATH,
               category="missing-gradient", note="no gradient is registered with respect to x (None, read as zero)"),
    RealTarget("tf.where", lambda x: tf.where(x > 0, x * x, -x), ("float64[3]@-2..2",), _elementwise(_where_square_or_negate),
               ARRAY, kinks=(0,)),
    RealTarget("tf.gather", lambda x: tf.gather(x, [0, 2, 2]), ("float32[4]@-3..3",), lambda a: [a[0][0], a[0][2], a[0][2]],
               ARRAY, note="IndexedSlices gradient, densified"),
    RealTarget("tf.linalg.det", tf.linalg.det, ("float64[3,3]@-2..2",), lambda a: _det3(a[0]), LINALG, category="exception",
               probes=((1.0, 2.0, 3.0, 2.0, 4.0, 6.0, 0.0, 1.0, 1.0),),
               note="the gradient det·inv(A)ᵀ inverts A, which raises for a singular A; the true gradient is the adjugate"),
    RealTarget("tf.linalg.inv", tf.linalg.inv, ("float64[2,2]@-2..2",), lambda a: _inv2(a[0]), LINALG),
    RealTarget("tf.math.lgamma", tf.math.lgamma, ("float64[]@0.1..10",), _elementwise(lambda x: mp.log(abs(mp.gamma(x)))), MATH),
    RealTarget("tf.math.divide_no_nan", tf.math.divide_no_nan, ("float64[]@-2..2", "float64[]@0.5..3"),
               lambda a: [a[0][0] / a[1][0]], MATH),
]
