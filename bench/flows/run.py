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
import math
import platform
import signal
import sys
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from bench.clock import RunClock
from bench.doors.children import run_command
from bench.doors.redact import Redactor, flag_secrets
from bench.doors.signals import handling
from bench.errors import BenchError, ConfigError, EndpointError
from bench.figures.summary import CaseSummary, RunSummary, stamp_sources, summarise_case, summarise_run
from bench.inputs.baselines import Baselines
from bench.inputs.scenarios import Case, Pattern, ScenarioSet
from bench.load.loadgen import CaseOutcome, CaseRunner, combined
from bench.load.order import CaseOrder, Share, schedule
from bench.load.preflight import EndpointInfo, check_cases_fit, context_per_slot, probe, props_subset, wait_until_ready
from bench.load.server import LocalServer, local_server, packaged_backend
from bench.load.workers import (
    MAX_WORKERS,
    START_S,
    ProcessPool,
    WorkerPool,
    WorkerSpec,
    arrivals,
    auto_workers,
    split,
    supports,
)
from bench.load.workload import CasePrompts, PromptBuilder
from bench.records import RequestRecord
from bench.store.meta import RunFile, RunStatus
from bench.store.run_dir import DEFAULT_RESULTS_DIR, RunStore, TelemetryLogs, check_writable, read_gpu_samples
from bench.telemetry.host import HostConditions, HostSampler, ServerPlace, wait_for_quiet
from bench.telemetry.sampler import GpuSource, TelemetryConfig, TelemetrySampler
from bench.transport.client import DEFAULT_MAX_BODY_BYTES, ChatClient, is_loopback
from bench.transport.lag import ClientLag
from bench.version import __version__

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
    results_dir: Path = DEFAULT_RESULTS_DIR
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
    # time.monotonic() when the command began, so --max-run-time covers reading its files too; None: the run's start
    began_monotonic: float | None = None
    output_probe: bool = False  # after the cases, record a temperature-0 answer (A/B output checks)
    active_weight_gib: float | None = None  # weights read per generated token, for the bandwidth figure
    peak_bandwidth_gbs: float | None = None  # overrides the card's data-sheet figure
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # a larger answer is a failed request, not the suite's memory
    order: CaseOrder = CaseOrder.CASES  # case after case, or in rounds (bench.load.order)
    workers: int | None = None  # load workers a case's streams are spread over; None: as many as it needs
    ray_address: str | None = None  # run the workers as actors on this Ray cluster (bench.load.ray_workers)
    require_quiet_s: float | None = None  # wait up to this long before each case for others to leave the CPU

    def redactor(self) -> Redactor:
        """The run's secrets: the key it sends, and any key in the flags of a server it starts or records."""
        recorded = (self.server_flags or "").split()
        return Redactor([self.api_key, *flag_secrets(self.server_args), *flag_secrets(recorded)])

    def __post_init__(self) -> None:
        # the library refuses what the CLI refuses: a Python caller gets the same errors
        if not 0 <= self.max_error_rate <= 1:
            raise ConfigError(f"--max-error-rate must be between 0 and 1; got {self.max_error_rate}")
        for name, value in (("--timeout", self.request_timeout_s), ("--max-run-time", self.max_run_s)):
            if value is not None and not 0 < value < math.inf:
                raise ConfigError(f"{name} must be a positive, finite number of seconds; got {value}")
        if self.order not in set(CaseOrder):
            raise ConfigError(f"--case-order must be one of {', '.join(CaseOrder)}; got {self.order!r}")
        object.__setattr__(self, "order", CaseOrder(self.order))
        if self.order is CaseOrder.ROUNDS and any(s.trace is not None for s in self.scenarios.scenarios):
            raise ConfigError("--case-order rounds would split a trace's replay: run trace scenarios case after case")
        if self.require_quiet_s is not None and not 0 < self.require_quiet_s < math.inf:
            raise ConfigError(f"--require-quiet must be a positive number of seconds; got {self.require_quiet_s}")
        if self.workers is not None and not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(f"--workers must be from 1 to {MAX_WORKERS}; got {self.workers}")
        if not self.max_body_bytes > 0:
            raise ConfigError(f"--max-body-mib must be positive; got {self.max_body_bytes / 2**20:g}")
        if not 0 <= self.ready_timeout_s < math.inf:
            raise ConfigError(
                f"--ready-timeout must be a finite number of seconds, 0 or more; got {self.ready_timeout_s}"
            )
        for name, value in (
            ("--active-weight-gib", self.active_weight_gib),
            ("--gpu-bandwidth-gbs", self.peak_bandwidth_gbs),
        ):
            if value is not None and not 0 < value < math.inf:
                raise ConfigError(f"{name} must be a positive, finite number; got {value}")


