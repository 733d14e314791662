"""One function per command: turn parsed options into a library call, print what it returns.

Nothing here computes a figure or decides a verdict; that is the library's job.
stdout carries what a command produces (tables, JSON, the nightly's plain summary);
stderr carries progress and notes.
"""

from __future__ import annotations

import argparse
import shlex
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.cli import options
from bench.doors import strict_json
from bench.errors import BenchError, ConfigError, ExitCode, ResultsError
from bench.inputs.baselines import load_baselines
from bench.inputs.scenarios import BUILTIN_SETS, load_scenario_set, split_command
from bench.store.run_dir import read_records, read_run_meta, resolve_run, resolve_runs

if TYPE_CHECKING:
    from rich.console import Console

    from bench.figures.summary import RunSummary


def _console(stderr: bool = False) -> Console:
    from rich.console import Console

    return Console(stderr=stderr)


def _say(console: Console, text: str) -> None:
    console.print(text, markup=False, highlight=False, soft_wrap=True)


def print_summary(console: Console, summary: RunSummary) -> None:
    from bench.cli.console import (
        baseline_lines,
        cache_table,
        case_notes,
        case_table,
        gpu_table,
        show,
        slo_table,
        turn_table,
    )

    show(console, case_table(summary))
    if any(c.slo is not None for c in summary.cases):
        show(console, slo_table(summary))
    if any(c.cache is not None for c in summary.cases):
        show(console, cache_table(summary))
    if any(c.cache is not None and c.cache.turns for c in summary.cases):
        show(console, turn_table(summary))
    if summary.gpu:
        show(console, gpu_table(summary))
    if summary.bandwidth:
        _say(console, summary.bandwidth.sentence())
    for line in case_notes(summary):
        _say(console, f"note: {line}")
    for text, style in baseline_lines(summary.baselines):
        console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


def run(args: argparse.Namespace) -> ExitCode:
    from bench.cli.console import ConsoleObserver
    from bench.flows.run import run_benchmark

    began = time.monotonic()  # --max-run-time counts from here: loading the set and its files is in it
    run_options = replace(options.run_options(args), began_monotonic=began)
    console = _console(stderr=args.json)
    with ConsoleObserver(console) as observer:
        result = run_benchmark(run_options, observer)
    if args.json:
        print(
            strict_json.dumps(
                {"run_id": result.run_id, "run_dir": str(result.run_dir), **result.summary.to_json()}, indent=2
            )
        )
    else:
        print_summary(console, result.summary)
        _say(console, f"results: {result.run_dir}")
    if not args.no_report:
        from bench.report.render import render_run_report

        path = render_run_report(result.run_dir, args.reports_dir, run_options.baselines)
        print(f"report: {path}", file=sys.stderr if args.json else sys.stdout)
    for note in result.notes:
        print(f"bench: {note}", file=sys.stderr)
    return ExitCode.ERROR_RATE if result.error_rate_exceeded else ExitCode.OK


def check(args: argparse.Namespace) -> ExitCode:
    from bench.cli.console import endpoint_table, show
    from bench.flows.check import run_check

    info = run_check(
        endpoint=args.endpoint,
        api_key=options.api_key(args),
        model=args.model,
        timeout_s=args.timeout,
        server_binary=args.server_binary,
        model_file=args.model_file,
        server_args=split_command(args.server_args, "--server-args"),
        max_body_bytes=options.max_body_bytes(args),
    )
    if args.json:
        print(strict_json.dumps(info.to_json(), indent=2))
        return ExitCode.OK
    console = _console()
    show(console, endpoint_table(info))
    for note in info.notes:
        _say(console, f"note: {note}")
    console.print("endpoint is usable for benchmarking", style="green")
    return ExitCode.OK


