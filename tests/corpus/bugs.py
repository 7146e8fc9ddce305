"""Planted bugs, each labelled with the category gradfuzz must give it (``EXPECTED``)."""

import tensorflow as tf

import gradfuzz

EXPECTED: dict[str, str] = {}


def expect(category):
    def label(fn):
        EXPECTED[fn.__name__] = category
        return fn

    return label


@expect("approximation")
@gradfuzz.inputs("float64[]")
@tf.custom_gradient
def forward_difference(x):
    """The seed article's my_op."""
    return tf.sin(x), lambda dy: dy * (tf.sin(x + 0.001) - tf.sin(x)) / 0.001


@expect("approximation")
@gradfuzz.inputs("float32[]@-10..10")
@tf.custom_gradient
def central_difference(x):
    return tf.exp(x / 4), lambda dy: dy * (tf.exp((x + 1e-2) / 4) - tf.exp((x - 1e-2) / 4)) / 2e-2


@expect("approximation")
@gradfuzz.inputs("float64[]@-1..1")
@tf.custom_gradient
def truncated_series(x):
    """cos x ≈ 1 - x²/2: a dropped higher-order term."""
    return tf.sin(x), lambda dy: dy * (1 - x * x / 2)


@expect("mismatch")
@gradfuzz.inputs("float64[]@-5..5")
@tf.custom_gradient
def dropped_product_term(x):
    """d(x sin x) = sin x + x cos x; the sin x term is missing."""
    return x * tf.sin(x), lambda dy: dy * x * tf.cos(x)


@expect("mismatch")
@gradfuzz.inputs("float32[3]")
@tf.custom_gradient
def wrong_sign(x):
    return tf.sin(x), lambda dy: -dy * tf.cos(x)


@expect("mismatch")
@gradfuzz.inputs("float64[]")
@tf.custom_gradient
def double_counted(x):
    return x * x, lambda dy: dy * 4 * x


@expect("branch")
@gradfuzz.inputs("float32[]@-10..10")
@tf.custom_gradient
def threshold_off_by_1e3(x):
    y = tf.where(x > 0, x * x, x)
    return y, lambda dy: dy * tf.where(x > 1e-3, 2 * x, tf.ones_like(x))


@expect("branch")
@gradfuzz.inputs("float32[4]@-2..2")
@tf.custom_gradient
def relu_wrong_threshold(x):
    return tf.maximum(x, 0.0), lambda dy: dy * tf.cast(x >= -0.5, x.dtype)


@expect("branch")
@gradfuzz.inputs("float64[]@-10..10")
@tf.custom_gradient
def huber_switch_mismatch(x):
    """Huber loss switches at |x| = 1; its gradient clips at 1.5."""
    y = tf.where(tf.abs(x) <= 1.0, 0.5 * x * x, tf.abs(x) - 0.5)
    return y, lambda dy: dy * tf.clip_by_value(x, -1.5, 1.5)


@expect("shape")
@gradfuzz.inputs("float64[3]", "float64[]")
@tf.custom_gradient
def broadcast_not_reduced(x, b):
    return x + b, lambda dy: (dy, dy)


@expect("dtype")
@gradfuzz.inputs("float64[]")
@tf.custom_gradient
def float32_gradient(x):
    return x * 3.0, lambda dy: tf.cast(dy * 3.0, tf.float32)


@expect("dtype")
@gradfuzz.inputs("float64[]")
@tf.custom_gradient
def type_mismatch_op(x):
    """The seed article's: the forward computes in float32."""
    return tf.cast(x, tf.float32) * 2.0, lambda dy: tf.cast(dy, tf.float64) * 2.0


@expect("missing-gradient")
@gradfuzz.inputs("float32[]", "float32[]")
@tf.custom_gradient
def forgets_scale(x, s):
    return x * s, lambda dy: (dy * s, None)


@expect("non-finite")
@gradfuzz.inputs("float64[]@0..10")
@tf.custom_gradient
def zero_over_zero(x):
    return x * x, lambda dy: dy * tf.sqrt(x) / tf.sqrt(x) * 2 * x