@dataclass(frozen=True, slots=True)
class RunResult:
    run_id: str
    run_dir: Path
    status: RunStatus
    summary: RunSummary
    endpoint: EndpointInfo | None
    error_rate_exceeded: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


def suite_git_sha() -> str | None:
    """The suite's own commit when it runs from a git checkout."""
    try:
        out = run_command(["git", "rev-parse", "HEAD"], timeout_s=5, cwd=Path(__file__).resolve().parent)
    except OSError:
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def run_benchmark(options: RunOptions, observer: RunObserver | None = None) -> RunResult:
    """Run a scenario set and store it; see the module docstring."""
    return asyncio.run(_Run(options, observer or QuietObserver()).run())


@contextlib.contextmanager
def _uninterrupted() -> Iterator[None]:
    """While a run keeps what it measured and stops its server, a second Ctrl-C (or TERM) waits.

    The first interrupt cancels the run; one more during the clean-up would leave run.json
    saying "running" and the server up. Signal handlers belong to the main thread only.
    """
    with handling((signal.SIGINT,), signal.SIG_IGN):
        yield


@contextlib.asynccontextmanager
async def _before_load(deadline: float | None, limit: float | None) -> AsyncIterator[None]:
    """The run time limit while nothing is measured yet: reaching it is an endpoint too slow to start."""
    try:
        async with asyncio.timeout_at(deadline):
            yield
    except TimeoutError:
        raise EndpointError(
            f"stopped at the run time limit of {limit:g} s (--max-run-time) before any load was sent: "
            "the server was still starting, answering the preflight or tokenizing prompts"
        ) from None