def scenarios(args: argparse.Namespace) -> ExitCode:
    if not args.set:
        for name in BUILTIN_SETS:
            scenario_set = load_scenario_set(name)
            print(f"{name:10} {len(scenario_set.cases()):3} cases  {scenario_set.description}")
        return ExitCode.OK
    scenario_set = load_scenario_set(args.set)
    print(f"{scenario_set.name}: {scenario_set.description} ({scenario_set.source})")
    for case in scenario_set.cases():
        stream = "stream" if case.stream else "no-stream"
        sent = (
            f"{case.requests:3} requests" if case.turns == 1 else f"{case.requests} conversations x {case.turns} turns"
        )
        print(f"  {case.case_id:40} {case.pattern:10} {sent} + {case.warmup} warm-up  {stream}")
    return ExitCode.OK


def nightly(args: argparse.Namespace) -> ExitCode:
    from bench.cli.console import ConsoleObserver
    from bench.decide.nightly import plain_summary
    from bench.flows.nightly import NightlyOptions, run_nightly

    night = NightlyOptions(
        options.run_options(args),
        min_effect=args.min_effect / 100,
        allowance=args.allowance / 100,
        confirm_runs=args.confirm_runs,
        keep_runs=args.keep_runs,
        keep_days=args.keep_days,
        reports_dir=None if args.no_report else args.reports_dir,
    )
    # progress and tables go to stderr; stdout carries the plain summary for cron mail
    console = _console(stderr=True)
    try:
        with ConsoleObserver(console) as observer:
            outcome = run_nightly(night, observer)
    except BenchError as exc:
        print(f"nightly: RUN FAILED (exit {exc.exit_code:d}): {exc}")
        return exc.exit_code
    print_summary(console, outcome.run.summary)
    if outcome.verdict is None:
        print(f"nightly {outcome.run.run_id}: RUN FAILED (exit {outcome.exit_code:d}): {outcome.failure}")
        return outcome.exit_code
    print(plain_summary(outcome.verdict))
    print(f"results: {outcome.run.run_dir}")
    for what, path in zip(("report", "trend"), outcome.reports, strict=False):
        print(f"{what}: {path}")
    if outcome.removed:
        print(f"retention: removed {len(outcome.removed)} old run(s)")
    return outcome.exit_code


def baseline(args: argparse.Namespace) -> ExitCode:
    from bench.flows.baseline_update import adopt_run
    from bench.inputs.baselines import DEFAULT_BASELINES_FILE

    target = args.baselines or Path(DEFAULT_BASELINES_FILE)
    run_dir = resolve_run(args.from_run, args.results_dir)
    for change in adopt_run(run_dir, target):
        where = f" (scenario {change.scenario})" if change.scenario else ""
        if change.new is None:
            why = "not measured" if change.measured is None else f"{change.measured:g} is not a usable figure"
            print(f"{change.figure}{where}: {why} in {run_dir.name}; kept {change.old:,g}")
        else:
            print(f"{change.figure}{where}: {change.old:,g} -> {change.new:,g}")
    print(f"wrote {target}; earlier values are kept in each entry's history")
    return ExitCode.OK


def report(args: argparse.Namespace) -> ExitCode:
    from bench.report.render import render_run_report, render_trend_report

    if not args.runs and not args.trend:
        raise ConfigError("name at least one RUN, or --trend LABEL")
    baselines = load_baselines(args.baselines)
    for ref in args.runs:
        print(f"wrote {render_run_report(resolve_run(ref, args.results_dir), args.reports_dir, baselines)}")
    if args.trend:
        print(f"wrote {render_trend_report(args.results_dir, args.trend, args.reports_dir, baselines)}")
    print(f"index: {args.reports_dir / 'index.html'}")
    return ExitCode.OK


def export(args: argparse.Namespace) -> ExitCode:
    from bench.report.export import to_pytest_benchmark

    document = strict_json.dumps(to_pytest_benchmark(resolve_run(args.run, args.results_dir)), indent=2, default=str)
    if args.output:
        try:
            args.output.write_text(document + "\n", encoding="utf-8")
        except OSError as exc:
            raise ResultsError(f"cannot write {args.output}: {exc.strerror or exc}") from None
        print(f"wrote {args.output}")
    else:
        print(document)
    return ExitCode.OK


