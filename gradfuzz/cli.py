"""The ``gradfuzz`` command line.

Exit codes: 0 nothing failed, 1 failures found (or reproduced), 2 usage,
target, spec or store error, or (``check``, nothing failing) a target that could
not be checked — with a message that says what to do; 130 a
campaign stopped by Ctrl-C before its budget with nothing found.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click
import numpy as np
from rich.console import Console
from rich.markup import escape
from rich.table import Table

EXIT_OK, EXIT_FAILURES, EXIT_ERROR, EXIT_INTERRUPTED = 0, 1, 2, 130

# Off a terminal (pipes, CI logs) rich would wrap at 80 columns; logs read better wide.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 140)
stderr = Console(stderr=True, highlight=False)


class _Group(click.Group):
    """Exit code 2 for usage errors is click's default; keep our messages uniform."""


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="gradfuzz")
def main() -> None:
    """gradfuzz: fuzz TensorFlow custom gradients against autodiff and finite differences."""


@main.command()
@click.argument("targets", nargs=-1, required=True)
@click.option("--input", "-i", "inputs", multiple=True, metavar="SPEC",
              help="One per positional argument, e.g. 'float32[3,5]@-50..50'; 'float32[n,3]' (n = 3, 1, 0) and "
                   "'float32[*]' (broadcastable shapes) check several shapes. Default: the specs declared with @gradfuzz.inputs.")
@click.option("--budget", default=None, callback=lambda c, p, v: _duration(c, p, v),
              help="Time per target: 30s, 5m, 1h (default 30s; with --max-examples, only a 10m safety net).")
@click.option("--max-examples", type=click.IntRange(min=1), default=None,
              help="Stop a target after exactly this many examples (shared by its shape variants).")
@click.option("--seed", type=int, default=None, help="Seed for a reproducible run.")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), default=Path(".gradfuzz"), show_default=True,
              help="Directory of the failure store.")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--no-shrink", is_flag=True, help="Skip shrinking new failures to simpler inputs.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None,
              help="Examples per batch (default: with --max-examples, fixed at max-examples/16 rounded down "
                   "to a power of two; otherwise grown while throughput improves).")
@click.option("--jit", is_flag=True, help="Compile the batch function with XLA where the target allows it.")
@click.option("--order", type=click.Choice(["1", "2"]), default="1", show_default=True,
              help="2: also check the gradient of the custom gradient (Hessian-vector products).")
@click.option("--reference", default=None, metavar="TARGET",
              help="A function computing the same forward whose autodiff is the reference (module:attr or file.py:attr).")
@click.option("--modes", default="function", show_default=True,
              help="Comma-separated execution modes to compare: eager,function,xla.")
@click.option("--precision-digits", type=click.FloatRange(min=0), default=None,
              help="Digits a right formula may lose at its dtype before it is a 'precision' failure (default 2).")
@click.option("--memory-limit", default=None, metavar="SIZE",
              help="Cap the address space of the process running the targets (4G, 512M): a target that allocates "
                   "without bound is then a recorded 'exception' finding. Default: GRADFUZZ_MEMORY_LIMIT, else none.")
def check(targets, inputs, budget, max_examples, seed, store, output_format, no_shrink, batch_size, jit, order, reference,
          modes, precision_digits, memory_limit=None) -> None:
    """Fuzz the gradients of TARGET(s): 'pkg.module:attr', 'path/file.py:attr', or a module/file (every declared target)."""
    _validate_check(targets, inputs, reference, modes)  # before anything imports TensorFlow: a usage error in a second
    from gradfuzz.options import CheckOptions
    from gradfuzz.supervisor import in_process

    # Built once, carried into every check this command starts (in this process or the worker).
    options = CheckOptions(seed=seed, shrink=not no_shrink, batch_size=batch_size, jit=jit, order=int(order),
                           modes=tuple(m.strip() for m in modes.split(",") if m.strip()))
    if not in_process():  # the targets run in a supervised worker process (gradfuzz/supervisor.py)
        _check_supervised(targets, inputs, budget, max_examples, seed, store, output_format, reference, precision_digits,
                          memory_limit, options)
    from gradfuzz.checker import check_target
    from gradfuzz.durations import parse_duration
    from gradfuzz.planning import CheckRequest, plan_checks
    from gradfuzz.spec import SpecError
    from gradfuzz.store import FailureStore, StoreError
    from gradfuzz.target import TargetError, load_targets, with_reference

    try:
        seconds = parse_duration(budget)
        loaded = [with_reference(t, reference) for name in targets for t in load_targets(name)]
        if precision_digits is not None:
            for target in loaded:
                target.precision_digits = precision_digits
        # The budget and example count are per target, shared by its shape variants.
        planned = plan_checks(CheckRequest((t,), tuple(inputs) or None, seconds, max_examples) for t in loaded)
    except (TargetError, SpecError, ValueError) as error:
        _fail(str(error))
    reports = []
    try:
        with FailureStore(store) as failure_store, _stdout_to_stderr(output_format == "json"):
            failure_store.ensure_writable()
            for plan in planned:
                with _progress(plan.target.name, output_format, (seconds or 30.0) if budget or not max_examples else None,
                               max_examples) as update:
                    report = check_target(plan.target, plan.specs, options.for_check(plan.seconds, plan.max_examples),
                                          store=failure_store, on_progress=update)
                reports.append(report)
                if output_format == "text":
                    _print_report(report)
    except StoreError as error:
        _fail(str(error))
    except KeyboardInterrupt:
        stderr.print(f"[yellow]Interrupted: the failures found so far are in {store}.[/]")
    _exit_check(reports, len(planned), store, output_format)




