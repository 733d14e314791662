"""Every option the commands share, declared once, with the library's defaults.

A command asks for the groups it needs (``results_dir(parser)``, ``endpoint(parser)``...);
the values are turned into the library's option records here (``run_options``),
which validate them: the CLI refuses nothing the library would accept.
"""

from __future__ import annotations

import argparse
import math
import os
from dataclasses import fields
from pathlib import Path
from typing import Any

from bench.decide.compare import ALPHA, DEFAULT_ADJUSTMENT, DEFAULT_EQUIVALENCE, CompareSettings, Multiplicity
from bench.decide.compare import MIN_EFFECT as COMPARE_MIN_EFFECT
from bench.decide.noise import AUTO, DEFAULT_PROFILE
from bench.doors.redact import DEFAULT_API_KEY
from bench.errors import ConfigError
from bench.flows.run import RunOptions
from bench.inputs.baselines import DEFAULT_BASELINES_FILE, load_baselines
from bench.inputs.scenarios import AUTO as AUTO_WARMUP
from bench.inputs.scenarios import AUTO_WARMUP_MAX, BUILTIN_SETS, ScenarioSet, load_scenario_set, split_command
from bench.load.order import CaseOrder
from bench.load.workers import STREAMS_PER_WORKER
from bench.report import DEFAULT_REPORTS_DIR
from bench.store.run_dir import DEFAULT_RESULTS_DIR
from bench.telemetry.host import DEFAULT_QUIET_WAIT_S, OTHERS_CORES
from bench.telemetry.sampler import GPU_MODES, MIN_INTERVAL_S, TelemetryConfig
from bench.transport.client import DEFAULT_MAX_BODY_BYTES

API_KEY_ENV = "BENCH_API_KEY"
DEFAULT_SCENARIOS = "baseline"


def default(record: type, name: str) -> Any:
    """The default a library record declares for one of its fields."""
    return next(f.default for f in fields(record) if f.name == name)


# ------------------------------------------------------------------ one option or group each


def results_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--results-dir",
        type=Path,
        default=DEFAULT_RESULTS_DIR,
        metavar="DIR",
        help=f"where run directories are (default: {DEFAULT_RESULTS_DIR})",
    )


def baselines(parser: argparse.ArgumentParser, *, help_text: str | None = None) -> None:
    parser.add_argument(
        "--baselines",
        type=Path,
        metavar="PATH",
        help=help_text or f"baselines TOML (default: ./{DEFAULT_BASELINES_FILE}, else the packaged seed figures)",
    )


def as_json(parser: argparse.ArgumentParser, what: str = "the figures") -> None:
    parser.add_argument("--json", action="store_true", help=f"print {what} as JSON")


def reports(parser: argparse.ArgumentParser, *, optional: bool = True) -> None:
    parser.add_argument(
        "--reports-dir",
        type=Path,
        default=DEFAULT_REPORTS_DIR,
        metavar="DIR",
        help=f"where HTML reports go (default: {DEFAULT_REPORTS_DIR})",
    )
    if optional:
        parser.add_argument("--no-report", action="store_true", help="do not write the HTML report")


