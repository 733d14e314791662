"""The ``bench`` argument parser: each command's words and the option groups it takes."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from bench.cli import options
from bench.decide.nightly import DEFAULT_CONFIRM_RUNS, MIN_NIGHTS_FOR_NOISE
from bench.decide.nightly import FIRST_NIGHTS_ALLOWANCE as NIGHTLY_ALLOWANCE
from bench.decide.nightly import MIN_EFFECT as NIGHTLY_MIN_EFFECT
from bench.decide.noise import DEFAULT_PROFILE
from bench.flows.ab import FIGURE_NAMES, AbPlan, BlockOrder
from bench.flows.bisect import DECIDED_FIGURES, BisectPlan
from bench.flows.capacity import DEFAULT_MAX_CONCURRENCY, DEFAULT_REQUESTS_PER_STREAM, DEFAULT_TARGET
from bench.flows.noise import DEFAULT_PASSES, NOISE_LABEL
from bench.inputs.scenarios import HEADLINE_OUTPUT_TOKENS, HEADLINE_PROMPT_TOKENS
from bench.load.builds import DEFAULT_CACHE, SERVER_PATH
from bench.store.run_dir import GROUP_HELP
from bench.version import __version__

EPILOG = """exit codes (every command):
  0 success; 1 a regression (nightly, compare --fail-on-regression);
  2 bad configuration or options; 3 endpoint unusable
  (unreachable, auth failed, server errors, embedded server failed to start);
  4 results directory unreadable, unwritable or held by another nightly;
  5 error rate above --max-error-rate; 70 internal error (a bug: please report it);
  130 interrupted (what was measured is kept, the run is marked partial)