def _target_problem(name: str, what: str = "Target") -> str | None:
    """What is wrong with a target name that can be told without importing anything: no module or file named,
    a file that does not exist, a module name that is not one (whether a module imports is the worker's to say)."""
    module_part, _, _ = name.partition(":")
    if not module_part.strip():
        return f"{what} {name!r} names no module or file. Use 'pkg.module:attr' or 'path/file.py:attr'."
    if module_part.endswith(".py") or "/" in module_part or "\\" in module_part:
        if not Path(module_part).is_file():
            return f"No such file: {module_part!r} (relative to {Path.cwd()}). Check the path of the target."
        return None
    if not all(part.isidentifier() for part in module_part.split(".")):
        return (f"{what} {name!r}: {module_part!r} is neither a module name nor a Python file. Use 'pkg.module:attr' "
                "or 'path/file.py:attr'.")
    return None


def _validate_check(targets, inputs, reference, modes) -> None:
    """`check`'s arguments, specs and target names, checked before TensorFlow is imported (here or in the worker):
    a mistyped spec or path is a usage error (exit 2) at once, naming the fix."""
    from gradfuzz.options import EXECUTION_MODES
    from gradfuzz.spec import SpecError, spec_variants

    unknown = [m.strip() for m in modes.split(",") if m.strip() and m.strip() not in EXECUTION_MODES]
    if unknown:
        _fail(f"Unknown execution mode(s) {', '.join(unknown)}: choose from {', '.join(EXECUTION_MODES)}, "
              "e.g. --modes eager,function,xla.")
    problems = [_target_problem(name) for name in targets]
    if reference is not None:
        problems.append(_target_problem(reference, "The reference"))
    for problem in problems:
        if problem is not None:
            _fail(problem)
    if inputs:
        try:
            spec_variants(tuple(inputs))
        except (SpecError, ValueError) as error:
            _fail(str(error))


def _check_supervised(targets, inputs, budget, max_examples, seed, store, output_format, reference, precision_digits,
                      memory_limit, options) -> None:
    """`check` with the targets in a supervised worker: a target that exits, crashes or hangs is a finding."""
    from gradfuzz.durations import parse_duration
    from gradfuzz.store import FailureStore, StoreError
    from gradfuzz.supervisor import CheckRequestError, Supervisor, check_in_worker, parse_size

    try:
        seconds, limit = parse_duration(budget), parse_size(memory_limit)
    except ValueError as error:
        _fail(str(error))
    reports, planned = [], None
    try:
        with Supervisor(memory_limit=limit) as supervisor:
            supervisor.start()  # TensorFlow loads in the worker while the store is checked
            with FailureStore(store) as failure_store:
                failure_store.ensure_writable()
            reports, planned = check_in_worker(
                supervisor, targets, inputs=inputs, reference=reference, precision_digits=precision_digits, budget=seconds,
                max_examples=max_examples, seed=seed, store=store, options=options,
                progress=lambda name: _progress(name, output_format, (seconds or 30.0) if budget or not max_examples else None,
                                                max_examples),
                on_report=lambda report: _print_report(report) if output_format == "text" else None)
    except (CheckRequestError, StoreError) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        stderr.print(f"[yellow]Interrupted: the failures found so far are in {store}.[/]")
    _exit_check(reports, planned, store, output_format)


def _supervisor():
    """A `gradfuzz.supervisor.Supervisor` running user code in a worker process, or (GRADFUZZ_IN_PROCESS=1) None."""
    import contextlib

    from gradfuzz.supervisor import Supervisor, in_process

    if in_process():
        return contextlib.nullcontext()
    supervisor = Supervisor()
    supervisor.start()  # the worker imports TensorFlow while this process reads the store
    return supervisor


def _exit_check(reports, planned, store, output_format) -> None:
    ok = all(r.ok for r in reports) and len(reports) == planned
    if output_format == "json":
        document = {"ok": ok, "store": str(store), "targets": [r.to_json() for r in reports]}
        click.echo(json.dumps(document, indent=2, allow_nan=False, default=str))
    else:
        _print_summary(reports, store)
    # 1 is for failures found; a target that could not be checked (an error verdict: why is printed) is 2.
    failed = any(r.failures for r in reports) or planned is None or len(reports) < planned
    sys.exit(EXIT_OK if ok else EXIT_FAILURES if failed or not any(r.error for r in reports) else EXIT_ERROR)


STORE_ARGUMENT = click.argument("store", required=False, type=click.Path(file_okay=False, path_type=Path), default=Path(".gradfuzz"))


def _read_store(store: Path):
    from gradfuzz.store import FailureStore, StoreError

    try:
        read = FailureStore(store).read()
    except StoreError as error:
        _fail(str(error))
    for problem in read.problems:
        stderr.print(f"[yellow]warning:[/] {escape(problem)}")
    return read


@main.command()
@STORE_ARGUMENT
@click.option("--target", "target_filter", default=None, help="Replay only this target's failures.")
@click.option("--since", default=None, help="Only failures recorded since: a date (2026-11-28) or an age (2h, 3d).")
@click.option("--repeat", type=click.IntRange(min=1), default=1, show_default=True,
              help="Run each failure N times; partial reproduction is reported as flaky (k of n).")