def ab(args: argparse.Namespace) -> ExitCode:
    from bench.cli.console import ConsoleObserver, comparison_table, show
    from bench.decide.compare import Comparison
    from bench.flows.ab import AbPlan, Variant, parse_variant, run_ab, undecided_figures
    from bench.report.text import headline

    parsed = [parse_variant(text) for text in args.variant]
    switches = dict(parse_variant(text, "--switch") for text in args.switch)
    unknown = sorted(set(switches) - {name for name, _ in parsed})
    if unknown:
        raise ConfigError(f"--switch for unknown variant(s): {', '.join(unknown)}")
    plan = AbPlan(
        base=options.run_options(args),
        variants=tuple(Variant(name, flags, switches.get(name)) for name, flags in parsed),
        server_command=split_command(args.server_cmd, "--server-cmd"),
        blocks=args.blocks,
        order=args.order,
        settings=options.compare_settings(args),
        until_decided=args.until_decided,
        max_blocks=args.max_blocks,
        max_time_s=args.max_time,
        decide=tuple(args.decide.split(",")) if args.decide else (),
    )
    console = _console()

    def look(blocks: int, comparisons: Sequence[Comparison]) -> None:
        # where each asked figure stands, as it goes: a cron mail shows the path to the decision
        for comparison in comparisons:
            _say(
                console, f"after {blocks} blocks, {comparison.b.label} vs {comparison.a.label}: {headline(comparison)}"
            )
        if left := undecided_figures(comparisons, plan.asked):
            _say(console, f"  undecided: {', '.join(left[:6])}{' ...' if len(left) > 6 else ''}")

    with ConsoleObserver(console) as observer:
        result = run_ab(plan, observer, look)
    print(f"order: {', '.join(name for _, name in result.order)}")
    if result.stopped:
        print(f"until decided: {result.stopped}")
    for variant in result.variants:
        print(f"{variant.name} [{variant.flags}]: {len(variant.runs)} run(s) {' '.join(variant.runs)}")
        for failure in variant.failures:
            print(f"  FAILED {failure}")
        for contention in variant.contention:
            print(f"  {contention}")
    for comparison in result.comparisons:
        show(console, comparison_table(comparison))
        if not args.no_report:
            from bench.report.render import render_comparison_report

            path = render_comparison_report(
                comparison,
                args.reports_dir,
                result.records.get(comparison.a.label or ""),
                result.records.get(comparison.b.label or ""),
            )
            print(f"report: {path}")
    if result.outputs_differ:
        print("outputs differ: the variants gave different temperature-0 answers; faster is not the same")
    elif result.outputs_differ is False:
        print("outputs: identical temperature-0 answers across variants")
    print(f"ab: {result.path}")
    return result.exit_code


def compare(args: argparse.Namespace) -> ExitCode:
    from bench.decide.compare import Verdict, compare_runs, sides_against_baselines
    from bench.decide.noise import choose_noise
    from bench.report.text import to_markdown
    from bench.store.capacity import is_capacity_file

    if is_capacity_file(args.a) and is_capacity_file(args.b):
        return _compare_capacities(args)
    side_a, side_b = resolve_runs(args.a, args.results_dir), resolve_runs(args.b, args.results_dir)
    reference = read_run_meta(side_a[0])
    noise = choose_noise(
        args.noise,
        results_dir=args.results_dir,
        label=reference.label,
        model=reference.model,
        exclude=[p.name for p in (*side_a, *side_b)],
    )
    comparison = compare_runs(side_a, side_b, options.compare_settings(args), noise=noise.profile)
    against = sides_against_baselines(comparison, load_baselines(args.baselines))
    if args.json:
        print(strict_json.dumps({**comparison.to_json(), "baselines": against}, indent=2, default=str))
    elif args.markdown:
        print(to_markdown(comparison), end="")
        print("".join(f"\n- {side} against the baselines: {text}" for side, text in against.items() if text))
    else:
        from bench.cli.console import comparison_table, show

        console = _console()
        for line in comparison.differences:
            _say(console, line)
        if noise.note:
            _say(console, f"noise: {noise.note}")
        show(console, comparison_table(comparison))
        for side, text in against.items():
            if text:
                _say(console, f"{side} against the baselines: {text}")
    if not args.no_report:
        from bench.report.render import render_comparison_report

        path = render_comparison_report(comparison, args.reports_dir)
        print(f"report: {path}", file=sys.stderr if (args.json or args.markdown) else sys.stdout)
    regressed = bool(comparison.by_verdict(Verdict.REGRESSED))
    return ExitCode.REGRESSION if args.fail_on_regression and regressed else ExitCode.OK


