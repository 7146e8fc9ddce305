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
  the bug, so it imports the target: the same trust rule as ``replay``). The target runs in a
  supervised worker process (`gradfuzz.supervisor`, started on the first plot and kept warm), one
  plot at a time, under a deadline (`PLOT_SECONDS`): a target that blocks, exits or crashes costs
  its own plot — the request answers with a page saying what happened — never the server, and no
  lock the other pages need is held meanwhile (issue #27).

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

from gradfuzz.values import NO_ELEMENT, short_value

LONG_POLL_SECONDS = 20.0
POLL_INTERVAL = 0.25  # how often a waiting request looks at the checkpoint
PLOT_SECONDS = 50.0  # one plot's deadline in the worker (a request waits for it); past it the worker is replaced


class PlotFailed(str):
    """Why a plot that should exist could not be drawn (the target hung, exited or crashed): a 500, not a 404."""


@dataclass
class DashboardState:
    """What the page shows, read from a store directory (cached until its files change)."""

    store: Path
    trust_store: bool = False
    long_poll_seconds: float = LONG_POLL_SECONDS
    plot_seconds: float = PLOT_SECONDS
    isolate: bool | None = None  # draw plots in a supervised worker (None: unless GRADFUZZ_IN_PROCESS=1)
    _key: tuple | None = None  # the files last read (None: never read)
    _groups: list = field(default_factory=list)
    _problems: list[str] = field(default_factory=list)
    _plots: dict[int, bytes | str] = field(default_factory=dict)
    _bugs: list[dict] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _read_lock: threading.Lock = field(default_factory=threading.Lock)
    _reading: threading.Event = field(default_factory=threading.Event)
    _read_once: bool = False
    _drawing: threading.Lock = field(default_factory=threading.Lock)  # one plot at a time (one worker); never _lock
    _supervisor: Any = None
    waiting: int = 0  # requests waiting for a new checkpoint (tests wait for this event)
    drawing: int = 0  # plot requests being drawn or waiting to be (tests wait for this event)

    def campaign(self) -> dict[str, Any]:
        try:
            return json.loads((self.store / "campaign.json").read_text())
        except (OSError, ValueError):
            return {}

    def files(self) -> tuple:
        """The store's segment files (names, sizes, mtimes): () while the store does not exist."""
        try:
            return tuple(sorted((str(p), p.stat().st_size, p.stat().st_mtime_ns)
                                for kind in ("failures", "status") for p in (self.store / kind).glob("*") if p.is_file()))
        except OSError:  # a file removed while listed: read again next time
            return (None,)

    def groups(self, wait: bool = True) -> list | None:
        """Triage of the store, read again only when a segment file changed. ``wait=False`` never
        waits for a read: it returns what was read before (None before the first read) and reads in
        the background, so the page comes up at once however large the store."""
        key = self.files()
        if key == self._key:
            return self._groups
        if not wait:
            if not self._reading.is_set():
                self._reading.set()
                threading.Thread(target=self._read_in_background, daemon=True).start()
            return self._groups if self._read_once else None
        self._read(key)
        return self._groups

    def _read_in_background(self) -> None:
        try:
            self._read(self.files())
        finally:
            self._reading.clear()

    def _read(self, key: tuple) -> None:
        from gradfuzz.store import FailureStore, StoreError
        from gradfuzz.triage import triage

        with self._read_lock:  # one read at a time; the state's own lock is not held meanwhile
            if key == self._key:
                return
            try:
                read = FailureStore(self.store).read()
                groups, problems = triage(read.failures), read.problems
            except StoreError as error:
                groups, problems = [], [str(error)]
            bugs = [_bug(n, g) for n, g in enumerate(groups, 1)]  # summarised once per change of the store
            with self._lock:
                self._groups, self._problems, self._bugs, self._key, self._read_once = groups, problems, bugs, key, True
                self._plots.clear()

    def to_json(self, wait: bool = True) -> dict[str, Any]:
        groups = self.groups(wait)
        with self._lock:
            bugs = self._bugs if groups is not None else None
            problems = list(self._problems)
        exists = self.store.is_dir()
        return {"campaign": self.campaign(), "bugs": bugs, "problems": problems, "reading": bugs is None and exists,
                "store_exists": exists}

    def plot(self, number: int) -> bytes | str:
        """PNG bytes of bug ``number``'s plot, or why there is none (a `PlotFailed` when the target
        hung, exited or crashed while it was drawn). Returns within the plot deadline (plus a worker's
        start, and one earlier plot's deadline when it must wait for it)."""
        groups = self.groups()
        if not 1 <= number <= len(groups):
            return "no such bug"
        group = groups[number - 1]
        why_not = no_plot(group.representative)
        if why_not is not None:  # nothing to draw: the target is not imported at all
            return why_not
        with self._lock:
            picture = self._plots.get(number)
            self.drawing += 1
        try:
            if picture is None:  # drawn without the state's lock: a replay may take seconds
                if not self._drawing.acquire(timeout=self.plot_seconds + 30.0):
                    return PlotFailed("another plot is still being drawn; ask again in a minute")
                try:
                    with self._lock:
                        picture = self._plots.get(number)  # drawn while this request waited
                    if picture is None:
                        picture = self._draw(group)
                        with self._lock:
                            self._plots[number] = picture
                finally:
                    self._drawing.release()
        finally:
            with self._lock:
                self.drawing -= 1
        return picture

    def _draw(self, group) -> bytes | str:
        from gradfuzz.supervisor import Supervisor, WorkerFailed, WorkerLost, in_process

        isolate = not in_process() if self.isolate is None else self.isolate
        if not isolate:
            return _draw(group, self.trust_store)
        if self._supervisor is None:
            self._supervisor = Supervisor()
        try:
            return self._supervisor.call("plot", self.plot_seconds, group=group, trust_store=self.trust_store)
        except WorkerLost as lost:
            return PlotFailed(f"the target's {lost.stage} {lost.describe()} while the plot was drawn. It ran in a "
                              "supervised process, which was ended and will be replaced; the dashboard goes on. "
                              "The numbers on the page are from the store; `gradfuzz replay` shows what it does now.")
        except WorkerFailed as failed:
            return PlotFailed(f"drawing it failed in gradfuzz's worker process: {failed.kind}: {failed.message}")

    def close(self) -> None:
        """End the plots' worker process (if one was started)."""
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            supervisor.close()


def no_plot(record) -> str | None:
    """Why a record has no plot along a line (`html_report.line_profile`'s cheap checks), or None:
    the page links only plots that can be drawn."""
    if not record.cotangents:
        return "a contract or exception finding has no failing gradient value to plot"
    if record.argument is None:
        return NO_ELEMENT
    specs = list(record.specs)
    if record.argument >= len(specs) or str(specs[record.argument]).startswith("complex"):
        return "plots are drawn for real arguments only"
    return None


def _bug(number: int, group) -> dict[str, Any]:
    representative = group.representative  # computed once: the simplest of the group's records
    why_not = no_plot(representative)
    return {"number": number, "target": group.target, "category": group.category, "where": group.where, "runs": group.count,
            "examples_failing": group.examples, "status": group.status, "explanation": representative.explanation,
            "input": [short_value(x) for x in representative.inputs], "plot": why_not is None, "no_plot": why_not or ""}


def _draw(group, trust_store: bool) -> bytes | str:
    from gradfuzz.replay import Replayer

    return draw(Replayer(trust_store=trust_store), group)


def draw(replayer, group) -> bytes | str:
    """Bug ``group``'s plot as PNG bytes, or why there is none (run in the plots' worker process)."""
    from gradfuzz.html_report import line_profile, plot_png

    try:
        profile = line_profile(replayer, group.representative)
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
                self._send(200, "text/html; charset=utf-8", render_page(state, wait=False).encode())
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
                    self._send(500 if isinstance(picture, PlotFailed) else 404, "text/plain; charset=utf-8",
                               f"No plot: {picture}".encode())
            else:
                self._send(404, "text/plain; charset=utf-8", b"not found")

        def _send(self, code: int, kind: str, body: bytes) -> None:
            try:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError, ConnectionAbortedError):
                self.close_connection = True  # the browser left (a closed tab, a reload): nothing to tell anyone

    class Server(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address) -> None:
            import sys

            if isinstance(sys.exc_info()[1], ConnectionError):  # a browser that went away mid-request
                return
            super().handle_error(request, client_address)

        def server_close(self) -> None:
            super().server_close()
            state.close()  # the plots' worker process ends with the server

    server = Server((host, port), Handler)
    threading.Thread(target=state.groups, daemon=True).start()  # read the store before the first request asks
    return server