@click.option("--trust-store", is_flag=True,
              help="Import whatever code the records name (default: only the working directory's and TensorFlow's).")
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def replay(store, target_filter, since, repeat, trust_store, output_format) -> None:
    """Re-run every stored failure from its stored bits; report reproduced, fixed or flaky."""
    supervising = _supervisor()  # first: its worker imports TensorFlow while this process does
    from gradfuzz.replay import Replayer, parse_since, replay_store
    from gradfuzz.store import FailureStore, StoreError
    from gradfuzz.supervisor import SupervisedReplayer

    try:
        since_time = parse_since(since) if since else None
        with FailureStore(store) as failure_store, supervising as supervisor:
            results, problems = replay_store(failure_store, target_filter=target_filter, since=since_time, repeat=repeat,
                                             replayer=Replayer(trust_store=trust_store) if supervisor is None else
                                             SupervisedReplayer(supervisor, trust_store=trust_store))
    except (StoreError, ValueError) as error:
        _fail(str(error))
    for problem in problems:
        stderr.print(f"[yellow]warning:[/] {escape(problem)}")
    failing = [r for r in results if r.failing]
    if output_format == "json":
        click.echo(json.dumps({"store": str(store), "results": [r.to_json() for r in results], "problems": problems},
                              indent=2, default=str))
    else:
        _print_replay(results, store)
    sys.exit(EXIT_FAILURES if failing else EXIT_OK)


def _print_replay(results, store) -> None:
    if not results:
        stdout.print(f"No stored failures in {store}.")
        return
    table = Table(title=f"Replay of {store}", show_lines=False)
    for column in ("status", "category", "target", "input", "detail"):
        table.add_column(column, overflow="fold")
    colours = {"reproduced": "red", "flaky": "magenta", "fixed": "green", "target-missing": "yellow"}
    for r in results:
        status = f"flaky ({r.reproduced} of {r.runs})" if r.status == "flaky" else r.status
        shown = ", ".join(_short(x) for x in r.failure.inputs)
        table.add_row(f"[{colours.get(r.status, 'white')}]{status}[/]", r.failure.category, escape(r.failure.target),
                      shown, escape(r.detail[:200]))
    stdout.print(table)
    counts = {s: sum(r.status == s for r in results) for s in ("reproduced", "flaky", "fixed", "target-missing")}
    stdout.print(", ".join(f"{n} {s}" for s, n in counts.items() if n))
    missing = [r for r in results if r.failing and r.status == "target-missing"]
    if missing:
        names = ", ".join(sorted({f"{r.failure.target} [{r.failure.category}]" for r in missing}))
        stdout.print(f"[red]{len(missing)} open failure(s) name a target that cannot be loaded ({escape(names)}): this fails. "
                     "Restore the target, or replay with the code it moved to once it loads again.[/]", soft_wrap=True)


@main.command()
@STORE_ARGUMENT
@click.option("--format", "output_format", type=click.Choice(["text", "json"]), default="text", show_default=True)
def triage(store, output_format) -> None:
    """Group stored failures into distinct bugs (target, category, argument, region)."""
    from gradfuzz.triage import triage as group

    groups = group(_read_store(store).failures)
    if output_format == "json":
        click.echo(json.dumps({"store": str(store), "groups": [{
            "signature": g.signature, "target": g.target, "category": g.category, "argument": g.argument,
            "regions": g.regions, "where": g.where, "runs": g.count, "examples_failing": g.examples,
            "count": g.count, "examples": g.examples, "status": g.status,  # (older names of runs, examples_failing)
            "representative": {"id": g.representative.id, "inputs": [np.asarray(x, dtype=np.float64).tolist()
                                                                     for x in g.representative.inputs],
                               **_headline_numbers(g.representative)},
        } for g in groups]}, indent=2))
        return
    table = Table(title=f"{len(groups)} distinct bug(s) in {store}")
    for column in ("#", "target", "finding", "arg", "where", "runs recorded", "examples failing in them", "status",
                   "simplest input"):
        table.add_column(column, overflow="fold")
    for number, g in enumerate(groups, 1):
        table.add_row(str(number), escape(g.target), g.category, "*" if g.argument is None else str(g.argument),
                      escape(g.where), str(g.count), f"{g.examples:,}", g.status,
                      ", ".join(_short(x) for x in g.representative.inputs))
    stdout.print(table)


@main.command()
@STORE_ARGUMENT
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--overwrite", is_flag=True, help="Replace DIRECTORY if it is not empty.")
def export(store, directory, overwrite) -> None:
    """Write the store as a hive-partitioned Parquet dataset (pandas, polars, DuckDB)."""
    from gradfuzz.export import export_dataset

    failures = _read_store(store).failures
    try:
        rows = export_dataset(failures, directory, overwrite=overwrite, store=store)
    except (FileExistsError, OSError) as error:
        _fail(str(error))
    stdout.print(f"{rows} failure record(s) written to {directory}/ (partitioned by target_key and category).")


@main.command()
@STORE_ARGUMENT
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the HTML report.")
@click.option("--trust-store", is_flag=True,
              help="Import whatever code the records name (default: only the working directory's and TensorFlow's).")
def report(store, html_path, trust_store) -> None:
    """An HTML report: one section per distinct bug, with a plot along the failing input."""
    from gradfuzz.html_report import render
    from gradfuzz.replay import Replayer
    from gradfuzz.supervisor import picture_in_worker
    from gradfuzz.triage import triage as group

    groups = [g for g in group(_read_store(store).failures) if g.status == "open"]
    try:
        with _supervisor() as supervisor:  # each plot is drawn in the worker (a crashing target costs its plot only)
            picture = None if supervisor is None else picture_in_worker(supervisor, trust_store)
            html_path.write_text(render(groups, str(store), Replayer(trust_store=trust_store), picture=picture))
    except OSError as error:
        _fail(f"Cannot write {html_path}: {error.strerror or error}.")
    stdout.print(f"Report of {len(groups)} open bug(s) written to {html_path}.")