"""


if TYPE_CHECKING:
    Commands = argparse._SubParsersAction[argparse.ArgumentParser]


@dataclass(frozen=True, slots=True)
class Command:
    """One ``bench`` command: its word, its line in ``bench --help``, and what declares its options."""

    name: str
    summary: str
    declare: Callable[[argparse.ArgumentParser], None]


def _command(commands: Commands, name: str, summary: str, description: str = "") -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=description,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bench",
        description="Benchmark llama-server or any OpenAI-compatible endpoint: prompt and generation "
        "t/s from the server's own timings, TTFT/ITL/latency on the client, compared with baselines.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"llama-server-bench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in COMMANDS:
        command.declare(_command(commands, command.name, command.summary))
    return parser


def _run(run: argparse.ArgumentParser) -> None:
    run.description = (
        "Run a scenario set against the endpoint (or the embedded llama-server), store every "
        "request in results/<run-id>/ as it ends, and print the figures against the baselines."
    )
    options.run(run)


def _check(check: argparse.ArgumentParser) -> None:
    check.description = (
        "Reach the endpoint, check auth and the model, send one streaming and one "
        "non-streaming request, and report timings, usage, reasoning, build, n_ctx, slots and "
        "whether streamed tokens arrive one by one or in bursts (a buffering proxy)."
    )
    options.as_json(check, "the report")
    options.endpoint(check)


def _scenarios(scenarios: argparse.ArgumentParser) -> None:
    scenarios.description = (
        "Without an argument, list the built-in sets. With NAME or PATH, validate that set "
        "and list its cases (prompt x output x concurrency x depth)."
    )
    scenarios.add_argument("set", nargs="?", metavar="NAME|PATH")


def _baseline(baseline: argparse.ArgumentParser) -> None:
    baseline.description = (
        "'bench baseline set --from RUN' writes the run's figures into the baselines file, each over "
        "its baseline's scenario, and keeps every old value in that entry's history."
    )
    baseline_commands = baseline.add_subparsers(dest="baseline_command", metavar="ACTION", required=True)
    baseline_set = _command(baseline_commands, "set", "adopt a run's figures", baseline.description or "")
    baseline_set.add_argument(
        "--from", dest="from_run", required=True, metavar="RUN", help="run id, directory or label"
    )
    options.results_dir(baseline_set)
    options.baselines(
        baseline_set,
        help_text="the file to write (default ./baselines.toml, created from the current baselines if absent)",
    )


def _export(export: argparse.ArgumentParser) -> None:
    export.description = (
        "Write a run in pytest-benchmark's JSON format: one benchmark per case and figure (pp and tg "
        "as seconds per token, TTFT and e2e as seconds: lower is better, as pytest-benchmark expects). "
        "'pytest-benchmark compare A.json B.json' then reads our runs."
    )
    export.add_argument("run", metavar="RUN", help="run id, directory, label, latest or previous")
    options.results_dir(export)
    export.add_argument("-o", "--output", type=Path, metavar="FILE", help="write here (default: stdout)")


def _nightly(nightly: argparse.ArgumentParser) -> None:
    nightly.description = (
        "The nightly regression gate. Runs the scenario set (default: baseline), then judges it against "
        "(1) the baselines file with its tolerances, (2) the last good nightly (bootstrap CI and Mann-Whitney U, "
        "held against a threshold from the measured night-to-night noise: a drop of twice the threshold pages at "
        "once, a smaller one after fresh runs of the flagged cases (--confirm-runs) show it holding, or with "
        "--confirm-runs 0 on the second night in a row), and (3) the nightly history with E-divisive "
        "change points. Writes nightly.json into the run directory and a plain summary on stdout for cron mail. "
        "A lock in the results directory keeps two nightlies from overlapping."
    )
    nightly.epilog = (
        "exit codes: 0 no regression; 1 regression found (which figure, how much, how sure is printed);\n"
        "  6 undecided: a drop past its threshold that the night's spread (and --confirm-runs) could not tell\n"
        "  from noise: neither good nor paged, so that it is never taken for a good night;\n"
        "  when the run itself fails, the code of the failure, as for every command:\n"
        "  2 bad configuration, 3 endpoint down, 4 results directory (or another nightly running),\n"
        "  5 error rate above --max-error-rate, 130 interrupted\n"
    )
    options.run(nightly, default_label="nightly")
    gate = nightly.add_argument_group("gate and retention")
    options.min_effect(
        gate, NIGHTLY_MIN_EFFECT, "smallest drop in percent that can count as a regression; measured noise can raise it"
    )
    options.allowance(
        gate,
        NIGHTLY_ALLOWANCE,
        f"until {MIN_NIGHTS_FOR_NOISE} nights give the spread between nights, the smallest drop that can count "
        "(default {default:g}: two nights of one build can land that far apart)",
    )
    gate.add_argument(
        "--confirm-runs",
        type=int,
        default=DEFAULT_CONFIRM_RUNS,
        metavar="N",
        help="a drop past its threshold is measured again on N fresh runs of the flagged cases (a server start "
        "each where the suite starts the server) and pages only if it holds (default %(default)s; 0: page on the "
        "night alone, a drop between T and 2T on its second night)",
    )
    gate.add_argument("--keep-runs", type=int, metavar="N", help="keep the newest N runs of this label, delete older")
    gate.add_argument("--keep-days", type=float, metavar="D", help="delete runs of this label older than D days")


def _ab(ab: argparse.ArgumentParser) -> None:
    ab.description = (
        "Before/after comparison of server flags. Either the suite starts the servers (--server-cmd, "
        "or the embedded server without it): for each block each variant's server starts on 127.0.0.1, is measured "
        "with the scenario set and stopped. Or a remote --endpoint, with an optional --switch command per variant "
        "that reconfigures it (run as an argument list, then /health is awaited). Blocks interleave the variants "
        "(A B, B A, ... or --order random, recorded), so drift falls on both. Every later variant is compared with "
        "the first, each pooling its blocks; a temperature-0 answer per run flags variants that say different things."
    )
    ab.epilog = (
        'example: bench ab --server-cmd "llama-server -m model.gguf -ngl 999 -c 4096" '
        '--variant fa_off="-fa off" --variant fa_on="-fa on"\n' + EPILOG
    )
    options.run(ab)
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
        default=options.default(AbPlan, "blocks"),
        help="rounds of all variants, each a server start per variant (default %(default)s: two starts of the same "
        "server can differ by a few percent, and the comparison counts starts, not requests)",
    )
    variants.add_argument(
        "--order", choices=[o.value for o in BlockOrder], default=BlockOrder.ALTERNATE.value, help="order within blocks"
    )
    deciding = ab.add_argument_group("deciding")
    options.decision(deciding)
    deciding.add_argument(
        "--until-decided",
        action="store_true",
        help="add blocks until every figure in --decide is changed or the same within --equivalence, or the "
        "budget is spent; looks after every second block (A B, B A) with p-values that hold over every look, so "
        "looking often does not make an A/A 'changed' more often",
    )
    deciding.add_argument(
        "--max-blocks",
        type=int,
        default=options.default(AbPlan, "max_blocks"),
        help="--until-decided: at most this many blocks (default %(default)s)",
    )
    deciding.add_argument(
        "--max-time", type=float, metavar="S", help="--until-decided: start no further pair of blocks after S seconds"
    )
    deciding.add_argument(
        "--decide",
        metavar="FIGURES",
        help=f"--until-decided: the figures to decide, comma-separated, from {', '.join(FIGURE_NAMES)} "
        f"in every case (default: each case's own: pp where its prompt has {HEADLINE_PROMPT_TOKENS} tokens or more, "
        f"tg where its answer has {HEADLINE_OUTPUT_TOKENS} or more)",
    )


def _compare(compare: argparse.ArgumentParser) -> None:
    compare.description = (
        "Compare B against A. For each case and figure (pp and tg t/s from the server's "
        "timings, TTFT, ITL, e2e latency): both values, the change B/A - 1 of the medians, a 95 % confidence "
        "interval, a p-value (raw and adjusted over every figure: --adjust) and a verdict. A and B are run ids, "
        "run directories, labels (the newest run with that label), 'latest' or 'previous'; or several runs a side "
        "(RUN1,RUN2 / a glob of run ids / all:LABEL), then compared run by run (Welch on run medians), so the "
        "drift between runs is tested too. One run a side: tested against the spread between runs of a noise "
        "profile (bench noise) or of A's label history; with neither, the figure stays undecided (unless you give "
        "--allowance), because requests of one run cannot show how far runs land apart. Each tested figure is "
        "improved or regressed, the same within +-E (--equivalence), or undecided with about how many more runs "
        "a side would decide it. "
        "Two capacity-<time>.json files (bench capacity) compare as two searches: both curves and the change "
        "in capacity (--fail-on-regression: exit 1 when B is more than one level lower)."
    )
    compare.add_argument("a", metavar="A", help=f"the reference: {GROUP_HELP}")
    compare.add_argument("b", metavar="B", help="the side judged against A, given the same ways")
    options.results_dir(compare)
    options.comparison(compare)
    compare.add_argument(
        "--force", action="store_true", help="compare runs of different models or scenario definitions"
    )
    options.as_json(compare, "the comparison")
    compare.add_argument("--markdown", action="store_true", help="print a Markdown table (for an issue or PR)")
    compare.add_argument("--fail-on-regression", action="store_true", help="exit 1 if any figure regressed")
    options.baselines(compare, help_text="baselines TOML to hold both runs against")
    options.reports(compare)


def _report(report: argparse.ArgumentParser) -> None:
    report.description = (
        "Write self-contained HTML reports (no network needed to open them) into the reports "
        "directory and update its index.html: one report per RUN (run ids, directories, labels, latest, "
        "previous), and with --trend LABEL the nightly trend of that label. 'bench run', 'bench compare' and "
        "'bench nightly' write theirs automatically."
    )
    report.add_argument("runs", nargs="*", metavar="RUN")
    report.add_argument("--trend", metavar="LABEL", help="also write the trend report of this label's nightly runs")
    options.results_dir(report)
    options.reports(report, optional=False)
    options.baselines(report, help_text="baselines TOML to compare with")


def _telemetry_command(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Print a ready --gpu-telemetry-cmd value: nvidia-smi over SSH with the fields the suite parses."
    )


def _show(show: argparse.ArgumentParser) -> None:
    show.description = "Print the summary of a stored run."
    show.add_argument("run", metavar="RUN", help="run id, directory, label, latest or previous")
    options.results_dir(show)
    options.as_json(show)
    options.baselines(show, help_text="baselines TOML to compare with")


def _plan(plan: argparse.ArgumentParser) -> None:
    plan.description = (
        "From the spread between runs of one setup (several runs of the same server and flags, a noise profile "
        "that bench noise wrote, or a label's history), for each case's pp and tg and each --change, the fewest "
        "runs a side at which a run-by-run comparison (Welch on run medians, as bench compare with several runs "
        "a side and bench ab do) finds it with --power, and the server time both sides take; and the same with "
        "four times the requests a case, which helps only where requests, not runs, make the spread. Each figure "
        "is planned alone at --alpha: a comparison adjusted over many figures needs more."
    )
    plan.add_argument("runs", nargs="?", metavar="RUNS", help=f"at least 3 runs of one setup: {GROUP_HELP}")
    plan.add_argument("--noise", metavar="PATH", help="a noise profile (bench noise) instead of RUNS")
    plan.add_argument("--history", metavar="LABEL", help="the latest complete runs of this label instead of RUNS")
    options.results_dir(plan)
    plan.add_argument(
        "--change", action="append", type=float, metavar="PCT", help="a change to find, in percent (default 3 and 6.5)"
    )
    plan.add_argument("--power", type=float, default=0.95, help="the chance to find it (default 0.95)")
    options.alpha(plan)


def _noise(noise: argparse.ArgumentParser) -> None:
    noise.description = (
        "Run the scenario set --passes times, each pass its own run (and its own server start when the suite "
        "starts the server), or take runs you have (--from), and write the noise profile: for each case and "
        "figure, the spread between runs (server starts, the machine, clocks: what requests of one run cannot "
        "show) and within a run. bench compare reads it (./noise-profile.json by default) to test one run a "
        "side, and bench plan to size a comparison. Measure it again when the server, its flags or the "
        "machine change."
    )
    noise.add_argument(
        "--from", dest="from_runs", metavar="RUNS", help=f"make the profile of these runs (at least 3): {GROUP_HELP}"
    )
    noise.add_argument(
        "--passes", type=int, default=DEFAULT_PASSES, help=f"runs of the set to make (default {DEFAULT_PASSES})"
    )
    noise.add_argument(
        "--out",
        type=Path,
        default=DEFAULT_PROFILE,
        metavar="PATH",
        help=f"where to write it (default ./{DEFAULT_PROFILE})",
    )
    options.run(noise, default_label=NOISE_LABEL)


def _bisect(bisect: argparse.ArgumentParser) -> None:
    bisect.description = (
        "From a good and a bad commit of a llama.cpp checkout to the first bad one. Each commit is built once "
        "in its own git worktree under --cache (your checkout is never touched), by --build-cmd or CMake for "
        "llama-server alone. Good and bad are measured first (--runs server starts each) on the scenario set; "
        "the case whose figure moved most against its spread between runs is followed. Each commit tested "
        "gets runs until a sequential probability ratio test puts it with good or with bad (error at most 1 % "
        "each way), or --max-runs leaves it unclear; one that does not build is skipped, as git bisect skip. "
        "Each run is stored as bisect-<hash>; the search as bisect-<time>.json."
    )
    bisect.epilog = (
        "example: bench bisect --repo ~/llama.cpp --good b6458 --bad b6500 --model-file gpt-oss-20b.gguf "
        '--server-args "-ngl 999 -fa on" --scenarios quick\n'
        "a server it does not start: bench bisect --repo ~/llama.cpp --good b6458 --bad b6500 "
        "--endpoint http://gpu-host.example:8080 --deploy-cmd 'ssh gpu-host.example ./deploy-llama {commit}'\n"
        "exit codes: 0 the first bad commit found; 6 only a range (skipped or unclear commits hide the border)\n"
        + EPILOG
    )
    bisect.add_argument("--repo", type=Path, default=Path("."), help="the llama.cpp git checkout (default: here)")
    bisect.add_argument("--good", required=True, metavar="REF", help="a commit, tag or branch that was fast")
    bisect.add_argument("--bad", required=True, metavar="REF", help="a later one that is slow")
    bisect.add_argument(
        "--build-cmd",
        action="append",
        default=[],
        metavar="CMD",
        help="a build command run in the commit's worktree (repeat for several, in order); it must leave "
        f"{SERVER_PATH} (default: CMake and Ninja for llama-server, CUDA where nvcc is found, through ccache)",
    )
    bisect.add_argument(
        "--binaries",
        type=Path,
        metavar="DIR",
        help="a folder of unpacked release builds (b6458/, llama-b6458-bin-ubuntu-x64/, ...) to bisect by build "
        "number instead of building commits; --good and --bad are then build numbers",
    )
    bisect.add_argument(
        "--deploy-cmd",
        metavar="CMD",
        help="for a server the suite does not start (--endpoint): the command that puts a commit on it, naming "
        "the commit as {commit} (full hash) or {short}; it runs before every run (each run its own server "
        "start) and must have the endpoint serving that build when it exits 0, which /props's build_info must "
        "then show (else bisect stops). Nothing is built here",
    )
    bisect.add_argument(
        "--deploy-timeout",
        type=float,
        default=options.default(BisectPlan, "deploy_timeout_s"),
        metavar="S",
        help="seconds one deploy may take (default %(default)g)",
    )
    bisect.add_argument("--figure", choices=DECIDED_FIGURES, default="tg_tps", help="the figure to follow")
    bisect.add_argument("--case", metavar="ID", help="the case to follow (default: the one that moved most)")
    bisect.add_argument(
        "--runs", type=int, default=options.default(BisectPlan, "reference_runs"), help="runs of good and of bad"
    )
    bisect.add_argument(
        "--max-runs", type=int, default=options.default(BisectPlan, "max_runs"), help="runs a commit may take"
    )
    bisect.add_argument(
        "--cache", type=Path, default=DEFAULT_CACHE, help=f"worktrees and builds (default {DEFAULT_CACHE})"
    )
    options.run(bisect, default_label=None)


def _soak(soak: argparse.ArgumentParser) -> None:
    soak.description = (
        "Keep one server up (the suite's, or --endpoint) and run the scenario set against it window after "
        "window until --duration is spent, each window a stored run, with the server's resident memory beside "
        "it (a server the suite started). Over the windows, each case's pp and tg is a series; E-divisive "
        "change points (as the nightly gate's) say where one shifted and by how much."
    )
    soak.epilog = "example: bench soak --duration 30m --scenarios quick\n" + EPILOG
    soak.add_argument("--duration", required=True, metavar="S|30m|2h", help="how long to soak")
    soak.add_argument("--windows", type=int, metavar="N", help="stop after N windows, if the duration has not")
    options.run(soak, default_label="soak")


def _capacity(capacity: argparse.ArgumentParser) -> None:
    capacity.description = (
        "Search for the highest closed-loop concurrency at which at least --target of the requests meet the SLO "
        "(and errors stay under --max-error-rate): double the level from --start until one fails, then bisect "
        "between the last that held and the first that failed, up to --max-concurrency. Each level is a stored "
        "run (label CAPACITY-cN) of one case of --prompt-tokens and --output-tokens, --requests-per-stream "
        "requests a stream. Prints the curve (SLO attainment, goodput, output t/s, latency per level) and the "
        "answer, and keeps both in results/capacity-<time>.json. Against the embedded server each level starts "
        "its own server, one slot per stream, unless --server-args fixes -np."
    )
    capacity.add_argument(
        "--slo",
        required=True,
        metavar="LIMITS",
        help="e.g. ttft_ms=2000,tpot_ms=50 (ttft_ms, ttfct_ms, tpot_ms, itl_p99_ms, e2e_ms)",
    )
    capacity.add_argument(
        "--target",
        type=float,
        default=DEFAULT_TARGET * 100,
        metavar="PCT",
        help=f"share of requests that must meet the SLO (default {DEFAULT_TARGET * 100:g})",
    )
    capacity.add_argument("--prompt-tokens", type=int, default=512, help="prompt length (default 512)")
    capacity.add_argument("--output-tokens", type=int, default=128, help="generated tokens (default 128)")
    capacity.add_argument("--start", type=int, default=1, help="first level (default 1)")
    capacity.add_argument("--max-concurrency", type=int, default=DEFAULT_MAX_CONCURRENCY,
                          help=f"highest level tried (default {DEFAULT_MAX_CONCURRENCY})")  # fmt: skip
    capacity.add_argument(
        "--requests-per-stream",
        type=int,
        default=DEFAULT_REQUESTS_PER_STREAM,
        help=f"measured requests per stream at each level (default {DEFAULT_REQUESTS_PER_STREAM})",
    )
    options.label(capacity, "capacity", "label prefix of the level runs (default capacity)")
    options.max_error_rate(capacity, "a level with more failed requests than this fails")
    options.results_dir(capacity)
    options.as_json(capacity, "the result")
    options.reports(capacity)
    options.endpoint(capacity)
    options.telemetry(capacity)


def _trace(trace: argparse.ArgumentParser) -> None:
    trace.description = (
        "A trace (JSON Lines: t, input_tokens, output_tokens, and optionally session/turn and "
        "prefix/prefix_tokens; see docs/traces.md) is replayed by a scenario with pattern = 'trace'.\n"
        "'bench trace show PATH' checks it and says what it holds; 'bench trace import' converts a "
        "Mooncake JSONL or an Azure LLM inference trace CSV into one."
    )
    actions = trace.add_subparsers(dest="trace_command", metavar="ACTION", required=True)
    show = _command(actions, "show", "check a trace and summarise it", trace.description or "")
    show.add_argument("trace", metavar="PATH|sample", help="a JSONL trace, or 'sample' for the shipped one")
    convert = _command(actions, "import", "convert a Mooncake or Azure trace", trace.description or "")
    convert.add_argument("source", type=Path, metavar="SOURCE", help="the trace to convert")
    convert.add_argument(
        "--format", required=True, choices=("mooncake", "azure"), help="the source's shape (see docs/traces.md)"
    )
    convert.add_argument("--out", type=Path, required=True, metavar="PATH", help="the JSONL trace to write")


# Every command of ``bench``, in the order ``bench --help`` lists them: the one table that the
# parser, the handlers (``bench.cli.commands.HANDLERS``), the --help test and README's table of
# commands (``python -m bench.devtools.docs``) are built from.
COMMANDS: tuple[Command, ...] = (
    Command("run", "run a scenario set and store the results", _run),
    Command("check", "check that an endpoint can be benchmarked and show what it offers", _check),
    Command("scenarios", "list the built-in scenario sets, or the cases of one set", _scenarios),
    Command("baseline", "adopt a measured run as the new baselines", _baseline),
    Command("export", "export a run for pytest-benchmark (compare, history, --benchmark-compare-fail)", _export),
    Command(
        "nightly", "run the scenario set and judge it: exit 0 ok, 1 regression, other codes: the run failed", _nightly
    ),
    Command("ab", "compare server flag variants, interleaved in blocks, with the servers started or switched", _ab),
    Command("compare", "compare two runs per case and figure: ratio, 95 %% CI, p-value, verdict", _compare),
    Command("report", "write HTML reports of runs, or the nightly trend of a label", _report),
    Command("telemetry-command", "print the nvidia-smi command to pass as --gpu-telemetry-cmd", _telemetry_command),
    Command("show", "print the figures of a stored run", _show),
    Command("plan", "how many runs a side a comparison needs, from the spread between runs of one setup", _plan),
    Command("noise", "measure how far runs of one setup land apart, and keep it for bench compare", _noise),
    Command("capacity", "how many concurrent users the server carries within SLOs", _capacity),
    Command("trace", "check a request trace, or import one from a public trace format", _trace),
    Command("bisect", "find the llama.cpp commit that made a figure worse, between a good and a bad one", _bisect),
    Command("soak", "run the set window after window against one server for hours, and say whether it slows", _soak),
)
