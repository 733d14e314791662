"""The run pipeline: scenarios -> preflight -> exact prompts -> load -> records -> summary.

``run_benchmark`` is what ``bench run`` calls and what a Python user calls::

    from bench import RunOptions, load_scenario_set, run_benchmark
    result = run_benchmark(RunOptions(scenarios=load_scenario_set("smoke")))
    print(result.run_dir, result.summary.baselines)

With no endpoint it starts the embedded llama-server and stops it on every
exit path. Records reach disk as each request ends; an interrupt, a crash or an
error leaves a run directory marked partial or failed with everything measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from bench import __version__
from bench.client import ChatClient
from bench.clock import RunClock
from bench.config import Baselines, Case, ScenarioSet
from bench.errors import BenchError
from bench.loadgen import CaseOutcome, CaseRunner
from bench.preflight import EndpointInfo, check_cases_fit, probe, props_subset, wait_until_ready
from bench.records import RequestRecord
from bench.server import LocalServer, local_server
from bench.store import RunStore, check_writable
from bench.summary import CaseSummary, RunSummary, summarise_case, summarise_run
from bench.telemetry.sampler import TelemetryConfig, TelemetrySampler, read_gpu_samples
from bench.workload import PromptBuilder

DEFAULT_MAX_ERROR_RATE = 0.05


class RunObserver(Protocol):
    """What a front end hears about a run as it goes (all methods optional in spirit)."""

    def message(self, text: str) -> None: ...
    def run_started(self, run_dir: Path, cases: Sequence[Case]) -> None: ...
    def case_started(self, case: Case) -> None: ...
    def request_done(self, record: RequestRecord) -> None: ...
    def case_done(self, case: Case, summary: CaseSummary, outcome: CaseOutcome) -> None: ...


class QuietObserver:
    def message(self, text: str) -> None:
        pass

    def run_started(self, run_dir: Path, cases: Sequence[Case]) -> None:
        pass

    def case_started(self, case: Case) -> None:
        pass

    def request_done(self, record: RequestRecord) -> None:
        pass

    def case_done(self, case: Case, summary: CaseSummary, outcome: CaseOutcome) -> None:
        pass


@dataclass(frozen=True, slots=True)
class RunOptions:
    scenarios: ScenarioSet
    endpoint: str | None = None  # None: start the embedded llama-server
    api_key: str = "EMPTY"
    model: str | None = None
    baselines: Baselines | None = None
    results_dir: Path = Path("results")
    label: str | None = None
    server_flags: str | None = None  # as the user states them, for a remote server
    seed: int = 0
    request_timeout_s: float = 600.0
    max_error_rate: float = DEFAULT_MAX_ERROR_RATE
    server_binary: Path | None = None
    model_file: Path | None = None
    server_args: tuple[str, ...] | None = None  # flags for a server the suite starts
    telemetry: TelemetryConfig = field(default_factory=TelemetryConfig)
    ready_timeout_s: float = 300.0  # how long to wait while the server answers 503 (loading the model)
    max_run_s: float | None = None  # stop the whole run after this long (partial)
    output_probe: bool = False  # after the cases, record a temperature-0 answer (A/B output checks)
    active_weight_gib: float | None = None  # weights read per generated token, for the bandwidth figure
    peak_bandwidth_gbs: float | None = None  # overrides the card's data-sheet figure


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    run_dir: Path
    status: str
    summary: RunSummary
    endpoint: EndpointInfo | None
    error_rate_exceeded: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


def suite_git_sha() -> str | None:
    """The suite's own commit when it runs from a git checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            cwd=Path(__file__).resolve().parent,
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_benchmark(options: RunOptions, observer: RunObserver | None = None) -> RunResult:
    """Run a scenario set and store it; see the module docstring."""
    return asyncio.run(_run(options, observer or QuietObserver()))