@main.command()
@STORE_ARGUMENT
@click.option("--port", type=click.IntRange(0, 65535), default=8050, show_default=True, help="Port to serve on (0: any free one).")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; the default serves this machine only (the page shows your code's findings).")
@click.option("--trust-store", is_flag=True, help="Let plots import whatever code the records name (as for replay).")
def dashboard(store, port, host, trust_store) -> None:
    """A live web page for a running or finished campaign: throughput and findings over time, bugs, incidents."""
    from gradfuzz.dashboard import DashboardState, make_server

    if Path(store).exists() and not Path(store).is_dir():
        _fail(f"{store} is not a directory; a gradfuzz store is a directory (default .gradfuzz/).")
    try:
        server = make_server(DashboardState(Path(store), trust_store=trust_store), host, port)
    except OSError as error:
        _fail(f"Cannot serve on {host}:{port}: {error.strerror or error}. Pick another --port.")
    stdout.print(f"gradfuzz dashboard for {store}: http://{host}:{server.server_address[1]}/  (Ctrl-C stops it)")
    if not Path(store).is_dir():  # start it beside a campaign that has not created its store yet
        stdout.print(f"No store at {store} yet: the page waits for a campaign (or a check with --store) to create it.")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


@main.command("export-tests")
@STORE_ARGUMENT
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), default=Path("test_gradfuzz_regressions.py"),
              show_default=True)
def export_tests(store, output) -> None:
    """Write a pytest file of the minimal failing inputs (one per distinct open bug)."""
    from gradfuzz.regression import write_tests
    from gradfuzz.triage import triage as group

    groups = [g for g in group(_read_store(store).failures) if g.status == "open"]
    count = write_tests([g.representative for g in groups], output, str(store))
    stdout.print(f"{count} regression test(s) written to {output}; they fail until the gradients are fixed.")


@main.command()
@click.argument("config_path", metavar="CONFIG.toml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--budget", default=None, callback=lambda c, p, v: _duration(c, p, v),
              help="Total time (default: the config's budget, else 30m).")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a JUnit XML report for CI systems.")
@click.option("--trust-store", is_flag=True,
              help="Import whatever code the records name (default: only the working directory's and TensorFlow's).")
@click.option("--create-store", is_flag=True,
              help="Create the config's store if it does not exist (a first gate); without it a missing store is an error.")
def gate(config_path, budget, junit_path, trust_store, create_store) -> None:
    """Release gate: replay every open failure and fuzz every target; exit 0 only if all is clean."""
    supervising = _supervisor()  # first: its worker imports TensorFlow while this process does
    from gradfuzz.config import ConfigError, load_config
    from gradfuzz.durations import parse_duration
    from gradfuzz.gate import junit_xml, run_gate
    from gradfuzz.store import StoreError, StoreLock

    try:
        config = load_config(config_path)
        if not config.store.exists() and not create_store:  # a misspelled store would pass, replaying nothing
            raise StoreError(f"The store {config.store} (store = ... in {config_path}) does not exist, so there is nothing "
                             "to replay: fix the path, or pass --create-store for the first gate on a new store.")
        seconds = parse_duration(budget) if budget else (config.budget or 1800.0)
        with StoreLock(config.store, f"gradfuzz gate {config_path}"), supervising as supervisor:
            result = run_gate(config, seconds, trust_store=trust_store, supervisor=supervisor)
    except (ConfigError, ValueError, StoreError) as error:
        _fail(str(error))
    if junit_path is not None:
        junit_path.write_text(junit_xml(result))
    for problem in result.problems:
        stderr.print(f"[yellow]warning:[/] {escape(problem)}")
    _print_replay(result.replayed, config.store)
    for report in result.fuzzed:
        _print_report(report)
    for target, message in result.errors:
        stdout.print(f"[red]✗ {escape(target)}[/]: {escape(message)}", soft_wrap=True)
    verdict = "[green]PASSED[/]" if result.ok else "[red]FAILED[/]"
    stdout.print(f"\nGate {verdict}: {len(result.reproduced)} stored failure(s) reproduce, "
                 f"{len(result.new_failures)} target(s) with new failures, {len(result.errors)} target error(s) "
                 f"({result.seconds:.0f} s).")
    sys.exit(EXIT_OK if result.ok else EXIT_FAILURES)


@main.command()
@click.argument("config_path", metavar="CONFIG.toml", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--budget", default=None, callback=lambda c, p, v: _duration(c, p, v),
              help="Total wall-clock time: 90s, 30m, 8h (default: the config's budget, else 10m).")
@click.option("--workers", type=click.IntRange(min=1), default=None,
              help="Ray workers (default: one per GPU, else one per CPU). The local executor has one.")
@click.option("--executor", "executor_name", type=click.Choice(["local", "ray"]), default=None,
              help="local: in this process (default); ray: Ray actors, on a local Ray instance unless --address.")
@click.option("--address", default=None, metavar="ADDR",
              help="Join this Ray cluster (host:6379, or ray://host:10001); implies --executor ray.")