def _compare_capacities(args: argparse.Namespace) -> ExitCode:
    from bench.cli.console import capacity_table, show
    from bench.decide.capacity import capacity_change, capacity_regressed
    from bench.store.capacity import load_result

    a, b = load_result(Path(args.a)), load_result(Path(args.b))
    line = capacity_change(a, b)
    if args.json:
        print(strict_json.dumps({"a": a.to_json(), "b": b.to_json(), "change": b.capacity - a.capacity,
                                 "sentence": line}, indent=2))  # fmt: skip
        return ExitCode.OK
    console = _console()
    for side, result in (("A", a), ("B", b)):
        table = capacity_table(result)
        show(console, replace(table, title=f"{side}: {table.title}"))
    _say(console, line)
    return ExitCode.REGRESSION if args.fail_on_regression and capacity_regressed(a, b) else ExitCode.OK


def telemetry_command(args: argparse.Namespace) -> ExitCode:
    from bench.telemetry.smi import suggested_command

    print(shlex.join(suggested_command()))
    return ExitCode.OK


def show(args: argparse.Namespace) -> ExitCode:
    from bench.figures.summary import summarise_stored
    from bench.store.run_dir import read_gpu_samples

    run_dir = resolve_run(str(args.run), args.results_dir)
    meta = read_run_meta(run_dir)
    skipped: list[int] = []
    stored = list(read_records(run_dir, skipped))
    records = len(stored)
    summary = summarise_stored(meta, stored, read_gpu_samples(run_dir), load_baselines(args.baselines))
    if args.json:
        print(strict_json.dumps({"run": meta, **summary.to_json()}, indent=2, default=str))
        return ExitCode.OK
    console = _console()
    _say(
        console,
        f"{meta.run_id}  status {meta.status}  label {meta.label}  build {meta.build}  {records} records",
    )
    if meta.partial_reason:
        _say(console, f"partial: {meta.partial_reason}")
    if skipped:
        lines = ", ".join(map(str, skipped[:5])) + (" ..." if len(skipped) > 5 else "")
        _say(console, f"note: {len(skipped)} unreadable line(s) in requests.jsonl left out (line {lines})")
    telemetry = meta.telemetry or {}
    for reason in (telemetry.get("gpu_reason"), telemetry.get("gpu_parse_problem")):
        if reason:
            _say(console, reason)
    if records:
        print_summary(console, summary)
    return ExitCode.OK


