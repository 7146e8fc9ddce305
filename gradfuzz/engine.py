"""Batched evaluation: one compiled ``tf.function`` call per batch.

For a batch of examples the engine computes, per example:

* the forward output and the custom VJP ``J_cᵀ v`` for a cotangent ``v``;
* the reference VJP: autodiff through the *unwrapped* forward, in float64 when
  the forward can be traced at float64, and again at the native dtype (the
  native one measures how accurate an honest gradient can be at that dtype);
* ``φ(τ) = ⟨v, f(x + τ w)⟩`` in float64 at five offsets along a tangent ``w``,
  from which the oracle derives central differences, a Richardson error
  estimate and one-sided derivatives (kinks).

Per-example functions are vectorised with ``tf.vectorized_map``. pfor cannot
convert every op (``tf.cond`` under a tape is one), so each part falls back to
``tf.map_fn`` on its own — one slow part does not slow the others. A target holding a
``tf.while_loop`` runs with ``map_fn`` from the start (pfor converts loops slowly), and one
that cannot be traced at all (``grad_fn`` calls ``.numpy()``) runs eagerly, example by
example; the choice is recorded (`EngineStats.strategy`).

The engine holds no verdict logic; it returns numpy arrays (`Evaluation`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gradfuzz._tf import configure_devices, tf, trial_trace
from gradfuzz.dtypes import info_for
from gradfuzz.spec import ArgSpec
from gradfuzz.target import Target
from gradfuzz.values import (
    FD_OFFSETS,
    FINE_STEP,
    Batch,
    Evaluation,
    Neighbours,
    OutOfMemory,
    Structure,
    TargetRaised,
    summarize_error,
)
from gradfuzz.watchdog import beacon


@dataclass
class EngineStats:
    calls: int = 0
    traces: int = 0
    fallbacks: dict[str, str] = field(default_factory=dict)  # part -> "map_fn" and why
    strategy: str = ""  # how the batch runs: "vectorized_map", "map_fn (…)", "eager (…)", or a mix
    choose_seconds: float = 0.0  # time spent choosing it and tracing the batch function


class Evaluator:
    """Compiled batch evaluation of one target at one set of input specs."""

    def __init__(self, target: Target, specs: Sequence[ArgSpec], structure: Structure, *, jit: bool = False,
                 order: int = 1):
        self.target = target
        self.specs = tuple(specs)
        self.structure = structure
        self.jit = jit
        # Second order needs a reference forward; it is not defined here for complex arguments.
        self.order = order if target.forward is not None and not any(s.is_complex for s in self.specs) else 1
        self.variables = list(target.variables)
        # What the oracle compares: the arguments, then each variable the target reads.
        self.gradient_specs = self.specs + tuple(
            ArgSpec(dtype=v.dtype.name, shape=tuple(v.shape), label=f"variable {v.name!r}") for v in self.variables
        )
        self.device = configure_devices()
        self.stats = EngineStats()
        outputs64 = _output_dtypes_at_float64(self._forward_outputs, specs)
        self._forward64_ok = outputs64 is not None
        # Without float64, differences run at the narrowest float argument's dtype.
        self.native_dtype = min((s for s in specs if s.differentiable), key=lambda s: s.info.mantissa_bits).dtype
        self.fd_dtype = "float64" if self._forward64_ok else self.native_dtype
        # A forward that casts down internally (float64 in, float32 out) is only as
        # precise as its outputs: rounding in φ is judged by their epsilon.
        fd_outputs = outputs64 if outputs64 is not None else structure.output_dtypes
        self.fd_eps = max(info_for(self.fd_dtype).eps, *(info_for(d).eps for d in fd_outputs if info_for(d)))
        # cbrt(eps) balances truncation (h²) against rounding (eps/h) for central differences.
        self.fd_step = float(np.cbrt(info_for(self.fd_dtype).eps))
        self._compiled = self._compile()
        self._wide_custom: Callable | bool | None = None  # compiled on first use (`custom_at_float64`)

    # -- per-example functions (traced inside vectorized_map / map_fn) ------------
    def _forward_outputs(self, *xs: tf.Tensor) -> list[tf.Tensor]:
        if self.target.forward is not None:
            result, _ = self.target.forward(*xs)
        else:
            result = self.target.fn(*xs)
        return _float_outputs(result)

    def _custom_vjp(self, xs: list[tf.Tensor], vs: list[tf.Tensor]) -> tuple[list, list]:
        sources = [*xs, *self.variables]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(sources)
            ys = _float_outputs(self.target.fn(*xs))
        grads = tape.gradient(ys, sources, output_gradients=vs)
        return ys, _fill_missing(grads, sources)

    def _reference_vjp(self, xs: list[tf.Tensor], vs: list[tf.Tensor]) -> list:
        sources = [*xs, *self.variables]
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(sources)
            ys = self._forward_outputs(*xs)
        vs = [tf.cast(v, y.dtype) for v, y in zip(vs, ys)]
        return _fill_missing(tape.gradient(ys, sources, output_gradients=vs), sources)

    def _forward_jvp(self, xs: list[tf.Tensor], vs: list[tf.Tensor], ws: list[tf.Tensor]) -> tf.Tensor:
        """⟨v, J w⟩ by forward-mode autodiff of the unwrapped forward (independent of grad_fn)."""
        pairs = [(x, tf.cast(w, x.dtype)) for x, w, spec in zip(xs, ws, self.specs) if spec.differentiable]
        with tf.autodiff.ForwardAccumulator([x for x, _ in pairs], [w for _, w in pairs]) as accumulator:
            ys = self._forward_outputs(*xs)
        total = tf.constant(0.0, tf.float64)
        for y, v in zip(ys, vs):
            jvp = accumulator.jvp(y, unconnected_gradients=tf.UnconnectedGradients.ZERO)
            total += tf.reduce_sum(_real_inner(jvp, v))
        return total

    def _hvp(self, function: Callable, xs: list[tf.Tensor], vs: list[tf.Tensor], us: list[tf.Tensor]) -> list:
        """∂/∂x ⟨u, ∂⟨v, f⟩/∂x⟩ = H·u, differentiating whatever computes the first gradient."""
        with tf.GradientTape(watch_accessed_variables=False) as outer:
            outer.watch(xs)
            with tf.GradientTape(watch_accessed_variables=False) as inner:
                inner.watch(xs)
                ys = function(*xs)
            vs = [tf.cast(v, y.dtype) for v, y in zip(vs, ys)]
            grads = _fill_missing(inner.gradient(ys, xs, output_gradients=vs), xs)
            inner_product = tf.add_n([tf.reduce_sum(g * tf.cast(u, g.dtype)) for g, u in zip(grads, us)])
        return _fill_missing(outer.gradient(inner_product, xs), xs)

    def _tangent_signature(self) -> list:
        """Tangents are float64 (complex128 for complex arguments)."""
        return [tf.TensorSpec([None, *s.shape], tf.complex128 if s.is_complex else tf.float64) for s in self.specs]

    # -- compilation ------------------------------------------------------------
    def _define_parts(self) -> dict[str, tuple[Callable, list]]:
        """The per-example functions of one evaluation, with their batched signatures."""
        specs, structure = self.specs, self.structure
        arg_sig = [tf.TensorSpec([None, *s.shape], s.numpy_dtype) for s in specs]
        cot_sig = [tf.TensorSpec([None, *shape], dtype) for dtype, shape in zip(structure.output_dtypes, structure.output_shapes)]
        fd_sig = [tf.TensorSpec([None, *s.shape], _fd_dtype(self.fd_dtype, s) if s.differentiable else s.numpy_dtype)
                  for s in specs]
        parts = {
            "custom VJP": (lambda a: self._custom_vjp(a[0], a[1]), [arg_sig, cot_sig]),
            "forward (differences)": (lambda a: self._forward_outputs(*a[0]), [fd_sig]),
        }
        if self.target.forward is not None:
            if self._forward64_ok:
                arg64_sig = [tf.TensorSpec([None, *s.shape], _wide(s.numpy_dtype) if s.differentiable else s.numpy_dtype) for s in specs]
                cot64_sig = [tf.TensorSpec([None, *shape], _wide(d)) for d, shape in zip(structure.output_dtypes, structure.output_shapes)]
                parts["reference VJP (float64)"] = (lambda a: self._reference_vjp(a[0], a[1]), [arg64_sig, cot64_sig])
            if not all(spec.dtype == "float64" for spec in specs) or not self._forward64_ok:
                # At float64 the native reference is the float64 one: computed once, not twice.
                parts["reference VJP"] = (lambda a: self._reference_vjp(a[0], a[1]), [arg_sig, cot_sig])
        # Forward mode: ⟨v, J w⟩ without grad_fn (through the unwrapped forward), at float64 if possible.
        jvp_args = [tf.TensorSpec([None, *s.shape], _wide(s.numpy_dtype) if (s.differentiable and self._forward64_ok)
                                  else s.numpy_dtype) for s in specs]
        jvp_cots = [tf.TensorSpec([None, *shape], _wide(d)) for d, shape in zip(structure.output_dtypes, structure.output_shapes)]
        parts["forward JVP"] = (lambda a: self._forward_jvp(a[0], a[1], a[2]), [jvp_args, jvp_cots, self._tangent_signature()])
        if self.order == 2:
            custom_outputs = lambda *xs: _float_outputs(self.target.fn(*xs))  # noqa: E731
            tangent_sig = self._tangent_signature()
            parts["custom HVP"] = (lambda a: self._hvp(custom_outputs, a[0], a[1], a[2]), [arg_sig, cot_sig, tangent_sig])
            parts["reference HVP"] = (lambda a: self._hvp(self._forward_outputs, a[0], a[1], a[2]), [arg_sig, cot_sig, tangent_sig])
            if self._forward64_ok:
                arg64_sig = [tf.TensorSpec([None, *s.shape], _wide(s.numpy_dtype) if s.differentiable else s.numpy_dtype) for s in specs]
                cot64_sig = [tf.TensorSpec([None, *shape], _wide(d)) for d, shape in zip(structure.output_dtypes, structure.output_shapes)]
                parts["reference HVP (float64)"] = (lambda a: self._hvp(self._forward_outputs, a[0], a[1], a[2]),
                                                    [arg64_sig, cot64_sig, tangent_sig])
        return parts

    def _compile(self) -> Callable:
        """Choose how the parts run over a batch, then trace the batch function once (timed and
        recorded in `stats`)."""
        started = time.perf_counter()
        try:
            return self._compile_parts()
        finally:
            self.stats.choose_seconds = time.perf_counter() - started
            self.stats.strategy = self._describe_strategy()

    def _describe_strategy(self) -> str:
        if self._eager:
            return f"eager, example by example ({self._eager})"
        if self._select and not self._mapped:
            return f"vectorized_map; tf.cond as a select of both branches for {', '.join(sorted(self._select))}"
        if not self._mapped:
            return "vectorized_map"
        if self._mapped == set(self._parts):
            return "map_fn" + (f" ({self._loop})" if self._loop else "")
        return f"vectorized_map; map_fn for {', '.join(sorted(self._mapped))}"

    def _compile_parts(self) -> Callable:
        """One per-example trace of the custom VJP first (cheap): a target that cannot be traced
        runs eagerly; one holding a tf.while_loop runs every part with map_fn. Otherwise trace the
        vectorised batch function; if pfor cannot convert some part, find which parts fail on their
        own and switch only those to map_fn."""
        parts = self._define_parts()
        signature = [
            parts["custom VJP"][1][0],
            parts["custom VJP"][1][1],
            self._tangent_signature(),
        ]
        self._parts, self._mapped, self._select, self._eager, self._loop = parts, set(), set(), "", ""
        try:
            with trial_trace():
                ops = _op_types(*parts["custom VJP"])
        except Exception as error:  # it ran eagerly (the probe): only tracing fails
            self._eager = f"it cannot be traced: {summarize_error(error)[:160]}"
            return self._build(signature)
        if ops & _PYTHON_OPS:
            # Graphs calling back into Python run them example by example anyway, and their callbacks
            # are registered per traced graph (vectorising drops them: "KeyError: pyfunc_N").
            self._eager = "it calls Python: tf.py_function or tf.numpy_function"
            return self._build(signature)
        if ops & _LOOP_OPS:
            self._loop = "a tf.while_loop: vectorizing loops is slow to convert and no faster to run"
            self._mapped = set(parts)
            for name in parts:
                self.stats.fallbacks[name] = f"map_fn ({self._loop})"
            return self._traced(signature)
        if ops & _COND_OPS:
            # pfor cannot convert the gradient of a tf.cond: autodiff's parts select between both
            # branches from the start (trying and failing first cost seconds of every short slice).
            self._select = {name for name in _SELECTABLE if name in parts}
            for name in self._select:
                self.stats.fallbacks[name] = "vectorized_map with tf.cond as a select of both branches"
        try:
            with trial_trace():
                function = self._build(signature)
                function.get_concrete_function()
            return function
        except Exception:
            pass
        mapped = self._mapped
        for name, (per_example, part_signature) in parts.items():
            if name in self._select:
                try:
                    with trial_trace():
                        tf.function(self._selecting(name)).get_concrete_function(part_signature)
                    continue
                except Exception:
                    self._select.discard(name)
                    del self.stats.fallbacks[name]
            try:
                with trial_trace():
                    tf.function(_vectorized(per_example)).get_concrete_function(part_signature)
                continue
            except Exception as error:  # pfor raises ValueError/TypeError/NotImplementedError
                reason = summarize_error(error)[:200]
            if name in _SELECTABLE and _has_cond(per_example, part_signature):
                # pfor cannot convert the gradient of a tf.cond: evaluate both branches and select.
                try:
                    with trial_trace():
                        tf.function(self._selecting(name)).get_concrete_function(part_signature)
                    self._select.add(name)
                    self.stats.fallbacks[name] = "vectorized_map with tf.cond as a select of both branches"
                    continue
                except Exception:
                    pass
            mapped.add(name)
            self.stats.fallbacks[name] = f"map_fn ({reason})"
        if "forward JVP" in mapped:  # optional: without a forward-mode rule for some op, go without it
            try:
                with trial_trace():
                    tf.function(_mapped(parts["forward JVP"][0])).get_concrete_function(parts["forward JVP"][1])
            except Exception as error:
                self._drop_forward_jvp(error)
        return self._traced(signature)

    def _traced(self, signature: list) -> Callable:
        """The batch function, traced now. The forward JVP is optional evidence: when the whole
        function cannot trace with it (an op inside a loop with no forward-mode rule, e.g.
        ctc_loss's SymbolicGradient), go without it; errors that remain are the target's own."""
        function = self._build(signature)
        try:
            with trial_trace():
                function.get_concrete_function()
            return function
        except Exception as error:
            if "forward JVP" not in self._parts:
                raise
            self._drop_forward_jvp(error)
        function = self._build(signature)
        with trial_trace():
            function.get_concrete_function()
        return function

    def _drop_forward_jvp(self, error: Exception) -> None:
        del self._parts["forward JVP"]
        self._mapped.discard("forward JVP")
        self._select.discard("forward JVP")
        self.stats.fallbacks["forward JVP"] = f"not used ({summarize_error(error)[:200]})"

    def batched(self, name: str) -> Callable | None:
        """One part of the evaluation (e.g. "custom VJP") over a batch, vectorised or mapped
        as the compiled function does it; None if this evaluator has no such part."""
        if name not in self._parts:
            return None
        if name in self._select:
            return self._selecting(name)
        return (_mapped if name in self._mapped else _vectorized)(self._parts[name][0])

    def _selecting(self, name: str) -> Callable:
        """A part vectorised with every tf.cond the target calls evaluated as a select of both
        branches. Forward values and forward-mode tangents are exact that way; a reverse-mode
        gradient is too, except where the unselected branch's derivative is not finite (0·inf):
        those examples are computed again with map_fn and the real tf.cond."""
        per_example = self._parts[name][0]
        selected = _vectorized(_with_conds_as_selects(per_example))
        if name == "forward JVP":
            return selected
        exact = _mapped(per_example)

        def run(args):
            result = selected(args)
            flat = tf.nest.flatten(result)
            batch = tf.shape(flat[0])[0]
            bad = tf.zeros([batch], tf.bool)
            for value in flat:
                bad |= tf.reduce_any(~tf.math.is_finite(tf.reshape(tf.math.real(value), [batch, -1])), axis=1)
            rows = tf.where(bad)[:, 0]

            def repair():
                again = exact(tf.nest.map_structure(lambda a: tf.gather(a, rows), args))
                return tf.nest.map_structure(lambda r, e: tf.tensor_scatter_nd_update(r, rows[:, None], e), result, again)

            return tf.cond(tf.size(rows) > 0, repair, lambda: result)

        return run

    def _build(self, signature: list) -> Callable:
        if self._eager:
            batched = {name: _eagerly(per_example) for name, (per_example, _) in self._parts.items()}
        else:
            batched = {name: self.batched(name) for name in self._parts}
        fd_dtype = tf.as_dtype(self.fd_dtype)
        offsets = tf.constant(FD_OFFSETS, tf.float64)
        step = tf.constant(self.fd_step, tf.float64)
        n_offsets = len(FD_OFFSETS)
        stats = self.stats
        specs = self.specs

        def to64(xs):
            return [tf.cast(x, _wide(x.dtype)) if spec.differentiable else x for x, spec in zip(xs, specs)]

        def evaluate(xs, vs, ws):
            stats.traces += 1  # Python side effect: runs once per trace, never per call
            ys, custom_grads = batched["custom VJP"]([xs, vs])
            result = {"outputs": ys, "custom": custom_grads}
            if "reference VJP (float64)" in batched:
                result["reference"] = batched["reference VJP (float64)"](
                    [to64(xs), [tf.cast(v, _wide(v.dtype)) for v in vs]]
                )
            if "reference VJP" in batched:
                result["reference_native"] = batched["reference VJP"]([xs, vs])
            elif "reference" in result:
                result["reference_native"] = result["reference"]
            if "forward JVP" in batched:
                jvp_xs = to64(xs) if self._forward64_ok else xs
                result["jvp"] = batched["forward JVP"]([jvp_xs, [tf.cast(v, _wide(v.dtype)) for v in vs], ws])
            # All finite-difference points in one call: [n_offsets * B, ...].
            points = [
                tf.cast(tf.concat([tf.cast(x, _wide(x.dtype)) + tf.cast(offsets[k] * step, _wide(x.dtype)) * w
                                   for k in range(n_offsets)], 0), _fd_dtype(fd_dtype, spec))
                if spec.differentiable else tf.concat([x] * n_offsets, 0)  # integer/boolean: not perturbed
                for x, w, spec in zip(xs, ws, specs)
            ]
            values = batched["forward (differences)"]([points])
            batch = tf.shape(xs[0])[0]
            phi = tf.zeros([n_offsets, batch], tf.float64)
            scale = tf.zeros([batch], tf.float64)
            for value, v in zip(values, vs):
                products = _real_inner(tf.reshape(value, [n_offsets, batch, -1]), tf.reshape(v, [1, batch, -1]))
                phi += tf.reduce_sum(products, axis=-1)
                scale += tf.reduce_sum(tf.abs(products[n_offsets // 2]), axis=-1)
            result["phi"] = phi
            result["phi_scale"] = scale
            if "custom HVP" in batched:
                result["custom_hvp"] = batched["custom HVP"]([xs, vs, ws])
                result["reference_hvp_native"] = batched["reference HVP"]([xs, vs, ws])
                if "reference HVP (float64)" in batched:
                    result["reference_hvp"] = batched["reference HVP (float64)"](
                        [to64(xs), [tf.cast(v, _wide(v.dtype)) for v in vs], ws]
                    )
            return result

        if self._eager:
            return evaluate  # a Python loop over the examples, eagerly: nothing to trace
        return tf.function(evaluate, input_signature=signature, jit_compile=self.jit or None)

    # -- running ----------------------------------------------------------------
    def neighbours(self, batch: Batch, indices: np.ndarray) -> Neighbours:
        """Reference gradients a few ULPs to either side of each selected example.

        The Clarke subdifferential at a non-smooth point is the hull of the
        gradients at nearby points, so "is the custom gradient inside the hull
        of the reference at x, x - δ and x + δ" tells a valid subgradient at a
        kink from a wrong gradient. δ is tiny (`NEIGHBOUR_ULPS`), so a branch
        that switches at a visibly different point is still caught.
        """
        subset = batch.select(indices)
        shifted, shifted_hvp = [], []
        # With an autodiff reference, look a few ULPs away (exact kinks); without one, at the
        # half-step points of the differences, so elements the step moves across a kink count.
        half_step = None if self.target.forward is not None else self.fd_step / 2
        for direction in (-1.0, 1.0):
            inputs = [_nudge(x, w, direction, spec, half_step) for x, w, spec in zip(subset.inputs, subset.tangents, self.specs)]
            evaluation = self.evaluate(Batch(inputs, subset.cotangents, subset.tangents))
            gradients = evaluation.reference if self.target.forward is not None else evaluation.custom
            shifted.append([_wide_numpy(g) for g in gradients])
            if evaluation.reference_hvp is not None:
                shifted_hvp.append([_wide_numpy(g) for g in evaluation.reference_hvp])
        # The same differences with a FINE_STEP-times smaller step: if they agree with the
        # gradient where the normal step did not, the function is not smooth within that step.
        fine = self.evaluate(Batch(subset.inputs, subset.cotangents, [w / FINE_STEP for w in subset.tangents]))
        return Neighbours(indices=np.asarray(indices), minus=shifted[0], plus=shifted[1],
                          fine_phi=fine.phi * FINE_STEP, fine_phi_scale=fine.phi_scale,
                          minus_hvp=shifted_hvp[0] if shifted_hvp else None,
                          plus_hvp=shifted_hvp[1] if shifted_hvp else None)

    def custom_at_float64(self, batch: Batch) -> list[np.ndarray] | None:
        """The custom VJP with the arguments (and cotangents) widened to float64, or None where
        that cannot be had: arguments already float64, a forward that cannot run there, or a
        target that raises at float64 (mixed-dtype constants or variables). The same grad_fn
        agreeing with autodiff at float64 where it does not at its own dtype loses precision; a
        wrong formula stays wrong at any precision (see `judging.diagnose_precision`)."""
        if self._wide_custom is False:
            return None
        if self._wide_custom is None:
            if not self._forward64_ok or all(s.info.mantissa_bits >= 52 for s in self.specs if s.differentiable):
                self._wide_custom = False
                return None
            specs, structure = self.specs, self.structure
            arg64 = [tf.TensorSpec([None, *s.shape], _wide(s.numpy_dtype) if s.differentiable else s.numpy_dtype) for s in specs]
            cot64 = [tf.TensorSpec([None, *shape], _wide(d)) for d, shape in zip(structure.output_dtypes, structure.output_shapes)]
            batched = (_mapped if "custom VJP" in self._mapped else _vectorized)(lambda a: self._custom_vjp(a[0], a[1])[1])
            try:
                with trial_trace():
                    self._wide_custom = tf.function(batched).get_concrete_function([arg64, cot64])
            except Exception:  # the target does not run at float64: no precision diagnosis
                self._wide_custom = False
                return None
        widen = [tf.cast(tf.constant(x), _wide(x.dtype)) if spec.differentiable else tf.constant(x)
                 for x, spec in zip(batch.inputs, self.specs)]
        try:
            with tf.device(self.device):
                grads = self._wide_custom([widen, [tf.cast(tf.constant(v), _wide(v.dtype)) for v in batch.cotangents]])
        except (tf.errors.OpError, ValueError, TypeError):
            return None
        return [g.numpy() for g in grads]

    def evaluate(self, batch: Batch) -> Evaluation:
        """Evaluate one batch; raises `TargetRaised` if the target raises at run time."""
        beacon("batched evaluation", size=batch.size, batch=batch)  # a supervisor's last known inputs
        try:
            with tf.device(self.device):
                raw = self._compiled(
                    [tf.constant(a) for a in batch.inputs],
                    [tf.constant(a) for a in batch.cotangents],
                    [tf.constant(a) for a in batch.tangents],
                )
        except tf.errors.ResourceExhaustedError as error:
            raise OutOfMemory(batch.size) from error
        except (tf.errors.OpError, ValueError, TypeError) as error:
            if self.jit and self.stats.calls == 0:
                # XLA cannot compile every op: fall back to the ordinary graph, and say why.
                self.stats.fallbacks["XLA"] = f"not used ({summarize_error(error)[:200]})"
                self.jit = False
                self._compiled = self._compile()
                return self.evaluate(batch)
            raise TargetRaised("batched evaluation", error) from error
        except SystemExit as error:  # the target's sys.exit, met while tracing
            raise TargetRaised("batched evaluation", error) from error
        self.stats.calls += 1

        def numpy(tensors):
            return None if tensors is None else [t.numpy() for t in tensors]

        return Evaluation(
            batch=batch,
            outputs=numpy(raw["outputs"]),
            custom=numpy(raw["custom"]),
            reference=numpy(raw.get("reference") if "reference" in raw else raw.get("reference_native")),
            reference_native=numpy(raw.get("reference_native")),
            reference_dtype="float64" if "reference" in raw else self.native_dtype,
            phi=raw["phi"].numpy(),
            phi_scale=raw["phi_scale"].numpy(),
            fd_step=self.fd_step,
            fd_dtype=self.fd_dtype,
            fd_eps=self.fd_eps,
            jvp=raw["jvp"].numpy() if "jvp" in raw else None,
            custom_hvp=numpy(raw.get("custom_hvp")),
            reference_hvp=numpy(raw.get("reference_hvp", raw.get("reference_hvp_native"))),
            reference_hvp_native=numpy(raw.get("reference_hvp_native")),
        )


def probe(target: Target, specs: Sequence[ArgSpec], example: Sequence[np.ndarray]) -> Structure:
    """Run one example eagerly to learn output and gradient structure.

    Raises `TargetRaised` naming the stage (forward or custom gradient) if the
    target raises; gradients that are None or of the wrong shape or dtype are
    recorded in the `Structure`, not raised, because they are findings.
    """
    xs = [tf.constant(x) for x in example]
    beacon("forward", target=target.name, inputs=[np.asarray(x) for x in example])  # a supervisor's last known input
    try:
        # Watching accessed variables finds the trainable tf.Variables the target reads:
        # their gradients (grad_fn's ``variables=``) are checked like arguments.
        with tf.GradientTape() as tape:
            tape.watch(xs)
            ys = _float_outputs(target.fn(*xs))
    except (Exception, SystemExit) as error:  # a target's sys.exit is its failure, not the end of the check
        raise TargetRaised("forward", error) from error
    if not ys:
        raise TargetRaised("forward", TypeError("the target returned no floating-point tensor to differentiate"))
    target.variables = [v for v in tape.watched_variables() if v.trainable and v.dtype.is_floating]
    beacon("custom gradient" if target.has_custom_gradient else "gradient")
    try:
        grads = tape.gradient(ys, [*xs, *target.variables], output_gradients=[tf.ones_like(y) for y in ys])
    except (Exception, SystemExit) as error:
        finite = all(bool(np.all(np.isfinite(y.numpy()))) for y in ys)
        raise TargetRaised("custom gradient" if target.has_custom_gradient else "gradient", error, finite) from error
    return Structure(
        output_dtypes=tuple(y.dtype.name for y in ys),
        output_shapes=tuple(tuple(y.shape) for y in ys),
        gradient_dtypes=tuple(None if g is None else g.dtype.name for g in grads),
        gradient_shapes=tuple(None if g is None else tuple(g.shape) for g in grads),
    )


def second_order_missing(target: Target, example: Sequence[np.ndarray]) -> list[int]:
    """Arguments whose second-order gradient through the custom gradient is None (eagerly,
    on one example): grad_fn is not differentiable there although the function is."""
    xs = [tf.constant(x) for x in example]
    with tf.GradientTape(watch_accessed_variables=False) as outer:
        outer.watch(xs)
        with tf.GradientTape(watch_accessed_variables=False) as inner:
            inner.watch(xs)
            ys = _float_outputs(target.fn(*xs))
        grads = _fill_missing(inner.gradient(ys, xs, output_gradients=[tf.ones_like(y) for y in ys]), xs)
        total = tf.add_n([tf.reduce_sum(g) for g in grads])
    second = outer.gradient(total, xs)
    return [a for a, g in enumerate(second) if g is None]


# A plain function's second order has no reference forward; what can be said without one: the
# first-order gradient changes with an argument (central differences, clean, well above their own
# error) while TensorFlow's second-order gradient with respect to it is None (read as zero).
SECOND_ORDER_SAFETY = 16.0


def forward_is_singular(target: Target, specs: Sequence[ArgSpec], example: Sequence[np.ndarray],
                        directions: Sequence[np.ndarray]) -> bool:
    """Eagerly, the forward alone along ``directions`` (one per argument) from x: both one-sided
    difference quotients of Σf grow like 1/step (`oracle.differences`: a pole or a jump at x, as
    a numerically singular matrix's solve or log-determinant has). There no derivative exists,
    and a finite forward value is rounding's accident."""
    from gradfuzz.oracle import differences

    moved_args = [np.asarray(x) for x in example]
    dtype = np.result_type(*[x.dtype for x, s in zip(moved_args, specs) if s.differentiable and not s.is_complex] or [np.float64])
    eps = float(np.finfo(dtype).eps)
    scale = max([1.0, *(float(np.max(np.abs(x))) for x, s in zip(moved_args, specs) if s.differentiable and x.size)])
    step = float(np.cbrt(eps)) * scale
    phi, magnitude = [], 0.0
    for offset in FD_OFFSETS:
        moved = [tf.constant((x + offset * step * np.asarray(d, np.float64)).astype(x.dtype))
                 if s.differentiable and not s.is_complex else tf.constant(x)
                 for x, d, s in zip(moved_args, directions, specs)]
        ys = [np.asarray(y.numpy(), np.float64) for y in _float_outputs(target.fn(*moved))]
        phi.append(sum(float(np.sum(y)) for y in ys))
        magnitude = max(magnitude, *(float(np.sum(np.abs(y))) for y in ys))
    fd = differences(np.asarray(phi)[:, None], np.asarray([magnitude]), step, eps)
    return bool(fd.singular[0])


def gradient_changes(target: Target, example: Sequence[np.ndarray], argument: int, direction: np.ndarray) -> tuple[float, float]:
    """d/dt Σ ∂⟨1, f⟩/∂x at x + t·u (u = ``direction`` in ``argument``), by Richardson central
    differences of TensorFlow's first-order gradient, eagerly: (estimate, its error: the two steps'
    disagreement plus rounding). A jump of the gradient within the step shows as a large error."""
    x = np.asarray(example[argument])
    eps = float(np.finfo(x.dtype).eps)
    step = float(np.cbrt(eps)) * max(1.0, float(np.max(np.abs(x))) if x.size else 1.0)

    def summed_gradient(t: float) -> tuple[float, float]:
        moved = [tf.constant(a) for a in example]
        moved[argument] = tf.constant((x + t * direction).astype(x.dtype))
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(moved)
            ys = _float_outputs(target.fn(*moved))
        grads = [g for g in tape.gradient(ys, moved, output_gradients=[tf.ones_like(y) for y in ys]) if g is not None]
        values = [np.asarray(g.numpy(), np.float64) for g in grads]
        return float(sum(np.sum(v) for v in values)), float(sum(np.sum(np.abs(v)) for v in values))

    at = {k: summed_gradient(k * step) for k in (-1.0, -0.5, 0.5, 1.0)}
    full = (at[1.0][0] - at[-1.0][0]) / (2 * step)
    half = (at[0.5][0] - at[-0.5][0]) / step
    scale = max(magnitude for _, magnitude in at.values())
    with np.errstate(all="ignore"):
        return (4 * half - full) / 3, abs(half - full) + 64 * eps * scale / step


def _float_outputs(result: object) -> list[tf.Tensor]:
    """Flatten a target's result and keep the floating-point tensors (what has a gradient)."""
    flat = tf.nest.flatten(result)
    tensors = [tf.convert_to_tensor(t) for t in flat]
    return [t for t in tensors if t.dtype.is_floating or t.dtype.is_complex]


def _fill_missing(grads: Sequence, xs: Sequence[tf.Tensor]) -> list[tf.Tensor]:
    # A None gradient is reported by the probe; inside the batch it becomes zeros
    # so the remaining arguments can still be compared.
    return [tf.zeros_like(x) if g is None else g for g, x in zip(grads, xs)]


NEIGHBOUR_ULPS = 64


def _nudge(x: np.ndarray, w: np.ndarray, direction: float, spec: ArgSpec, step: float | None = None) -> np.ndarray:
    """Move x along w: by ``step``·w, or (step None) each element NEIGHBOUR_ULPS units in
    the last place along sign(w) — at least a few smallest normals, so zeros move off a
    kink without becoming subnormal."""
    if not spec.differentiable or spec.is_complex:  # complex: no kink neighbourhoods
        return x
    info = spec.info
    x64 = x.astype(np.float64)
    if step is not None:
        moved = x64 + direction * step * w
    else:
        # Elements move by NEIGHBOUR_ULPS + 2·(rank of |w| in the example) units: tied elements
        # (max/min ties, equal inputs) move by different amounts, so ties break on both sides.
        flat = np.abs(np.asarray(w, dtype=np.float64)).reshape(w.shape[0], -1)
        rank = np.argsort(np.argsort(flat, axis=1), axis=1).reshape(w.shape)
        units = NEIGHBOUR_ULPS + 2.0 * rank
        shift = np.maximum(units * info.ulp(x64), units / NEIGHBOUR_ULPS * 4 * info.tiny)
        moved = x64 + direction * np.where(w >= 0, 1.0, -1.0) * shift
    return np.clip(moved, -info.max, info.max).astype(info.numpy)


def _wide_numpy(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    return array.astype(np.complex128 if np.iscomplexobj(array) else np.float64)


def _wide(dtype: object) -> tf.DType:
    """float64, or complex128 for complex dtypes: where references and differences are computed."""
    return tf.complex128 if tf.as_dtype(dtype).is_complex else tf.float64


def _fd_dtype(fd_dtype: str, spec: ArgSpec) -> tf.DType:
    """The dtype an argument is perturbed in: the differences' (complex for complex arguments)."""
    if not spec.is_complex:
        return tf.as_dtype(fd_dtype)
    return tf.complex128 if fd_dtype == "float64" else tf.as_dtype(spec.numpy_dtype)


def _real_inner(value: tf.Tensor, v: tf.Tensor) -> tf.Tensor:
    """Re(conj(v)·value) in float64, element-wise: TF's convention makes the gradient of the real
    loss Re⟨v, f⟩ equal to ∂/∂x + i·∂/∂y, so ⟨w, g⟩ = Re Σ conj(g)·w is its directional derivative."""
    if value.dtype.is_complex or v.dtype.is_complex:
        return tf.math.real(tf.math.conj(tf.cast(v, tf.complex128)) * tf.cast(value, tf.complex128))
    return tf.cast(value, tf.float64) * tf.cast(v, tf.float64)


_LOOP_OPS = {"While", "StatelessWhile"}
_PYTHON_OPS = {"EagerPyFunc", "PyFunc", "PyFuncStateless"}
_COND_OPS = {"If", "StatelessIf"}
_SELECTABLE = ("reference VJP", "reference VJP (float64)", "forward JVP")  # autodiff of the forward only


def _select_cond(pred, true_fn=None, false_fn=None, name=None):
    """tf.cond as a select: both branches evaluated, tf.where picks (vectorises per example)."""
    if isinstance(pred, bool | np.bool_):
        return true_fn() if pred else false_fn()
    on_true, on_false = true_fn(), false_fn()
    return tf.nest.map_structure(lambda a, b: tf.where(pred, a, b), on_true, on_false)


def _with_conds_as_selects(per_example: Callable) -> Callable:
    """``per_example`` traced with ``tf.cond`` (the attribute target code calls) replaced by `_select_cond`."""
    def run(args):
        original = tf.cond
        tf.cond = _select_cond
        try:
            return per_example(args)
        finally:
            tf.cond = original

    return run


def _op_types(per_example: Callable, part_signature: list) -> set[str]:
    """The op types of one example's graph, loop bodies and branches included (raises if it
    cannot be traced)."""
    element_specs = tf.nest.map_structure(lambda s: tf.TensorSpec(s.shape[1:], s.dtype), part_signature)
    graph = tf.function(per_example).get_concrete_function(element_specs).graph.as_graph_def()
    return {node.op for node in graph.node} | {node.op for f in graph.library.function for node in f.node_def}


def _has_cond(per_example: Callable, part_signature: list) -> bool:
    """One example's graph holds a tf.cond (False if it cannot even be traced)."""
    try:
        with trial_trace():
            return any(op in ("If", "StatelessIf") for op in _op_types(per_example, part_signature))
    except Exception:
        return False


def _eagerly(per_example: Callable) -> Callable:
    """A part run eagerly, one example at a time, results stacked (targets that need eager values)."""
    def run(args):
        count = int(tf.nest.flatten(args)[0].shape[0])
        results = [per_example(tf.nest.map_structure(lambda t: t[i], args)) for i in range(count)]  # noqa: B023
        return tf.nest.map_structure(lambda *xs: tf.stack(xs), *results)

    return run


def _vectorized(per_example: Callable) -> Callable:
    def run(args):
        return tf.vectorized_map(per_example, args, fallback_to_while_loop=True)

    return run


def _mapped(per_example: Callable) -> Callable:
    def run(args):
        return tf.map_fn(per_example, args, fn_output_signature=_output_signature(per_example, args))

    return run


def _output_signature(per_example: Callable, args: list) -> object:
    """map_fn needs the per-example output structure; get it by tracing one element."""
    element_specs = tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape[1:], t.dtype), args)
    concrete = tf.function(per_example).get_concrete_function(element_specs)
    return tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), concrete.structured_outputs)


def _output_dtypes_at_float64(forward: Callable, specs: Sequence[ArgSpec]) -> tuple[str, ...] | None:
    """The forward's output dtypes on float64 inputs, or None if it cannot run on them
    (hard-coded float32 constants, for instance)."""
    signature = [tf.TensorSpec(s.shape, _wide(s.numpy_dtype) if s.differentiable else s.numpy_dtype) for s in specs]
    try:
        with trial_trace():
            concrete = tf.function(lambda *xs: forward(*xs)).get_concrete_function(*signature)
    except Exception:
        return None
    return tuple(t.dtype.name for t in tf.nest.flatten(concrete.structured_outputs))