@click.option("--resume", is_flag=True, help="Continue the campaign checkpointed in the store (after a crash or Ctrl-C).")
@click.option("--slice", "slice_length", default=None, callback=lambda c, p, v: _duration(c, p, v),
              help="Length of one unit of work on a worker (default: budget/4 per target, between 3 s and 30 s).")
@click.option("--working-dir", type=click.Path(file_okay=False, exists=True), default=None,
              help="Upload this directory to the Ray workers (a cluster whose nodes lack your code).")
def campaign(config_path, budget, workers, executor_name, address, resume, slice_length, working_dir) -> None:
    """Fuzz every target of CONFIG.toml for a shared budget, locally or on Ray; checkpointed and resumable."""
    from gradfuzz.campaign import Campaign, CampaignError, resolve_targets, run_campaign
    from gradfuzz.config import ConfigError, load_config
    from gradfuzz.durations import parse_duration
    from gradfuzz.store import StoreError, StoreLock

    executor_name = executor_name or ("ray" if address else "local")
    if executor_name == "local" and (workers or 1) > 1:
        _fail(f"--workers {workers} needs --executor ray: the local executor runs one worker in this process.")
    if executor_name == "local" and address:
        _fail("--address joins a Ray cluster: use it with --executor ray (or leave --executor out).")
    try:
        config = load_config(config_path)
        seconds = parse_duration(budget) if budget else None
        slice_seconds = parse_duration(slice_length) if slice_length else None
        refs = resolve_targets(config)
        # Held until this process exits: a second campaign on the store would rename this one's checkpoint.
        lock = StoreLock(config.store, f"gradfuzz campaign {config_path}").__enter__()
        if resume:
            state = Campaign.resume(config, refs, seconds, slice_seconds)
        else:
            _set_aside_unfinished(config.store)
            state = Campaign.create(config, refs, seconds or config.budget or 600.0, slice_seconds)
    except (ConfigError, CampaignError, ValueError, StoreError) as error:
        _fail(str(error))
    executor = _make_executor(executor_name, [ref for ref, _, _ in refs], workers, address, working_dir)
    stop = _StopOnSignal()
    state.executor = {"name": executor_name, "address": address, "workers": executor.workers_alive}
    try:
        with stop, _CampaignProgress(state) as progress:
            state.executor["worker_info"] = executor.worker_info
            run_campaign(state, executor, stop_requested=stop.requested, on_update=progress.update)
    except StoreError as error:
        _fail(str(error))
    finally:
        executor.shutdown()
        lock.__exit__()
    _print_campaign(state)
    if state.failed:
        sys.exit(EXIT_FAILURES)
    if state.status == "finished" and not state.errors and not sum(s.examples for s in state.targets):
        _fail(f"The campaign checked no example: its budget ({state.budget:g} s) left no slice of at least 1 s to run, "
              "or every slice ended before its first example. Give it a larger --budget (e.g. 10m).")
    if state.errors:
        sys.exit(EXIT_ERROR)
    sys.exit(EXIT_INTERRUPTED if state.status == "interrupted" else EXIT_OK)


def _set_aside_unfinished(store: Path) -> None:
    from gradfuzz.campaign import CHECKPOINT, CampaignError, load_checkpoint

    checkpoint = store / CHECKPOINT
    if not checkpoint.exists():
        return
    try:
        previous = load_checkpoint(checkpoint)
        old_id, status = previous.id, previous.status
    except CampaignError:
        old_id, status = "unreadable", "unknown"
    kept = checkpoint.with_name(f"campaign-{old_id}.json")
    checkpoint.replace(kept)
    if status != "finished":
        stderr.print(f"[yellow]note:[/] the {status} campaign {old_id} in {store}/ is kept as {kept.name}; this starts a new "
                     "campaign (use --resume to continue the last one instead).")


def _make_executor(name: str, targets, workers, address, working_dir):
    from gradfuzz.executors import LocalExecutor, RayExecutor

    if name == "local":  # its slices in a supervised worker process (GRADFUZZ_IN_PROCESS=1: in this one)
        from gradfuzz.supervisor import SupervisedLocalExecutor, in_process

        return LocalExecutor(targets) if in_process() else SupervisedLocalExecutor(targets)
    try:
        return RayExecutor(targets, workers=workers, address=address, working_dir=working_dir)
    except (ConnectionError, RuntimeError, ValueError) as error:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        _fail(f"Could not start the Ray executor on {where}: {error}. Check the address (ray status --address ADDR) and, "
              "for a cluster with token authentication, that RAY_AUTH_TOKEN (or ~/.ray/auth_token) holds its token; "
              "or run with --executor local.")


class _StopOnSignal:
    """First Ctrl-C (or SIGTERM, as Kubernetes sends before preempting) asks for a clean stop:
    running slices finish their batch, everything is recorded and a summary printed. A second
    Ctrl-C stops at once (records already stored are safe; the checkpoint allows --resume)."""

    def __init__(self):
        self._requested = False

    def requested(self) -> bool:
        return self._requested

    def _handle(self, signum, frame):
        import signal

        if self._requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self._requested = True
        stderr.print("\n[yellow]Stopping: running slices finish their current batch and are recorded "
                     "(Ctrl-C again to stop at once; --resume continues later).[/]")

    def __enter__(self):
        import signal

        self._previous = {sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)}
        return self

    def __exit__(self, *exc):
        import signal

        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False