def plan(args: argparse.Namespace) -> ExitCode:
    from bench.cli.console import Tabular, show
    from bench.decide.noise import history_profile, load_profile
    from bench.decide.plan import MAX_RUNS, MORE_REQUESTS, make_plan, server_minutes

    given = [
        name for name, value in (("RUNS", args.runs), ("--noise", args.noise), ("--history", args.history)) if value
    ]
    if len(given) != 1:
        raise ConfigError(
            "bench plan takes one source of the spread between runs: RUNS, --noise PATH or --history LABEL"
        )
    changes = [c / 100 for c in (args.change or [3.0, 6.5])]
    if args.noise:
        source: Any = load_profile(Path(args.noise))
    elif args.history:
        source = history_profile(args.results_dir, args.history, None)
        if source is None:
            raise ResultsError(f"label {args.history!r} has fewer than 3 complete runs in {args.results_dir}")
    else:
        source = resolve_runs(args.runs, args.results_dir)
    plans = make_plan(source, changes, alpha=args.alpha, power=args.power)
    if not plans:
        raise ResultsError("no case has a pp or tg figure in at least 3 of these runs")

    def cell(runs: int | None, case_seconds: float) -> str:
        if runs is None:
            return f"> {MAX_RUNS}"
        return f"{runs} ({server_minutes(runs, case_seconds):,.1f} min)"

    rows = tuple(
        (p.case_id, p.figure, str(p.runs_measured), f"{p.spread * 100:.1f} %", str(p.requests),
         *(cell(n, p.case_seconds) for _, n in p.runs_needed),
         *(cell(n, p.case_seconds * MORE_REQUESTS) for _, n in p.runs_needed_more_requests))
        for p in plans
    )  # fmt: skip
    headers = (
        "case", "figure", "runs", "CV between runs", "requests",
        *(f"runs a side for {c * 100:g} %" for c in changes),
        *(f"with {MORE_REQUESTS}x requests, {c * 100:g} %" for c in changes),
    )  # fmt: skip
    console = _console()
    show(console, Tabular(f"Runs a side for {args.power:.0%} power at alpha {args.alpha:g} (server time, both sides)",
                          headers, rows, left=frozenset({"case", "figure"}),
                          caption="requests: a case's measured requests per run, as measured; more requests shrink "
                          "only the part of the spread that is their sampling, not the runs' own"))  # fmt: skip
    return ExitCode.OK


def noise(args: argparse.Namespace) -> ExitCode:
    from bench.cli.console import ConsoleObserver, noise_table, show
    from bench.flows.noise import NoiseOptions, measure_noise, profile_of_runs

    console = _console(stderr=args.json)
    if args.from_runs:
        profile = profile_of_runs(resolve_runs(args.from_runs, args.results_dir), args.out)
    else:
        run_options = options.run_options(args)
        with ConsoleObserver(console) as observer:
            outcome = measure_noise(NoiseOptions(run_options, passes=args.passes, out=args.out), observer)
        profile = outcome.profile
        if not args.no_report:
            from bench.report.render import render_run_report

            for result in outcome.runs:
                render_run_report(result.run_dir, args.reports_dir, run_options.baselines)
    if args.json:
        print(strict_json.dumps(profile.to_json(), indent=2))
    else:
        show(console, noise_table(profile))
    _say(console, f"wrote {args.out}: bench compare tests one run a side of {profile.model or 'this model'} against it")
    return ExitCode.OK


def capacity(args: argparse.Namespace) -> ExitCode:
    from bench.cli.console import ConsoleObserver, capacity_table, show
    from bench.flows.capacity import CapacityOptions, search
    from bench.inputs.slo import parse_slo
    from bench.store.capacity import save_result

    slo = parse_slo(args.slo)
    base = options.run_options(args, scenarios=load_scenario_set("smoke"))  # each level brings its own
    plan = CapacityOptions(
        base, args.prompt_tokens, args.output_tokens, slo, target=args.target / 100, start=args.start,
        max_concurrency=args.max_concurrency, requests_per_stream=args.requests_per_stream,
    )  # fmt: skip
    console = _console(stderr=args.json)
    with ConsoleObserver(console) as observer:
        result = search(plan, observer)
    path = save_result(result, args.results_dir)
    if args.json:
        print(strict_json.dumps(result.to_json(), indent=2))
    else:
        show(console, capacity_table(result))
        _say(console, result.sentence())
    print(f"capacity: {path}", file=sys.stderr if args.json else sys.stdout)
    if not args.no_report:
        from bench.report.render import render_capacity_report

        report = render_capacity_report(result, args.reports_dir, path.stem)
        print(f"report: {report}", file=sys.stderr if args.json else sys.stdout)
    return ExitCode.OK


