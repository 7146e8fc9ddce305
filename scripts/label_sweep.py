"""Label every function `gradfuzz sweep` covers without gradfuzz's judgement: is TensorFlow's gradient right?

For each checked entry of the sweep table (gradfuzz/sweep_table.py; gradfuzz/sweep_targets.py builds
the callable exactly as the sweep calls it — that is the input description, not a judge) this
script takes TensorFlow's gradient of ⟨v, f(x)⟩ for a seeded cotangent v, eagerly with
tf.GradientTape, and compares every element with one-sided derivatives of an independent
definition of the same function:

* element-wise functions (tf.math.*, tf.math.special.*, tf.nn activations, tfp.math special
  functions): an mpmath scalar definition (``ELEMENTWISE``), 60 digits; one TensorFlow call per
  probe at the entry's shape (probes batched together would hide batch-dependent bugs:
  tfp.math.betainc's series loop runs until every element of the batch has stopped);
* everything else that has a definition here (reductions, softmax, segment ops, pooling,
  convolutions, CTC by enumerating every alignment, linear algebra, DCT/FFT/STFT/MDCT, ...): an
  mpmath / numpy-object re-implementation (``GENERAL``) differentiated by one-sided differences
  at 60 digits. Complex arguments: TensorFlow's gradient of a real loss is ∂/∂Re + i·∂/∂Im, so
  the real and imaginary parts are two coordinates; complex outputs enter ⟨v, f⟩ as (Re, Im).
  QR's signs and the order of eig's eigenvalues are taken from TensorFlow's forward (conventions).

Probes (as scripts/label_tf_builtins.py): every argument on a special value of its domain (0, ±1,
±0.5, 2, the ends), all elements alike, combined every way for up to three arguments (sampled);
for element-wise functions also every combination once, packed one per element; seeded mixtures
of special values and uniform draws; seeded uniform draws — ~40 per entry and dtype (up to ~50
for element-wise functions of two or three arguments), fewer for large inputs.
Before any gradient is judged the definition's forward must agree with TensorFlow's forward (a
disagreement means the definition here is wrong: "cannot-label"). A probe where the definition
is undefined, not finite or complex, where TensorFlow's forward refuses the input, or (for
inverse-like linear algebra) where the matrix is ill-conditioned, is outside the domain and
skipped; so is a probe with a repeated eigenvalue / singular value (eigh, eigvalsh, svd,
eigh_tridiagonal: not differentiable there), and softmax cross-entropy's labels are moved onto
the simplex (TensorFlow documents them as distributions).

One-sided quotients at steps 2⁻⁷⁰·max(1,|x|) and 2⁻⁸⁰·max(1,|x|); a side whose quotient has not
settled (infinite derivative, jump) is not judged; at a kink any value between the left and the
right derivative is right; where several elements tie (top_k, dilation2d), the derivatives at
points jittered off the probe (the adjacent smooth pieces) are right too. An element fails if
TensorFlow's gradient is None where the derivative is not 0 (missing-gradient), has the wrong
shape (shape), is not finite where the derivative is (non-finite), or lies outside [left, right]
by more than rtol·(|d| + a·scale) (rtol 1e-6, a 1e-3 at float64; 1e-3, 1e-2 at float32; scale
the largest derivative in the probe, at least 1): "branch" at a kink (a value no adjacent piece
has), "approximation" below 1% relative error, "mismatch" above. A gradient that raises where
the forward is defined is "exception" (an error instead of a gradient: what a user sees, e.g.
tf.linalg.det's InvalidArgumentError at a singular matrix).

Bugs in thin regions the probes miss (``CONFIRMED``: the identity for pinv's repeated singular
values, segment products that under- or overflow, bessel_i1e at the smallest normal numbers) are
listed by hand, each with the script in scripts/bugs/ that confirms it independently
(mpmath or exact arithmetic, no gradfuzz), the input, and TensorFlow's value against the true one.
They are applied after probing, so a re-run keeps them: a dtype listed there is labelled "bug"
with that category, and its "why" says that the probes missed the region and which script confirms it.

    python scripts/label_sweep.py [--only NAME,...] [--out benchmarks/sweep_labels.json] [--merge] [--max-probes 40]

Writes {name: {label, category, why, probes, worst, dtypes}}; prints a line per entry and a summary.
gradfuzz.checker / oracle / api are not imported.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import re
import sys
import time
from pathlib import Path

import mpmath as mp
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEFAULT_OUT = REPO / "benchmarks" / "sweep_labels.json"
SEED = 20261204
MAX_PROBES = 40
EVALUATIONS = 2500  # per entry and dtype: general probes are capped so that probes·(4·elements+1) stays near this
RTOL = {"float32": 1e-3, "float64": 1e-6}
ABS = {"float32": 1e-2, "float64": 1e-3}
COND = {"float32": 30.0, "float64": 1e5}
mp.mp.dps = 60
ZERO, ONE = mp.mpf(0), mp.mpf(1)


class Undefined(ValueError):
    """The definition is not defined at this input (outside the domain)."""


# =============================================================================================
# Element-wise definitions: name -> mpmath function of scalars (one per drawn argument)
# =============================================================================================

def _log(x):
    if x <= 0:
        raise Undefined("log of a non-positive number")
    return mp.log(x)


def _sqrt(x):
    if x < 0:
        raise Undefined("sqrt of a negative number")
    return mp.sqrt(x)


def sigmoid(x):
    return 1 / (1 + mp.exp(-x))


def softplus(x):
    return mp.log1p(mp.exp(x)) if x < 0 else x + mp.log1p(mp.exp(-x))


# The op attribute alpha is a float32: TensorFlow multiplies by float32(0.2) at every dtype.
LEAKY_ALPHA = mp.mpf(float(np.float32(0.2)))
SELU_ALPHA = mp.mpf("1.6732632423543772848170429916717")
SELU_SCALE = mp.mpf("1.0507009873554804934193349852946")


def _erfcx(x):
    return mp.exp(x * x) * mp.erfc(x)


def _real(y):
    if isinstance(y, mp.mpc):
        if y.imag != 0:
            raise Undefined("complex value")
        return y.real
    return y


def _invert(F, dF, p, lo, hi):
    """x in (lo, hi) with F(x) = p for an increasing F: bisection, then Newton at full precision."""
    a, b = mp.mpf(lo), mp.mpf(hi)
    for _ in range(80):
        mid = (a + b) / 2
        if F(mid) < p:
            a = mid
        else:
            b = mid
    x = (a + b) / 2
    for _ in range(12):
        step = (F(x) - p) / dF(x)
        x -= step
        if abs(step) <= mp.mpf(10) ** (-mp.mp.dps + 5) * max(1, abs(x)):
            break
    return x


def _igammainv(a, p, upper=False):
    if not 0 < p < 1 or a <= 0:
        raise Undefined("outside (0, 1)")
    target = 1 - p if upper else p
    hi = mp.mpf(10)
    while mp.gammainc(a, 0, hi, regularized=True) < target:
        hi *= 2
    return _invert(lambda t: mp.gammainc(a, 0, t, regularized=True),
                   lambda t: mp.exp(-t) * t ** (a - 1) / mp.gamma(a), target, 0, hi)


def _betaincinv(a, b, p):
    if not 0 < p < 1 or a <= 0 or b <= 0:
        raise Undefined("outside (0, 1)")
    return _invert(lambda t: mp.betainc(a, b, 0, t, regularized=True),
                   lambda t: t ** (a - 1) * (1 - t) ** (b - 1) / mp.beta(a, b), p, 0, 1)


def _owens_t(h, a):
    f = lambda t: mp.exp(-h * h * (1 + t * t) / 2) / (1 + t * t)  # noqa: E731
    return mp.quad(f, [0, a]) / (2 * mp.pi)


def _floormod(x, y):
    return x - mp.floor(x / y) * y


def _smootherstep(x):
    x = min(max(x, ZERO), ONE)
    return x ** 3 * (6 * x * x - 15 * x + 10)


def _bump(x):
    return mp.exp(1 - 1 / (1 - x * x)) if abs(x) < 1 else ZERO


def _zeta(x, q):
    if x <= 1 or q <= 0:
        raise Undefined("outside the domain")
    return mp.zeta(x, q)


ELEMENTWISE = {
    # tf.math
    "tf.math.abs": abs,
    "tf.math.acos": lambda x: _real(mp.acos(x)),
    "tf.math.acosh": lambda x: _real(mp.acosh(x)),
    "tf.math.asin": lambda x: _real(mp.asin(x)),
    "tf.math.asinh": mp.asinh,
    "tf.math.atan": mp.atan,
    "tf.math.atanh": lambda x: _real(mp.atanh(x)),
    "tf.math.bessel_i0": lambda x: mp.besseli(0, x),
    "tf.math.bessel_i0e": lambda x: mp.besseli(0, x) * mp.exp(-abs(x)),
    "tf.math.bessel_i1": lambda x: mp.besseli(1, x),
    "tf.math.bessel_i1e": lambda x: mp.besseli(1, x) * mp.exp(-abs(x)),
    "tf.math.betainc": lambda x: mp.betainc(2, 3, 0, x, regularized=True),
    "tf.math.cos": mp.cos,
    "tf.math.cosh": mp.cosh,
    "tf.math.digamma": mp.digamma,
    "tf.math.erf": mp.erf,
    "tf.math.erfc": mp.erfc,
    "tf.math.erfcinv": lambda x: mp.erfinv(1 - x),
    "tf.math.erfinv": mp.erfinv,
    "tf.math.exp": mp.exp,
    "tf.math.expm1": mp.expm1,
    "tf.math.lgamma": lambda x: mp.log(abs(mp.gamma(x))),
    "tf.math.log": _log,
    "tf.math.log1p": lambda x: _log(1 + x),
    "tf.math.log_sigmoid": lambda x: -softplus(-x),
    "tf.math.ndtri": lambda p: mp.sqrt(2) * mp.erfinv(2 * p - 1),
    "tf.math.negative": lambda x: -x,
    "tf.math.polygamma": lambda x: mp.psi(1, x),
    "tf.math.polyval": lambda x: mp.mpf("0.5") * x * x - 2 * x + 1,
    "tf.math.reciprocal": lambda x: 1 / x,
    "tf.math.reciprocal_no_nan": lambda x: 1 / x if x != 0 else ZERO,
    "tf.math.rsqrt": lambda x: 1 / _sqrt(x),
    "tf.math.sigmoid": sigmoid,
    "tf.math.sin": mp.sin,
    "tf.math.sinh": mp.sinh,
    "tf.math.softplus": softplus,
    "tf.math.softsign": lambda x: x / (1 + abs(x)),
    "tf.math.sqrt": _sqrt,
    "tf.math.square": lambda x: x * x,
    "tf.math.tan": mp.tan,
    "tf.math.tanh": mp.tanh,
    "tf.math.add": lambda x, y: x + y,
    "tf.math.atan2": lambda y, x: mp.atan2(y, x),
    "tf.math.divide": lambda x, y: x / y,
    "tf.math.divide_no_nan": lambda x, y: x / y if y != 0 else ZERO,
    "tf.math.floormod": _floormod,
    "tf.math.igamma": lambda a, x: mp.gammainc(a, 0, x, regularized=True),
    "tf.math.igammac": lambda a, x: mp.gammainc(a, x, mp.inf, regularized=True),
    "tf.math.maximum": max,
    "tf.math.minimum": min,
    "tf.math.multiply": lambda x, y: x * y,
    "tf.math.multiply_no_nan": lambda x, y: x * y,
    "tf.math.pow": lambda x, y: mp.power(x, y),
    "tf.math.squared_difference": lambda x, y: (x - y) ** 2,
    "tf.math.subtract": lambda x, y: x - y,
    "tf.math.truediv": lambda x, y: x / y,
    "tf.math.xdivy": lambda x, y: x / y,
    "tf.math.xlog1py": lambda x, y: x * _log(1 + y),
    "tf.math.xlogy": lambda x, y: x * _log(y),
    "tf.math.zeta": _zeta,
    # tf.math.special
    "tf.math.special.bessel_i0": lambda x: mp.besseli(0, x),
    "tf.math.special.bessel_i0e": lambda x: mp.besseli(0, x) * mp.exp(-abs(x)),
    "tf.math.special.bessel_i1": lambda x: mp.besseli(1, x),
    "tf.math.special.bessel_i1e": lambda x: mp.besseli(1, x) * mp.exp(-abs(x)),
    "tf.math.special.bessel_j0": lambda x: mp.besselj(0, x),
    "tf.math.special.bessel_j1": lambda x: mp.besselj(1, x),
    "tf.math.special.bessel_k0": lambda x: mp.besselk(0, x),
    "tf.math.special.bessel_k0e": lambda x: mp.besselk(0, x) * mp.exp(x),
    "tf.math.special.bessel_k1": lambda x: mp.besselk(1, x),
    "tf.math.special.bessel_k1e": lambda x: mp.besselk(1, x) * mp.exp(x),
    "tf.math.special.bessel_y0": lambda x: mp.bessely(0, x),
    "tf.math.special.bessel_y1": lambda x: mp.bessely(1, x),
    "tf.math.special.dawsn": lambda x: mp.sqrt(mp.pi) / 2 * mp.exp(-x * x) * mp.erfi(x),
    "tf.math.special.expint": lambda x: mp.ei(x),
    "tf.math.special.fresnel_cos": mp.fresnelc,
    "tf.math.special.fresnel_sin": mp.fresnels,
    "tf.math.special.spence": lambda x: _real(mp.polylog(2, 1 - x)),
    # tf.nn
    "tf.nn.elu": lambda x: x if x > 0 else mp.expm1(x),
    "tf.nn.gelu": lambda x: x * (1 + mp.erf(x / mp.sqrt(2))) / 2,
    "tf.nn.leaky_relu": lambda x: x if x > 0 else LEAKY_ALPHA * x,
    "tf.nn.relu": lambda x: max(x, ZERO),
    "tf.nn.relu6": lambda x: min(max(x, ZERO), mp.mpf(6)),
    "tf.nn.selu": lambda x: SELU_SCALE * (x if x > 0 else SELU_ALPHA * mp.expm1(x)),
    "tf.nn.silu": lambda x: x * sigmoid(x),
    "tf.nn.swish": lambda x: x * sigmoid(x),
    "tf.nn.log_poisson_loss": lambda z, c: mp.exp(c) - c * z,
    "tf.nn.sigmoid_cross_entropy_with_logits": lambda z, x: softplus(x) - x * z,
    "tf.nn.weighted_cross_entropy_with_logits": lambda z, x, q: q * z * softplus(-x) + (1 - z) * softplus(x),
    # tfp.math
    "tfp.math.atan_difference": lambda x, y: mp.atan(x) - mp.atan(y),
    "tfp.math.bessel_iv_ratio": lambda z: mp.besseli(1.5, z) / mp.besseli(0.5, z),
    "tfp.math.bessel_ive": lambda z: mp.besseli(1.5, z) * mp.exp(-abs(z)),
    "tfp.math.bessel_kve": lambda z: mp.besselk(1.5, z) * mp.exp(z),
    "tfp.math.log_bessel_ive": lambda z: mp.log(mp.besseli(1.5, z)) - abs(z),
    "tfp.math.log_bessel_kve": lambda z: mp.log(mp.besselk(1.5, z)) + z,
    "tfp.math.betainc": lambda a, b, x: mp.betainc(a, b, 0, x, regularized=True),
    "tfp.math.betaincinv": _betaincinv,
    "tfp.math.dawsn": lambda x: mp.sqrt(mp.pi) / 2 * mp.exp(-x * x) * mp.erfi(x),
    "tfp.math.erfcinv": lambda x: mp.erfinv(1 - x),
    "tfp.math.erfcx": _erfcx,
    "tfp.math.igammainv": lambda a, p: _igammainv(a, p),
    "tfp.math.igammacinv": lambda a, p: _igammainv(a, p, upper=True),
    "tfp.math.lambertw": lambda x: _real(mp.lambertw(x)),
    "tfp.math.lambertw_winitzki_approx": lambda z: mp.log1p(z) * (1 - mp.log1p(mp.log1p(z)) / (2 + mp.log1p(z))),
    "tfp.math.lbeta": lambda a, b: mp.loggamma(a) + mp.loggamma(b) - mp.loggamma(a + b),
    "tfp.math.log1mexp": lambda x: _log(-mp.expm1(-abs(x))),
    "tfp.math.log1psquare": lambda x: mp.log1p(x * x),
    "tfp.math.log_add_exp": lambda x, y: max(x, y) + mp.log1p(mp.exp(-abs(x - y))),
    "tfp.math.log_cosh": lambda x: mp.log(mp.cosh(x)),
    "tfp.math.log_gamma_correction": lambda x: mp.loggamma(x) - (x - mp.mpf("0.5")) * mp.log(x) + x - mp.log(2 * mp.pi) / 2,
    "tfp.math.log_gamma_difference": lambda x, y: mp.loggamma(y) - mp.loggamma(x + y),
    "tfp.math.log_sub_exp": lambda x, y: x + _log(-mp.expm1(y - x)),
    "tfp.math.logerfc": lambda x: mp.log(mp.erfc(x)),
    "tfp.math.logerfcx": lambda x: mp.log(_erfcx(x)),
    "tfp.math.owens_t": _owens_t,
    "tfp.math.round_exponential_bump_function": _bump,
    "tfp.math.smootherstep": _smootherstep,
    "tfp.math.soft_threshold": lambda x: mp.sign(x) * max(ZERO, abs(x) - mp.mpf("0.5")),
    "tfp.math.softplus_inverse": lambda x: _log(mp.expm1(x)),
    "tfp.math.sqrt1pm1": lambda x: _sqrt(1 + x) - 1,
}

SLOW = {"tfp.math.owens_t": 10, "tfp.math.betaincinv": 12, "tfp.math.igammainv": 16, "tfp.math.igammacinv": 16,
        "tf.math.zeta": 24, "tf.math.special.bessel_k1": 24, "tf.math.special.bessel_k1e": 24,
        # general entries whose mpmath evaluation is slow (eigenvalues of complex matrices, matrix exponential, FFT frames)
        "tf.linalg.eig": 12, "tf.linalg.eigvals": 12, "tf.linalg.expm": 16, "tf.signal.stft": 16,
        "tf.signal.inverse_stft": 16, "tfp.math.cholesky_update": 20}  # fewer probes


# =============================================================================================
# General definitions: name -> function(list of numpy object arrays of mpf) -> output array(s)
# =============================================================================================

def O(values):  # noqa: E743 - a numpy object array of mpf
    return np.array(values, dtype=object)


def ew(f):
    return np.frompyfunc(f, 1, 1)


m_exp, m_log, m_sqrt = ew(mp.exp), ew(_log), ew(_sqrt)
m_relu = ew(lambda x: max(x, ZERO))


def zeros(shape):
    return np.full(shape, ZERO, dtype=object)


def mat(a):
    return mp.matrix(a.tolist())


def arr(m):
    return O([[m[i, j] for j in range(m.cols)] for i in range(m.rows)])


def lse(values):
    values = list(np.ravel(values))
    top = max(values)
    return top + mp.log(mp.fsum(mp.exp(v - top) for v in values))


def lse_last(a):
    return O([lse(row) for row in a.reshape(-1, a.shape[-1])]).reshape(a.shape[:-1])


def softmax_last(a):
    return m_exp(a - lse_last(a)[..., None])


def log_softmax_last(a):
    return a - lse_last(a)[..., None]


def msum(a, axis=None):
    return np.sum(a, axis=axis) if axis is not None else mp.fsum(np.ravel(a))


def variance(a, axis=None):
    flat = a if axis is not None else a.ravel()
    ax = axis if axis is not None else 0
    mean = np.sum(flat, axis=ax) / flat.shape[ax]
    return np.sum((flat - np.expand_dims(mean, ax)) ** 2, axis=ax) / flat.shape[ax]


def cumulative(a, op):
    out, acc = [], None
    for v in a:
        acc = v if acc is None else op(acc, v)
        out.append(acc)
    return O(out)


def segments(x, ids, num, reduce):
    out = []
    for s in range(num):
        rows = [x[i] for i in range(len(ids)) if ids[i] == s]
        out.append(reduce(rows) if rows else None)
    return out


def seg_reduce(kind, ids, num=None):
    num = num if num is not None else max(ids) + 1

    def f(x):
        cols = x.shape[1]
        empty = {"sum": ZERO, "mean": ZERO, "prod": ONE, "max": mp.mpf("-inf"), "min": mp.mpf("inf"), "sqrt_n": ZERO}[kind]
        result = []
        for s in range(num):
            rows = [x[i] for i in range(len(ids)) if ids[i] == s]
            row = []
            for c in range(cols):
                vals = [r[c] for r in rows]
                if not vals:
                    row.append(empty)
                elif kind == "sum":
                    row.append(mp.fsum(vals))
                elif kind == "mean":
                    row.append(mp.fsum(vals) / len(vals))
                elif kind == "sqrt_n":
                    row.append(mp.fsum(vals) / mp.sqrt(len(vals)))
                elif kind == "prod":
                    row.append(mp.fprod(vals))
                else:
                    row.append(max(vals) if kind == "max" else min(vals))
            result.append(row)
        return O(result)

    return f


def pav_decreasing(y):
    blocks = []
    for v in y:
        blocks.append([v, 1])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] < blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    return O([s / c for s, c in blocks for _ in range(c)])


def pool(x, kind):
    """2-wide, stride-2 VALID pooling over every spatial axis of a channels-last tensor."""
    nd = x.ndim - 2
    shape = [x.shape[0]]
    for k in range(nd):
        shape += [x.shape[1 + k] // 2, 2]
    shape.append(x.shape[-1])
    r = x.reshape(shape)
    axes = tuple(2 + 2 * k for k in range(nd))
    if kind == "avg":
        return np.sum(r, axis=axes) / (2 ** nd)
    return np.max(r, axis=axes)


def same_pads(k, dil=1):
    total = (k - 1) * dil
    return (total // 2, total - total // 2)


def conv(x, f, pads=None, dil=1):
    """Channels-last N-d convolution (cross-correlation), stride 1; filter [k..., in, out]."""
    nd = x.ndim - 2
    pads = pads or [(0, 0)] * nd
    xp = np.pad(x, [(0, 0), *pads, (0, 0)], constant_values=ZERO)
    ks = f.shape[:nd]
    out_sp = [xp.shape[1 + i] - dil * (ks[i] - 1) for i in range(nd)]
    out = zeros((x.shape[0], *out_sp, f.shape[-1]))
    for off in np.ndindex(*ks):
        sl = tuple(slice(dil * o, dil * o + n) for o, n in zip(off, out_sp))
        out = out + np.dot(xp[(slice(None), *sl)], f[off])
    return out


def conv_transpose(y, f, out_shape, pads=None, dil=1):
    """The adjoint of `conv` in x: y [b, sp..., out_c], filter [k..., out_c(of the result), in_c(of y)]."""
    nd = y.ndim - 2
    pads = pads or [(0, 0)] * nd
    ks = f.shape[:nd]
    full_sp = [out_shape[1 + i] + pads[i][0] + pads[i][1] for i in range(nd)]
    full = zeros((y.shape[0], *full_sp, out_shape[-1]))
    for off in np.ndindex(*ks):
        sl = tuple(slice(dil * o, dil * o + n) for o, n in zip(off, y.shape[1:-1]))
        full[(slice(None), *sl)] = full[(slice(None), *sl)] + np.dot(y, f[off].T)
    crop = tuple(slice(p[0], p[0] + n) for p, n in zip(pads, out_shape[1:-1]))
    return full[(slice(None), *crop)]


def depthwise(x, f):
    """VALID depthwise conv, filter [kh, kw, c, m] -> channels c*m."""
    kh, kw, c, m = f.shape
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    out = zeros((x.shape[0], oh, ow, c, m))
    for i, j in np.ndindex(kh, kw):
        out = out + x[:, i:i + oh, j:j + ow, :, None] * f[i, j][None, None, None]
    return out.reshape(x.shape[0], oh, ow, c * m)


def morph(x, f, erosion=False):
    kh, kw, _ = f.shape
    oh, ow = x.shape[1] - kh + 1, x.shape[2] - kw + 1
    best = None
    for i, j in np.ndindex(kh, kw):
        if erosion:
            term = x[:, i:i + oh, j:j + ow, :] - f[kh - 1 - i, kw - 1 - j][None, None, None]
            best = term if best is None else np.minimum(best, term)
        else:
            term = x[:, i:i + oh, j:j + ow, :] + f[i, j][None, None, None]
            best = term if best is None else np.maximum(best, term)
    return best


def lrn(x, r=1, bias=1, alpha=1, beta=mp.mpf("0.5")):
    out = zeros(x.shape)
    c = x.shape[-1]
    for idx in np.ndindex(*x.shape[:-1]):
        for d in range(c):
            s = mp.fsum(x[(*idx, k)] ** 2 for k in range(max(0, d - r), min(c, d + r + 1)))
            out[(*idx, d)] = x[(*idx, d)] / (bias + alpha * s) ** beta
    return out


def space_to_depth(x, b):
    n, h, w, c = x.shape
    return x.reshape(n, h // b, b, w // b, b, c).transpose(0, 1, 3, 2, 4, 5).reshape(n, h // b, w // b, b * b * c)


def depth_to_space(x, b):
    n, h, w, c = x.shape
    return x.reshape(n, h, w, b, b, c // (b * b)).transpose(0, 1, 3, 2, 4, 5).reshape(n, h * b, w * b, c // (b * b))


def space_to_batch(x, b):
    n, h, w, c = x.shape
    return x.reshape(n, h // b, b, w // b, b, c).transpose(2, 4, 0, 1, 3, 5).reshape(b * b * n, h // b, w // b, c)


# ---- linear algebra ----

def spd(a):
    m = mat(a)
    return m * m.T + a.shape[-1] * mp.eye(a.shape[-1])


def tril(a):
    n = a.shape[-1]
    return mp.matrix([[a[i][j] if j <= i else ZERO for j in range(n)] for i in range(n)]) + n * mp.eye(n)


def sym(a):
    m = mat(a)
    return (m + m.T) / 2


PREPARE = {"spd": spd, "tril": lambda a: tril(a), "sym": sym}


def inv(m):
    if mp.det(m) == 0:
        raise Undefined("singular")
    return m ** -1


def eig_sym(m):
    values = mp.eigsy(m, eigvals_only=True)
    return sorted(values[i] for i in range(m.rows))


def cholesky(m):
    try:
        return mp.cholesky(m)
    except ValueError as error:
        raise Undefined(str(error)) from None


def lu_parts(lu):
    n = lu.rows
    lower = mp.matrix([[lu[i, j] if j < i else (ONE if i == j else ZERO) for j in range(n)] for i in range(n)])
    upper = mp.matrix([[lu[i, j] if j >= i else ZERO for j in range(n)] for i in range(n)])
    return lower, upper


def lu_reconstruct(lu, perm):
    lower, upper = lu_parts(lu)
    x = lower * upper
    inverse = [perm.index(k) for k in range(len(perm))]
    return mp.matrix([[x[inverse[i], j] for j in range(x.cols)] for i in range(x.rows)])


def banded_lower(bands):
    k, n = bands.shape
    m = mp.zeros(n, n)
    for d in range(k):
        for j in range(n - d):
            m[j + d, j] = bands[d][j + d]  # subdiagonals right-aligned (padding on the left)
    return m


def tridiagonal(d):
    n = d.shape[1]
    m = mp.zeros(n, n)
    for i in range(n):
        m[i, i] = d[1][i]
        if i + 1 < n:
            m[i, i + 1] = d[0][i]
            m[i + 1, i] = d[2][i + 1]
    return m


def gram_schmidt(a):
    m = mat(a)
    cols = [m[:, j] for j in range(m.cols)]
    out = []
    for c in cols:
        for q in out:
            c = c - (q.T * c)[0] * q
        out.append(c / mp.norm(c))
    return O([[out[j][i] for j in range(len(out))] for i in range(m.rows)])


def qr_positive(a):
    """Q, R by Gram-Schmidt (R's diagonal positive); signs are set to TensorFlow's convention by the caller."""
    m = mat(a)
    q = gram_schmidt(a)
    r = mat(q).T * m
    n = m.cols
    r = O([[r[i, j] if j >= i else ZERO for j in range(n)] for i in range(n)])
    return q, r


def dominant(a):
    """The table's ``dominant`` preparation: A + (n+1)I (full rank)."""
    n = a.shape[-1]
    return a + (n + 1) * np.eye(n, dtype=object)


def on_rows_simplex(z):
    """The table's ``simplex`` preparation: each row over its sum."""
    return z / np.sum(z, axis=-1, keepdims=True)


def qr_like(a, ref):
    q, r = qr_positive(dominant(a))
    signs = [ONE if s >= 0 else -ONE for s in np.diag(ref[1])] if ref is not None else [ONE] * r.shape[0]
    d = O(signs)
    return [q * d[None, :], r * d[:, None]]


def hann(n):
    return O([mp.mpf("0.5") - mp.cos(2 * mp.pi * k / n) / 2 for k in range(n)])


_TWIDDLES: dict[tuple[int, int, int], object] = {}


def twiddle(k, n, sign=-1):
    """exp(sign·2πi·k/n), cached (mp.dps is fixed)."""
    key = (k % n, n, sign)
    if key not in _TWIDDLES:
        _TWIDDLES[key] = mp.expj(sign * 2 * mp.pi * (k % n) / n)
    return _TWIDDLES[key]


def dft(x):
    n = len(x)
    return [mp.fsum(x[t] * twiddle(k * t, n) for t in range(n)) for k in range(n)]


def rfft(x):
    return O(dft(list(x))[: len(x) // 2 + 1])


def rfft2d(a):
    rows = [dft(list(r)) for r in a]
    cols = [dft([rows[i][k] for i in range(len(rows))]) for k in range(a.shape[1] // 2 + 1)]
    return O([[cols[k][i] for k in range(len(cols))] for i in range(len(rows))])


def dct2(x):
    n = len(x)
    return O([2 * mp.fsum(x[t] * mp.cos(mp.pi * k * (2 * t + 1) / (2 * n)) for t in range(n)) for k in range(n)])


def dct3(x):
    n = len(x)
    return O([x[0] + 2 * mp.fsum(x[t] * mp.cos(mp.pi * t * (2 * k + 1) / (2 * n)) for t in range(1, n)) for k in range(n)])


def stft(x, length=8, step=4):
    w = hann(length)
    frames = [x[s:s + length] * w for s in range(0, len(x) - length + 1, step)]
    return O([list(rfft(f)) for f in frames])


def overlap_and_add(frames, step):
    count, length = frames.shape
    out = zeros((count - 1) * step + length)
    for i in range(count):
        out[i * step:i * step + length] = out[i * step:i * step + length] + frames[i]
    return out


def interp_1d(x, y):
    n = len(y) - 1
    out = []
    for xv in x:
        t = min(max(xv, ZERO), ONE) * n
        i = min(int(mp.floor(t)), n - 1)
        out.append(y[i] + (t - i) * (y[i + 1] - y[i]))
    return O(out)


def fill_triangular(x):
    return O([[x[3], ZERO, ZERO], [x[5], x[4], ZERO], [x[2], x[1], x[0]]])


def _top(x, k):
    return O(sorted(x, reverse=True)[:k])


def _mv(a, x):
    return O([mp.fsum(a[i] * x) for i in range(a.shape[0])])


def _batchnorm(x, mean, var, offset, scale):
    return (x - mean) * scale / m_sqrt(var + mp.mpf("0.001")) + offset


def _weighted_moments(x, w):
    mean = np.sum(w * x, axis=0) / np.sum(w, axis=0)
    return [mean, np.sum(w * (x - mean) ** 2, axis=0) / np.sum(w, axis=0)]


def _cholesky_concat(chol, cols):
    lo = tril(chol)
    a = lo * lo.T
    n, z = a.rows, cols.shape[0]
    full = mp.zeros(z, z)
    for i in range(z):
        for j in range(z):
            if i < n and j < n:
                full[i, j] = a[i, j]
            elif j >= n:
                full[i, j] = cols[i][j - n]
            else:
                full[i, j] = cols[j][i - n]
    return arr(cholesky(full))


def _cholesky_update(chol, u):
    lo = tril(chol)
    col = mp.matrix(list(u))
    return arr(cholesky(lo * lo.T + col * col.T))


def _lstsq(a, b):
    m = mat(a)
    return arr(inv(m.T * m) * m.T * mat(b))


def _slogdet(a):
    d = mp.det(mat(a))
    if d == 0:
        raise Undefined("singular")
    return mp.log(abs(d))


def _sqrtm_spd(m):
    values, vectors = mp.eigsy(m)
    root = mp.diag([mp.sqrt(values[i]) for i in range(m.rows)])
    return arr(vectors * root * vectors.T)


def _expm(a):
    return arr(mp.expm(mat(a)))


GENERAL = {
    # tf.math reductions and friends
    "tf.math.accumulate_n": lambda a, b: a + b,
    "tf.math.add_n": lambda a, b, c: a + b + c,
    "tf.math.cumprod": lambda x: cumulative(x, lambda a, b: a * b),
    "tf.math.cumsum": lambda x: cumulative(x, lambda a, b: a + b),
    "tf.math.cumulative_logsumexp": lambda x: O([lse(x[: i + 1]) for i in range(len(x))]),
    "tf.math.l2_normalize": lambda x: x / mp.sqrt(max(mp.fsum(x * x), mp.mpf("1e-12"))),
    "tf.math.lbeta": lambda x: mp.fsum(mp.loggamma(v) for v in x) - mp.loggamma(mp.fsum(x)),
    "tf.math.log_softmax": log_softmax_last,
    "tf.math.softmax": softmax_last,
    "tf.math.reduce_euclidean_norm": lambda x: mp.sqrt(mp.fsum(x.ravel() ** 2)),
    "tf.math.reduce_logsumexp": lse,
    "tf.math.reduce_max": lambda x: max(x.ravel()),
    "tf.math.reduce_mean": lambda x: msum(x) / x.size,
    "tf.math.reduce_min": lambda x: min(x.ravel()),
    "tf.math.reduce_prod": lambda x: mp.fprod(x.ravel()),
    "tf.math.reduce_std": lambda x: _sqrt(variance(x)),
    "tf.math.reduce_sum": msum,
    "tf.math.reduce_variance": variance,
    "tf.math.scalar_mul": lambda s, x: s[()] * x,
    "tf.math.segment_max": seg_reduce("max", [0, 0, 1, 2]),
    "tf.math.segment_mean": seg_reduce("mean", [0, 0, 1, 2]),
    "tf.math.segment_min": seg_reduce("min", [0, 0, 1, 2]),
    "tf.math.segment_prod": seg_reduce("prod", [0, 0, 1, 2]),
    "tf.math.segment_sum": seg_reduce("sum", [0, 0, 1, 2]),
    "tf.math.unsorted_segment_max": seg_reduce("max", [0, 2, 0, 1], 3),
    "tf.math.unsorted_segment_mean": seg_reduce("mean", [0, 2, 0, 1], 3),
    "tf.math.unsorted_segment_min": seg_reduce("min", [0, 2, 0, 1], 3),
    "tf.math.unsorted_segment_prod": seg_reduce("prod", [0, 2, 0, 1], 3),
    "tf.math.unsorted_segment_sqrt_n": seg_reduce("sqrt_n", [0, 2, 0, 1], 3),
    "tf.math.unsorted_segment_sum": seg_reduce("sum", [0, 2, 0, 1], 3),
    "tf.math.top_k": lambda x: _top(x, 2),
    "tf.math.approx_max_k": lambda x: _top(x, 2),
    # tf.nn
    "tf.nn.bias_add": lambda x, b: x + b,
    "tf.nn.compute_average_loss": lambda x: msum(x) / x.shape[0],
    "tf.nn.scale_regularization_loss": lambda x: x,
    "tf.nn.l2_loss": lambda x: msum(x * x) / 2,
    "tf.nn.crelu": lambda x: np.concatenate([m_relu(x), m_relu(-x)]),
    "tf.nn.softmax_cross_entropy_with_logits": lambda z, x: -np.sum(on_rows_simplex(z) * log_softmax_last(x), axis=-1),
    "tf.nn.sparse_softmax_cross_entropy_with_logits": lambda x: O([-log_softmax_last(x)[0, 0], -log_softmax_last(x)[1, 2]]),
    "tf.nn.moments": lambda x: [np.sum(x, axis=0) / x.shape[0], variance(x, axis=0)],
    "tf.nn.normalize_moments": lambda m, v: [m / 4, v / 4 - (m / 4) ** 2],
    "tf.nn.sufficient_statistics": lambda x: [np.sum(x, axis=0), np.sum(x * x, axis=0)],
    "tf.nn.weighted_moments": _weighted_moments,
    "tf.nn.batch_normalization": _batchnorm,
    "tf.nn.batch_norm_with_global_normalization": lambda x, m, v, beta, gamma: _batchnorm(x, m, v, beta, gamma),
    "tf.nn.embedding_lookup": lambda p: p[[0, 3, 3]],
    "tf.nn.depth_to_space": lambda x: depth_to_space(x, 2),
    "tf.nn.space_to_depth": lambda x: space_to_depth(x, 2),
    "tf.nn.space_to_batch": lambda x: space_to_batch(x, 2),
    "tf.nn.avg_pool": lambda x: pool(x, "avg"),
    "tf.nn.avg_pool1d": lambda x: pool(x, "avg"),
    "tf.nn.avg_pool2d": lambda x: pool(x, "avg"),
    "tf.nn.avg_pool3d": lambda x: pool(x, "avg"),
    "tf.nn.pool": lambda x: pool(x, "avg"),
    "tf.nn.max_pool": lambda x: pool(x, "max"),
    "tf.nn.max_pool1d": lambda x: pool(x, "max"),
    "tf.nn.max_pool2d": lambda x: pool(x, "max"),
    "tf.nn.max_pool3d": lambda x: pool(x, "max"),
    "tf.nn.max_pool_with_argmax": lambda x: pool(x, "max"),
    "tf.nn.conv1d": lambda x, f: conv(x, f),
    "tf.nn.conv2d": lambda x, f: conv(x, f, [same_pads(2), same_pads(2)]),
    "tf.nn.convolution": lambda x, f: conv(x, f, [same_pads(2), same_pads(2)]),
    "tf.nn.conv3d": lambda x, f: conv(x, f),
    "tf.nn.atrous_conv2d": lambda x, f: conv(x, f, [same_pads(2, 2)] * 2, dil=2),
    "tf.nn.conv1d_transpose": lambda y, f: conv_transpose(y, f, (1, 5, 2)),
    "tf.nn.conv2d_transpose": lambda y, f: conv_transpose(y, f, (1, 4, 4, 2)),
    "tf.nn.conv_transpose": lambda y, f: conv_transpose(y, f, (1, 4, 4, 2)),
    "tf.nn.conv3d_transpose": lambda y, f: conv_transpose(y, f, (1, 3, 3, 3, 1)),
    "tf.nn.atrous_conv2d_transpose": lambda y, f: conv_transpose(y, f, (1, 5, 5, 2), [same_pads(2, 2)] * 2, dil=2),
    "tf.nn.depthwise_conv2d": depthwise,
    "tf.nn.separable_conv2d": lambda x, d, p: conv(depthwise(x, d), p),
    "tf.nn.depthwise_conv2d_backprop_filter": lambda x, g: O(
        [[[[mp.fsum((x[:, i:i + 3, j:j + 3, c] * g[:, :, :, c]).ravel())] for c in range(2)] for j in range(2)]
         for i in range(2)]),
    "tf.nn.depthwise_conv2d_backprop_input": lambda f, g: conv_transpose(
        g, O([[[[f[i, j, c, 0] if c == o else ZERO for o in range(2)] for c in range(2)] for j in range(2)] for i in range(2)]),
        (1, 4, 4, 2)),
    "tf.nn.dilation2d": lambda x, f: morph(x, f),
    "tf.nn.erosion2d": lambda x, f: morph(x, f, erosion=True),
    "tf.nn.local_response_normalization": lrn,
    "tf.nn.isotonic_regression": lambda x: pav_decreasing(list(x)),
    # tf.linalg
    "tf.linalg.adjoint": lambda a: a.T,
    "tf.linalg.band_part": lambda a: O([[a[i, j] if 0 <= i - j <= 1 else ZERO for j in range(3)] for i in range(3)]),
    "tf.linalg.banded_triangular_solve": lambda bands, b: arr(inv(banded_lower(bands)) * mat(b)),
    "tf.linalg.cholesky": lambda a: arr(cholesky(spd(a))),
    "tf.linalg.cholesky_solve": lambda c, b: arr(inv(tril(c) * tril(c).T) * mat(b)),
    "tf.linalg.cross": lambda a, b: O([a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]),
    "tf.linalg.det": lambda a: mp.det(mat(a)),
    "tf.linalg.diag": lambda x: O([[x[i] if i == j else ZERO for j in range(3)] for i in range(3)]),
    "tf.linalg.diag_part": lambda a: np.diag(a).copy(),
    "tf.linalg.eigh": lambda a: O(eig_sym(sym(a))),
    "tf.linalg.eigvalsh": lambda a: O(eig_sym(sym(a))),
    "tf.linalg.eigh_tridiagonal": lambda d, e: O(eig_sym(mp.matrix(
        [[d[i] if i == j else (e[min(i, j)] if abs(i - j) == 1 else ZERO) for j in range(4)] for i in range(4)]))),
    "tf.linalg.einsum": lambda a, b: np.dot(a, b),
    "tf.linalg.expm": _expm,
    "tf.linalg.global_norm": lambda a, b: mp.sqrt(mp.fsum(a * a) + mp.fsum(b * b)),
    "tf.linalg.inv": lambda a: arr(inv(mat(a))),
    "tf.linalg.l2_normalize": lambda x: x / mp.sqrt(max(mp.fsum(x * x), mp.mpf("1e-12"))),
    "tf.linalg.logdet": lambda a: mp.log(mp.det(spd(a))),
    "tf.linalg.lstsq": _lstsq,
    "tf.linalg.lu_matrix_inverse": lambda a: arr(inv(lu_reconstruct(tril(a), [0, 1, 2]))),
    "tf.linalg.lu_reconstruct": lambda a: arr(lu_reconstruct(mat(a), [2, 0, 1])),
    "tf.linalg.lu_solve": lambda a, b: arr(inv(lu_reconstruct(tril(a), [0, 1, 2])) * mat(b)),
    "tf.linalg.matmul": lambda a, b: np.dot(a, b),
    "tf.linalg.matrix_transpose": lambda a: a.T,
    "tf.linalg.matvec": _mv,
    "tf.linalg.norm": lambda x: mp.sqrt(mp.fsum(x * x)),
    "tf.linalg.normalize": lambda x: [x / mp.sqrt(mp.fsum(x * x)), mp.sqrt(mp.fsum(x * x))],
    "tf.linalg.pinv": lambda a: arr(inv(mat(a))),
    "tf.linalg.qr": None,  # set below: needs TensorFlow's sign convention
    "tf.linalg.set_diag": lambda a, d: O([[d[i] if i == j else a[i, j] for j in range(3)] for i in range(3)]),
    "tf.linalg.slogdet": _slogdet,
    "tf.linalg.solve": lambda a, b: arr(inv(mat(a)) * mat(b)),
    "tf.linalg.sqrtm": lambda a: _sqrtm_spd(spd(a)),
    "tf.linalg.svd": lambda a: O(sorted((mp.sqrt(v) for v in eig_sym(mat(a).T * mat(a))), reverse=True)),
    "tf.linalg.tensor_diag": lambda x: O([[x[i] if i == j else ZERO for j in range(3)] for i in range(3)]),
    "tf.linalg.tensor_diag_part": lambda a: np.diag(a).copy(),
    "tf.linalg.tensordot": lambda a, b: np.dot(a, b),
    "tf.linalg.trace": lambda a: a[0, 0] + a[1, 1] + a[2, 2],
    "tf.linalg.triangular_solve": lambda a, b: arr(inv(tril(a)) * mat(b)),
    "tf.linalg.tridiagonal_matmul": lambda d, b: arr(tridiagonal(d) * mat(b)),
    "tf.linalg.tridiagonal_solve": lambda d, b: arr(inv(tridiagonal(d)) * mat(b)),
    # tf.signal (real input)
    "tf.signal.dct": dct2,
    "tf.signal.idct": dct3,
    "tf.signal.fftshift": lambda x: np.roll(x, 2),
    "tf.signal.ifftshift": lambda x: np.roll(x, -2),
    "tf.signal.frame": lambda x: O([list(x[0:3]), list(x[2:5])]),
    "tf.signal.overlap_and_add": lambda x: overlap_and_add(x, 2),
    "tf.signal.rfft": rfft,
    "tf.signal.rfft2d": rfft2d,
    "tf.signal.stft": stft,
    "tf.signal.mfccs_from_log_mel_spectrograms": lambda x: O([list(dct2(r)) for r in x]) / mp.sqrt(2 * x.shape[-1]),
    # tfp.math
    "tfp.math.batch_interp_regular_1d_grid": interp_1d,
    "tfp.math.interp_regular_1d_grid": interp_1d,
    "tfp.math.cholesky_concat": _cholesky_concat,
    "tfp.math.cholesky_update": _cholesky_update,
    "tfp.math.fill_triangular": fill_triangular,
    # On a full matrix TFP adds the mirrored upper entries in: [x22, x21, x20, x00 + x12, x01 + x11, x02 + x10]
    # (the lower triangle alone gives back fill_triangular's input).
    "tfp.math.fill_triangular_inverse": lambda a: O([a[2, 2], a[2, 1], a[2, 0], a[0, 0] + a[1, 2], a[0, 1] + a[1, 1],
                                                     a[0, 2] + a[1, 0]]),
    "tfp.math.gram_schmidt": lambda a: gram_schmidt(dominant(a)),
    "tfp.math.hpsd_logdet": lambda a: mp.log(mp.det(spd(a))),
    "tfp.math.hpsd_quadratic_form_solve": lambda a, b: arr(mat(b).T * inv(spd(a)) * mat(b)),
    "tfp.math.hpsd_quadratic_form_solvevec": lambda a, x: (mp.matrix(list(x)).T * inv(spd(a)) * mp.matrix(list(x)))[0],
    "tfp.math.hpsd_solve": lambda a, b: arr(inv(spd(a)) * mat(b)),
    "tfp.math.hpsd_solvevec": lambda a, x: O(list(inv(spd(a)) * mp.matrix(list(x)))),
    "tfp.math.log_combinations": lambda n, c: mp.loggamma(n[()] + 1) - mp.fsum(mp.loggamma(v + 1) for v in c),
    "tfp.math.log_cumsum_exp": lambda x: O([lse(x[: i + 1]) for i in range(len(x))]),
    "tfp.math.lu_matrix_inverse": lambda a: arr(inv(lu_reconstruct(tril(a), [0, 1, 2]))),
    "tfp.math.lu_reconstruct": lambda a: arr(lu_reconstruct(mat(a), [2, 0, 1])),
    "tfp.math.lu_solve": lambda a, b: arr(inv(lu_reconstruct(tril(a), [0, 1, 2])) * mat(b)),
    "tfp.math.reduce_logmeanexp": lambda x: lse(x) - mp.log(x.size),
    "tfp.math.reduce_log_harmonic_mean_exp": lambda x: -(lse(-x) - mp.log(x.size)),
    "tfp.math.reduce_weighted_logsumexp": lambda x, w: mp.log(mp.fsum((w * m_exp(x)).ravel())),
    "tfp.math.sparse_or_dense_matmul": lambda a, b: np.dot(a, b),
    "tfp.math.sparse_or_dense_matvecmul": _mv,
}
def dft_axis(a, axis, inverse=False):
    a = np.moveaxis(a, axis, -1)
    n = a.shape[-1]
    sign = 1 if inverse else -1
    out = np.empty(a.shape, dtype=object)
    for idx in np.ndindex(*a.shape[:-1]):
        row = a[idx]
        for k in range(n):
            total = mp.fsum(row[t] * twiddle(k * t, n, sign) for t in range(n))
            out[(*idx, k)] = total / n if inverse else total
    return np.moveaxis(out, -1, axis)


def dft_nd(a, axes, inverse=False):
    for axis in axes:
        a = dft_axis(a, axis, inverse)
    return a


def irfft_last(a):
    """Real inverse FFT along the last axis, length 2(m-1): the Hermitian extension, real part taken."""
    m = a.shape[-1]
    n = 2 * (m - 1)
    out = np.empty((*a.shape[:-1], n), dtype=object)
    for idx in np.ndindex(*a.shape[:-1]):
        x = a[idx]
        full = [x[k] if k < m else mp.conj(x[n - k]) for k in range(n)]
        for t in range(n):
            out[(*idx, t)] = mp.re(mp.fsum(full[k] * twiddle(k * t, n, 1) for k in range(n))) / n
    return out


def eig_like(a, ref):
    values = list(mp.eig(mat(a), left=False, right=False))
    order = []
    for target in np.ravel(ref[0]):  # TensorFlow's order: match each of its eigenvalues to the nearest one here
        best = min((k for k in range(len(values)) if k not in order), key=lambda k: abs(values[k] - complex(target)))
        order.append(best)
    return O([values[k] for k in order])


def inverse_stft(a, length=8, step=4):
    frames = irfft_last(a) * hann(length)[None, :]
    return overlap_and_add(frames, step)


def vorbis(n):
    return O([mp.sin(mp.pi / 2 * mp.sin(mp.pi * (k + mp.mpf("0.5")) / n) ** 2) for k in range(n)])


def mdct(x, length=4):
    """Vorbis-windowed MDCT, frames of `length` every length/2, TensorFlow's unnormalised DCT-IV scale (2·Σ)."""
    w, half = vorbis(length), length // 2
    frames = [x[s:s + length] * w for s in range(0, len(x) - length + 1, half)]
    return O([[2 * mp.fsum(f[t] * mp.cos(2 * mp.pi / length * (t + mp.mpf("0.5") + mp.mpf(length) / 4) * (k + mp.mpf("0.5")))
                           for t in range(length)) for k in range(half)] for f in frames])


def inverse_mdct(a):
    """Inverse MDCT (scale 1/(N/2)), vorbis-windowed, overlap-added every N/2."""
    half = a.shape[-1]
    length = 2 * half
    w = vorbis(length)
    frames = O([[w[t] * mp.fsum(row[k] * mp.cos(2 * mp.pi / length * (t + mp.mpf("0.5") + mp.mpf(length) / 4)
                                                 * (k + mp.mpf("0.5"))) for k in range(half)) / half
                 for t in range(length)] for row in a])
    return overlap_and_add(frames, half)


def ctc_loss(logits, labels=(1, 2), blank=0):
    """-log Σ over all alignments (T ≤ 6: every path enumerated) that collapse to `labels`; time-major [T, 1, C]."""
    t_len, _, classes = logits.shape
    logp = [log_softmax_last(logits[t, 0][None, :])[0] for t in range(t_len)]
    total = []
    for path in itertools.product(range(classes), repeat=t_len):
        collapsed = [c for i, c in enumerate(path) if c != blank and (i == 0 or c != path[i - 1])]
        if tuple(collapsed) == tuple(labels):
            total.append(mp.fsum(logp[t][c] for t, c in enumerate(path)))
    return O([-lse(total)])


def neural_sort(x, tau=mp.mpf("0.5")):
    """NeuralSort's relaxed sorting matrix (Grover et al. 2019): row i = softmax(((n + 1 - 2i)·x - A·1) / τ), i from 1."""
    n = len(x)
    b = [mp.fsum(abs(x[j] - x[k]) for k in range(n)) for j in range(n)]
    logits = O([[((n + 1 - 2 * (i + 1)) * x[j] - b[j]) / tau for j in range(n)] for i in range(n)])
    return softmax_last(logits)


GENERAL.update({
    "tfp.math.soft_sorting_matrix": neural_sort,
    "tf.nn.ctc_loss": ctc_loss,
    "tf.signal.mdct": mdct,
    "tf.signal.inverse_mdct": inverse_mdct,
    "tf.math.angle": ew(lambda z: mp.atan2(mp.im(z), mp.re(z))),
    "tf.math.conj": ew(mp.conj),
    "tf.math.imag": ew(mp.im),
    "tf.math.real": ew(mp.re),
    "tf.signal.fft": lambda a: dft_nd(a, [-1]),
    "tf.signal.fft2d": lambda a: dft_nd(a, [-1, -2]),
    "tf.signal.fft3d": lambda a: dft_nd(a, [-1, -2, -3]),
    "tf.signal.ifft": lambda a: dft_nd(a, [-1], inverse=True),
    "tf.signal.ifft2d": lambda a: dft_nd(a, [-1, -2], inverse=True),
    "tf.signal.ifft3d": lambda a: dft_nd(a, [-1, -2, -3], inverse=True),
    "tf.signal.irfft": irfft_last,
    "tf.signal.irfft2d": lambda a: irfft_last(dft_axis(a, 0, inverse=True)),
    "tf.signal.inverse_stft": inverse_stft,
})

# Definitions that take TensorFlow's forward for a convention: QR's signs, the order of eigenvalues.
WITH_REFERENCE = {"tf.linalg.qr": qr_like, "tf.linalg.eig": eig_like, "tf.linalg.eigvals": eig_like}
for _name in WITH_REFERENCE:
    GENERAL.pop(_name, None)

# The table applies these itself (TableFunction's `prepare`); the definitions above take the raw draw
# and prepare it the same way (spd/tril/sym/dominant/simplex), so nothing more is needed here.

# Inverse-like functions: a probe whose (prepared) matrix is ill-conditioned is outside the domain.
CONDITION = {
    "tf.linalg.inv": lambda a: a[0], "tf.linalg.solve": lambda a: a[0], "tf.linalg.pinv": lambda a: a[0],
    "tf.linalg.slogdet": lambda a: a[0], "tf.linalg.lstsq": lambda a: a[0], "tf.linalg.qr": lambda a: a[0] + 4 * np.eye(3),
    "tf.linalg.tridiagonal_solve": lambda a: np.diag(a[0][1]) + np.diag(a[0][0][:-1], 1) + np.diag(a[0][2][1:], -1),
    "tfp.math.gram_schmidt": lambda a: a[0] + 4 * np.eye(3),
    "tf.linalg.lu_reconstruct": None, "tfp.math.lu_reconstruct": None,
}

def _spectrum(p, prep):
    m = np.asarray(p[0], dtype=np.float64)
    if prep == "sym":
        return np.linalg.eigvalsh((m + m.T) / 2)
    if prep == "tridiagonal":
        d, e = np.asarray(p[0], np.float64), np.asarray(p[1], np.float64)
        return np.linalg.eigvalsh(np.diag(d) + np.diag(e, 1) + np.diag(e, -1))
    return np.linalg.svd(m, compute_uv=False)


# Eigenvalues / singular values: a probe with a repeated one (within 1e-3 of the largest) is
# outside the domain — the spectrum is not differentiable there and any element of the Clarke set is right.
DEGENERATE = {"tf.linalg.eigh": "sym", "tf.linalg.eigvalsh": "sym", "tf.linalg.eigh_tridiagonal": "tridiagonal",
              "tf.linalg.svd": "svd"}


def degenerate(name, p):
    if name not in DEGENERATE:
        return False
    values = np.sort(_spectrum(p, DEGENERATE[name]))
    gap = np.min(np.diff(values)) if values.size > 1 else np.inf
    return bool(gap <= 1e-3 * max(1.0, np.max(np.abs(values))) or (DEGENERATE[name] == "svd" and values[0] <= 1e-3))


def _on_simplex(p):
    """Labels as distributions (rows summing to 1), as TensorFlow documents for softmax cross-entropy."""
    z = np.asarray(p[0], dtype=np.float64)
    rows = z.sum(axis=-1, keepdims=True)
    z = np.where(rows > 0, z / np.where(rows > 0, rows, 1), 1.0 / z.shape[-1])
    return [z.astype(p[0].dtype), *p[1:]]


# Probes moved into a function's documented domain before use.
DOMAIN = {"tf.nn.softmax_cross_entropy_with_logits": _on_simplex}

# Checked by hand: the forward disagreement is TensorFlow's (TFP's) fault, not this definition's.
# FORWARD_TOL widens the forward check for a forward that is only inaccurate, so its gradient is still judged.
FORWARD_TOL = {"tfp.math.owens_t": 1e-5}
FORWARD_BUGS = {
    "tfp.math.owens_t": "TFP's float64 forward is inaccurate for |a| > 1: owens_t(1, 5) = 0.0793278431 where the "
                        "integral is 0.0793276245 (2.8e-6 relative; mpmath quadrature and Owen's identity agree); "
                        "the forward check is widened to 1e-5 so the gradient is judged",
    "tfp.math.betaincinv": "TFP's forward is wrong: betaincinv(0.5, 0.5, 0.5) = 0.6185 at float64 where I_x(0.5, 0.5) = 0.5 "
                           "needs x = 0.5 (I at TFP's x is 0.576); (2, 3, 0.5) and (0.6, 0.5, 0.5) are off too. "
                           "The gradient of a wrong inverse is not labelled",
}

# Bugs in thin regions the probes above do not reach (a special matrix, an under- or overflowing
# product, the last binade above the subnormals), each confirmed independently by a script in
# scripts/bugs/ (mpmath or exact arithmetic, no gradfuzz; exit 0 while it reproduces).
# The pinv and segment scripts check float64; their float32 lines were checked the same way (TensorFlow at
# float32 against the exact value). label_entry applies them after probing:
# name -> (category, script, {dtype: input: TensorFlow vs true}).
CONFIRMED = {
    "tf.linalg.pinv": ("mismatch", "tf_pinv_repeated_singular.py", {
        "float32": "at A = I₃ (repeated singular values), V = e₀₁: ∂/∂A₀₁ TensorFlow 0, true −1 (−diag(V) instead of −V)",
        "float64": "at A = I₃ (repeated singular values), V = e₀₁: ∂/∂A₀₁ TensorFlow 0, true −1 (−diag(V) instead of −V)"}),
    "tf.math.segment_prod": ("mismatch", "tf_segment_prod_underflow.py", {
        "float32": "segment [1e-30, 1e-30] (the product underflows): TensorFlow 0, true 1e-30; [1e30, 1e30]: inf, true 1e30",
        "float64": "segment [1e-200, 1e-200] (the product underflows): TensorFlow 0, true 1e-200; [1e300, 1e300]: inf, true 1e300"}),
    "tf.math.unsorted_segment_prod": ("mismatch", "tf_segment_prod_underflow.py", {
        "float32": "segment [1e-30, 1e-30] (the product underflows): TensorFlow 0, true 1e-30; [1e30, 1e30]: inf, true 1e30",
        "float64": "segment [1e-200, 1e-200] (the product underflows): TensorFlow 0, true 1e-200; [1e300, 1e300]: inf, true 1e300"}),
    "tf.math.bessel_i1e": ("mismatch", "tf_bessel_i1e_min_normal.py", {
        "float32": "at x = ±1.1754944e-38 (the smallest normal float32; y ≈ x/2 is flushed to 0): TensorFlow 1, true 0.5",
        "float64": "at x = ±2.2250738585072014e-308 (the smallest normal float64; y ≈ x/2 is flushed to 0): TensorFlow 1, true 0.5"}),
    "tf.math.special.bessel_i1e": ("mismatch", "tf_bessel_i1e_min_normal.py", {
        "float32": "at x = ±1.1754944e-38 (the smallest normal float32; y ≈ x/2 is flushed to 0): TensorFlow 1, true 0.5",
        "float64": "at x = ±2.2250738585072014e-308 (the smallest normal float64; y ≈ x/2 is flushed to 0): TensorFlow 1, true 0.5"}),
    "tf.math.special.bessel_j1": ("mismatch", "tf_bessel_j1_min_normal.py", {
        "float32": "at x = ±1.1754944e-38 (the smallest normal float32) up to |x| ≈ 3.4e-37 (the forward J1(x) ≈ x/2 comes out 0: "
                   "a subnormal intermediate is flushed): TensorFlow 1, true 0.5",
        "float64": "at x = ±2.2250738585072014e-308 (the smallest normal float64) up to |x| ≈ 3.2e-305 (the forward J1(x) ≈ x/2 "
                   "comes out 0: a subnormal intermediate is flushed): TensorFlow 1, true 0.5"}),
}


def apply_confirmed(name, per_dtype):
    """Label the dtypes of a CONFIRMED bug "bug" where the probes did not find one (in place)."""
    if name not in CONFIRMED:
        return
    category, script, found = CONFIRMED[name]
    for dtype, where in found.items():
        row = per_dtype.get(dtype)
        if row is None or row["label"] == "bug":
            continue
        row.update(label="bug", category=category,
                   why=f"{where}: a region the probes missed ({row['probes']} probes agreed); confirmed "
                       f"independently by scripts/bugs/{script}")


CANNOT = {
}


# =============================================================================================
# Specs and probes
# =============================================================================================

SPEC = re.compile(r"^(float16|float32|float64|complex64|complex128)\[([0-9,]*)\]@(-?[0-9.]+)\.\.(-?[0-9.]+)$")


def parse_spec(text):
    m = SPEC.match(text.replace(" ", ""))
    if not m:
        raise ValueError(f"unsupported spec {text!r}")
    dtype, dims, lo, hi = m.groups()
    return dtype, tuple(int(d) for d in dims.split(",") if d), float(lo), float(hi)


def specials(lo, hi):
    return sorted({v for v in (0.0, 1.0, -1.0, 0.5, -0.5, 2.0, lo, hi) if lo <= v <= hi})


def probes(specs, rng, count, elementwise=False):
    """Special values (all elements alike; for up to three arguments combined every way, sampled down
    to ~3/5 of `count`), then mixtures and uniform draws. Element-wise functions also get every
    combination of special values once, packed several to a probe (one per element)."""
    per_arg = [specials(lo, hi) for _, _, lo, hi in specs]
    every = list(itertools.product(*per_arg)) if len(specs) <= 3 else \
        list(zip(*(itertools.islice(itertools.cycle(v), 8) for v in per_arg)))
    n_special = min(len(every), max(2, (count * 2 // 5) if elementwise else (count * 3 // 5)))
    combos = every
    if len(every) > n_special:
        keep = sorted(rng.choice(len(every), n_special, replace=False))
        combos = [every[i] for i in keep]
    out = [[np.full(shape, v) for (_, shape, _, _), v in zip(specs, values)] for values in combos]
    size = int(np.prod(specs[0][1], dtype=int))
    if elementwise and size > 1 and len(every) > len(combos):
        for start in range(0, len(every), size):
            chunk = every[start:start + size]
            chunk = chunk + [chunk[-1]] * (size - len(chunk))
            out.append([np.array([c[k] for c in chunk]).reshape(shape) for k, (_, shape, _, _) in enumerate(specs)])
    rest = max(2, count - len(out)) if not elementwise else max(8, count - len(out))
    for _ in range(rest // 2):
        out.append([np.where(rng.random(shape) < 0.5, rng.choice(vals, shape), rng.uniform(lo, hi, shape))
                    for (_, shape, lo, hi), vals in zip(specs, per_arg)])
    for _ in range(rest - rest // 2):
        out.append([rng.uniform(lo, hi, shape) for _, shape, lo, hi in specs])
    for p in out:  # complex arguments: an imaginary part from the same range (special values or uniform)
        for k, (dtype, shape, lo, hi) in enumerate(specs):
            if dtype.startswith("complex"):
                imag = np.where(rng.random(shape) < 0.5, rng.choice(per_arg[k], shape), rng.uniform(lo, hi, shape))
                p[k] = p[k] + 1j * imag
    return [[np.asarray(a, dtype=dtype) for a, (dtype, _, _, _) in zip(p, specs)] for p in out]


# =============================================================================================
# One-sided derivatives
# =============================================================================================

def one_sided(phi, x0):
    """(low, high) of the one-sided derivatives of phi at x0, or None if a side has not settled or none exists."""
    h = mp.mpf(2) ** -70 * max(1, abs(x0))
    try:
        base = phi(x0)
    except (Undefined, ValueError, ZeroDivisionError):
        return None
    sides = []
    for sign in (1, -1):
        quotients = []
        for step in (h, h / 1024):
            try:
                other = phi(x0 + sign * step)
            except (Undefined, ValueError, ZeroDivisionError):
                break
            if not mp.isfinite(other):
                break
            quotients.append((other - base) / (sign * step))
        if len(quotients) == 2:
            if abs(quotients[0] - quotients[1]) > mp.mpf(10) ** -9 * max(1, abs(quotients[1])):
                return None  # grows as the step shrinks: infinite derivative or a jump; not judged
            sides.append(quotients[1])
    if not sides:
        return None
    return min(sides), max(sides)


def to_mp(a):
    if np.iscomplexobj(a):
        return O([mp.mpc(float(v.real), float(v.imag)) for v in np.ravel(a)]).reshape(np.shape(a))
    return O([mp.mpf(float(v)) for v in np.ravel(a)]).reshape(np.shape(a))


def flatten_outputs(result, complex_mask):
    parts = result if isinstance(result, (list, tuple)) else [result]
    if len(parts) != len(complex_mask):
        raise RuntimeError(f"definition returns {len(parts)} output(s), TensorFlow {len(complex_mask)}")
    flat = []
    for part, is_complex in zip(parts, complex_mask):
        for y in np.ravel(O(part) if not isinstance(part, np.ndarray) else part):
            if is_complex:
                y = mp.mpc(y)
                flat += [y.real, y.imag]
            else:
                if isinstance(y, mp.mpc):
                    if y.imag != 0:
                        raise Undefined("complex value")
                    y = y.real
                flat.append(mp.mpf(y))
    return flat


# =============================================================================================
# TensorFlow's side
# =============================================================================================

def tf_flat(tf, y):
    parts = []
    mask = []
    for t in tf.nest.flatten(y):
        t = tf.convert_to_tensor(t)
        if t.dtype.is_complex:
            parts.append(tf.reshape(tf.stack([tf.math.real(t), tf.math.imag(t)], -1), [-1]))
            mask.append(True)
        else:
            parts.append(tf.reshape(t, [-1]))
            mask.append(False)
    return tf.concat([tf.cast(p, tf.float64) for p in parts], 0), mask


def tf_gradient(tf, fn, arrays, v):
    xs = [tf.constant(a) for a in arrays]
    with tf.GradientTape() as tape:
        for x in xs:
            tape.watch(x)
        y, mask = tf_flat(tf, fn(*xs))
        loss = tf.reduce_sum(y * tf.constant(v, tf.float64)) if v is not None else None
    grads = tape.gradient(loss, xs) if v is not None else None
    return y.numpy(), mask, None if grads is None else [None if g is None else tf.convert_to_tensor(g).numpy() for g in grads]


# =============================================================================================
# Labelling one entry at one dtype variant
# =============================================================================================

class Result:
    def __init__(self):
        self.checked = 0
        self.skipped = 0
        self.worst = (0.0, "")  # (error / tolerance, text)
        self.bug = None  # (category, evidence)
        self.cannot = None

    def note(self, ratio, text):
        if ratio > self.worst[0] or not self.worst[1]:
            self.worst = (ratio, text)


def judge(result, dtype, where, g, sides, scale):
    """Compare one element of TensorFlow's gradient with the one-sided range; record a bug."""
    lo, hi = float(sides[0]), float(sides[1])
    tol = RTOL[dtype] * (max(abs(lo), abs(hi)) + ABS[dtype] * max(scale, 1.0)) + 1e-300
    truth = f"{lo:.9g}" if lo == hi else f"in [{lo:.9g}, {hi:.9g}]"
    if not math.isfinite(g):
        result.bug = result.bug or ("non-finite", f"{where}: TensorFlow {g} where the derivative is {truth}")
        return
    err = max(lo - g, g - hi, 0.0)
    result.note(err / tol, f"{where}: TensorFlow {g:.9g}, true {truth}")
    if err > tol:
        rel = err / max(abs(lo), abs(hi), 1e-300)
        category = "approximation" if rel < 1e-2 else "mismatch"
        if lo != hi:
            category = "branch"  # at a kink, a value no adjacent piece has
        result.bug = result.bug or (category, f"{where}: TensorFlow {g:.9g}, true {truth} (relative error {rel:.2g})")


def label_elementwise(name, fn, specs, rng, count):
    import tensorflow as tf

    f = ELEMENTWISE[name]
    dtype = specs[0][0]
    result = Result()
    batch = probes(specs, rng, count, elementwise=True)
    kept, mp_args = [], []
    for p in batch:
        args = [[mp.mpf(float(v)) for v in a.ravel()] for a in p]
        try:
            ys = [f(*vals) for vals in zip(*args)]
            ok = all(not isinstance(y, mp.mpc) and mp.isfinite(y) and abs(y) < float(np.finfo(dtype).max) for y in ys)
        except (Undefined, ValueError, ZeroDivisionError):
            ok = False
        if ok:
            kept.append(p)
            mp_args.append((args, ys))
        else:
            result.skipped += 1
    if not kept:
        result.cannot = "no probe inside the domain"
        return result
    joined = [np.concatenate([p[k].ravel() for p in kept]) for k in range(len(specs))]
    n = joined[0].size
    v = (rng.uniform(0.5, 1.5, n) * rng.choice([-1.0, 1.0], n)).astype(dtype).astype(np.float64)
    # One TensorFlow call per probe, at the entry's shape: batching the probes together would hide
    # batch-dependent bugs (tfp.math.betainc's series loop runs until every element has stopped).
    parts, grad_parts, start = [], [], 0
    for probe in kept:
        size = probe[0].size
        try:
            y_p, _, g_p = tf_gradient(tf, fn, probe, v[start:start + size])
        except Exception as error:  # the forward refuses the input: report it
            result.cannot = f"TensorFlow raised {type(error).__name__}: {str(error).splitlines()[0][:200]}"
            return result
        parts.append(y_p)
        grad_parts.append(g_p)
        start += size
    y = np.concatenate(parts)
    grads = [None if any(g[k] is None for g in grad_parts) else np.concatenate([np.ravel(g[k]) for g in grad_parts])
             if all(np.shape(g[k]) == np.shape(probe[k]) for g, probe in zip(grad_parts, kept)) else grad_parts[0][k]
             for k in range(len(specs))]
    truth_y = [yy for _, ys in mp_args for yy in ys]
    if y.size != n:
        result.cannot = f"TensorFlow returns {y.size} values for {n} elements: not element-wise"
        return result
    result.checked = len(kept)
    ftol = 1e-5 if dtype == "float32" else 1e-7  # TensorFlow's float64 gelu is off by 3e-8 relative (a forward matter)
    ftol = max(ftol, FORWARD_TOL.get(name, 0.0))
    for i, (a, b) in enumerate(zip(y, truth_y)):
        if not abs(a - float(b)) <= ftol * max(1.0, abs(float(b))) + (1e-6 if dtype == "float32" else 1e-12):
            xs = [float(j[i]) for j in joined]
            result.cannot = (f"the definition's forward differs from TensorFlow's at {xs}: {float(b):.12g} vs {a:.12g} "
                             "(the definition or TensorFlow's forward is wrong)")
            return result
    for k, g in enumerate(grads):
        if g is not None and g.shape != joined[k].shape:
            result.bug = ("shape", f"argument {k}: gradient shape {g.shape} for an argument of shape {kept[0][k].shape}")
            return result
    # per element
    i = 0
    for args, _ in mp_args:
        size = len(args[0])
        ranges = []
        for j in range(size):
            point = [a[j] for a in args]
            for k in range(len(specs)):
                def phi(t, k=k, point=point):
                    moved = list(point)
                    moved[k] = t
                    return f(*moved)
                s = one_sided(phi, point[k])
                ranges.append((k, j, None if s is None else (s[0] * v[i + j], s[1] * v[i + j]) if v[i + j] > 0
                               else (s[1] * v[i + j], s[0] * v[i + j])))
        scale = max([max(abs(r[0]), abs(r[1])) for _, _, r in ranges if r is not None] + [mp.mpf(0)])
        for k, j, r in ranges:
            if r is None:
                continue
            where = f"argument {k} element {j} at ({'; '.join(f'{float(a[j]):.17g}' for a in args)}), cotangent {v[i + j]:.6g}"
            g = grads[k]
            if g is None:
                if r[0] != 0 or r[1] != 0:
                    result.bug = result.bug or ("missing-gradient", f"{where}: TensorFlow None, true {float(r[0]):.9g}")
                continue
            judge(result, dtype, where, float(g[i + j]), r, float(scale))
            if result.bug:
                return result
        i += size
    return result


def adjacent_pieces(args, vm, phi_all, rng, count=10):
    """(argument, element) -> derivatives of ⟨v, f⟩ at points jittered off the probe by 2⁻⁴⁰ in
    several directions (index order up and down, random signs): the gradients of the smooth
    pieces that meet at the probe."""
    sizes = [a.size for a in args]
    total = sum(sizes)
    directions = [np.arange(total, 0, -1, dtype=float), np.arange(1, total + 1, dtype=float)]
    directions += [rng.permutation(total).astype(float) + 1 for _ in range(count // 2)]
    directions += [rng.choice([-1.0, 1.0], total) * rng.uniform(0.5, 1.5, total) for _ in range(count - len(directions))]
    found: dict[tuple[int, int], list] = {}
    for d in directions:
        moved, start = [], 0
        for a, n in zip(args, sizes):
            flat = a.ravel()
            moved.append(O([x + mp.mpf(2) ** -40 * mp.mpf(float(d[start + i])) * max(1, abs(x)) for i, x in enumerate(flat)])
                         .reshape(a.shape))
            start += n
        for k, a in enumerate(moved):
            for j in range(a.size):
                def phi(t, k=k, j=j, moved=moved):
                    shifted = [b.copy() for b in moved]
                    shifted[k].reshape(-1)[j] = t
                    return mp.fsum(c * y for c, y in zip(vm, phi_all(shifted)))
                s = one_sided(phi, a.ravel()[j])
                found.setdefault((k, j), []).extend([] if s is None else [s[0], s[1]])
    return found


def label_general(name, fn, entry, specs, rng, count):
    import tensorflow as tf

    definition = GENERAL.get(name) or WITH_REFERENCE[name]
    with_ref = name in WITH_REFERENCE
    dtype = {"complex64": "float32", "complex128": "float64"}.get(specs[0][0], specs[0][0])  # the precision
    result = Result()
    for p in probes(specs, rng, count):
        if name in DOMAIN:
            p = DOMAIN[name](p)
        if degenerate(name, p):
            result.skipped += 1
            continue
        if name in CONDITION and CONDITION[name] is not None:
            m = np.asarray(CONDITION[name](p), dtype=np.float64)
            prep = entry.prepare[0] if entry.prepare else None
            if prep == "spd":
                m = m @ m.T + m.shape[-1] * np.eye(m.shape[-1])
            if not np.all(np.isfinite(m)) or np.linalg.cond(m) > COND[dtype]:
                result.skipped += 1
                continue
        try:
            y_tf, mask, _ = tf_gradient(tf, fn, p, None)
        except (tf.errors.InvalidArgumentError, ValueError) as error:
            if "not invertible" in str(error) or "Cholesky" in str(error) or "singular" in str(error).lower():
                result.skipped += 1
                continue
            result.skipped += 1
            continue
        if not np.all(np.isfinite(y_tf)):
            result.skipped += 1
            continue
        args = [to_mp(a) for a in p]
        ref = None
        if with_ref:
            ref = [np.asarray(t) for t in tf.nest.flatten(fn(*[tf.constant(a) for a in p]))]

        def phi_all(a, ref=ref, mask=mask):
            out = definition(*a, ref) if with_ref else definition(*a)
            return flatten_outputs(out, mask)

        try:
            ys = phi_all(args)
        except (Undefined, ValueError, ZeroDivisionError):
            result.skipped += 1
            continue
        except RuntimeError as error:
            result.cannot = str(error)
            return result
        if len(ys) != y_tf.size:
            result.cannot = f"the definition gives {len(ys)} output values, TensorFlow {y_tf.size}"
            return result
        if not all(mp.isfinite(y) for y in ys):
            result.skipped += 1
            continue
        big = max([abs(float(y)) for y in ys] + [1.0])
        ftol = (1e-4 if dtype == "float32" else 1e-9) * big
        bad = [k for k, (a, b) in enumerate(zip(y_tf, ys)) if abs(a - float(b)) > ftol]
        if bad:
            k = bad[0]
            shown = "; ".join(str(a.tolist()) for a in p)
            result.cannot = (f"the definition's forward differs from TensorFlow's at ({shown}): output {k} "
                             f"{float(ys[k]):.12g} vs {y_tf[k]:.12g} (the definition or TensorFlow's forward is wrong)")
            return result
        v = (rng.uniform(0.5, 1.5, len(ys)) * rng.choice([-1.0, 1.0], len(ys))).astype(dtype).astype(np.float64)
        try:
            _, _, grads = tf_gradient(tf, fn, p, v)
        except Exception as error:  # a gradient that raises where the forward is defined
            shown = "; ".join(str(a.tolist()) for a in p)
            result.bug = ("exception", f"no gradient: it raised {type(error).__name__}: {str(error).splitlines()[0][:160]} at ({shown})")
            return result
        result.checked += 1
        vm = [mp.mpf(float(c)) for c in v]
        shown = "; ".join(str(a.tolist()) for a in p)
        checks = []
        for k, a in enumerate(args):
            g = grads[k]
            if g is not None and g.shape != a.shape:
                result.bug = ("shape", f"argument {k}: gradient shape {g.shape}, input {a.shape} at ({shown})")
                return result
            flat = a.ravel()
            is_complex = np.iscomplexobj(p[k])
            for j in range(flat.size):
                for part, unit in ((("real", ONE), ("imaginary", mp.mpc(0, 1))) if is_complex else ((None, ONE),)):
                    def phi(t, k=k, j=j, unit=unit, x0=flat[j], args=args, vm=vm, phi_all=phi_all):
                        moved = [b.copy() for b in args]
                        moved[k].reshape(-1)[j] = x0 + (t - mp.re(x0) if unit == ONE else (t - mp.im(x0)) * unit)
                        return mp.fsum(c * y for c, y in zip(vm, phi_all(moved)))
                    s = one_sided(phi, mp.re(flat[j]) if unit == ONE else mp.im(flat[j]))
                    if s is not None:
                        value = None if g is None else g.reshape(-1)[j]
                        value = None if value is None else float(value.imag if part == "imaginary" else value.real)
                        checks.append((k, j, part, s, value))
        scale = max([max(abs(s[0]), abs(s[1])) for _, _, _, s, _ in checks] + [mp.mpf(0)])
        pieces = None
        for k, j, part, s, g in checks:
            where = f"argument {k} element {j}{f' ({part} part)' if part else ''} at ({shown})"
            if g is None:
                if s[0] != 0 or s[1] != 0:
                    result.bug = ("missing-gradient", f"{where}: TensorFlow None, true {float(s[0]):.9g}")
                    return result
                continue
            saved = result.worst
            judge(result, dtype, where, g, s, float(scale))
            if result.bug and result.bug[0] != "non-finite" and part is None:
                # Several elements on a kink at once (ties): a gradient of any piece adjacent to the
                # probe is right too (top_k breaks ties by index). Derivatives at jittered points.
                if pieces is None:
                    pieces = adjacent_pieces(args, vm, phi_all, rng)
                widened = [d for d in pieces.get((k, j), []) if d is not None]
                if widened:
                    lo, hi = min([s[0], *widened]), max([s[1], *widened])
                    kept, result.bug, result.worst = result.bug, None, saved
                    judge(result, dtype, where + " (ties: gradients of the adjacent pieces too)", g,
                          (lo, hi), float(scale))
                    if result.bug:
                        result.bug = kept
            if result.bug:
                return result
    if result.checked == 0 and result.cannot is None:
        result.cannot = f"no probe inside the domain ({result.skipped} outside)"
    return result


# =============================================================================================
# Driver
# =============================================================================================

def label_entry(name, entry, max_probes):
    from gradfuzz.sweep_targets import TableFunction

    if name in CANNOT:
        return {"label": "cannot-label", "category": None, "why": CANNOT[name], "probes": 0, "worst": ""}
    complex_input = any(d.startswith("complex") for d in entry.dtypes)
    if complex_input and name not in GENERAL and name not in WITH_REFERENCE:
        return {"label": "cannot-label", "category": None, "probes": 0, "worst": "",
                "why": "complex inputs: this labeller has no convention for complex derivatives yet"}
    if name not in ELEMENTWISE and name not in GENERAL and name not in WITH_REFERENCE:
        return {"label": "cannot-label", "category": None, "probes": 0, "worst": "",
                "why": "no independent mpmath definition written yet"}
    try:
        fn = TableFunction(name, entry)
    except (ImportError, AttributeError) as error:
        return {"label": "cannot-label", "category": None, "probes": 0, "worst": "", "why": f"cannot be loaded here: {error}"}
    per_dtype = {}
    for variant in entry.variants():
        specs = [parse_spec(s) for s in variant]
        dtype = specs[0][0]
        rng = np.random.default_rng([SEED, sum(map(ord, name)), len(dtype)])
        elements = sum(int(np.prod(s[1], dtype=int)) for s in specs)
        if name in ELEMENTWISE:
            count = SLOW.get(name, max_probes)
            result = label_elementwise(name, fn, specs, rng, min(count, max_probes))
        else:
            count = max(4, min(max_probes, SLOW.get(name, max_probes), EVALUATIONS // (4 * elements + 1)))
            result = label_general(name, fn, entry, specs, rng, count)
        if result.cannot:
            why = result.cannot
            if name in FORWARD_BUGS and "forward differs" in why:
                why = f"{FORWARD_BUGS[name]} ({why})"
            row = {"label": "cannot-label", "category": None, "why": why}
        elif result.bug:
            row = {"label": "bug", "category": result.bug[0], "why": result.bug[1]}
        else:
            row = {"label": "correct", "category": None,
                   "why": f"{result.checked} probes agree with the mpmath definition ({result.skipped} outside the domain)"
                          + (f"; note: {FORWARD_BUGS[name]}" if name in FORWARD_TOL else "")}
        row.update(probes=result.checked, outside=result.skipped,
                   worst=f"{result.worst[1]} (error/tolerance {result.worst[0]:.2g})" if result.worst[1] else "")
        per_dtype[dtype] = row
    apply_confirmed(name, per_dtype)
    rank = {"bug": 0, "cannot-label": 1, "correct": 2}
    top = min(per_dtype.values(), key=lambda r: rank[r["label"]])
    out = {k: top[k] for k in ("label", "category", "why", "probes", "worst")}
    out["probes"] = sum(r["probes"] for r in per_dtype.values())
    out["dtypes"] = per_dtype
    if len({r["label"] for r in per_dtype.values()}) > 1:
        out["why"] = "; ".join(f"{d}: {r['label']} ({r['why']})" for d, r in per_dtype.items())
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="", help="comma-separated table names")
    parser.add_argument("--out", default=str(DEFAULT_OUT), help="where to write the labels JSON ('-': nowhere)")
    parser.add_argument("--max-probes", type=int, default=MAX_PROBES)
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--merge", action="store_true", help="update the entries in an existing --out file instead of replacing it")
    opts = parser.parse_args(argv)

    from gradfuzz.sweep_table import TABLE

    names = [n for n in TABLE if TABLE[n].checked]
    if opts.only:
        wanted = [n.strip() for n in opts.only.split(",") if n.strip()]
        unknown = [n for n in wanted if n not in names]
        if unknown:
            print(f"not checked entries of the sweep table: {unknown}", file=sys.stderr)
            return 2
        names = wanted
    labels = {}
    started = time.monotonic()
    for name in names:
        t0 = time.monotonic()
        try:
            labels[name] = label_entry(name, TABLE[name], opts.max_probes)
        except Exception as error:  # a labeller crash on one entry: a cannot-label, listed
            labels[name] = {"label": "cannot-label", "category": None, "probes": 0, "worst": "",
                            "why": f"the labeller raised {type(error).__name__}: {error}"}
        row = labels[name]
        if not opts.quiet:
            print(f"{row['label']:>12} {row['category'] or '':<16} {name:<45} {row['probes']:>4} probes "
                  f"{time.monotonic() - t0:5.1f} s  {row['why'][:200]}", flush=True)
    counts = {k: sum(r["label"] == k for r in labels.values()) for k in ("correct", "bug", "cannot-label")}
    if opts.out != "-":
        written = labels
        if opts.merge and Path(opts.out).exists():
            written = json.loads(Path(opts.out).read_text())
            written.update(labels)
            written = {n: written[n] for n in TABLE if n in written}  # the table's order
        Path(opts.out).parent.mkdir(parents=True, exist_ok=True)
        Path(opts.out).write_text(json.dumps(written, indent=1, ensure_ascii=False) + "\n")
    print(f"{len(labels)} functions: {counts['correct']} correct, {counts['bug']} bug, {counts['cannot-label']} cannot-label "
          f"({time.monotonic() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
