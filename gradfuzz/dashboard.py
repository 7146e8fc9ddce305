"""``gradfuzz dashboard [STORE]``: a local web page for a running or finished campaign.

One stdlib HTTP server (`ThreadingHTTPServer`) on 127.0.0.1 by default, three routes:

* ``/`` — the page: per-target examples/s over time, failures and notes found over time (inline
  SVG drawn by a small script in the page, no build step), the bug list (triage of the store)
  with links to the report's plots, incidents and workers. Rendered on the server first, so it
  reads without JavaScript; the script then keeps it current.
* ``/api/state`` — campaign.json, the triage groups and the store's problems as JSON. With
  ``?after=<updated>`` it waits (up to `LONG_POLL_SECONDS`) until the checkpoint's ``updated``
  stamp differs: the page refreshes itself as soon as the campaign writes a new checkpoint.
* ``/plot/<n>.png`` — bug n's plot, drawn on first request by the HTML report's code (it replays
  the bug, so it imports the target: the same trust rule as ``replay``).

Reading is cheap: the store is read again only when its files change (their names, sizes and
mtimes), so a 10,000-record store costs one read per change, not per request.
"""

from __future__ import annotations

import html
import json
import math
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

from gradfuzz.values import short_value

LONG_POLL_SECONDS = 20.0
POLL_INTERVAL = 0.25  # how often a waiting request looks at the checkpoint


@dataclass
class DashboardState:
    """What the page shows, read from a store directory (cached until its files change)."""

    store: Path
    trust_store: bool = False
    long_poll_seconds: float = LONG_POLL_SECONDS
    _key: tuple = ()
    _groups: list = field(default_factory=list)
    _problems: list[str] = field(default_factory=list)
    _plots: dict[int, bytes | str] = field(default_factory=dict)
    _bugs: list[dict] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    waiting: int = 0  # requests waiting for a new checkpoint (tests wait for this event)

    def campaign(self) -> dict[str, Any]:
        try:
            return json.loads((self.store / "campaign.json").read_text())
        except (OSError, ValueError):
            return {}

    def groups(self) -> list:
        """Triage of the store, read again only when a segment file changed."""
        from gradfuzz.store import FailureStore, StoreError
        from gradfuzz.triage import triage

        key = tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                           for kind in ("failures", "status") for p in (self.store / kind).glob("*") if p.is_file())) \
            if self.store.is_dir() else ()
        with self._lock:
            if key != self._key:
                try:
                    read = FailureStore(self.store).read()
                    self._groups, self._problems = triage(read.failures), read.problems
                except StoreError as error:
                    self._groups, self._problems = [], [str(error)]
                self._key = key
                self._plots.clear()
                self._bugs = None
            return self._groups

    def to_json(self) -> dict[str, Any]:
        groups = self.groups()
        with self._lock:
            if self._bugs is None:  # summarised once per change of the store
                self._bugs = [{"number": n, "target": g.target, "category": g.category, "where": g.where, "runs": g.count,
                               "examples_failing": g.examples, "status": g.status, "explanation": g.representative.explanation,
                               "input": [short_value(x) for x in g.representative.inputs]}
                              for n, g in enumerate(groups, 1)]
            bugs = self._bugs
        return {"campaign": self.campaign(), "bugs": bugs, "problems": self._problems}

    def plot(self, number: int) -> bytes | str:
        """PNG bytes of bug ``number``'s plot, or why there is none."""
        groups = self.groups()
        if not 1 <= number <= len(groups):
            return "no such bug"
        with self._lock:
            if number not in self._plots:
                self._plots[number] = _draw(groups[number - 1], self.trust_store)
            return self._plots[number]


def _draw(group, trust_store: bool) -> bytes | str:
    from gradfuzz.html_report import line_profile, plot_png
    from gradfuzz.replay import Replayer

    try:
        profile = line_profile(Replayer(trust_store=trust_store), group.representative)
        if isinstance(profile, str):
            return profile
        return plot_png(profile, f"{group.target}: {group.category} ({group.where})")
    except Exception as error:  # one plot that fails costs only itself
        return f"{type(error).__name__}: {error}"