def _wait_for_checkpoint(state: DashboardState, after: str) -> None:
    """Return once campaign.json's ``updated`` stamp is not ``after`` (or after `LONG_POLL_SECONDS`)."""
    deadline = time.monotonic() + state.long_poll_seconds
    with state._lock:
        state.waiting += 1
    files = state.files()
    try:  # a new checkpoint, or new records (a check writing to the store, the store being created)
        while time.monotonic() < deadline and state.campaign().get("updated", "") == after and state.files() == files:
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


def render_page(state: DashboardState, wait: bool = True) -> str:
    """The page with its current numbers filled in (the script keeps them current). ``wait=False``
    does not wait for the store's first read: the bug list then says it is being read."""
    data = state.to_json(wait)
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
        f"<code>{html.escape(', '.join(b['input']))}</code> · "
        + (f"<a href='/plot/{b['number']}.png'>plot</a>" if b["plot"] else f"no plot ({html.escape(b['no_plot'])})")
        + f"<p>{html.escape(b['explanation'])}</p></li>" for b in data["bugs"] or [])
    if campaign:
        status = (f"campaign {html.escape(str(campaign.get('campaign', '?')))}: {html.escape(str(campaign.get('status', '?')))}, "
                  f"{_count(campaign.get('elapsed_seconds', 0))} s of {_count(campaign.get('budget_seconds', 0))} s, "
                  f"{_count(campaign.get('examples', 0))} examples checked")
    elif not data["store_exists"]:
        status = "no store here yet: waiting for a campaign (or a check with --store) to create it"
    else:
        status = "no campaign.json in this store yet (records from checks are listed below)"
    empty = "<li>Reading the store…</li>" if data["reading"] else "<li>No failures recorded.</li>"
    return _PAGE.format(store=html.escape(str(state.store)), status=status, rows=rows or "<tr><td colspan=7>-</td></tr>",
                        bugs=bugs or empty, state=_script_json(data),
                        updated=html.escape(str(campaign.get("updated", ""))))


# The page: HTML, CSS and a small script, as a str.format template ({{ }} are literal braces).
_PAGE = Path(__file__).with_name("dashboard.html").read_text(encoding="utf-8")

