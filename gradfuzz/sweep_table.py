"""What ``gradfuzz sweep`` knows about TensorFlow's public API: rules as data.

One entry per function, keyed by its public name (``tf.`` stands for ``tensorflow.``, ``tfp.`` for
``tensorflow_probability.``). An entry either says how to call the function — the input specs of
the arguments it checks (`gradfuzz.spec` grammar; a spec starting with ``[`` is written once and
checked at each of ``dtypes``), keyword constants, which output to differentiate — or why it
cannot be checked (``skip``). Nothing here imports TensorFlow; `gradfuzz.sweep_targets` turns an
entry into a callable target named ``gradfuzz.sweep_targets:<name>`` (loadable again for replay).

Conventions:

* drawn arguments are the checked (differentiable) ones; anything else is a constant (``kw``,
  ``leading`` for positional constants such as einsum's equation). A float constant that must
  have the checked dtype is written ``Like(2.0)``.
* domains keep inputs where the function is defined and its derivative finite (``log``:
  ``@0.01..10``, ``acos``: ``@-0.99..0.99``); points just inside still get their ULP
  neighbourhoods drawn.
* ``prepare`` maps a drawn argument before the call: ``sym`` ((A + Aᴴ)/2), ``spd`` (A Aᴴ + nI),
  ``tril`` (the lower triangle of A plus nI: triangular, well away from singular), ``simplex``
  (each row over its sum: a distribution, as softmax cross-entropy documents its labels),
  ``dominant`` (A + (n+1)I with entries of A in [-1, 1]: strictly diagonally dominant, so full rank).
* ``out`` picks one output (or several, a tuple) of a function returning a tuple, e.g. the
  values of ``top_k`` without its integer indices.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

REAL = ("float32", "float64")
F32 = ("float32",)  # ops with float32 kernels only (on CPU)
COMPLEX = ("complex64", "complex128")


@dataclass(frozen=True)
class Like:
    """A constant converted to the dtype of the first checked argument (``betainc``'s a and b)."""

    value: Any


@dataclass(frozen=True)
class Entry:
    specs: tuple[str, ...] = ()  # one per drawn argument; "[3]@0..1" means DTYPE[3]@0..1 for each of dtypes
    dtypes: tuple[str, ...] = REAL
    args: tuple[str, ...] | None = None  # parameter names the drawn arguments bind to (default: the first ones)
    kw: tuple[tuple[str, Any], ...] = ()  # keyword constants
    leading: tuple[Any, ...] = ()  # positional constants before the drawn arguments
    pack: str | None = None  # pass the drawn arguments as one list under this parameter (add_n's inputs)
    prepare: tuple[str | None, ...] = ()  # per drawn argument: None, "sym", "spd", "tril", "dominant" or "simplex"
    out: int | tuple[int, ...] | None = None  # which output(s) to differentiate
    skip: str | None = None  # why it is not checked
    note: str = ""

    @property
    def checked(self) -> bool:
        return self.skip is None

    def variants(self) -> list[tuple[str, ...]]:
        """The spec tuples to check: one per dtype (specs with an explicit dtype stay as written)."""
        if self.skip is not None:
            return []
        variants = []
        for dtype in self.dtypes:
            variant = tuple(f"{dtype}{spec}" if spec.startswith("[") else spec for spec in self.specs)
            if variant not in variants:
                variants.append(variant)
        return variants

    @property
    def constants(self) -> dict[str, Any]:
        return dict(self.kw)


def entry(*specs: str, dtypes: tuple[str, ...] = REAL, args: tuple[str, ...] | None = None, kw: dict | None = None,
          leading: tuple = (), pack: str | None = None, prepare: tuple = (), out=None, note: str = "") -> Entry:
    return Entry(tuple(specs), tuple(dtypes), args, tuple((kw or {}).items()), tuple(leading), pack, tuple(prepare), out,
                 None, note)


def skip(reason: str) -> Entry:
    return Entry(skip=reason)


# Reasons, worded for the sweep's table.
INTEGER_OUTPUT = "integer or boolean output: nothing to differentiate"
PIECEWISE = "piecewise constant: its derivative is 0 almost everywhere and TensorFlow registers no (or a zero) gradient"
RANDOM = "random: its output depends on a random draw, so differences cannot judge its gradient"
NO_FLOAT_INPUT = "no floating-point tensor argument (it builds a tensor from sizes): nothing to differentiate"
NO_GRADIENT = "no gradient registered in TensorFlow"
SPARSE = "needs SparseTensor arguments, which gradfuzz does not draw"
CALLABLE = "needs a Python callable argument, which gradfuzz cannot guess"
NO_CPU_KERNEL = "no CPU kernel registered in TensorFlow (it runs on accelerators only)"
ORDER = "the order v is a constant: TensorFlow Probability does not differentiate with respect to it"
DECODER = "a decoder: its outputs are integer paths (and scores of a discrete search)"

U = "[3]@-5..5"  # a unary function's default input
M = "[3,3]@-2..2"  # a square matrix
IMG = "[1,4,4,2]@-2..2"  # a batch of one 4x4 image, 2 channels (NHWC)


def unary(domain: str = "-5..5", shape: str = "[3]", dtypes: tuple[str, ...] = REAL, **options) -> Entry:
    return entry(f"{shape}@{domain}", dtypes=dtypes, **options)


def binary(x: str = "-5..5", y: str = "-5..5", shape: str = "[3]", **options) -> Entry:
    return entry(f"{shape}@{x}", f"{shape}@{y}", **options)


def reduction() -> Entry:
    return entry("[2,3]@-5..5")


TF_MATH: dict[str, Entry] = {
    "tf.math.abs": unary(),
    "tf.math.accumulate_n": entry(U, U, pack="inputs"),
    "tf.math.acos": unary("-0.99..0.99"),
    "tf.math.acosh": unary("1.01..10"),
    "tf.math.add": binary(),
    "tf.math.add_n": entry(U, U, U, pack="inputs"),
    "tf.math.angle": unary(dtypes=COMPLEX),
    "tf.math.approx_max_k": entry("[6]@-5..5", dtypes=F32, kw={"k": 2}, out=0),
    "tf.math.approx_min_k": skip(NO_CPU_KERNEL),
    "tf.math.argmax": skip(INTEGER_OUTPUT),
    "tf.math.argmin": skip(INTEGER_OUTPUT),
    "tf.math.asin": unary("-0.99..0.99"),
    "tf.math.asinh": unary(),
    "tf.math.atan": unary(),
    "tf.math.atan2": binary(),
    "tf.math.atanh": unary("-0.99..0.99"),
    "tf.math.bessel_i0": unary(),
    "tf.math.bessel_i0e": unary(),
    "tf.math.bessel_i1": unary(),
    "tf.math.bessel_i1e": unary(),
    "tf.math.betainc": entry("[3]@0.01..0.99", args=("x",), kw={"a": Like(2.0), "b": Like(3.0)},
                             note="a and b are constants: TensorFlow does not implement their gradients"),
    "tf.math.bincount": skip(INTEGER_OUTPUT),
    "tf.math.ceil": skip(PIECEWISE),
    "tf.math.confusion_matrix": skip(INTEGER_OUTPUT),
    "tf.math.conj": unary(dtypes=COMPLEX),
    "tf.math.cos": unary(),
    "tf.math.cosh": unary(),
    "tf.math.count_nonzero": skip(INTEGER_OUTPUT),
    "tf.math.cumprod": entry("[4]@-3..3"),
    "tf.math.cumsum": entry("[4]@-5..5"),
    "tf.math.cumulative_logsumexp": entry("[4]@-5..5"),
    "tf.math.digamma": unary("0.1..10"),
    "tf.math.divide": binary(y="0.5..5"),
    "tf.math.divide_no_nan": binary(),
    "tf.math.equal": skip(INTEGER_OUTPUT),
    "tf.math.erf": unary(),
    "tf.math.erfc": unary(),
    "tf.math.erfcinv": unary("0.01..1.99"),
    "tf.math.erfinv": unary("-0.99..0.99"),
    "tf.math.exp": unary(),
    "tf.math.expm1": unary(),
    "tf.math.floor": skip(PIECEWISE),
    "tf.math.floordiv": skip(PIECEWISE),
    "tf.math.floormod": binary(y="0.5..5"),
    "tf.math.greater": skip(INTEGER_OUTPUT),
    "tf.math.greater_equal": skip(INTEGER_OUTPUT),
    "tf.math.igamma": binary("0.5..5", "0.01..10"),
    "tf.math.igammac": binary("0.5..5", "0.01..10"),
    "tf.math.imag": unary(dtypes=COMPLEX),
    "tf.math.in_top_k": skip(INTEGER_OUTPUT),
    "tf.math.invert_permutation": skip(INTEGER_OUTPUT),
    "tf.math.is_finite": skip(INTEGER_OUTPUT),
    "tf.math.is_inf": skip(INTEGER_OUTPUT),
    "tf.math.is_nan": skip(INTEGER_OUTPUT),
    "tf.math.is_non_decreasing": skip(INTEGER_OUTPUT),
    "tf.math.is_strictly_increasing": skip(INTEGER_OUTPUT),
    "tf.math.l2_normalize": unary(),
    "tf.math.lbeta": unary("0.1..5"),
    "tf.math.less": skip(INTEGER_OUTPUT),
    "tf.math.less_equal": skip(INTEGER_OUTPUT),
    "tf.math.lgamma": unary("0.1..10"),
    "tf.math.log": unary("0.01..10"),
    "tf.math.log1p": unary("-0.99..10"),
    "tf.math.log_sigmoid": unary(),
    "tf.math.log_softmax": unary(shape="[4]"),
    "tf.math.logical_and": skip(INTEGER_OUTPUT),
    "tf.math.logical_not": skip(INTEGER_OUTPUT),
    "tf.math.logical_or": skip(INTEGER_OUTPUT),
    "tf.math.logical_xor": skip(INTEGER_OUTPUT),
    "tf.math.maximum": binary(),
    "tf.math.minimum": binary(),
    "tf.math.multiply": binary(),
    "tf.math.multiply_no_nan": binary(),
    "tf.math.ndtri": unary("0.01..0.99"),
    "tf.math.negative": unary(),
    "tf.math.nextafter": skip(NO_GRADIENT),
    "tf.math.not_equal": skip(INTEGER_OUTPUT),
    "tf.math.polygamma": entry("[3]@0.1..10", args=("x",), kw={"a": Like(1.0)},
                               note="the order a is a constant (integer-valued, not differentiable)"),
    "tf.math.polyval": entry("[3]@-3..3", args=("x",), kw={"coeffs": [Like(0.5), Like(-2.0), Like(1.0)]}),
    "tf.math.pow": binary("0.1..5", "-3..3"),
    "tf.math.real": unary(dtypes=COMPLEX),
    "tf.math.reciprocal": unary("0.1..10"),
    "tf.math.reciprocal_no_nan": unary(),
    "tf.math.reduce_all": skip(INTEGER_OUTPUT),
    "tf.math.reduce_any": skip(INTEGER_OUTPUT),
    "tf.math.reduce_euclidean_norm": reduction(),
    "tf.math.reduce_logsumexp": reduction(),
    "tf.math.reduce_max": reduction(),
    "tf.math.reduce_mean": reduction(),
    "tf.math.reduce_min": reduction(),
    "tf.math.reduce_prod": reduction(),
    "tf.math.reduce_std": reduction(),
    "tf.math.reduce_sum": reduction(),
    "tf.math.reduce_variance": reduction(),
    "tf.math.rint": skip(PIECEWISE),
    "tf.math.round": skip(PIECEWISE),
    "tf.math.rsqrt": unary("0.01..10"),
    "tf.math.scalar_mul": entry("[]@-5..5", U),
    "tf.math.segment_max": entry("[4,2]@-5..5", kw={"segment_ids": [0, 0, 1, 2]}),
    "tf.math.segment_mean": entry("[4,2]@-5..5", kw={"segment_ids": [0, 0, 1, 2]}),
    "tf.math.segment_min": entry("[4,2]@-5..5", kw={"segment_ids": [0, 0, 1, 2]}),
    "tf.math.segment_prod": entry("[4,2]@-5..5", kw={"segment_ids": [0, 0, 1, 2]}),
    "tf.math.segment_sum": entry("[4,2]@-5..5", kw={"segment_ids": [0, 0, 1, 2]}),
    "tf.math.sigmoid": unary(),
    "tf.math.sign": skip(PIECEWISE),
    "tf.math.sin": unary(),
    "tf.math.sinh": unary(),
    "tf.math.sobol_sample": skip(NO_FLOAT_INPUT),
    "tf.math.softmax": unary(shape="[4]"),
    "tf.math.softplus": unary(),
    "tf.math.softsign": unary(),
    "tf.math.sqrt": unary("0.01..10"),
    "tf.math.square": unary(),
    "tf.math.squared_difference": binary(),
    "tf.math.subtract": binary(),
    "tf.math.tan": unary("-1.5..1.5"),
    "tf.math.tanh": unary(),
    "tf.math.top_k": entry("[5]@-5..5", kw={"k": 2}, out=0),
    "tf.math.truediv": binary(y="0.5..5"),
    "tf.math.unsorted_segment_max": entry("[4,2]@-5..5", kw={"segment_ids": [0, 2, 0, 1], "num_segments": 3}),
    "tf.math.unsorted_segment_mean": entry("[4,2]@-5..5", kw={"segment_ids": [0, 2, 0, 1], "num_segments": 3}),
    "tf.math.unsorted_segment_min": entry("[4,2]@-5..5", kw={"segment_ids": [0, 2, 0, 1], "num_segments": 3}),
    "tf.math.unsorted_segment_prod": entry("[4,2]@-5..5", kw={"segment_ids": [0, 2, 0, 1], "num_segments": 3}),
    "tf.math.unsorted_segment_sqrt_n": entry("[4,2]@-5..5", kw={"segment_ids": [0, 2, 0, 1], "num_segments": 3}),
    "tf.math.unsorted_segment_sum": entry("[4,2]@-5..5", kw={"segment_ids": [0, 2, 0, 1], "num_segments": 3}),
    "tf.math.xdivy": binary(y="0.5..5"),
    "tf.math.xlog1py": binary(y="-0.99..10"),
    "tf.math.xlogy": binary(y="0.01..10"),
    "tf.math.zero_fraction": skip(PIECEWISE),
    "tf.math.zeta": binary("1.1..10", "0.1..5"),
    # tf.math.special
    "tf.math.special.bessel_i0": unary(),
    "tf.math.special.bessel_i0e": unary(),
    "tf.math.special.bessel_i1": unary(),
    "tf.math.special.bessel_i1e": unary(),
    "tf.math.special.bessel_j0": unary(),
    "tf.math.special.bessel_j1": unary(),
    "tf.math.special.bessel_k0": unary("0.1..10"),
    "tf.math.special.bessel_k0e": unary("0.1..10"),
    "tf.math.special.bessel_k1": unary("0.1..10"),
    "tf.math.special.bessel_k1e": unary("0.1..10"),
    "tf.math.special.bessel_y0": unary("0.1..10"),
    "tf.math.special.bessel_y1": unary("0.1..10"),
    "tf.math.special.dawsn": unary(),
    "tf.math.special.expint": unary("0.1..10"),
    "tf.math.special.fresnel_cos": unary(),
    "tf.math.special.fresnel_sin": unary(),
    "tf.math.special.spence": unary("0.01..10"),
}

_POOL = {"ksize": 2, "strides": 2, "padding": "VALID"}
_STRIDES_1 = [1, 1, 1, 1]

TF_NN: dict[str, Entry] = {
    "tf.nn.all_candidate_sampler": skip(RANDOM),
    "tf.nn.atrous_conv2d": entry("[1,5,5,2]@-2..2", "[2,2,2,3]@-2..2", kw={"rate": 2, "padding": "SAME"}),
    "tf.nn.atrous_conv2d_transpose": entry("[1,5,5,3]@-2..2", "[2,2,2,3]@-2..2",
                                           kw={"output_shape": [1, 5, 5, 2], "rate": 2, "padding": "SAME"}),
    "tf.nn.avg_pool": entry(IMG, kw=_POOL),
    "tf.nn.avg_pool1d": entry("[1,4,2]@-2..2", kw=_POOL),
    "tf.nn.avg_pool2d": entry(IMG, kw=_POOL),
    "tf.nn.avg_pool3d": entry("[1,2,4,4,1]@-2..2", dtypes=F32, kw=_POOL),
    "tf.nn.batch_norm_with_global_normalization": entry(
        "[2,3]@-5..5", "[3]@-5..5", "[3]@0.1..5", "[3]@-5..5", "[3]@-5..5",
        args=("input", "mean", "variance", "beta", "gamma"),
        kw={"variance_epsilon": 0.001, "scale_after_normalization": True}),
    "tf.nn.batch_normalization": entry("[2,3]@-5..5", "[3]@-5..5", "[3]@0.1..5", "[3]@-5..5", "[3]@-5..5",
                                       args=("x", "mean", "variance", "offset", "scale"), kw={"variance_epsilon": 0.001}),
    "tf.nn.bias_add": entry("[2,3]@-5..5", "[3]@-5..5"),
    "tf.nn.collapse_repeated": skip(INTEGER_OUTPUT),
    "tf.nn.compute_accidental_hits": skip(INTEGER_OUTPUT),
    "tf.nn.compute_average_loss": entry("[4]@-5..5"),
    "tf.nn.conv1d": entry("[1,5,2]@-2..2", "[2,2,3]@-2..2", kw={"stride": 1, "padding": "VALID"}),
    "tf.nn.conv1d_transpose": entry("[1,4,3]@-2..2", "[2,2,3]@-2..2",
                                    kw={"output_shape": [1, 5, 2], "strides": 1, "padding": "VALID"}),
    "tf.nn.conv2d": entry(IMG, "[2,2,2,3]@-2..2", kw={"strides": 1, "padding": "SAME"}),
    "tf.nn.conv2d_transpose": entry("[1,3,3,3]@-2..2", "[2,2,2,3]@-2..2",
                                    kw={"output_shape": [1, 4, 4, 2], "strides": 1, "padding": "VALID"}),
    "tf.nn.conv3d": entry("[1,3,3,3,1]@-2..2", "[2,2,2,1,2]@-2..2", kw={"strides": [1, 1, 1, 1, 1], "padding": "VALID"}),
    "tf.nn.conv3d_transpose": entry("[1,2,2,2,2]@-2..2", "[2,2,2,1,2]@-2..2",
                                    kw={"output_shape": [1, 3, 3, 3, 1], "strides": [1, 1, 1, 1, 1], "padding": "VALID"}),
    "tf.nn.conv_transpose": entry("[1,3,3,3]@-2..2", "[2,2,2,3]@-2..2",
                                  kw={"output_shape": [1, 4, 4, 2], "strides": 1, "padding": "VALID"}),
    "tf.nn.convolution": entry(IMG, "[2,2,2,3]@-2..2", kw={"padding": "SAME"}),
    "tf.nn.crelu": unary(),
    "tf.nn.ctc_beam_search_decoder": skip(DECODER),
    "tf.nn.ctc_greedy_decoder": skip(DECODER),
    "tf.nn.ctc_loss": entry("[4,1,3]@-3..3", dtypes=F32, args=("logits",),
                            kw={"labels": [[1, 2]], "label_length": [2], "logit_length": [4], "blank_index": 0}),
    "tf.nn.ctc_unique_labels": skip(INTEGER_OUTPUT),
    "tf.nn.depth_to_space": entry("[1,2,2,4]@-5..5", kw={"block_size": 2}),
    "tf.nn.depthwise_conv2d": entry(IMG, "[2,2,2,1]@-2..2", kw={"strides": _STRIDES_1, "padding": "VALID"}),
    "tf.nn.depthwise_conv2d_backprop_filter": entry(
        IMG, "[1,3,3,2]@-2..2", args=("input", "out_backprop"),
        kw={"filter_sizes": [2, 2, 2, 1], "strides": _STRIDES_1, "padding": "VALID"}),
    "tf.nn.depthwise_conv2d_backprop_input": entry(
        "[2,2,2,1]@-2..2", "[1,3,3,2]@-2..2", args=("filter", "out_backprop"),
        kw={"input_sizes": [1, 4, 4, 2], "strides": _STRIDES_1, "padding": "VALID"}),
    "tf.nn.dilation2d": entry("[1,4,4,1]@-2..2", "[2,2,1]@-2..2",
                              kw={"strides": _STRIDES_1, "padding": "VALID", "data_format": "NHWC", "dilations": _STRIDES_1}),
    "tf.nn.dropout": skip(RANDOM),
    "tf.nn.elu": unary(),
    "tf.nn.embedding_lookup": entry("[5,2]@-5..5", kw={"ids": [0, 3, 3]}),
    "tf.nn.embedding_lookup_sparse": skip(SPARSE),
    "tf.nn.erosion2d": entry("[1,4,4,1]@-2..2", "[2,2,1]@-2..2",
                             kw={"strides": _STRIDES_1, "padding": "VALID", "data_format": "NHWC", "dilations": _STRIDES_1}),
    "tf.nn.fixed_unigram_candidate_sampler": skip(RANDOM),
    "tf.nn.fractional_avg_pool": skip(RANDOM),
    "tf.nn.fractional_max_pool": skip(RANDOM),
    "tf.nn.gelu": unary(),
    "tf.nn.in_top_k": skip(INTEGER_OUTPUT),
    "tf.nn.isotonic_regression": entry("[5]@-5..5", out=0),
    "tf.nn.l2_loss": unary(),
    "tf.nn.leaky_relu": unary(),
    "tf.nn.learned_unigram_candidate_sampler": skip(RANDOM),
    "tf.nn.local_response_normalization": entry("[1,2,2,4]@-5..5", dtypes=F32, kw={"depth_radius": 1}),
    "tf.nn.log_poisson_loss": entry("[3]@0..5", "[3]@-3..3", args=("targets", "log_input")),
    "tf.nn.max_pool": entry(IMG, kw=_POOL),
    "tf.nn.max_pool1d": entry("[1,4,2]@-2..2", kw=_POOL),
    "tf.nn.max_pool2d": entry(IMG, kw=_POOL),
    "tf.nn.max_pool3d": entry("[1,2,4,4,1]@-2..2", dtypes=F32, kw=_POOL),
    "tf.nn.max_pool_with_argmax": entry(IMG, kw=_POOL, out=0),
    "tf.nn.moments": entry("[4,2]@-5..5", kw={"axes": [0]}),
    "tf.nn.nce_loss": skip(RANDOM),
    "tf.nn.normalize_moments": entry("[3]@-5..5", "[3]@0.1..5", args=("mean_ss", "variance_ss"),
                                     kw={"counts": Like(4.0), "shift": None}),
    "tf.nn.pool": entry(IMG, kw={"window_shape": [2, 2], "pooling_type": "AVG", "strides": [2, 2], "padding": "VALID"}),
    "tf.nn.relu": unary(),
    "tf.nn.relu6": unary("-8..8"),
    "tf.nn.safe_embedding_lookup_sparse": skip(SPARSE),
    "tf.nn.sampled_softmax_loss": skip(RANDOM),
    "tf.nn.scale_regularization_loss": unary(shape="[]"),
    "tf.nn.selu": unary(),
    "tf.nn.separable_conv2d": entry(IMG, "[2,2,2,1]@-2..2", "[1,1,2,3]@-2..2",
                                    kw={"strides": _STRIDES_1, "padding": "VALID"}),
    "tf.nn.sigmoid_cross_entropy_with_logits": entry("[3]@0..1", U, args=("labels", "logits")),
    "tf.nn.silu": unary(),
    "tf.nn.softmax_cross_entropy_with_logits": entry("[2,3]@0.01..1", "[2,3]@-5..5", args=("labels", "logits"),
                                                     prepare=("simplex", None)),
    "tf.nn.space_to_batch": entry("[1,4,4,1]@-5..5", kw={"block_shape": [2, 2], "paddings": [[0, 0], [0, 0]]}),
    "tf.nn.space_to_depth": entry("[1,4,4,1]@-5..5", kw={"block_size": 2}),
    "tf.nn.sparse_softmax_cross_entropy_with_logits": entry("[2,3]@-5..5", args=("logits",), kw={"labels": [0, 2]}),
    "tf.nn.sufficient_statistics": entry("[4,2]@-5..5", kw={"axes": [0]}, out=(1, 2)),
    "tf.nn.swish": unary(),
    "tf.nn.weighted_cross_entropy_with_logits": entry("[3]@0..1", U, "[3]@0.5..3", args=("labels", "logits", "pos_weight")),
    "tf.nn.weighted_moments": entry("[4,2]@-5..5", "[4,2]@0.1..2", args=("x", "frequency_weights"), kw={"axes": [0]}),
    "tf.nn.with_space_to_batch": skip(CALLABLE),
}

TF_LINALG: dict[str, Entry] = {
    "tf.linalg.adjoint": entry(M),
    "tf.linalg.band_part": entry(M, kw={"num_lower": 1, "num_upper": 0}),
    "tf.linalg.banded_triangular_solve": entry("[2,3]@1..3", "[3,2]@-5..5"),
    "tf.linalg.cholesky": entry("[3,3]@-1..1", prepare=("spd",)),
    "tf.linalg.cholesky_solve": entry("[3,3]@-1..1", "[3,2]@-5..5", prepare=("tril",)),
    "tf.linalg.cross": entry(U, U),
    "tf.linalg.det": entry(M),
    "tf.linalg.diag": entry(U),
    "tf.linalg.diag_part": entry(M),
    "tf.linalg.eig": entry(M, dtypes=COMPLEX, out=0, note="eigenvalues only: eigenvectors are defined up to a phase"),
    "tf.linalg.eigh": entry("[3,3]@-1..1", prepare=("sym",), out=0,
                            note="eigenvalues only: eigenvectors are defined up to a sign"),
    "tf.linalg.eigh_tridiagonal": entry("[4]@-2..2", "[3]@0.1..2"),
    "tf.linalg.eigvals": entry(M, dtypes=COMPLEX),
    "tf.linalg.eigvalsh": entry("[3,3]@-1..1", prepare=("sym",)),
    "tf.linalg.einsum": entry("[2,3]@-5..5", "[3,2]@-5..5", leading=("ij,jk->ik",)),
    "tf.linalg.expm": entry("[3,3]@-1..1"),
    "tf.linalg.eye": skip(NO_FLOAT_INPUT),
    "tf.linalg.global_norm": entry(U, "[2]@-5..5", pack="t_list"),
    "tf.linalg.inv": entry(M),
    "tf.linalg.l2_normalize": unary(),
    "tf.linalg.logdet": entry("[3,3]@-1..1", prepare=("spd",)),
    "tf.linalg.logm": skip(NO_GRADIENT),
    "tf.linalg.lstsq": entry("[4,3]@-2..2", "[4,2]@-5..5"),
    "tf.linalg.lu": skip(NO_GRADIENT),
    "tf.linalg.lu_matrix_inverse": entry("[3,3]@-1..1", prepare=("tril",), kw={"perm": [0, 1, 2]}),
    "tf.linalg.lu_reconstruct": entry(M, kw={"perm": [2, 0, 1]}),
    "tf.linalg.lu_solve": entry("[3,3]@-1..1", "[3,2]@-5..5", args=("lower_upper", "rhs"), prepare=("tril",),
                                kw={"perm": [0, 1, 2]}),
    "tf.linalg.matmul": entry("[2,3]@-5..5", "[3,2]@-5..5"),
    "tf.linalg.matrix_rank": skip(INTEGER_OUTPUT),
    "tf.linalg.matrix_transpose": entry("[2,3]@-5..5"),
    "tf.linalg.matvec": entry("[2,3]@-5..5", U),
    "tf.linalg.norm": entry(U),
    "tf.linalg.normalize": entry(U),
    "tf.linalg.pinv": entry(M),
    "tf.linalg.qr": entry("[3,3]@-1..1", prepare=("dominant",),
                          note="full-rank input: TensorFlow's QR gradient inverts R, defined only there"),
    "tf.linalg.set_diag": entry(M, U),
    "tf.linalg.slogdet": entry(M, out=1, note="log|det| only: the sign is piecewise constant"),
    "tf.linalg.solve": entry(M, "[3,2]@-5..5"),
    "tf.linalg.sqrtm": entry("[3,3]@-1..1", prepare=("spd",)),
    "tf.linalg.svd": entry("[3,2]@-2..2", kw={"compute_uv": False},
                           note="singular values only: singular vectors are defined up to a sign"),
    "tf.linalg.tensor_diag": entry(U),
    "tf.linalg.tensor_diag_part": entry(M),
    "tf.linalg.tensordot": entry("[2,3]@-5..5", "[3,2]@-5..5", kw={"axes": 1}),
    "tf.linalg.trace": entry(M),
    "tf.linalg.triangular_solve": entry("[3,3]@-1..1", "[3,2]@-5..5", prepare=("tril",)),
    "tf.linalg.tridiagonal_matmul": entry("[3,3]@-2..2", "[3,2]@-5..5"),
    "tf.linalg.tridiagonal_solve": entry("[3,3]@0.5..2", "[3,2]@-5..5"),
}

TF_SIGNAL: dict[str, Entry] = {
    "tf.signal.dct": entry("[4]@-5..5"),
    "tf.signal.fft": entry("[4]@-5..5", dtypes=COMPLEX),
    "tf.signal.fft2d": entry("[2,3]@-5..5", dtypes=COMPLEX),
    "tf.signal.fft3d": entry("[2,2,2]@-5..5", dtypes=COMPLEX),
    "tf.signal.fftnd": skip(NO_CPU_KERNEL),
    "tf.signal.fftshift": entry("[4]@-5..5"),
    "tf.signal.frame": entry("[6]@-5..5", kw={"frame_length": 3, "frame_step": 2}),
    "tf.signal.hamming_window": skip(NO_FLOAT_INPUT),
    "tf.signal.hann_window": skip(NO_FLOAT_INPUT),
    "tf.signal.idct": entry("[4]@-5..5"),
    "tf.signal.ifft": entry("[4]@-5..5", dtypes=COMPLEX),
    "tf.signal.ifft2d": entry("[2,3]@-5..5", dtypes=COMPLEX),
    "tf.signal.ifft3d": entry("[2,2,2]@-5..5", dtypes=COMPLEX),
    "tf.signal.ifftnd": skip(NO_CPU_KERNEL),
    "tf.signal.ifftshift": entry("[4]@-5..5"),
    "tf.signal.inverse_mdct": entry("[2,4]@-5..5"),
    "tf.signal.inverse_stft": entry("[2,5]@-5..5", dtypes=COMPLEX, kw={"frame_length": 8, "frame_step": 4}),
    "tf.signal.inverse_stft_window_fn": skip("returns a window function, not a tensor"),
    "tf.signal.irfft": entry("[3]@-5..5", dtypes=COMPLEX),
    "tf.signal.irfft2d": entry("[2,3]@-5..5", dtypes=COMPLEX),
    "tf.signal.irfft3d": skip(NO_GRADIENT),
    "tf.signal.irfftnd": skip(NO_CPU_KERNEL),
    "tf.signal.kaiser_bessel_derived_window": skip(NO_FLOAT_INPUT),
    "tf.signal.kaiser_window": skip(NO_FLOAT_INPUT),
    "tf.signal.linear_to_mel_weight_matrix": skip(NO_FLOAT_INPUT),
    "tf.signal.mdct": entry("[8]@-5..5", kw={"frame_length": 4}),
    "tf.signal.mfccs_from_log_mel_spectrograms": entry("[2,4]@-5..5"),
    "tf.signal.overlap_and_add": entry("[3,4]@-5..5", kw={"frame_step": 2}),
    "tf.signal.rfft": entry("[4]@-5..5"),
    "tf.signal.rfft2d": entry("[2,4]@-5..5"),
    "tf.signal.rfft3d": skip(NO_GRADIENT),
    "tf.signal.rfftnd": skip(NO_CPU_KERNEL),
    "tf.signal.stft": entry("[16]@-5..5", kw={"frame_length": 8, "frame_step": 4}),
    "tf.signal.vorbis_window": skip(NO_FLOAT_INPUT),
}

# TensorFlow Probability's math (``tfp.math``), used only where tensorflow_probability imports.
TFP_MATH: dict[str, Entry] = {
    "tfp.math.atan_difference": binary(),
    "tfp.math.batch_interp_rectilinear_nd_grid": skip("needs grid points and an axis whose shapes depend on each other"),
    "tfp.math.batch_interp_regular_1d_grid": entry("[3]@0..1", "[5]@-5..5", args=("x", "y_ref"),
                                                   kw={"x_ref_min": Like(0.0), "x_ref_max": Like(1.0)}),
    "tfp.math.batch_interp_regular_nd_grid": skip("needs grid points and an axis whose shapes depend on each other"),
    "tfp.math.bessel_iv_ratio": entry("[3]@0.1..10", args=("z",), kw={"v": Like(1.5)}),
    "tfp.math.bessel_ive": entry("[3]@0.1..10", args=("z",), kw={"v": Like(1.5)}, note=ORDER),
    "tfp.math.bessel_kve": entry("[3]@0.1..10", args=("z",), kw={"v": Like(1.5)}, note=ORDER),
    "tfp.math.betainc": entry("[3]@0.5..5", "[3]@0.5..5", "[3]@0.01..0.99"),
    "tfp.math.betaincinv": entry("[3]@0.5..5", "[3]@0.5..5", "[3]@0.01..0.99"),
    "tfp.math.bracket_root": skip(CALLABLE),
    "tfp.math.cholesky_concat": entry("[3,3]@-1..1", "[4,1]@0.5..1", prepare=("tril", None)),
    "tfp.math.cholesky_update": entry("[3,3]@-1..1", U, prepare=("tril", None)),
    "tfp.math.clip_by_value_preserve_gradient": skip("an intended surrogate: its gradient is 1 where the clip is flat"),
    "tfp.math.custom_gradient": skip(CALLABLE),
    "tfp.math.dawsn": unary(),
    "tfp.math.dense_to_sparse": skip("returns a SparseTensor"),
    "tfp.math.diag_jacobian": skip(CALLABLE),
    "tfp.math.erfcinv": unary("0.01..1.99"),
    "tfp.math.erfcx": unary(),
    "tfp.math.fill_triangular": entry("[6]@-5..5"),
    "tfp.math.fill_triangular_inverse": entry(M),
    "tfp.math.find_root_chandrupatla": skip(CALLABLE),
    "tfp.math.find_root_secant": skip(CALLABLE),
    "tfp.math.gram_schmidt": entry("[3,3]@-1..1", prepare=("dominant",),
                                   note="full-rank input, as for tf.linalg.qr: near rank-deficiency it is ill-posed"),
    "tfp.math.hpsd_logdet": entry("[3,3]@-1..1", prepare=("spd",)),
    "tfp.math.hpsd_quadratic_form_solve": entry("[3,3]@-1..1", "[3,2]@-5..5", prepare=("spd", None)),
    "tfp.math.hpsd_quadratic_form_solvevec": entry("[3,3]@-1..1", U, prepare=("spd", None)),
    "tfp.math.hpsd_solve": entry("[3,3]@-1..1", "[3,2]@-5..5", prepare=("spd", None)),
    "tfp.math.hpsd_solvevec": entry("[3,3]@-1..1", U, prepare=("spd", None)),
    "tfp.math.igammacinv": binary("0.5..5", "0.01..0.99"),
    "tfp.math.igammainv": binary("0.5..5", "0.01..0.99"),
    "tfp.math.interp_regular_1d_grid": entry("[3]@0..1", "[5]@-5..5", args=("x", "y_ref"),
                                             kw={"x_ref_min": Like(0.0), "x_ref_max": Like(1.0)}),
    "tfp.math.lambertw": unary("-0.3..10"),
    "tfp.math.lambertw_winitzki_approx": unary("-0.3..10"),
    "tfp.math.lbeta": binary("0.1..5", "0.1..5"),
    "tfp.math.log1mexp": unary("0.01..10"),
    "tfp.math.log1psquare": unary(),
    "tfp.math.log_add_exp": binary(),
    "tfp.math.log_bessel_ive": entry("[3]@0.1..10", args=("z",), kw={"v": Like(1.5)}, note=ORDER),
    "tfp.math.log_bessel_kve": entry("[3]@0.1..10", args=("z",), kw={"v": Like(1.5)}, note=ORDER),
    "tfp.math.log_combinations": entry("[]@5..10", "[2]@1..4", args=("n", "counts")),
    "tfp.math.log_cosh": unary(),
    "tfp.math.log_cumsum_exp": entry("[4]@-5..5"),
    "tfp.math.log_gamma_correction": unary("8..100"),
    "tfp.math.log_gamma_difference": binary("0.1..5", "0.5..10"),
    "tfp.math.log_sub_exp": binary("1..5", "-5..0.5"),
    "tfp.math.logerfc": unary(),
    "tfp.math.logerfcx": unary(),
    "tfp.math.low_rank_cholesky": skip("its rank and pivots are discrete choices (an integer max_rank)"),
    "tfp.math.lu_matrix_inverse": entry("[3,3]@-1..1", prepare=("tril",), kw={"perm": [0, 1, 2]}),
    "tfp.math.lu_reconstruct": entry(M, kw={"perm": [2, 0, 1]}),
    "tfp.math.lu_solve": entry("[3,3]@-1..1", "[3,2]@-5..5", args=("lower_upper", "rhs"), prepare=("tril",),
                               kw={"perm": [0, 1, 2]}),
    "tfp.math.minimize": skip(CALLABLE),
    "tfp.math.minimize_stateless": skip(CALLABLE),
    "tfp.math.owens_t": binary(),
    "tfp.math.pivoted_cholesky": skip("its pivots are discrete choices (an integer max_rank)"),
    "tfp.math.reduce_kahan_sum": skip("returns a Kahan (total, correction) structure"),
    "tfp.math.reduce_log_harmonic_mean_exp": reduction(),
    "tfp.math.reduce_logmeanexp": reduction(),
    "tfp.math.reduce_weighted_logsumexp": entry("[2,3]@-5..5", "[2,3]@0.1..2", args=("logx", "w")),
    "tfp.math.round_exponential_bump_function": unary("-0.99..0.99"),
    "tfp.math.scan_associative": skip(CALLABLE),
    "tfp.math.secant_root": skip(CALLABLE),
    "tfp.math.smootherstep": unary("-0.5..1.5"),
    "tfp.math.soft_sorting_matrix": entry("[4]@-5..5", kw={"temperature": Like(0.5)}),
    "tfp.math.soft_threshold": entry(U, kw={"threshold": Like(0.5)}),
    "tfp.math.softplus_inverse": unary("0.01..10"),
    "tfp.math.sparse_or_dense_matmul": entry("[2,3]@-5..5", "[3,2]@-5..5"),
    "tfp.math.sparse_or_dense_matvecmul": entry("[2,3]@-5..5", U),
    "tfp.math.sqrt1pm1": unary("-0.99..10"),
    "tfp.math.trapz": skip("raises ValueError on every call with NumPy 2 (tensorflow-probability 0.25)"),
    "tfp.math.value_and_gradient": skip(CALLABLE),
}

TABLE: dict[str, Entry] = {**TF_MATH, **TF_NN, **TF_LINALG, **TF_SIGNAL, **TFP_MATH}

# The public names the table's prefixes stand for.
PREFIXES = {"tf": "tensorflow", "tfp": "tensorflow_probability"}


def short_name(dotted: str) -> str:
    """``tensorflow.math.sin`` → ``tf.math.sin`` (the table's and the sweep's spelling)."""
    for short, full in PREFIXES.items():
        if dotted == full or dotted.startswith(full + "."):
            return short + dotted[len(full):]
    return dotted


def full_name(name: str) -> str:
    """``tf.math.sin`` → ``tensorflow.math.sin`` (importable)."""
    head, dot, rest = name.partition(".")
    return PREFIXES[head] + dot + rest if head in PREFIXES else name


def counts_by_module() -> dict[str, dict[str, int]]:
    """Per module: entries checked and skipped (the README's and the tests' figures)."""
    counts: dict[str, dict[str, int]] = {}
    for name, item in TABLE.items():
        module = name.rsplit(".", 1)[0]
        bucket = counts.setdefault(module, {"checked": 0, "skipped": 0})
        bucket["checked" if item.checked else "skipped"] += 1
    return counts