def make_server(state: DashboardState, host: str = "127.0.0.1", port: int = 8050) -> ThreadingHTTPServer:
    """The dashboard's server (``serve_forever()`` to run it; port 0 picks a free one)."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # quiet: the terminal shows the URL only
            pass

        def do_GET(self) -> None:
            url = urlparse(self.path)
            if url.path == "/":
                self._send(200, "text/html; charset=utf-8", render_page(state).encode())
            elif url.path == "/api/state":
                after = parse_qs(url.query).get("after", [None])[0]
                if after is not None:
                    _wait_for_checkpoint(state, after)
                self._send(200, "application/json", json.dumps(state.to_json(), default=str).encode())
            elif url.path.startswith("/plot/") and url.path.endswith(".png"):
                try:
                    picture = state.plot(int(url.path[len("/plot/"):-len(".png")]))
                except ValueError:
                    picture = "no such bug"
                if isinstance(picture, bytes):
                    self._send(200, "image/png", picture)
                else:
                    self._send(404, "text/plain; charset=utf-8", f"No plot: {picture}".encode())
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found")

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True
    return server


def _wait_for_checkpoint(state: DashboardState, after: str) -> None:
    """Return once campaign.json's ``updated`` stamp is not ``after`` (or after `LONG_POLL_SECONDS`)."""
    deadline = time.monotonic() + state.long_poll_seconds
    with state._lock:
        state.waiting += 1
    try:
        while time.monotonic() < deadline and state.campaign().get("updated", "") == after:
            time.sleep(POLL_INTERVAL)
    finally:
        with state._lock:
            state.waiting -= 1


def _script_json(data: dict) -> str:
    """JSON to embed in a <script> element: entities are not decoded there, so "<" is written as its
    JSON escape (nothing in the data can close the element or open a comment)."""
    return json.dumps(data, default=str).replace("<", "\\u003c")


def _count(value: Any) -> str:
    """A number from campaign.json as the page shows it, or "?" when it is not one: the file is data, never markup."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return "?"
    return f"{value:,.0f}"


def _mapping(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def render_page(state: DashboardState) -> str:
    """The page with its current numbers filled in (the script keeps them current)."""
    data = state.to_json()
    campaign = _mapping(data["campaign"])
    targets = [t for t in campaign.get("targets", []) if isinstance(t, dict)] if isinstance(campaign.get("targets"), list) else []
    rows = "".join(
        f"<tr><td>{html.escape(str(t.get('target', '?')))}</td><td class=n>{_count(t.get('examples'))}</td>"
        f"<td class=n>{_count(t.get('examples_per_second'))}</td><td class=n>{_count(t.get('slices_completed'))}</td>"
        f"<td>{html.escape(', '.join(f'{c}: {_count(n)}' for c, n in _mapping(t.get('failures_by_category')).items()) or '-')}</td>"
        f"<td class=n>{_count(sum(n for n in _mapping(t.get('notes')).values() if _count(n) != '?'))}</td>"
        f"<td>{'error' if t.get('error') else ('fail' if t.get('kinds') else 'ok')}</td></tr>"
        for t in targets)
    bugs = "".join(
        f"<li><b class=cat>{html.escape(b['category'])}</b> in <code>{html.escape(b['target'])}</code>, {html.escape(b['where'])}"
        f" — {_count(b['examples_failing'])} examples failing in the {_count(b['runs'])} recorded run(s), "
        f"{html.escape(str(b['status']))}; simplest input "
        f"<code>{html.escape(', '.join(b['input']))}</code> · <a href='/plot/{b['number']}.png'>plot</a>"
        f"<p>{html.escape(b['explanation'])}</p></li>" for b in data["bugs"])
    status = (f"campaign {html.escape(str(campaign.get('campaign', '?')))}: {html.escape(str(campaign.get('status', '?')))}, "
              f"{_count(campaign.get('elapsed_seconds', 0))} s of {_count(campaign.get('budget_seconds', 0))} s, "
              f"{_count(campaign.get('examples', 0))} examples checked") if campaign else "no campaign.json in this store yet"
    return _PAGE.format(store=html.escape(str(state.store)), status=status, rows=rows or "<tr><td colspan=7>-</td></tr>",
                        bugs=bugs or "<li>No failures recorded.</li>", state=_script_json(data),
                        updated=html.escape(str(campaign.get("updated", ""))))


# The page: HTML, CSS and a small script, as a str.format template ({{ }} are literal braces).
_PAGE = Path(__file__).with_name("dashboard.html").read_text(encoding="utf-8")

