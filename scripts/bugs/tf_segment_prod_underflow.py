"""tf.math.segment_prod / unsorted_segment_prod: the gradient is wrong when the segment product under- or overflows.

TensorFlow 2.21. ∂/∂x_i of a segment's product is the product of the other elements of the
segment. For a segment without zeros TensorFlow's gradient computes it as (segment product) / x_i,
so when the product underflows to 0 (or is a subnormal, which TensorFlow's CPU kernels flush to 0)
the gradient is 0, and when it overflows to inf the gradient is inf, while the true partial
derivatives are ordinary finite numbers:
  * segment [1e-200, 1e-200]: TensorFlow 0, true 1e-200 for both (the forward 0 is right: 1e-400 underflows);
  * segment [-0.2, 2.23e-308]: TensorFlow (0, -0), true (2.23e-308, -0.2);
  * segment [1e300, 1e300]: TensorFlow inf, true 1e300 (non-finite where the truth is finite).
Segments with exactly one zero or with two zeros are handled right. tf.math.reduce_prod on the same
segment (its gradient multiplies exclusive cumprods and never divides) gives the true values.
The truth is exact Fraction arithmetic. Flagged by gradfuzz; confirmed here without it.

    python scripts/bugs/tf_segment_prod_underflow.py   # exit 0: the bug reproduces; 3: it does not
"""
import sys
from fractions import Fraction

import numpy as np
import tensorflow as tf

SORTED_IDS = [0, 0, 1, 2]
UNSORTED_IDS = [0, 2, 0, 1]  # segment 0 = rows 0 and 2


def target(x):
    return tf.math.segment_prod(x, SORTED_IDS)


def vjp(x, v, op, ids):
    xt = tf.constant(x, tf.float64)
    with tf.GradientTape() as tape:
        tape.watch(xt)
        if op == "segment_prod":
            y = tf.math.segment_prod(xt, ids)
        elif op == "unsorted_segment_prod":
            y = tf.math.unsorted_segment_prod(xt, ids, num_segments=3)
        else:  # reduce_prod of each segment, as a second opinion
            y = tf.stack([tf.reduce_prod(tf.gather(xt, [i for i, s in enumerate(ids) if s == k]), axis=0)
                          for k in range(3)])
        out = tf.reduce_sum(tf.constant(v, tf.float64) * y)
    return tf.convert_to_tensor(tape.gradient(out, xt)).numpy()


def exact(x, v, ids):
    g = np.zeros(np.shape(x))
    for i, s in enumerate(ids):
        for c in range(len(x[0])):
            others = Fraction(1)
            for j, t in enumerate(ids):
                if t == s and j != i:
                    others *= Fraction(x[j][c])
            g[i][c] = float(Fraction(v[s][c]) * others)
    return g


def main() -> int:
    xs = {"underflow | overflow": [[1e-200, 1e300], [1e-200, 1e300], [2.0, 3.0], [5.0, 7.0]],
          "subnormal product": [[0.0, -0.2], [0.0, 2.23e-308], [0.0, 1.5], [1.0, 2.0]],
          "one zero | two zeros (control)": [[0.0, 0.0], [1e-200, 0.0], [2.0, 3.0], [5.0, 7.0]]}
    # |v| >= 1, so no true value in these cases is a subnormal (which TensorFlow would flush to 0 anyway)
    cotangents = [np.ones((3, 2)), np.array([[1.5, -2.5], [3.0, 1.25], [-1.75, 2.0]])]
    bug = False
    for name, x in xs.items():
        for v in cotangents:
            for op, ids in (("segment_prod", SORTED_IDS), ("unsorted_segment_prod", UNSORTED_IDS)):
                xx = x if ids is SORTED_IDS else [x[0], x[2], x[1], x[3]]  # same segment contents
                g, true, second = vjp(xx, v, op, ids), exact(xx, v.tolist(), ids), vjp(xx, v, "reduce_prod", ids)
                bad = ~np.isclose(g, true, rtol=1e-12, atol=0.0)
                assert np.allclose(second, true, rtol=1e-12, atol=0.0)  # reduce_prod agrees with the exact value
                print(f"{name:31s} v={'ones' if v is cotangents[0] else 'fixed':5s}  {op:22s} wrong entries: {bad.sum()}"
                      + (f"  TensorFlow {g[bad].tolist()}  true (exact) {true[bad].tolist()}" if bad.any() else ""))
                bug |= bool(bad.any())
    print("BUG REPRODUCES" if bug else "not reproduced (fixed?)")
    return 0 if bug else 3


if __name__ == "__main__":
    sys.exit(main())