def endpoint(parser: argparse.ArgumentParser) -> None:
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
    timeout = default(RunOptions, "request_timeout_s")
    group.add_argument(
        "--timeout",
        type=float,
        default=timeout,
        metavar="S",
        help=f"per-request timeout in seconds (default {timeout:g})",
    )
    body_mib = DEFAULT_MAX_BODY_BYTES / 2**20
    group.add_argument(
        "--max-body-mib",
        type=float,
        default=body_mib,
        metavar="MIB",
        help=f"largest response body the suite reads, decompressed (default {body_mib:g}); "
        "a larger one fails its request",
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


def run(parser: argparse.ArgumentParser, default_label: str | None = None) -> None:
    """Options of a measured run: ``run``, ``nightly`` and ``ab``."""
    parser.add_argument(
        "--scenarios",
        default=DEFAULT_SCENARIOS,
        metavar="NAME|PATH",
        help=f"built-in set ({', '.join(BUILTIN_SETS)}) or a TOML file (default: {DEFAULT_SCENARIOS})",
    )
    baselines(parser)
    results_dir(parser)
    label(parser, default_label, f"a name for this run, e.g. 'nightly' or 'fa-on' (default: {default_label})")
    parser.add_argument(
        "--server-flags",
        metavar="TEXT",
        help="the server's flags as you started it (recorded, not used), e.g. '-fa 1 -ngl 999 -c 4096'",
    )
    seed = default(RunOptions, "seed")
    parser.add_argument(
        "--seed", type=int, default=seed, help=f"seed for prompt text and arrival times (default {seed})"
    )
    parser.add_argument(
        "--max-run-time", type=float, metavar="S", help="stop the whole run after S seconds; it is kept, marked partial"
    )
    ready = default(RunOptions, "ready_timeout_s")
    parser.add_argument(
        "--ready-timeout",
        type=float,
        default=ready,
        metavar="S",
        help=f"how long to wait while the server answers 503 because it is loading its model (default {ready:g})",
    )
    max_error_rate(parser, "exit 5 when more than this share of requests failed")
    parser.add_argument(
        "--workers",
        type=worker_count,
        default=default(RunOptions, "workers"),
        metavar="N|auto",
        help="spread each case's streams, or its arrivals, over N load workers, each its own event loop, so "
        "that the client stamps every token on time (the run notes a case whose client lag p99 passes 1 ms). "
        f"auto (default): one per {STREAMS_PER_WORKER} streams, up to the cores this process may use, less one "
        "for a server on this machine; with "
        "--ray, one per node with a CPU. A conversation, or a trace's session, stays with one worker",
    )
    parser.add_argument(
        "--ray",
        dest="ray_address",
        metavar="ADDRESS",
        help="run the load workers as actors on the Ray cluster whose head is at HOST:PORT (or auto: the one "
        "this machine has joined), one CPU each, spread over its nodes; records and telemetry land here. "
        "Needs the distributed extra on every node (docs/performance.md)",
    )
    parser.add_argument(
        "--warmup",
        metavar="N|auto",
        help="warm-up requests before each case's measured ones, for every case (default: each scenario's "
        f"own); auto: until two in a row agree within 5 %% in pp and tg, at most {AUTO_WARMUP_MAX}, the count "
        "kept in summary.json",
    )
    parser.add_argument(
        "--require-quiet",
        type=float,
        nargs="?",
        const=DEFAULT_QUIET_WAIT_S,
        metavar="S",
        help="before each case, wait (at most S seconds, default "
        f"{DEFAULT_QUIET_WAIT_S:g}) until other processes take under {OTHERS_CORES:g} of a core; a case disturbed "
        "anyway is measured once more (its first attempt kept out of the figures), or says so",
    )
    parser.add_argument(
        "--case-order",
        choices=[o.value for o in CaseOrder],
        default=default(RunOptions, "order").value,
        help="cases: each case's requests back to back (default); rounds: every case once a round, shuffled "
        "each round with --seed, so a drift over the run falls on every case alike (recorded in run.json)",
    )
    as_json(parser, "the summary")
    reports(parser)
    endpoint(parser)
    telemetry(parser)


def telemetry(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("telemetry (GPU and llama-server /metrics, sampled in the background)")
    group.add_argument(
        "--gpu-telemetry",
        choices=[m for m in GPU_MODES if m != "nvml"],
        default=default(TelemetryConfig, "gpu"),
        help="auto: NVML when this host has an NVIDIA driver, else a recorded 'no GPU telemetry'; none: off",
    )
    group.add_argument(
        "--gpu-telemetry-cmd",
        metavar="CMD",
        help="a command streaming nvidia-smi CSV, run as an argument list (no shell), e.g. "
        '"ssh gpu-host nvidia-smi --query-gpu=... --format=csv,noheader,nounits -lms 250"; '
        "'bench telemetry-command' prints the full query; the columns are read from its --query-gpu=",
    )
    interval = default(TelemetryConfig, "interval_s")
    group.add_argument(
        "--telemetry-interval",
        type=float,
        default=interval,
        metavar="S",
        help=f"seconds between NVML and /metrics samples (default {interval:g}, floor {MIN_INTERVAL_S:g})",
    )
    group.add_argument("--no-server-metrics", action="store_true", help="do not scrape the server's /metrics")
    group.add_argument(
        "--active-weight-gib",
        type=float,
        metavar="GIB",
        help="weights read per generated token (all weights for a dense model, the active experts' for MoE), "
        "for the memory-bandwidth figure; the embedded model's file size by default",
    )
    group.add_argument(
        "--gpu-bandwidth-gbs",
        type=float,
        metavar="GB/S",
        help="the GPU's peak memory bandwidth, where the suite does not know the card",
    )


def comparison(parser: argparse.ArgumentParser) -> None:
    decision(parser)
    parser.add_argument(
        "--noise",
        default=AUTO,
        metavar="PATH|auto|none",
        help=f"where the spread between runs comes from when a side has one run: a profile that 'bench noise' "
        f"wrote; auto (default): ./{DEFAULT_PROFILE} if it is of the runs' model, else the earlier runs of A's "
        "label; none: neither",
    )
    allowance(
        parser,
        None,
        "with one run a side and no spread between runs to test against, call a change past PCT from the "
        "requests: your word for how far two starts of your server land apart (default: none; such figures stay "
        "undecided, as a two-stream case's pp landed 37 %% apart between identical runs here)",
    )


def decision(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """How a comparison decides: --alpha, --min-effect, --adjust, --equivalence."""
    alpha(parser)
    min_effect(parser, COMPARE_MIN_EFFECT, "smallest change in percent reported as improved/regressed")
    parser.add_argument(
        "--adjust",
        choices=[m.value for m in Multiplicity],
        default=DEFAULT_ADJUSTMENT.value,
        help="how the many tests of a comparison are held together: bh (default; Benjamini-Hochberg: false "
        "discoveries at most alpha, and no false verdict at all in an A/A at 1 - alpha), holm (the chance of any "
        "false verdict at most alpha, whatever changed; needs many more requests), none (each test alone)",
    )
    equivalence(parser)


def compare_settings(args: argparse.Namespace) -> CompareSettings:
    """The comparison's settings from --alpha, --min-effect, --adjust, --equivalence (and --allowance, --force)."""
    return CompareSettings(
        alpha=args.alpha,
        min_effect=args.min_effect / 100,
        adjustment=Multiplicity(args.adjust),
        allowance=percent_or_none(getattr(args, "allowance", None)),
        margin=args.equivalence / 100,
        force=getattr(args, "force", False),
    )


# ------------------------------------------------------------------ values -> library records


def api_key(args: argparse.Namespace) -> str:
    return getattr(args, "api_key", None) or os.environ.get(API_KEY_ENV) or DEFAULT_API_KEY


def run_options(args: argparse.Namespace, scenarios: ScenarioSet | None = None) -> RunOptions:
    """The run a command's options describe; a command without the run group (capacity) gets the defaults."""

    def given(name: str, field_name: str) -> Any:
        return getattr(args, name, default(RunOptions, field_name))

    scenarios = scenarios if scenarios is not None else load_scenario_set(args.scenarios)
    if (warmup := getattr(args, "warmup", None)) is not None:
        scenarios = scenarios.with_warmup(warmup if warmup == AUTO_WARMUP else _count(warmup, "--warmup"))
    return RunOptions(
        scenarios=scenarios,
        endpoint=args.endpoint,
        api_key=api_key(args),
        model=args.model,
        baselines=load_baselines(getattr(args, "baselines", None)),
        results_dir=args.results_dir,
        label=args.label,
        server_flags=given("server_flags", "server_flags"),
        seed=given("seed", "seed"),
        request_timeout_s=args.timeout,
        max_run_s=given("max_run_time", "max_run_s"),
        ready_timeout_s=given("ready_timeout", "ready_timeout_s"),
        max_error_rate=given("max_error_rate", "max_error_rate"),
        server_binary=args.server_binary,
        model_file=args.model_file,
        server_args=split_command(args.server_args, "--server-args"),
        telemetry=TelemetryConfig(
            interval_s=args.telemetry_interval,
            gpu=args.gpu_telemetry,
            command=split_command(args.gpu_telemetry_cmd, "--gpu-telemetry-cmd"),
            metrics=not args.no_server_metrics,
        ),
        active_weight_gib=args.active_weight_gib,
        peak_bandwidth_gbs=args.gpu_bandwidth_gbs,
        max_body_bytes=max_body_bytes(args),
        order=CaseOrder(given("case_order", "order")),
        workers=given("workers", "workers"),
        ray_address=given("ray_address", "ray_address"),
        require_quiet_s=given("require_quiet", "require_quiet_s"),
    )


def seconds(text: str, option: str) -> float:
    """A duration: seconds, or with a unit, e.g. 90, 30m, 2h."""
    units = {"s": 1.0, "m": 60.0, "h": 3600.0}
    number, unit = (text[:-1], units[text[-1]]) if text and text[-1] in units else (text, 1.0)
    try:
        value = float(number) * unit
    except ValueError:
        raise ConfigError(f"{option} must be a duration such as 90, 30m or 2h; got {text!r}") from None
    if not 0 < value < math.inf:
        raise ConfigError(f"{option} must be a positive duration; got {text!r}")
    return value


def _count(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f'{option} must be a count or "auto"; got {text!r}') from None


def worker_count(text: str) -> int | None:
    """--workers: a count, or auto (None)."""
    if text == "auto":
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a number of workers, or auto; got {text!r}") from None


def max_body_bytes(args: argparse.Namespace) -> int:
    mib = args.max_body_mib
    if not 0 < mib < math.inf:
        raise ConfigError(f"--max-body-mib must be a positive, finite number; got {mib}")
    return int(mib * 2**20)


# ------------------------------------------------------------------ options more than one command takes
# Each is declared here once, with the library's constant as its default; a command's help may say
# what the option means for it.


def alpha(parser: argparse.ArgumentParser | argparse._ArgumentGroup, default_alpha: float = ALPHA) -> None:
    parser.add_argument(
        "--alpha", type=float, default=default_alpha, help=f"significance level (default {default_alpha:g})"
    )


def min_effect(parser: argparse.ArgumentParser | argparse._ArgumentGroup, fraction: float, help_text: str) -> None:
    """``--min-effect PCT``: the library's fraction, shown and taken in percent."""
    parser.add_argument(
        "--min-effect", type=float, default=fraction * 100, metavar="PCT",
        help=f"{help_text} (default {fraction * 100:g})",
    )  # fmt: skip


def allowance(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, fraction: float | None, help_text: str
) -> None:
    """``--allowance PCT`` (``help_text`` names the default as ``{default}``); None: no default."""
    parser.add_argument(
        "--allowance", type=float, default=None if fraction is None else fraction * 100, metavar="PCT",
        help=help_text.format(default=None if fraction is None else fraction * 100),
    )  # fmt: skip


def equivalence(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """``--equivalence PCT``: the margin of "the same"."""
    parser.add_argument(
        "--equivalence", type=float, default=DEFAULT_EQUIVALENCE * 100, metavar="PCT",
        help="a figure is 'the same' when two one-sided tests put its change inside +-PCT "
        f"(default {DEFAULT_EQUIVALENCE * 100:g}: what about 14 runs a side show for tg at the 4.5 %% spread "
        "between server starts measured here; tighten it where runs agree better)",
    )  # fmt: skip


def percent_or_none(value: float | None) -> float | None:
    return None if value is None else value / 100


def label(parser: argparse.ArgumentParser, default_label: str | None, help_text: str) -> None:
    parser.add_argument("--label", default=default_label, help=help_text)


def max_error_rate(parser: argparse.ArgumentParser, help_text: str) -> None:
    rate = default(RunOptions, "max_error_rate")
    parser.add_argument(
        "--max-error-rate", type=float, default=rate, metavar="F", help=f"{help_text} (default {rate:g})"
    )
