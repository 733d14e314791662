"""The ``bench`` command: parse options, call the library, print, return an exit code.

Exit codes (also in ``bench --help``; ``bench nightly`` has its own 0/1/2):
  0  success
  1  unexpected internal error; ``compare --fail-on-regression``: a regression
  2  bad configuration or options (scenario/baseline file, flags)
  3  endpoint unusable: unreachable, authentication failed, server errors,
     or the embedded llama-server failed to start
  4  results directory unreadable or unwritable
  5  the run finished but its error rate was above --max-error-rate
  130 interrupted (Ctrl-C); what was measured is kept, the run is marked partial
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bench import __version__
from bench.config import BUILTIN_SETS, load_baselines, load_scenario_set
from bench.errors import BenchError, ConfigError

if TYPE_CHECKING:
    from rich.console import Console

    from bench.config import Baselines
    from bench.runner import RunOptions
    from bench.summary import RunSummary

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_ERROR_RATE = 5
EXIT_INTERRUPTED = 130
API_KEY_ENV = "BENCH_API_KEY"

EPILOG = """exit codes:
  0 success; 1 internal error (compare --fail-on-regression: a regression);
  2 bad configuration or options; 3 endpoint unusable
  (unreachable, auth failed, server errors, embedded server failed to start);
  4 results directory not writable; 5 error rate above --max-error-rate; 130 interrupted