def bisect(args: argparse.Namespace) -> ExitCode:
    from bench.cli.console import ConsoleObserver
    from bench.flows.bisect import BisectPlan, answer_sentence, run_bisect

    if args.endpoint and not args.deploy_cmd:
        raise ConfigError(
            "bench bisect starts each commit's server itself: drop --endpoint, or give --deploy-cmd, the command "
            "that puts a commit on that server"
        )
    if args.model_file is None and not args.deploy_cmd:
        raise ConfigError("bench bisect needs the model each commit's server loads: --model-file PATH")
    plan = BisectPlan(
        base=options.run_options(args),
        repo=args.repo,
        good=args.good,
        bad=args.bad,
        figure=args.figure,
        case_id=args.case,
        build_commands=tuple(split_command(c, "--build-cmd") or () for c in args.build_cmd) or None,
        cache=args.cache,
        binaries=args.binaries,
        reference_runs=args.runs,
        max_runs=args.max_runs,
        deploy_command=split_command(args.deploy_cmd, "--deploy-cmd") if args.deploy_cmd else None,
        deploy_timeout_s=args.deploy_timeout,
    )
    console = _console()
    with ConsoleObserver(console) as observer:
        result = run_bisect(plan, observer, lambda text: _say(console, f"bisect: {text}"))
    for tested in result.tested:
        median = f"{sorted(tested.figures)[len(tested.figures) // 2]:,.2f}" if tested.figures else "-"
        runs = f"{len(tested.runs)} run(s)"
        print(f"  {tested.commit.short} {tested.side:<8} {median:>10} t/s  {runs}  {tested.commit.subject}")
    print(answer_sentence(result))
    print(f"server {result.server_s / 60:.1f} min, builds {result.build_s / 60:.1f} min; bisect: {result.path}")
    if not args.no_report:
        from bench.report.render import render_bisect_report

        print(f"report: {render_bisect_report(result, plan.alpha, args.reports_dir)}")
    return ExitCode.OK if result.found else ExitCode.UNDECIDED


def soak(args: argparse.Namespace) -> ExitCode:
    from bench.cli.console import ConsoleObserver
    from bench.flows.soak import SoakPlan, run_soak

    plan = SoakPlan(
        options.run_options(args), options.seconds(args.duration, "--duration"), args.label or "soak", args.windows
    )
    console = _console()
    with ConsoleObserver(console) as observer:
        result = run_soak(plan, observer, lambda text: _say(console, f"soak: {text}"))
    for shift in result.shifts:
        print(
            f"  shift: {shift.case_id} {shift.figure} {shift.before:,.2f} -> {shift.after:,.2f} t/s "
            f"({shift.change:+.1%}) from window {shift.window}, p {shift.p_value:.2g}"
        )
    print(result.sentence())
    print(f"soak: {result.path}")
    if not args.no_report:
        from bench.report.render import render_soak_report

        print(f"report: {render_soak_report(result, args.reports_dir)}")
    return ExitCode.OK


def trace(args: argparse.Namespace) -> ExitCode:
    from bench.inputs.trace import TraceFormat, convert, load_trace

    if args.trace_command == "import":
        if args.out.exists():
            raise ConfigError(f"{args.out} exists: choose another --out (a trace is never overwritten)")
        written = convert(args.source, TraceFormat(args.format), args.out)
        print(f"wrote {args.out}: {written:,} requests from {args.source} ({args.format})")
    loaded = load_trace(args.out if args.trace_command == "import" else args.trace)
    for line in loaded.describe():
        print(line)
    return ExitCode.OK


HANDLERS = {
    "bisect": bisect,
    "soak": soak,
    "trace": trace,
    "capacity": capacity,
    "noise": noise,
    "plan": plan,
    "run": run,
    "check": check,
    "scenarios": scenarios,
    "show": show,
    "telemetry-command": telemetry_command,
    "compare": compare,
    "nightly": nightly,
    "baseline": baseline,
    "export": export,
    "report": report,
    "ab": ab,
}