async def _run(options: RunOptions, observer: RunObserver) -> RunResult:
    cases = options.scenarios.cases()
    check_writable(options.results_dir)
    store = RunStore.create(options.results_dir, options.label)
    clock = RunClock()
    records: list[RequestRecord] = []
    stopped: str | None = None  # why the run ended before its last case, if it did
    server: LocalServer | None = None
    sampler: TelemetrySampler | None = None
    active_weight_gib = options.active_weight_gib
    store.write_meta(
        suite_version=__version__,
        suite_git_sha=suite_git_sha(),
        started=clock.wall_start,
        label=options.label,
        server_flags=options.server_flags,
        scenario_set=options.scenarios.to_dict(),
        baselines_source=options.baselines.source if options.baselines else None,
        python=sys.version.split()[0],
        platform=platform.platform(),
        seed=options.seed,
    )
    observer.run_started(store.path, cases)
    max_streams = max(c.concurrency for c in cases)
    try:
        endpoint = options.endpoint
        if endpoint is None:
            server = local_server(
                binary=options.server_binary,
                model_file=options.model_file,
                args=options.server_args,
                log_path=store.path / "server.log",
                max_concurrency=max_streams,
            )
            observer.message(f"starting {server.binary.name} on {server.url}")
            await asyncio.to_thread(server.start)
            endpoint = server.url
            store.write_meta(server={"started_by_suite": True, "command": server.command, "args": list(server.args)})
            if active_weight_gib is None and options.model_file is None and server.model is not None:
                # the embedded model is dense: every token reads all of its weights
                active_weight_gib = server.model.stat().st_size / 1024**3
        async with ChatClient(
            endpoint,
            api_key=options.api_key,
            model=options.model,
            max_connections=max_streams + 2,
            timeout_s=options.request_timeout_s,
            clock=clock,
        ) as client:
            await wait_until_ready(client, options.ready_timeout_s, observer.message)
            props = await client.get_json("/props")
            n_ctx = props.get("default_generation_settings", {}).get("n_ctx") if isinstance(props, dict) else None
            check_cases_fit(cases, n_ctx if isinstance(n_ctx, int) else None)
            info = await probe(client, props=props)
            for note in info.notes:
                observer.message(f"note: {note}")
            store.write_meta(endpoint=info.to_json(), props=props_subset(props), model=info.model, build=info.build)
            if info.total_slots is not None and max_streams > info.total_slots:
                observer.message(
                    f"note: concurrency up to {max_streams} but the server has {info.total_slots} slot(s): "
                    "requests beyond that queue on the server"
                )
            builder = PromptBuilder(client, seed=options.seed, run_tag=store.run_id[-6:])
            sampler = TelemetrySampler(
                store.path,
                clock,
                options.telemetry,
                metrics_url=f"{client.base_url}/metrics",
                api_key=options.api_key,
                server_pid=server.pid if server else None,
            )
            telemetry = await asyncio.to_thread(sampler.start)
            store.write_meta(telemetry=telemetry.to_json())
            if telemetry.gpu_reason:
                observer.message(telemetry.gpu_reason)

            async def recover() -> None:
                await wait_until_ready(client, options.ready_timeout_s, observer.message, while_unreachable=True)

            def sink(record: RequestRecord) -> None:
                store.append(record)
                records.append(record)
                observer.request_done(record)

            # Every prompt is built before any load is sent: a case that cannot be built
            # (shorter than the chat template, say) stops the run before it starts.
            observer.message(f"building exact-length prompts for {len(cases)} case(s)")
            prepared = [await builder.build_case(case) for case in cases]
            try:
                async with asyncio.timeout(options.max_run_s):
                    for number, (case, prompts) in enumerate(zip(cases, prepared, strict=True)):
                        observer.case_started(case)
                        runner = CaseRunner(
                            client, store.run_id, case, prompts, sink, seed=options.seed + number, recover=recover
                        )
                        outcome = await runner.run()
                        case_records = [r for r in records if r.case_id == case.case_id]
                        observer.case_done(case, summarise_case(case.case_id, case_records), outcome)
                        if outcome.stopped_by_deadline:
                            observer.message(
                                f"note: {case.case_id} stopped at its max_duration_s of {case.max_duration_s:g} s"
                            )
            except TimeoutError:
                stopped = f"stopped at the run time limit of {options.max_run_s:g} s"
                observer.message(f"note: {stopped}; what was measured is kept")
            if options.output_probe:
                store.write_meta(output_sample=await output_sample(client))
        store.write_meta(telemetry=(await asyncio.to_thread(sampler.stop)).to_json())
        sampler = None
        summary = summarise_run(
            records,
            options.baselines,
            read_gpu_samples(store.path),
            active_weight_gib=active_weight_gib,
            peak_bandwidth_gbs=options.peak_bandwidth_gbs,
        )
        notes: list[str] = []
        exceeded = summary.error_rate > options.max_error_rate
        if exceeded:
            notes.append(f"error rate {summary.error_rate:.1%} is above the limit of {options.max_error_rate:.1%}")
        store.write_summary(summary.to_json())
        status = "partial" if stopped else "complete"
        if stopped:
            notes.append(stopped)
        store.finish(status, ended=clock.now(), notes=notes, **({"partial_reason": stopped} if stopped else {}))
        return RunResult(store.run_id, store.path, status, summary, info, exceeded, tuple(notes))
    except (asyncio.CancelledError, KeyboardInterrupt):
        _finish_early(store, records, options, clock, "partial", "interrupted by the user")
        raise
    except BenchError as exc:
        _finish_early(store, records, options, clock, "partial" if records else "failed", str(exc))
        raise
    except BaseException as exc:
        _finish_early(store, records, options, clock, "partial" if records else "failed", f"crashed: {exc!r}")
        raise
    finally:
        if sampler is not None:
            with contextlib.suppress(Exception):  # never hide the run's own outcome
                store.write_meta(telemetry=sampler.stop().to_json())
        if server is not None:
            await asyncio.to_thread(server.stop)


OUTPUT_PROBE = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "List the first eight prime numbers, then name the largest planet."},
]


async def output_sample(client: ChatClient, max_tokens: int = 48) -> dict[str, object]:
    """A deterministic answer (temperature 0, fixed seed) to compare what two server variants say."""
    body = client.chat_body(
        OUTPUT_PROBE, max_tokens=max_tokens, stream=False, temperature=0.0, force_length=False, seed=42
    )
    answer = await client.post_json("/v1/chat/completions", body)
    text = None
    if isinstance(answer, dict) and answer.get("choices"):
        message = answer["choices"][0].get("message") or {}
        text = (message.get("reasoning_content") or "") + (message.get("content") or "")
    digest = hashlib.sha256(text.encode()).hexdigest() if text is not None else None
    return {"max_tokens": max_tokens, "text": text, "sha256": digest}


def _finish_early(
    store: RunStore,
    records: list[RequestRecord],
    options: RunOptions,
    clock: RunClock,
    status: str,
    reason: str,
) -> None:
    """Keep what was measured: summary of the records so far, status and reason on disk."""
    with contextlib.suppress(Exception):  # the original error matters more than this one
        if records:
            summary = summarise_run(records, options.baselines, read_gpu_samples(store.path))
            store.write_summary(summary.to_json())
    with contextlib.suppress(OSError):  # a full disk must not hide why the run stopped
        store.finish(status, ended=clock.now(), partial_reason=reason)