"""


def _add_endpoint_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("endpoint (default: start the embedded CPU llama-server)")
    group.add_argument(
        "--endpoint",
        metavar="URL",
        help="base URL of an OpenAI-compatible server, e.g. http://127.0.0.1:8080 "
        "(a trailing /v1 is accepted); omit it to start the embedded llama-server on 127.0.0.1",
    )
    group.add_argument(
        "--api-key",
        metavar="KEY",
        help=f"sent as 'Authorization: Bearer KEY'; default: ${API_KEY_ENV} or 'EMPTY'. "
        "Never written to results or logs",
    )
    group.add_argument(
        "--model", metavar="NAME", help="model name sent in requests (default: what /v1/models lists first)"
    )
    group.add_argument(
        "--timeout", type=float, default=600.0, metavar="S", help="per-request timeout in seconds (default 600)"
    )
    group.add_argument(
        "--server-binary", type=Path, metavar="PATH", help="start this llama-server instead of the embedded one"
    )
    group.add_argument("--model-file", type=Path, metavar="PATH", help="GGUF model for the server the suite starts")
    group.add_argument(
        "--server-args",
        metavar="ARGS",
        help='flags for the server the suite starts, as one string, e.g. "-c 8192 -np 2 -fa on" '
        "(default: -c 4096 per slot, one slot per concurrent stream, --metrics --jinja)",
    )


def _add_report_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--reports-dir",
        type=Path,
        default=Path("reports"),
        metavar="DIR",
        help="where HTML reports go (default: reports)",
    )
    parser.add_argument("--no-report", action="store_true", help="do not write the HTML report")


def _add_run_options(parser: argparse.ArgumentParser, default_label: str | None = None) -> None:
    """Options shared by ``run`` and ``nightly``."""
    parser.add_argument(
        "--scenarios",
        default="baseline",
        metavar="NAME|PATH",
        help=f"built-in set ({', '.join(BUILTIN_SETS)}) or a TOML file (default: baseline)",
    )
    parser.add_argument(
        "--baselines",
        type=Path,
        metavar="PATH",
        help="baselines TOML (default: ./baselines.toml, else the packaged seed figures)",
    )
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=Path("results"),
        metavar="DIR",
        help="where run directories go (default: results)",
    )
    parser.add_argument(
        "--label",
        default=default_label,
        help=f"a name for this run, e.g. 'nightly' or 'fa-on' (default: {default_label})",
    )
    parser.add_argument(
        "--server-flags",
        metavar="TEXT",
        help="the server's flags as you started it (recorded, not used), e.g. '-fa 1 -ngl 999 -c 4096'",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed for prompt text and arrival times (default 0)")
    parser.add_argument(
        "--max-run-time", type=float, metavar="S", help="stop the whole run after S seconds; it is kept, marked partial"
    )
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=300.0,
        metavar="S",
        help="how long to wait while the server answers 503 because it is loading its model (default 300)",
    )
    parser.add_argument(
        "--max-error-rate",
        type=float,
        default=0.05,
        metavar="F",
        help="exit 5 when more than this share of requests failed (default 0.05)",
    )
    parser.add_argument("--json", action="store_true", help="print the summary as JSON instead of tables")
    _add_report_options(parser)
    _add_endpoint_options(parser)
    telemetry = parser.add_argument_group("telemetry (GPU and llama-server /metrics, sampled in the background)")
    telemetry.add_argument(
        "--gpu-telemetry",
        choices=("auto", "none"),
        default="auto",
        help="auto: NVML when this host has an NVIDIA driver, else a recorded 'no GPU telemetry'; none: off",
    )
    telemetry.add_argument(
        "--gpu-telemetry-cmd",
        metavar="CMD",
        help="a command streaming nvidia-smi CSV, run as an argument list (no shell), e.g. "
        '"ssh gpu-host nvidia-smi --query-gpu=... --format=csv,noheader,nounits -lms 250"; '
        "'bench telemetry-command' prints the full query",
    )
    telemetry.add_argument(
        "--telemetry-interval",
        type=float,
        default=0.25,
        metavar="S",
        help="seconds between NVML and /metrics samples (default 0.25, floor 0.05)",
    )
    telemetry.add_argument("--no-server-metrics", action="store_true", help="do not scrape the server's /metrics")
    telemetry.add_argument(
        "--active-weight-gib",
        type=float,
        metavar="GIB",
        help="weights read per generated token (all weights for a dense model, the active experts' for MoE), "
        "for the memory-bandwidth figure; the embedded model's file size by default",
    )
    telemetry.add_argument(
        "--gpu-bandwidth-gbs",
        type=float,
        metavar="GB/S",
        help="the GPU's peak memory bandwidth, where the suite does not know the card",
    )


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark llama-server or any OpenAI-compatible endpoint: prompt and generation "
        "t/s from the server's own timings, TTFT/ITL/latency on the client, compared with baselines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"llama-server-bench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="run a scenario set and store the results",
        description="Run a scenario set against the endpoint (or the embedded llama-server), store every "
        "request in results/<run-id>/ as it ends, and print the figures against the baselines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_options(run)

    check = commands.add_parser(
        "check",
        help="check that an endpoint can be benchmarked and show what it offers",
        description="Reach the endpoint, check auth and the model, send one streaming and one "
        "non-streaming request, and report timings, usage, reasoning, build, n_ctx, slots and "
        "whether streamed tokens arrive one by one or in bursts (a buffering proxy).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    check.add_argument("--json", action="store_true", help="print the report as JSON")
    _add_endpoint_options(check)

    scenarios = commands.add_parser(
        "scenarios",
        help="list the built-in scenario sets, or the cases of one set",
        description="Without an argument, list the built-in sets. With NAME or PATH, validate that set "
        "and list its cases (prompt x output x concurrency x depth).",
    )
    scenarios.add_argument("set", nargs="?", metavar="NAME|PATH")

    baseline = commands.add_parser(
        "baseline",
        help="adopt a measured run as the new baselines",
        description="'bench baseline set --from RUN' writes the run's figures into the baselines file, each over "
        "its baseline's scenario, and keeps every old value in that entry's history.",
    )
    baseline_commands = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    baseline_set = baseline_commands.add_parser("set", help="adopt a run's figures", description=baseline.description)
    baseline_set.add_argument(
        "--from", dest="from_run", required=True, metavar="RUN", help="run id, directory or label"
    )
    baseline_set.add_argument("--results-dir", type=Path, default=Path("results"), metavar="DIR")
    baseline_set.add_argument(
        "--baselines",
        type=Path,
        default=Path("baselines.toml"),
        metavar="PATH",
        help="the file to write (default ./baselines.toml, created from the current baselines if absent)",
    )

    export = commands.add_parser(
        "export",
        help="export a run for pytest-benchmark (compare, history, --benchmark-compare-fail)",
        description="Write a run in pytest-benchmark's JSON format: one benchmark per case and figure (pp and tg "
        "as seconds per token, TTFT and e2e as seconds: lower is better, as pytest-benchmark expects). "
        "'pytest-benchmark compare A.json B.json' then reads our runs.",
    )
    export.add_argument("run", metavar="RUN", help="run id, directory, label, latest or previous")
    export.add_argument("--results-dir", type=Path, default=Path("results"), metavar="DIR")
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (default: stdout)")

    nightly = commands.add_parser(
        "nightly",
        help="run the scenario set and judge it: exit 0 ok, 1 regression, 2 run failed",
        description="The nightly regression gate. Runs the scenario set (default: baseline), then judges it against "
        "(1) the baselines file with its tolerances, (2) the last good nightly (bootstrap CI and Mann-Whitney U, "
        "held against a threshold from the measured night-to-night noise: a drop of twice the threshold pages at "
        "once, a smaller one only on the second night in a row), and (3) the nightly history with E-divisive "
        "change points. Writes nightly.json into the run directory and a plain summary on stdout for cron mail. "
        "A lock in the results directory keeps two nightlies from overlapping.",
        epilog="exit codes: 0 no regression; 1 regression found (which figure, how much, how sure is printed);\n"
        "  2 the run itself failed (endpoint down, error rate above --max-error-rate, bad configuration,\n"
        "  another nightly running)\n",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_options(nightly, default_label="nightly")
    gate = nightly.add_argument_group("gate and retention")
    gate.add_argument(
        "--min-effect",
        type=float,
        default=3.0,
        metavar="PCT",
        help="smallest drop in percent that can count as a regression (default 3); measured noise can raise it",
    )
    gate.add_argument("--keep-runs", type=int, metavar="N", help="keep the newest N runs of this label, delete older")
    gate.add_argument("--keep-days", type=float, metavar="D", help="delete runs of this label older than D days")

    ab = commands.add_parser(
        "ab",
        help="compare server flag variants, interleaved in blocks, with the servers started or switched",
        description="Before/after comparison of server flags. Either the suite starts the servers (--server-cmd, "
        "or the embedded server without it): for each block each variant's server starts on 127.0.0.1, is measured "
        "with the scenario set and stopped. Or a remote --endpoint, with an optional --switch command per variant "
        "that reconfigures it (run as an argument list, then /health is awaited). Blocks interleave the variants "
        "(A B, B A, ... or --order random, recorded), so drift falls on both. Every later variant is compared with "
        "the first, each pooling its blocks; a temperature-0 answer per run flags variants that say different things.",
        epilog='example: bench ab --server-cmd "llama-server -m model.gguf -ngl 999 -c 4096" '
        '--variant fa_off="-fa off" --variant fa_on="-fa on"\n' + EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_run_options(ab)
    variants = ab.add_argument_group("variants")
    variants.add_argument(
        "--variant", action="append", default=[], metavar="NAME=FLAGS", help="a variant's server flags (2 or more)"
    )
    variants.add_argument(
        "--server-cmd",
        metavar="CMD",
        help='the server command the variants\' flags are appended to, e.g. "llama-server -m model.gguf -c 4096" '
        "(default: the embedded llama-server with its default flags)",
    )
    variants.add_argument(
        "--switch",
        action="append",
        default=[],
        metavar="NAME=CMD",
        help="with --endpoint: a command that switches the remote server to this variant, e.g. "
        'fa_on="ssh gpu-host sudo systemctl restart llama@fa-on"',
    )
    variants.add_argument(
        "--blocks",
        type=int,
        default=4,
        help="rounds of all variants, each a server start per variant (default 4: two starts of the same "
        "server can differ by a few percent, and the comparison counts starts, not requests)",
    )
    variants.add_argument("--order", choices=("alternate", "random"), default="alternate", help="order within blocks")

    compare = commands.add_parser(
        "compare",
        help="compare two runs per case and figure: ratio, 95 %% CI, p-value, verdict",
        description="Compare run B against run A. For each case and figure (pp and tg t/s from the server's "
        "timings, TTFT, ITL, e2e latency): both values, the change B/A - 1, a 95 %% bootstrap confidence "
        "interval (requests resampled), a Mann-Whitney U p-value and a verdict. A and B are run ids, run "
        "directories, labels (the newest run with that label), 'latest' or 'previous'.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    compare.add_argument("a", metavar="A", help="the reference run")
    compare.add_argument("b", metavar="B", help="the run judged against A")
    compare.add_argument("--results-dir", type=Path, default=Path("results"), metavar="DIR")
    compare.add_argument("--alpha", type=float, default=0.05, help="significance level (default 0.05)")
    compare.add_argument(
        "--min-effect",
        type=float,
        default=2.0,
        metavar="PCT",
        help="smallest change in percent reported as improved/regressed (default 2)",
    )
    compare.add_argument(
        "--force", action="store_true", help="compare runs of different models or scenario definitions"
    )
    compare.add_argument("--json", action="store_true", help="print the comparison as JSON")
    compare.add_argument("--markdown", action="store_true", help="print a Markdown table (for an issue or PR)")
    compare.add_argument("--fail-on-regression", action="store_true", help="exit 1 if any figure regressed")
    compare.add_argument("--baselines", type=Path, metavar="PATH", help="baselines TOML to hold both runs against")
    _add_report_options(compare)

    report = commands.add_parser(
        "report",
        help="write HTML reports of runs, or the nightly trend of a label",
        description="Write self-contained HTML reports (no network needed to open them) into the reports "
        "directory and update its index.html: one report per RUN (run ids, directories, labels, latest, "
        "previous), and with --trend LABEL the nightly trend of that label. 'bench run', 'bench compare' and "
        "'bench nightly' write theirs automatically.",
    )
    report.add_argument("runs", nargs="*", metavar="RUN")
    report.add_argument("--trend", metavar="LABEL", help="also write the trend report of this label's nightly runs")
    report.add_argument("--results-dir", type=Path, default=Path("results"), metavar="DIR")
    report.add_argument("--reports-dir", type=Path, default=Path("reports"), metavar="DIR")
    report.add_argument("--baselines", type=Path, metavar="PATH", help="baselines TOML to compare with")

    commands.add_parser(
        "telemetry-command",
        help="print the nvidia-smi command to pass as --gpu-telemetry-cmd",
        description="Print a ready --gpu-telemetry-cmd value: nvidia-smi over SSH with the fields the suite parses.",
    )

    show = commands.add_parser(
        "show", help="print the figures of a stored run", description="Print the summary of a stored run."
    )
    show.add_argument(
        "run", type=Path, metavar="RUN_DIR", help="a run directory, e.g. results/20261125-101500-run-a1b2c3"
    )
    show.add_argument("--json", action="store_true", help="print the figures as JSON")
    show.add_argument("--baselines", type=Path, metavar="PATH", help="baselines TOML to compare with")
    return parser


def _api_key(args: argparse.Namespace) -> str:
    return args.api_key or os.environ.get(API_KEY_ENV) or "EMPTY"


def _server_args(args: argparse.Namespace) -> tuple[str, ...] | None:
    if not args.server_args:
        return None
    try:
        return tuple(shlex.split(args.server_args))
    except ValueError as exc:
        raise ConfigError(f"--server-args: {exc}") from None


def _run_options(args: argparse.Namespace) -> RunOptions:
    from bench.runner import RunOptions
    from bench.telemetry.sampler import TelemetryConfig

    if not 0 <= args.max_error_rate <= 1:
        raise ConfigError(f"--max-error-rate must be between 0 and 1; got {args.max_error_rate}")
    scenario_set = load_scenario_set(args.scenarios)
    baselines = load_baselines(args.baselines)
    telemetry_command = None
    if args.gpu_telemetry_cmd:
        try:
            telemetry_command = tuple(shlex.split(args.gpu_telemetry_cmd))
        except ValueError as exc:
            raise ConfigError(f"--gpu-telemetry-cmd: {exc}") from None
    if args.telemetry_interval <= 0:
        raise ConfigError(f"--telemetry-interval must be positive; got {args.telemetry_interval}")
    return RunOptions(
        scenarios=scenario_set,
        endpoint=args.endpoint,
        api_key=_api_key(args),
        model=args.model,
        baselines=baselines,
        results_dir=args.results_dir,
        label=args.label,
        server_flags=args.server_flags,
        seed=args.seed,
        request_timeout_s=args.timeout,
        max_run_s=args.max_run_time,
        ready_timeout_s=args.ready_timeout,
        max_error_rate=args.max_error_rate,
        server_binary=args.server_binary,
        model_file=args.model_file,
        server_args=_server_args(args),
        telemetry=TelemetryConfig(
            interval_s=args.telemetry_interval,
            gpu=args.gpu_telemetry,
            command=telemetry_command,
            metrics=not args.no_server_metrics,
        ),
        active_weight_gib=args.active_weight_gib,
        peak_bandwidth_gbs=args.gpu_bandwidth_gbs,
    )


def _cmd_run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bench.console import ConsoleObserver
    from bench.runner import run_benchmark

    options = _run_options(args)
    console = Console(stderr=args.json)
    observer = ConsoleObserver(console)
    try:
        result = run_benchmark(options, observer)
    finally:
        observer.stop()
    if args.json:
        print(
            json.dumps({"run_id": result.run_id, "run_dir": str(result.run_dir), **result.summary.to_json()}, indent=2)
        )
    else:
        _print_summary(console, result.summary)
        console.print(f"results: {result.run_dir}", markup=False, highlight=False)
    if not args.no_report:
        from bench.report.render import render_run_report

        path = render_run_report(result.run_dir, args.reports_dir, options.baselines)
        print(f"report: {path}", file=sys.stderr if args.json else sys.stdout)
    for note in result.notes:
        print(f"bench: {note}", file=sys.stderr)
    return EXIT_ERROR_RATE if result.error_rate_exceeded else EXIT_OK


def _print_summary(console: Console, summary: RunSummary) -> None:
    from bench.console import baseline_lines, case_notes, case_table, gpu_table

    console.print(case_table(summary))
    if summary.gpu:
        console.print(gpu_table(summary))
    if summary.bandwidth:
        console.print(summary.bandwidth.sentence(), markup=False, highlight=False)
    for line in case_notes(summary):
        console.print(f"note: {line}", markup=False, highlight=False)
    for text, style in baseline_lines(summary.baselines):
        console.print(text, style=style, markup=False, highlight=False)


def _cmd_check(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bench.check import run_check
    from bench.console import endpoint_table

    info = run_check(
        endpoint=args.endpoint,
        api_key=_api_key(args),
        model=args.model,
        timeout_s=args.timeout,
        server_binary=args.server_binary,
        model_file=args.model_file,
        server_args=_server_args(args),
    )
    if args.json:
        print(json.dumps(info.to_json(), indent=2))
        return EXIT_OK
    console = Console()
    console.print(endpoint_table(info))
    for note in info.notes:
        console.print(f"note: {note}", markup=False, highlight=False)
    console.print("endpoint is usable for benchmarking", style="green")
    return EXIT_OK


def _cmd_scenarios(args: argparse.Namespace) -> int:
    if not args.set:
        for name in BUILTIN_SETS:
            scenario_set = load_scenario_set(name)
            print(f"{name:10} {len(scenario_set.cases()):3} cases  {scenario_set.description}")
        return EXIT_OK
    scenario_set = load_scenario_set(args.set)
    print(f"{scenario_set.name}: {scenario_set.description} ({scenario_set.source})")
    for case in scenario_set.cases():
        stream = "stream" if case.stream else "no-stream"
        print(f"  {case.case_id:40} {case.pattern:10} {case.requests:3} requests + {case.warmup} warm-up  {stream}")
    return EXIT_OK


def _cmd_nightly(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bench.console import ConsoleObserver
    from bench.nightly import (
        EXIT_RUN_FAILED,
        apply_retention,
        judge,
        nightly_history,
        nightly_lock,
        plain_summary,
        protected_runs,
        write_verdict,
    )
    from bench.runner import run_benchmark

    if args.keep_runs is not None and args.keep_runs < 1:
        raise ConfigError(f"--keep-runs must be at least 1; got {args.keep_runs}")
    options = _run_options(args)
    # progress and tables go to stderr; stdout carries the plain summary for cron mail
    console = Console(stderr=True)
    with nightly_lock(options.results_dir):
        observer = ConsoleObserver(console)
        try:
            result = run_benchmark(options, observer)
        except BenchError as exc:
            print(f"nightly: RUN FAILED (exit {EXIT_RUN_FAILED}): {exc}")
            return EXIT_RUN_FAILED
        finally:
            observer.stop()
        _print_summary(console, result.summary)
        if result.error_rate_exceeded:
            print(f"nightly {result.run_id}: RUN FAILED (exit {EXIT_RUN_FAILED}): {'; '.join(result.notes)}")
            return EXIT_RUN_FAILED
        history = nightly_history(options.results_dir, args.label, options.scenarios.name)
        verdict = judge(result.run_dir, result.summary, history, min_effect=args.min_effect / 100)
        write_verdict(result.run_dir, verdict)
        protect = protected_runs(options.baselines) | {result.run_id}
        if verdict.compared_with:
            protect.add(verdict.compared_with)
        removed = apply_retention(
            options.results_dir, args.label, keep_runs=args.keep_runs, keep_days=args.keep_days, protect=protect
        )
    print(plain_summary(verdict))
    print(f"results: {result.run_dir}")
    if not args.no_report:
        from bench.report.render import render_run_report, render_trend_report

        print(f"report: {render_run_report(result.run_dir, args.reports_dir, options.baselines)}")
        print(f"trend: {render_trend_report(options.results_dir, args.label, args.reports_dir, options.baselines)}")
    if removed:
        print(f"retention: removed {len(removed)} old run(s)")
    return verdict.exit_code


def _cmd_baseline(args: argparse.Namespace) -> int:
    from bench.baseline_update import adopt_run
    from bench.compare import resolve_run

    run_dir = resolve_run(args.from_run, args.results_dir)
    for change in adopt_run(run_dir, args.baselines):
        where = f" (scenario {change.scenario})" if change.scenario else ""
        if change.new is None:
            print(f"{change.figure}{where}: not measured by {run_dir.name}; kept {change.old:,g}")
        else:
            print(f"{change.figure}{where}: {change.old:,g} -> {change.new:,g}")
    print(f"wrote {args.baselines}; earlier values are kept in each entry's history")
    return EXIT_OK


def _cmd_report(args: argparse.Namespace) -> int:
    from bench.compare import resolve_run
    from bench.report.render import render_run_report, render_trend_report

    if not args.runs and not args.trend:
        raise ConfigError("name at least one RUN, or --trend LABEL")
    baselines = load_baselines(args.baselines)
    for ref in args.runs:
        print(f"wrote {render_run_report(resolve_run(ref, args.results_dir), args.reports_dir, baselines)}")
    if args.trend:
        print(f"wrote {render_trend_report(args.results_dir, args.trend, args.reports_dir, baselines)}")
    print(f"index: {args.reports_dir / 'index.html'}")
    return EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
    from bench.compare import resolve_run
    from bench.export import to_pytest_benchmark

    document = json.dumps(to_pytest_benchmark(resolve_run(args.run, args.results_dir)), indent=2, default=str)
    if args.output:
        args.output.write_text(document + "\n", encoding="utf-8")
        print(f"wrote {args.output}")
    else:
        print(document)
    return EXIT_OK


def _cmd_ab(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bench.ab import AbPlan, Variant, parse_variant, run_ab
    from bench.console import ConsoleObserver, comparison_table

    parsed = [parse_variant(text) for text in args.variant]
    switches = dict(parse_variant(text) for text in args.switch)
    unknown = sorted(set(switches) - {name for name, _ in parsed})
    if unknown:
        raise ConfigError(f"--switch for unknown variant(s): {', '.join(unknown)}")
    try:
        server_command = tuple(shlex.split(args.server_cmd)) if args.server_cmd else None
    except ValueError as exc:
        raise ConfigError(f"--server-cmd: {exc}") from None
    plan = AbPlan(
        base=_run_options(args),
        variants=tuple(Variant(name, flags, switches.get(name)) for name, flags in parsed),
        server_command=server_command,
        blocks=args.blocks,
        order=args.order,
    )
    console = Console()
    observer = ConsoleObserver(console)
    try:
        result = run_ab(plan, observer)
    finally:
        observer.stop()
    print(f"order: {', '.join(f'{name}' for _, name in result.order)}")
    for variant in result.variants:
        print(f"{variant.name} [{variant.flags}]: {len(variant.runs)} run(s) {' '.join(variant.runs)}")
        for failure in variant.failures:
            print(f"  FAILED {failure}")
    for comparison in result.comparisons:
        console.print(comparison_table(comparison))
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
    return 3 if any(not v.runs for v in result.variants) else EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    from bench.compare import REGRESSED, compare_runs, resolve_run, to_markdown

    if not 0 < args.alpha < 1:
        raise ConfigError(f"--alpha must be between 0 and 1; got {args.alpha}")
    comparison = compare_runs(
        resolve_run(args.a, args.results_dir),
        resolve_run(args.b, args.results_dir),
        alpha=args.alpha,
        min_effect=args.min_effect / 100,
        force=args.force,
    )
    baselines = load_baselines(args.baselines)
    against = {side: _baseline_text(ref.path, baselines) for side, ref in (("A", comparison.a), ("B", comparison.b))}
    if args.json:
        print(json.dumps({**comparison.to_json(), "baselines": against}, indent=2, default=str))
    elif args.markdown:
        print(to_markdown(comparison), end="")
        print("".join(f"\n- {side} against the baselines: {text}" for side, text in against.items() if text))
    else:
        from rich.console import Console

        from bench.console import comparison_table

        console = Console()
        for line in comparison.differences:
            console.print(line, markup=False, highlight=False)
        console.print(comparison_table(comparison))
        for side, text in against.items():
            if text:
                console.print(f"{side} against the baselines: {text}", markup=False, highlight=False)
    if not args.no_report:
        from bench.report.render import render_comparison_report

        path = render_comparison_report(comparison, args.reports_dir)
        print(f"report: {path}", file=sys.stderr if (args.json or args.markdown) else sys.stdout)
    regressed = bool(comparison.by_verdict(REGRESSED))
    return EXIT_REGRESSION if args.fail_on_regression and regressed else EXIT_OK


def _baseline_text(run_dir: Path, baselines: Baselines) -> str:
    from bench.store import read_records
    from bench.summary import baseline_headline, summarise_run
    from bench.telemetry.sampler import read_gpu_samples

    return baseline_headline(summarise_run(list(read_records(run_dir)), baselines, read_gpu_samples(run_dir)).baselines)


def _cmd_telemetry_command(args: argparse.Namespace) -> int:
    from bench.telemetry.smi import suggested_command

    print(shlex.join(suggested_command()))
    return EXIT_OK


def _cmd_show(args: argparse.Namespace) -> int:
    from rich.console import Console

    from bench.store import read_records, read_run_meta
    from bench.summary import summarise_run
    from bench.telemetry.sampler import read_gpu_samples

    meta = read_run_meta(args.run)
    records = list(read_records(args.run))
    # Figures are recomputed from the stored records, so a partial run shows what it measured.
    summary = summarise_run(records, load_baselines(args.baselines), read_gpu_samples(args.run))
    if args.json:
        print(json.dumps({"run": meta, **summary.to_json()}, indent=2, default=str))
        return EXIT_OK
    console = Console()
    console.print(
        f"{meta['run_id']}  status {meta.get('status')}  label {meta.get('label')}  build {meta.get('build')}  "
        f"{len(records)} records",
        markup=False,
        highlight=False,
    )
    if meta.get("partial_reason"):
        console.print(f"partial: {meta['partial_reason']}", markup=False, highlight=False)
    telemetry = meta.get("telemetry") or {}
    if telemetry.get("gpu_reason"):
        console.print(telemetry["gpu_reason"], markup=False, highlight=False)
    if records:
        _print_summary(console, summary)
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handlers = {
        "run": _cmd_run,
        "check": _cmd_check,
        "scenarios": _cmd_scenarios,
        "show": _cmd_show,
        "telemetry-command": _cmd_telemetry_command,
        "compare": _cmd_compare,
        "nightly": _cmd_nightly,
        "baseline": _cmd_baseline,
        "export": _cmd_export,
        "report": _cmd_report,
        "ab": _cmd_ab,
    }
    try:
        return handlers[args.command](args)
    except BenchError as exc:
        print(f"bench: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; measured requests are kept and the run is marked partial", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
