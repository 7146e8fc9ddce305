"""``gradfuzz report --html``: one section per distinct bug, with a picture.

Each section shows the diagnosis, the numbers, and a plot of the custom gradient against
the reference (autodiff of the forward, and central differences) along a line through the
failing input, so a branch boundary, kink or approximation error is visible at a glance.
"""

from __future__ import annotations

import base64
import html
import io
from datetime import UTC, datetime

import numpy as np

from gradfuzz.categories import TENSORFLOW_GRADIENT
from gradfuzz.oracle import differences
from gradfuzz.replay import Replayer
from gradfuzz.store import StoredFailure
from gradfuzz.triage import TriageGroup
from gradfuzz.values import NO_ELEMENT, Batch, error_summary, numbers, short_value

POINTS_ON_LINE = 241


def line_profile(replayer: Replayer, failure: StoredFailure) -> dict | str:
    """Custom and reference gradient element along a line through the failing element."""
    context = replayer.context(failure)
    if isinstance(context, str):
        return context
    if not failure.cotangents:
        return "no failing gradient value to plot (a contract or exception finding)"
    if failure.argument is None:
        return NO_ELEMENT
    _, specs, evaluator, points = context
    a, e = failure.argument, failure.element or 0
    if a >= len(specs) or specs[a].is_complex:
        return "plots along a line are drawn for real arguments only"
    spec = specs[a]
    x = float(np.asarray(failure.inputs[a], dtype=np.float64).reshape(-1)[e])
    # Wide enough to show the two nearest points of interest (a boundary and its neighbour).
    distances = sorted(abs(p - x) for p in points[a] if p != x) or [1.0]
    reach = distances[1] if len(distances) > 1 and distances[0] < 1e-3 * distances[1] else distances[0]
    radius = min(max(1.5 * reach, 1e-6 * max(1.0, abs(x))), 0.25 * (spec.high - spec.low))
    line = np.unique(np.clip(np.linspace(x - radius, x + radius, POINTS_ON_LINE), spec.low, spec.high).astype(spec.info.numpy))
    inputs = []
    for k, array in enumerate(failure.inputs):
        batch = np.repeat(np.asarray(array)[None], line.size, axis=0)
        if k == a:
            batch.reshape(line.size, -1)[:, e] = line
        inputs.append(batch)
    tangents = [np.zeros((line.size, *np.shape(t))) for t in failure.tangents]
    tangents[a].reshape(line.size, -1)[:, e] = 1.0  # differences along this element: ⟨v, J e⟩ = (Jᵀv)ₑ
    cotangents = [np.repeat(np.asarray(v)[None], line.size, axis=0) for v in failure.cotangents]
    label = f"(Jᵀv)[{e}] for the check's random cotangent v"
    if "jacobian_output_index" in failure.evidence:  # the derivative a person thinks in: dy = 1 on that output
        flat = int(failure.evidence["jacobian_output_index"])
        for cotangent in cotangents:
            size = int(np.prod(cotangent.shape[1:], dtype=np.int64))
            cotangent[...] = 0
            if 0 <= flat < size:
                cotangent.reshape(line.size, -1)[:, flat] = 1
            flat -= size
        label = str(failure.evidence.get("jacobian_entry", "derivative"))
    evaluation = evaluator.evaluate(Batch(inputs, cotangents, tangents))
    fd = differences(evaluation.phi, evaluation.phi_scale, evaluation.fd_step, evaluation.fd_eps)
    column = lambda arrays: None if arrays is None else np.asarray(arrays[a], dtype=np.float64).reshape(line.size, -1)[:, e]  # noqa: E731
    return {
        "line": line.astype(np.float64), "x": x, "custom": column(evaluation.custom),
        "reference": column(evaluation.reference), "differences": np.where(fd.usable, fd.central, np.nan),
        "kinks": line[fd.kink].astype(np.float64), "ulp": spec.info.ulp, "dtype": spec.dtype, "label": label,
        "points": [p for p in points[a] if x - radius <= p <= x + radius], "argument": a, "element": e,
        "gradient": "custom gradient" if evaluator.target.has_custom_gradient else TENSORFLOW_GRADIENT,
    }