@expect("non-finite")
@gradfuzz.inputs("float32[]@-100..100")
@tf.custom_gradient
def naive_sigmoid_gradient(x):
    """exp(x)/(1+exp(x)) overflows to inf/inf = NaN above 88 in float32."""
    y = tf.maximum(x, 0.0) + tf.math.log1p(tf.exp(-tf.abs(x)))
    return y, lambda dy: dy * tf.exp(x) / (1 + tf.exp(x))


@expect("non-finite")
@gradfuzz.inputs("float16[]@-300..300")
@tf.custom_gradient
def float16_overflow(x):
    """3x²/1000 with x² formed first: it overflows float16 for |x| ≥ 256 (the forward scales first)."""
    return x * (x * (x / 1000)), lambda dy: dy * 0.003 * tf.math.square(x)


@expect("exception")
@gradfuzz.inputs("float32[]")
@tf.custom_gradient
def gradient_raises(x):
    def grad(dy):
        raise NotImplementedError("second branch not implemented")

    return x * 2, grad


@expect("nondeterminism")
@gradfuzz.inputs("float64[]")
@tf.custom_gradient
def noisy_gradient(x):
    return tf.sin(x), lambda dy: dy * (tf.cos(x) + 1e-9 * tf.random.normal(tf.shape(x), dtype=x.dtype))


@expect("mismatch")
@gradfuzz.inputs("float64[]@-4..4")
@tf.custom_gradient
def ignores_second_output(x):
    def grad(dy_sin, dy_square):
        return dy_sin * tf.cos(x)

    return (tf.sin(x), x * x), grad


@expect("mismatch")
@gradfuzz.inputs("float64[]")
@tf.custom_gradient
def wrong_only_at_zero(x):
    """Thin: only the exact zero is wrong."""
    return tf.sin(x), lambda dy: dy * tf.where(tf.equal(x, 0.0), tf.zeros_like(x), tf.cos(x))


@expect("mismatch")
@gradfuzz.inputs("float64[]@-100..100")
@tf.custom_gradient
def wrong_below_minus_95(x):
    """Thin: wrong only on [-100, -95), 2.5% of the range."""
    return tf.sin(x), lambda dy: dy * tf.where(x < -95.0, 0.5 * tf.cos(x), tf.cos(x))


@expect("higher-order")
@gradfuzz.inputs("float64[]@-3..3")
@tf.custom_gradient
def not_differentiable_gradient(x):
    """First order right; tf.stop_gradient makes the gradient of the gradient zero."""
    return tf.sin(x), lambda dy: dy * tf.stop_gradient(tf.cos(x))


@expect("higher-order")
@gradfuzz.inputs("float32[4]@-6..6")
@tf.custom_gradient
def sigmoid_nested_none(x):
    """The same nesting as correct.leaky_relu_nested, but σ'(x) is not constant: the None
    second-order gradient drops σ''(x) (a `higher-order` finding, not a pass)."""
    y = tf.sigmoid(x)
    return y, lambda dy: _times_sigmoid_slope(dy, x)


@tf.custom_gradient
def _times_sigmoid_slope(dy, x):
    s = tf.sigmoid(x)
    return dy * s * (1 - s), lambda ddy: (ddy * s * (1 - s), None)


@expect("precision")
@gradfuzz.inputs("float32[]@1..1000")
@tf.custom_gradient
def hypot_gap(x):
    """√(x² + 1) − x, computed stably as 1/(√(x² + 1) + x), but its gradient x/√(x² + 1) − 1 is
    formed by subtraction: for large x it cancels in float32 (right at float64), where autodiff of
    the stable forward sums positive terms and stays accurate."""
    r = tf.sqrt(x * x + 1)
    return 1 / (r + x), lambda dy: dy * (x / r - 1)


C = tf.constant(0.7 - 1.1j, tf.complex64)


@expect("mismatch")
@gradfuzz.inputs("complex64[3]@-3..3")
@tf.custom_gradient
def complex_gradient_not_conjugated(z):
    """f'(z)·dy instead of TF's conj(f'(z))·dy."""
    return C * z * z, lambda dy: dy * 2 * C * z