class _CampaignProgress:
    """Live table on a terminal; a line every 15 s in logs (CI, pipes)."""

    LOG_EVERY = 15.0

    def __init__(self, state):
        self.state = state
        self.live = None
        self._last_line = 0.0

    def __enter__(self):
        if stdout.is_terminal:
            from rich.live import Live

            self.live = Live(_campaign_table(self.state), console=stdout, refresh_per_second=2, transient=True)
            self.live.__enter__()
        else:
            stdout.print(f"campaign {self.state.id}: {len(self.state.targets)} target(s), budget "
                         f"{self.state.budget:.0f} s, slices of {self.state.slice_seconds:.0f} s, store {self.state.store}/")
        return self

    def update(self, state) -> None:
        import time

        if self.live is not None:
            self.live.update(_campaign_table(state))
        elif time.monotonic() - self._last_line >= self.LOG_EVERY:
            self._last_line = time.monotonic()
            parts = [f"{s.ref.name.rsplit(':', 1)[-1]} {s.examples:,} checked, {len(s.signatures)} finding(s)" for s in state.targets]
            stdout.print(f"[{state.elapsed:5.0f}s/{state.budget:.0f}s] " + " | ".join(parts), soft_wrap=True)

    def __exit__(self, *exc):
        if self.live is not None:
            self.live.__exit__(*exc)
        return False


def _campaign_table(state) -> Table:
    elapsed = state.elapsed
    total = sum(s.seconds for s in state.targets) or 1.0
    table = Table(title=f"campaign {state.id} — {elapsed:.0f} s of {state.budget:.0f} s, {state.remaining:.0f} s left, "
                        f"{len(state.incidents)} incident(s)")
    for column in ("target", "examples checked", "examples/s", "slices", "time", "findings: examples failing", "notes",
                   "status"):
        table.add_column(column)
    names = [s.ref.name for s in state.targets]
    for s in state.targets:
        label = s.ref.name if names.count(s.ref.name) == 1 else f"{s.ref.name} ({', '.join(i.split('@')[0] for i in s.ref.inputs)})"
        failures = ", ".join(f"{c}: {n:,}" for c, n in s.failures_by_category().items()) or "-"
        # A target no slice checked an example of has no verdict: 'not run', never 'ok'.
        status = "[red]error[/]" if s.error else ("[red]fail[/]" if s.kinds else "[green]ok[/]" if s.examples
                                                   else "[yellow]not run[/]")
        table.add_row(escape(label), f"{s.examples:,}", f"{s.rate:,.0f}", str(s.slices), f"{100 * s.seconds / total:.0f}%",
                      escape(failures), str(len(s.notes)), status)
    return table


def _print_campaign(state) -> None:
    stdout.print(_campaign_table(state))
    for incident in state.incidents:
        line = f"[yellow]{incident['kind']}[/] {escape(incident['target'])} slice {incident['slice']} (seed {incident['seed']}): " \
               f"{escape(incident['message'])} → {incident['action']}"
        if incident.get("reproduce"):
            line += f"; reproduce: {escape(incident['reproduce'])}"
        stdout.print(line, soft_wrap=True)
    for name, error in state.errors:
        stdout.print(f"[red]✗ {escape(name)}[/]: {escape(error)}", soft_wrap=True)
    records = sum(len(s.kinds) for s in state.targets)
    examples = sum(s.examples for s in state.targets)
    stdout.print(f"Campaign {state.id} {state.status}: {examples:,} examples, {state.failure_kinds} failure kind(s) "
                 f"({records} record(s), one per input region) in {state.store}/, checkpoint {state.store}/campaign.json." + (
                     " Continue with --resume." if state.status == "interrupted" else ""), soft_wrap=True)
    if records:
        stdout.print(f"Replay them with: gradfuzz replay {state.store}")


@main.command()
@click.argument("modules", nargs=-1, required=True)
@click.option("--budget-per-function", "budget", default=None,
              help="Time per function, shared by its dtype/shape variants: 10s, 1m (default 10s; with --max-examples, none).")
@click.option("--max-examples", type=click.IntRange(min=1), default=None, help="Examples per function (shared by its variants).")
@click.option("--seed", type=int, default=None, help="Seed for a reproducible sweep (each function's seed derives from it).")
@click.option("--store", type=click.Path(file_okay=False, path_type=Path), default=Path(".gradfuzz"), show_default=True,
              help="Directory of the failure store; the sweep's state is STORE/sweep.json.")