def plot_png(profile: dict, title: str) -> bytes:
    """Top: the custom and reference derivatives along the line (points of interest shaded, kinks
    the differences saw ticked, the failing input dotted). Below: the custom gradient's error in
    ULPs of the argument's dtype, on a log scale. Plain tick labels; the title wraps."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    figure, (top, bottom) = plt.subplots(2, 1, figsize=(7.5, 5.2), dpi=110, sharex=True,
                                         gridspec_kw={"height_ratios": [3, 2]})
    line = profile["line"]
    reference = profile["reference"] if profile["reference"] is not None else profile["differences"]
    if profile["reference"] is not None:
        top.plot(line, profile["reference"], color="#1f77b4", linewidth=2.2, label="autodiff of the forward")
    top.plot(line, profile["differences"], color="#2ca02c", linestyle="--", linewidth=1.4, label="central differences")
    top.plot(line, profile["custom"], color="#d62728", linewidth=1.4, label=profile.get("gradient", "custom gradient"))
    with np.errstate(all="ignore"):
        ulps = np.abs(profile["custom"] - reference) / profile["ulp"](reference)
    bottom.semilogy(line, np.where(ulps > 0, ulps, np.nan), color="#d62728", linewidth=1.2)
    bottom.set_ylabel(f"error, ULPs of {profile['dtype']}")
    for axes in (top, bottom):
        axes.axvline(profile["x"], color="black", linestyle=":", linewidth=1.0)
        for point in profile["points"]:
            axes.axvline(point, color="grey", alpha=0.3, linewidth=4)
        axes.grid(alpha=0.3)
        axes.xaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    top.yaxis.set_major_formatter(ScalarFormatter(useOffset=False))
    if len(profile["kinks"]):
        top.plot(profile["kinks"], np.full(len(profile["kinks"]), np.nanmin(reference) if np.isfinite(reference).any() else 0),
                 "|", color="black", markersize=10, label="kink seen by the differences")
    top.plot([], [], color="black", linestyle=":", label="the failing input")
    top.plot([], [], color="grey", alpha=0.3, linewidth=4, label="points of interest")
    top.set_ylabel(textwrap.fill(profile["label"], 28), fontsize=9)
    top.legend(fontsize=7, loc="best")
    bottom.set_xlabel(f"argument {profile['argument']}, element {profile['element']}")
    top.set_title(textwrap.fill(title, 80), fontsize=9)
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    plt.close(figure)
    return buffer.getvalue()


def _numbers(record, group: TriageGroup) -> list[tuple[str, str]]:
    """The rows a person reads first: the contract for contract findings; for value findings the
    exact Jacobian entry (custom vs reference) when it was computed, else the numbers judged."""
    evidence = record.evidence
    rows = [("input", ", ".join(short_value(x, precision=9, threshold=1000) for x in record.inputs))]
    if "contract" in evidence:
        rows += [("contract", str(evidence["contract"])), ("expected", str(evidence.get("expected", ""))),
                 ("returned", str(evidence.get("returned", "")))]
        if "digits_lost" in evidence:
            rows.append(("digits lost", f"{evidence['digits_lost']} significant digits"))
    elif record.reference_name and np.isfinite(record.custom_value) | np.isfinite(record.reference_value):
        entry = str(evidence.get("jacobian_entry", "gradient element"))
        if "gradient" in evidence:  # a plain function: TensorFlow's registered gradient was checked
            entry = f"{evidence['gradient']} ({entry})" if "jacobian_entry" in evidence else str(evidence["gradient"])
        else:
            entry = f"custom {entry}"
        custom, reference = numbers(record.custom_value, record.reference_value)
        dtype = record.specs[record.argument].split("[")[0] if record.argument is not None and record.argument < len(record.specs) else ""
        rows += [(entry, custom), (f"{record.reference_name}", reference),
                 ("error", error_summary(record.abs_error, record.rel_error, record.ulp_error, dtype, record.reference_value))]
    rows += [("examples failing", f"{group.examples:,} in the {group.count} recorded run(s)"), ("status", group.status),
             ("specs", ", ".join(record.specs))]
    return rows


def _picture(replayer: Replayer, group: TriageGroup) -> str:
    profile = line_profile(replayer, group.representative)
    if isinstance(profile, str):
        return f"<p class='note'>No plot: {html.escape(profile)}</p>"
    title = f"{group.target}: {group.category} ({group.where})"
    encoded = base64.b64encode(plot_png(profile, title)).decode()
    return f"<img alt='{html.escape(title)}' src='data:image/png;base64,{encoded}'>"


def render(groups: list[TriageGroup], store: str, replayer: Replayer | None = None, picture=None) -> str:
    """``picture(group)`` draws a section's plot (default `_picture` here; the CLI draws each in a supervised worker)."""
    replayer = replayer or Replayer()
    sections = []
    for number, group in enumerate(groups, 1):
        record = group.representative
        try:
            picture_html = picture(group) if picture is not None else _picture(replayer, group)
        except Exception as error:  # one target whose plot fails must not cost the others their sections
            picture_html = (f"<p class='note'>No plot: drawing it raised {html.escape(type(error).__name__)}: "
                       f"{html.escape(str(error)[:300])}. The numbers above are from the store.</p>")
        values = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in _numbers(record, group))
        sections.append(
            f"<section><h2>{number}. <span class='cat'>{html.escape(group.category)}</span> in "
            f"<code>{html.escape(group.target)}</code></h2>"
            f"<p>{html.escape(record.explanation)}</p><table>{values}</table>{picture_html}</section>"
        )
    body = "\n".join(sections) or "<p>No stored failures.</p>"
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!doctype html>
<html><head><meta charset="utf-8"><title>gradfuzz report</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; color: #222; }}
section {{ border-top: 1px solid #ccc; padding-top: 1rem; margin-top: 1.5rem; }}
.cat {{ color: #b00; }} table {{ border-collapse: collapse; margin: .5rem 0; }}
th {{ text-align: left; padding-right: 1rem; color: #555; font-weight: normal; }} td {{ font-family: monospace; }}
img {{ max-width: 100%; }} .note {{ color: #777; }}
</style></head><body>
<h1>gradfuzz report</h1>
<p>Store <code>{html.escape(store)}</code>, {len(groups)} distinct bug(s), generated {stamp}.</p>
{body}
</body></html>
"""