class _Run:
    """One run, as named steps: start -> serve -> prepare -> measure -> summarise, and finish on every exit."""

    def __init__(self, options: RunOptions, observer: RunObserver) -> None:
        self.options = options
        self.observer = observer
        self.cases = options.scenarios.cases()
        self.max_streams = max(c.concurrency for c in self.cases)
        self.clock = RunClock()
        self.records: list[RequestRecord] = []
        self.server: LocalServer | None = None
        self.sampler: TelemetrySampler | None = None
        self.store: RunStore | None = None
        self.active_weight_gib = options.active_weight_gib
        self.redactor = options.redactor()
        self.builder: PromptBuilder | None = None  # later turns of conversations are built while the load runs
        self.lags: dict[str, ClientLag] = {}  # the client's own lag, per case measured so far
        self.clocks: dict[str, dict[str, dict[str, int]]] = {}  # which clock timed each end, per case
        self.conditions: dict[str, HostConditions] = {}  # what else the machine did, per case measured so far
        self.superseded: list[dict[str, Any]] = []  # --require-quiet: disturbed attempts, measured again
        self.server_here = options.endpoint is None or is_loopback(options.endpoint)  # a core is the server's
        self.workers: dict[str, dict[str, object]] = {}  # where each case's workers ran, and what befell them
        self.workers_notes: dict[str, tuple[str, ...]] = {}  # every share's, for a case run in rounds
        self.start_notes: list[str] = []  # how the server had to be started (a safe retry), for run.json

    async def run(self) -> RunResult:
        store = self._create_store()
        # --max-run-time bounds the whole command: start-up, preflight and prompt building too
        limit = self.options.max_run_s
        began = self.options.began_monotonic
        # the loop's clock is time.monotonic(): a command's start and the run's are on one clock
        deadline = (
            None if limit is None else (began if began is not None else asyncio.get_running_loop().time()) + limit
        )
        try:
            if self.options.ray_address is not None:
                from bench.load.ray_workers import connect

                await asyncio.to_thread(connect, self.options.ray_address)
            async with _before_load(deadline, limit):
                endpoint = await self._start_server() if self.options.endpoint is None else self.options.endpoint
            async with ChatClient(
                endpoint,
                api_key=self.options.api_key,
                model=self.options.model,
                max_connections=self.max_streams + 2,
                timeout_s=self.options.request_timeout_s,
                clock=self.clock,
                redactor=self.redactor,
                max_body_bytes=self.options.max_body_bytes,
            ) as client:
                async with _before_load(deadline, limit):
                    info = await self._preflight(client)
                    await self._start_telemetry(client)
                    prepared = await self._build_prompts(client)
                stopped = await self._measure(client, prepared, deadline)
                if self.options.output_probe:
                    store.write_meta(output_sample=await output_sample(client))
            await self._stop_telemetry()
            return self._finish(info, stopped)
        except (asyncio.CancelledError, KeyboardInterrupt):
            with _uninterrupted():
                self._finish_early(RunStatus.PARTIAL, "interrupted by the user")
            raise
        except BenchError as exc:
            with _uninterrupted():
                self._finish_early(RunStatus.PARTIAL if self.records else RunStatus.FAILED, str(exc))
            raise
        except BaseException as exc:
            with _uninterrupted():
                self._finish_early(RunStatus.PARTIAL if self.records else RunStatus.FAILED, f"crashed: {exc!r}")
            raise
        finally:
            with _uninterrupted():
                if self.sampler is not None:
                    with contextlib.suppress(Exception):  # never hide the run's own outcome
                        store.write_meta(telemetry=self.sampler.stop().to_json())
                if self.server is not None:
                    await asyncio.to_thread(self.server.stop)
                    self._mask_server_log()
                if self.options.ray_address is not None:
                    from bench.load.ray_workers import disconnect

                    disconnect()

    # ------------------------------------------------------------ steps
    def _create_store(self) -> RunStore:
        options = self.options
        check_writable(options.results_dir)
        self.store = store = RunStore.create(options.results_dir, options.label, self.redactor)
        store.write_meta(
            suite_version=__version__,
            suite_git_sha=suite_git_sha(),
            started=self.clock.wall_start,
            label=options.label,
            server_flags=options.server_flags,
            scenario_set=options.scenarios.to_dict(),
            baselines_source=options.baselines.source if options.baselines else None,
            python=sys.version.split()[0],
            platform=platform.platform(),
            seed=options.seed,
            bandwidth_inputs=self._bandwidth_inputs(),
        )
        self.observer.run_started(store.path, self.cases)
        return store

    def _bandwidth_inputs(self) -> dict[str, float | None]:
        """What the bandwidth figure needs and a stored run cannot tell later (``load_summary`` reads it)."""
        return {"active_weight_gib": self.active_weight_gib, "peak_bandwidth_gbs": self.options.peak_bandwidth_gbs}

    async def _start_server(self) -> str:
        options, store = self.options, self._the_store()
        self.server = server = local_server(
            binary=options.server_binary,
            model_file=options.model_file,
            args=options.server_args,
            log_path=store.path / RunFile.SERVER_LOG,
            max_concurrency=self.max_streams,
        )
        self.observer.message(f"starting {server.binary.name} on {server.url}")
        await asyncio.to_thread(server.start)
        started: dict[str, object] = {"started_by_suite": True, "command": server.command, "args": list(server.args)}
        if server.fallback is not None:
            started["fallback"] = server.fallback
            self.start_notes.append(server.fallback)
            self.observer.message(f"note: {server.fallback}")
        store.write_meta(server=started)
        if self.active_weight_gib is None and options.model_file is None and server.model is not None:
            # the embedded model is dense: every token reads all of its weights
            self.active_weight_gib = server.model.stat().st_size / 1024**3
            store.write_meta(bandwidth_inputs=self._bandwidth_inputs())
        return server.url

    async def _preflight(self, client: ChatClient) -> EndpointInfo:
        options, store, observer = self.options, self._the_store(), self.observer
        await wait_until_ready(client, options.ready_timeout_s, observer.message)
        props = await client.get_json("/props")
        check_cases_fit(self.cases, context_per_slot(props))
        info = await probe(client, props=props, check_cache=any(case.uses_prompt_cache for case in self.cases))
        for note in info.notes:
            observer.message(f"note: {note}")
        store.write_meta(endpoint=info.to_json(), props=props_subset(props), model=info.model, build=info.build)
        if info.total_slots is not None and self.max_streams > info.total_slots:
            observer.message(
                f"note: concurrency up to {self.max_streams} but the server has {info.total_slots} slot(s): "
                "requests beyond that queue on the server"
            )
        return info

    async def _start_telemetry(self, client: ChatClient) -> None:
        store = self._the_store()
        self.sampler = TelemetrySampler(
            TelemetryLogs(store.path),
            self.clock,
            self.options.telemetry,
            metrics_url=f"{client.base_url}/metrics",
            api_key=self.options.api_key,
            server_pid=self.server.pid if self.server else None,
            say=lambda text: self.observer.message(f"note: {text}"),
        )
        telemetry = await asyncio.to_thread(self.sampler.start)
        store.write_meta(telemetry=telemetry.to_json())
        if telemetry.gpu_reason:
            self.observer.message(telemetry.gpu_reason)
        if (
            self.server is not None
            and telemetry.gpu_source is GpuSource.NVML
            and packaged_backend(self.server.binary) == "cpu"
        ):
            note = (
                "the packaged llama-server is a CPU build and this machine has a GPU (NVML sees it): the run measures "
                "the CPU; docs/install.md says how to rebuild it with CUDA"
            )
            self.start_notes.append(note)
            self.observer.message(f"note: {note}")

    async def _build_prompts(self, client: ChatClient) -> list[CasePrompts]:
        # Every prompt is built before any load is sent: a case that cannot be built
        # (shorter than the chat template, say) stops the run before it starts.
        self.builder = builder = PromptBuilder(client, seed=self.options.seed, run_tag=self._the_store().run_id[-6:])
        self.observer.message(f"building exact-length prompts for {len(self.cases)} case(s)")
        return [await builder.build_case(case) for case in self.cases]

    async def _measure(self, client: ChatClient, prepared: Sequence[CasePrompts], deadline: float | None) -> str | None:
        """Run every case; the reason the run stopped early, if it did."""
        options, store, observer = self.options, self._the_store(), self.observer

        async def recover() -> None:
            await wait_until_ready(client, options.ready_timeout_s, observer.message, while_unreachable=True)

        def sink(record: RequestRecord) -> None:
            store.append(record)
            self.records.append(record)
            observer.request_done(record)

        shares = schedule(self.cases, [len(p.measured) for p in prepared], options.order, options.seed)
        store.write_meta(
            case_order=options.order,
            schedule=[[share.round, self.cases[share.case].case_id, len(share.indices)] for share in shares]
            if options.order is CaseOrder.ROUNDS
            else None,
        )
        runners = [
            CaseRunner(
                client,
                store.run_id,
                case,
                prompts,
                sink,
                seed=options.seed + number,
                recover=recover,
                builder=self.builder,
            )
            for number, (case, prompts) in enumerate(zip(self.cases, prepared, strict=True))
        ]
        outcomes: dict[int, list[CaseOutcome]] = {}
        host = self._host_sampler()

        async def measure(share: Share, case: Case) -> tuple[CaseOutcome, HostConditions | None]:
            """One share of a case, after waiting for a quiet machine where asked, and what else ran meanwhile."""
            waited = 0.0
            if host is not None and options.require_quiet_s is not None:
                waited, quiet = await wait_for_quiet(host, options.require_quiet_s, observer.message)
                if not quiet:
                    observer.message(
                        f"note: {case.case_id}: the machine was not quiet after {waited:.0f} s "
                        "(--require-quiet); measured anyway, and its conditions say so"
                    )
            if host is not None:
                host.start()
            if (options.ray_address is not None or self._workers_for(case) > 1) and supports(case):
                outcome = await self._in_workers(client, runners[share.case], share, prepared[share.case], sink)
            else:
                outcome = await runners[share.case].run(share.indices, warm=share.first, round_number=share.round)
            conditions = host.stop() if host is not None else None
            return outcome, (replace(conditions, waited_s=waited) if conditions is not None else None)

        try:
            async with asyncio.timeout_at(deadline):
                for share in shares:
                    case = self.cases[share.case]
                    observer.case_started(case)
                    outcome, conditions = await measure(share, case)
                    # a case run in one go, whose prompts the cache does not hold, can be measured again whole
                    whole = share.first and share.last and not case.uses_prompt_cache
                    if options.require_quiet_s is not None and whole and conditions and conditions.disturbed:
                        self._supersede(case, conditions)
                        observer.message(
                            f"note: {case.case_id}: measured under contention; measuring it again once the machine "
                            "is quiet (--require-quiet)"
                        )
                        outcome, conditions = await measure(share, case)
                    outcomes.setdefault(share.case, []).append(outcome)
                    if conditions is not None:
                        earlier = self.conditions.get(case.case_id)
                        self.conditions[case.case_id] = earlier.merged(conditions) if earlier else conditions
                        store.write_meta(conditions={k: v.to_json() for k, v in self.conditions.items()})
                    if not share.last:
                        continue
                    outcome = combined(outcomes[share.case], self.cases[share.case].case_id)
                    if (lag := runners[share.case].client_lag()) is not None:
                        self.lags[case.case_id] = lag
                        store.write_meta(client_lag={k: v.to_json() for k, v in self.lags.items()})
                    case_records = [r for r in self.records if r.case_id == case.case_id]
                    if not case_records:
                        observer.message(f"note: {case.case_id}: no request of this case ended")
                        continue
                    self.clocks[case.case_id] = stamp_sources([r for r in case_records if not r.warmup])
                    store.write_meta(clocks=self.clocks)
                    summary = summarise_case(
                        case.case_id,
                        case_records,
                        case.slo,
                        self.lags.get(case.case_id),
                        self._worker_notes(case),
                        self.conditions.get(case.case_id),
                    )
                    observer.case_done(case, summary, outcome)
                    if outcome.stopped_by_deadline:
                        observer.message(
                            f"note: {case.case_id} stopped at its max_duration_s of {case.max_duration_s:g} s"
                        )
        except TimeoutError:
            stopped = f"stopped at the run time limit of {options.max_run_s:g} s"
            observer.message(f"note: {stopped}; what was measured is kept")
            return stopped
        return None

    def _workers_for(self, case: Case) -> int:
        """How many workers share a case: as asked, one per Ray node, or as many as its streams need here."""
        if self.options.workers is not None:
            return self.options.workers
        if self.options.ray_address is not None:
            from bench.load.ray_workers import nodes_with_a_cpu

            return nodes_with_a_cpu()
        return auto_workers(case, server_here=self.server_here)

    async def _worker_pool(self, count: int, endpoint: str) -> WorkerPool:
        if self.options.ray_address is None:
            return await ProcessPool.start(count)
        from bench.load.ray_workers import RayPool

        return await RayPool.start(count, endpoint)

    async def _in_workers(
        self,
        client: ChatClient,
        runner: CaseRunner,
        share: Share,
        prompts: CasePrompts,
        sink: Callable[[RequestRecord], None],
    ) -> CaseOutcome:
        """A case's share run by workers (bench.load.workers, bench.load.ray_workers); warm-ups and priming run here."""
        options, case, store = self.options, runner.case, self._the_store()
        await runner.prepare(share.first)
        shares = split(case, share.indices, self._workers_for(case))
        pool = await self._worker_pool(len(shares), client.base_url)
        try:
            budget = runner.remaining_s()
            schedule = None
            start = asyncio.get_running_loop().time() + START_S  # the workers are up: the first time is theirs
            if case.pattern == Pattern.POISSON:
                schedule = arrivals(share.indices, start, case.rate_rps or 1.0, runner.rng)
            elif case.trace is not None:
                schedule = {i: start + case.trace.rows[i].t / case.speed for i in share.indices}

            def spec(k: int, indices: tuple[int, ...], streams: int) -> WorkerSpec:
                return WorkerSpec(
                    worker=k,
                    endpoint=client.base_url,
                    api_key=options.api_key,
                    model=client.model,
                    timeout_s=options.request_timeout_s,
                    max_body_bytes=options.max_body_bytes,
                    redactor=self.redactor,
                    clock=self.clock,
                    run_id=store.run_id,
                    case=replace(case, max_duration_s=budget),
                    prompts=prompts,
                    indices=indices,
                    streams=streams,
                    seed=options.seed,
                    round_number=share.round,
                    arrivals=None if schedule is None else {i: schedule[i] for i in indices},
                    builder=None if runner.builder is None else runner.builder.for_worker(k),
                )

            specs = [spec(k, indices, streams) for k, (indices, streams) in enumerate(shares)]
            shared = {Pattern.POISSON: "arrivals", Pattern.TRACE: "trace"}.get(
                case.pattern, f"{case.concurrency} streams"
            )
            where = "Ray workers" if options.ray_address is not None else "worker processes"
            self.observer.message(f"{case.case_id}: {len(specs)} {where} share its {shared}")
            self.workers[case.case_id] = {
                "placements": [p.to_json() for p in pool.placements],
                "notes": self._worker_notes(case),
            }
            store.write_meta(workers=self.workers)
            began = asyncio.get_running_loop().time()
            result = await pool.run(specs, sink)
            runner.spent(asyncio.get_running_loop().time() - began)
        finally:
            await pool.close()
        self.workers_notes[case.case_id] = self._worker_notes(case) + result.notes
        self.workers[case.case_id] = {
            "placements": [p.to_json() for p in result.placements],
            "notes": self._worker_notes(case),
        }
        store.write_meta(workers=self.workers)
        for note in result.notes:
            self.observer.message(f"note: {case.case_id}: {note}")
        if result.lag is not None:
            self.lags[case.case_id] = result.lag
            store.write_meta(client_lag={k: v.to_json() for k, v in self.lags.items()})
        return result.outcome

    async def _stop_telemetry(self) -> None:
        if self.sampler is not None:
            # joins the sampler's threads and writes its tables: off the event loop, as before
            status = await asyncio.to_thread(self.sampler.stop)
            self._the_store().write_meta(telemetry=status.to_json())
            self.sampler = None

    def _summary(self) -> RunSummary:
        store = self._the_store()
        # the set's order, whatever order the cases ran in (a run in rounds shuffles them)
        position = {case.case_id: i for i, case in enumerate(self.cases)}
        return summarise_run(
            sorted(self.records, key=lambda r: position.get(r.case_id, len(position))),
            self.options.baselines,
            read_gpu_samples(store.path),
            active_weight_gib=self.active_weight_gib,
            peak_bandwidth_gbs=self.options.peak_bandwidth_gbs,
            slos={s.name: s.slo for s in self.options.scenarios.scenarios if s.slo is not None},
            lags=self.lags,
            worker_notes={case.case_id: self._worker_notes(case) for case in self.cases},
            conditions=self.conditions,
        )

    def _supersede(self, case: Case, conditions: HostConditions) -> None:
        """Set a disturbed case's requests aside: kept in the log, left out of every figure (read_records)."""
        mine = [r for r in self.records if r.case_id == case.case_id]
        if mine:
            self.superseded.append(
                {
                    "case_id": case.case_id,
                    "t_from": min(r.t_sent for r in mine),
                    "t_to": max(r.t_sent for r in mine),
                    "why": conditions.sentence(),
                }
            )
            self._the_store().write_meta(superseded=tuple(self.superseded))
        self.records = [r for r in self.records if r.case_id != case.case_id]

    def _host_sampler(self) -> HostSampler | None:
        """The server's CPU time is told apart where the suite started it; a loopback one it did not is unseen.

        None with Ray: the load workers are the cluster's processes, not this one's children, and the
        split would count them as the machine's others.
        """
        if self.options.ray_address is not None:
            return None
        if self.server is not None:
            return HostSampler(self.server.pid, ServerPlace.STARTED)
        return HostSampler(None, ServerPlace.UNSEEN if self.server_here else ServerPlace.ELSEWHERE)

    def _worker_notes(self, case: Case) -> tuple[str, ...]:
        return self.workers_notes.get(case.case_id, ())

    def _finish(self, info: EndpointInfo, stopped: str | None) -> RunResult:
        store, options = self._the_store(), self.options
        summary = self._summary()
        notes: list[str] = list(self.start_notes)
        exceeded = summary.error_rate > options.max_error_rate
        if exceeded:
            notes.append(f"error rate {summary.error_rate:.1%} is above the limit of {options.max_error_rate:.1%}")
        store.write_summary(summary.to_json())
        status = RunStatus.PARTIAL if stopped else RunStatus.COMPLETE
        if stopped:
            notes.append(stopped)
        store.finish(status, ended=self.clock.now(), notes=notes, **({"partial_reason": stopped} if stopped else {}))
        return RunResult(store.run_id, store.path, status, summary, info, exceeded, tuple(notes))

    def _finish_early(self, status: RunStatus, reason: str) -> None:
        """Keep what was measured: summary of the records so far, status and reason on disk."""
        store = self.store
        if store is None:
            return
        with contextlib.suppress(Exception):  # the original error matters more than this one
            if self.records:
                store.write_summary(self._summary().to_json())
        with contextlib.suppress(OSError):  # a full disk must not hide why the run stopped
            store.finish(status, ended=self.clock.now(), partial_reason=reason)

    def _mask_server_log(self) -> None:
        """The server's own log may echo its flags (an --api-key among them): masked once it is closed."""
        log = self._the_store().path / RunFile.SERVER_LOG
        if self.redactor and log.exists():
            with contextlib.suppress(OSError):
                text = log.read_text(encoding="utf-8", errors="replace")
                if (masked := self.redactor.text(text)) != text:
                    log.write_text(masked, encoding="utf-8")

    def _the_store(self) -> RunStore:
        assert self.store is not None, "the store is created first"
        return self.store


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