@click.option("--output", "-o", "outputs", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the table: FILE.json (JSON) or FILE.md (markdown). Repeatable.")
@click.option("--match", "-k", "match", multiple=True, metavar="GLOB", help="Only functions whose name matches, e.g. 'tf.math.log*'.")
@click.option("--dtype", "dtypes", multiple=True, metavar="DTYPE", help="Only variants of this dtype (e.g. float64). Repeatable.")
@click.option("--resume", is_flag=True, help="Continue the sweep checkpointed in the store (after a crash or Ctrl-C).")
@click.option("--list", "list_only", is_flag=True, help="Show what would be checked, and how, without running anything.")
def sweep(modules, budget, max_examples, seed, store, outputs, match, dtypes, resume, list_only) -> None:
    """Check every public differentiable function of MODULE(s), e.g. tensorflow.math tensorflow.nn or mypkg.ops."""
    from gradfuzz import sweep as sweeping
    from gradfuzz.durations import parse_duration
    from gradfuzz.store import FailureStore, StoreError, StoreLock

    try:
        seconds = parse_duration(budget) if budget else (None if max_examples else 10.0)
        if seconds is not None and not seconds > 0:
            raise ValueError(f"--budget-per-function must be a positive duration such as 10s, not {budget!r}.")
        if resume:
            state = sweeping.resume_sweep(store, list(modules))
        else:
            items = sweeping.enumerate_modules(modules, match, dtypes)
            if not items:
                raise sweeping.SweepError(f"No public function in {', '.join(modules)}" + (f" matches {', '.join(match)}" if match else "")
                                          + ": nothing to sweep.")
            state = sweeping.new_sweep(modules, items, store=store, budget_per_function=seconds, max_examples=max_examples,
                                       seed=seed, match=match, dtypes=dtypes)
    except (sweeping.SweepError, ValueError) as error:
        _fail(str(error))
    if list_only:
        stdout.print(sweeping.rich_table(state, title=f"gradfuzz sweep --list: {state.summary()}"))
        sweeping.write_outputs(state, outputs)
        sys.exit(EXIT_OK)
    total = len(state.rows)
    stop = _StopOnSignal()
    try:
        with StoreLock(store, f"gradfuzz sweep {' '.join(modules)}"), FailureStore(store) as failure_store, stop:
            failure_store.ensure_writable()
            if not resume:
                kept = sweeping.set_aside(store)
                if kept:
                    stderr.print(f"[yellow]note:[/] the earlier sweep state in {store}/ is kept as {kept}.")
            stdout.print(f"sweep {state.id}: {total} function(s) of {', '.join(modules)}, "
                         f"{state.count('pending')} to check, store {store}/", soft_wrap=True)
            sweeping.run_sweep(state, store=failure_store, stop_requested=stop.requested,
                               on_result=lambda i, row: stdout.print(escape(sweeping.progress_line(i, total, row)), soft_wrap=True))
    except StoreError as error:
        _fail(str(error))
    except KeyboardInterrupt:
        stderr.print(f"[yellow]Stopped at once: the failures found so far are in {store}/; --resume continues.[/]")
    stdout.print(sweeping.rich_table(state))
    try:
        sweeping.write_outputs(state, outputs)
    except OSError as error:
        _fail(f"Cannot write the sweep's table: {error}.")
    stored = sum(row.stored for row in state.rows)
    stdout.print(f"Sweep {state.id} {state.status}: {state.summary()}; state in {store}/sweep.json"
                 + (f"; {stored} failure record(s) stored — replay them with: gradfuzz replay {store}" if stored else "")
                 + (". Continue with --resume." if state.status == "interrupted" else "."), soft_wrap=True)
    if state.failed:
        sys.exit(EXIT_FAILURES)
    if state.status == "interrupted":
        sys.exit(EXIT_INTERRUPTED)
    sys.exit(EXIT_OK if state.all_passed else EXIT_FAILURES)


@main.group("store")
def store_group() -> None:
    """Inspect a failure store."""


@store_group.command("verify")
@STORE_ARGUMENT
def store_verify(store) -> None:
    """Read every segment, recover what unsealed or truncated segments hold, report what was skipped."""
    from gradfuzz.store import FailureStore, StoreError

    try:
        read = FailureStore(store).read()
    except StoreError as error:
        _fail(str(error))
    segments = sorted(p.name for p in (store / "failures").glob("*.arrow*") if p.is_file()) if (store / "failures").is_dir() else []
    open_count = sum(f.status != "fixed" for f in read.failures)
    stdout.print(f"{store}: {len(segments)} segment(s), {len(read.failures)} failure record(s) readable "
                 f"({open_count} open, {len(read.failures) - open_count} fixed).")
    for problem in read.problems:
        stdout.print(f"[yellow]problem:[/] {escape(problem)}", soft_wrap=True)
    sys.exit(EXIT_FAILURES if read.problems else EXIT_OK)


# -- output -------------------------------------------------------------------------------


def _duration(context, parameter, value):
    """A --budget or --slice in seconds: at least 1 s (a shorter one checks nothing), else a usage error naming the fix."""
    from gradfuzz.config import MIN_BUDGET
    from gradfuzz.durations import parse_duration

    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError as error:
        raise click.BadParameter(str(error)) from None
    if not seconds >= MIN_BUDGET:
        raise click.BadParameter(f"{value} is too short to check anything: give at least {MIN_BUDGET:g}s, "
                                 f"e.g. {parameter.opts[0]} 30s.")
    return seconds


def _fail(message: str) -> None:
    stderr.print(f"[bold red]gradfuzz: error:[/] {escape(message)}")
    sys.exit(EXIT_ERROR)


class _stdout_to_stderr:
    """While checking for ``--format json``: file descriptor 1 (the target's print, C code's printf) goes to
    stderr, so stdout holds the JSON document alone."""

    def __init__(self, enabled: bool):
        self.enabled, self.saved = enabled, None

    def __enter__(self):
        if self.enabled:
            import os

            sys.stdout.flush()
            try:
                self.saved = os.dup(1)
                os.dup2(2, 1)
            except OSError:  # no descriptors to redirect (an embedding host): leave them
                self.saved = None
        return self

    def __exit__(self, *exc):
        if self.saved is not None:
            import os

            sys.stdout.flush()
            os.dup2(self.saved, 1)
            os.close(self.saved)
            self.saved = None
        return False


class _progress:
    """A transient progress line on stderr (only on a terminal, only for text output), from the first second:
    elapsed and remaining time, examples checked, findings — and the warm-up (probing, tracing, compiling) shown
    as such until the first batch. Re-rendered by rich several times a second, between the check's updates too."""

    def __init__(self, name: str, output_format: str, budget: float | None = None, max_examples: int | None = None):
        self.enabled = output_format == "text" and stderr.is_terminal
        self.name, self.budget, self.max_examples = name, budget, max_examples
        self.started, self.report = None, None

    def __rich__(self) -> str:
        import time

        elapsed = time.monotonic() - (self.started or time.monotonic())
        clock = f"{elapsed:.0f} s" + (f" of {self.budget:.0f} s, {max(0.0, self.budget - elapsed):.0f} s left"
                                      if self.budget else "")
        report = self.report
        if report is None or not report.examples:
            return f"{escape(self.name)}: warming up (probing, tracing, compiling) — {clock}"
        examples = f"{report.examples:,}" + (f" of {self.max_examples:,}" if self.max_examples else "")
        return (f"{escape(self.name)}: {clock} — {examples} examples checked ({report.examples_per_second:,.0f}/s), "
                f"{len(report.failures)} finding(s)")

    def __enter__(self):
        if not self.enabled:
            return None
        import time

        self.started = time.monotonic()
        self.status = stderr.status(self)
        self.status.__enter__()

        def update(report) -> None:
            self.report = report

        return update

    def __exit__(self, *exc):
        if self.enabled:
            self.status.__exit__(*exc)
        return False


def _short(array) -> str:
    from gradfuzz.values import short_value

    return short_value(array)


def _print_report(report) -> None:
    colour = {"pass": "green", "fail": "red", "error": "red"}[report.verdict]
    specs = ", ".join(str(s) for s in report.specs)
    stdout.print(
        f"\n[bold]{escape(report.target)}[/] ({escape(specs)})  [{colour} bold]{report.verdict.upper()}[/]  "
        f"{report.examples:,} examples in {report.seconds:.1f} s ({report.examples_per_second:,.0f}/s)"
        + (f", {report.skipped:,} outside the domain" if report.skipped else ""),
        soft_wrap=True,
    )
    if report.error is not None:  # no verdict on the gradient: say why, and what to pass
        stdout.print(f"  [red]could not be checked:[/] {escape(report.error)}", soft_wrap=True)
    if report.warmup_seconds >= 1.0:
        stdout.print(f"  [dim]warm-up (probing, tracing, compiling): {report.warmup_seconds:.1f} s, before the examples[/]")
    if (report.engine.get("screen") or {}).get("used"):
        # Counts (×N) below are of examples the oracle judged in full.
        stdout.print(f"  [dim]screen: {report.disagreed:,} examples disagreed with autodiff, {report.judged:,} judged in full[/]")
    for finding in report.failures:
        shown = escape(", ".join(_short(x) for x in finding.inputs))
        if finding.reference_name == "gradient contract":  # structural: no count of examples to speak of
            stdout.print(f"  [red]✗ {finding.category}[/] — the gradient contract; shown at input {shown}", soft_wrap=True)
        else:
            stdout.print(f"  [red]✗ {finding.category}[/] — {finding.count:,} example(s) failing {escape(_where(finding))}; "
                         f"simplest input {shown}", soft_wrap=True)
        stdout.print(f"    {escape(finding.explanation)}", soft_wrap=True)
    for finding in report.notes:
        stdout.print(f"  [cyan]• note: {finding.category}[/] — {finding.count:,} example(s); "
                     f"input {escape(', '.join(_short(x) for x in finding.inputs))}", soft_wrap=True)
        stdout.print(f"    {escape(finding.explanation)}", soft_wrap=True)
    strategy = report.engine.get("strategy")
    if strategy and strategy != "vectorized_map":
        stdout.print(f"  [dim]engine: {escape(strategy)}; chosen and traced in {report.engine.get('strategy_seconds', 0):.1f} s, "
                     f"{report.examples_per_second:,.0f} examples/s[/]", soft_wrap=True)


def _headline_numbers(record) -> dict:
    """A record's headline numbers for JSON: the Jacobian entry (or the contract) as the check gave them."""
    import math

    numbers = {"entry": record.evidence.get("jacobian_entry") or record.evidence.get("contract"),
               "reference_name": record.reference_name}
    for name in ("custom_value", "reference_value", "abs_error", "rel_error", "ulp_error"):
        value = getattr(record, name)
        numbers[name] = value if value is None or math.isfinite(value) else str(value)
    return numbers


def _where(finding) -> str:
    """Where a finding's examples lie, in words (`gradfuzz.regions.describe`): "everywhere", "at 0"."""
    from gradfuzz.regions import describe

    labels = [label for label in [*finding.regions_seen, finding.region] if label not in (None, "", "*")]
    return describe(labels) if labels else "at the input shown"


def _print_summary(reports, store: Path) -> None:
    table = Table(title="gradfuzz summary")
    for column in ("target", "verdict", "examples checked", "examples/s", "findings: examples failing", "notes"):
        table.add_column(column)
    for r in reports:
        colour = "green" if r.ok else "red"
        table.add_row(escape(r.target), f"[{colour}]{r.verdict}[/]", f"{r.examples:,}", f"{r.examples_per_second:,.0f}",
                      ", ".join(f"{f.category}: {f.count:,}" for f in r.failures) or "-",
                      ", ".join(f"{f.category}: {f.count:,}" for f in r.notes) or "-")
    stdout.print()
    stdout.print(table)
    stored = sum(r.stored for r in reports)
    if stored:
        stdout.print(f"{stored} failure record(s) written to {store}/ — replay them with: gradfuzz replay {store}")


if __name__ == "__main__":  # pragma: no cover
    main()
