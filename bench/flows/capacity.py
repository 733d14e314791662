"""How many concurrent users a server carries within its SLOs: a bounded search over closed-loop levels.

Each level is an ordinary run (``results/<run-id>/``, label ``<label>-c<N>``) of one closed-loop
case at N concurrent streams, every stream sending ``requests_per_stream`` measured requests,
judged against the SLO. A level **holds** when its SLO attainment is at least ``target`` and its
error rate is within the run's limit. The search doubles the level from ``start`` until one fails
(the bracket), then bisects between the last that held and the first that failed, so it measures
about 2 log2(answer) levels; it stops at ``max_concurrency``. The answer is the highest level that
held; the curve (goodput, output t/s and latency at each level measured) comes with it.

Against the embedded server, each level starts its own server with one slot per stream unless
``--server-args`` fixes the slots (``-np``); against ``--endpoint`` every level meets the same
server, as a deployment would.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from bench.errors import ConfigError
from bench.flows.run import RunObserver, RunOptions, run_benchmark
from bench.inputs.scenarios import MAX_CONCURRENCY, MAX_TOKENS, Pattern, Scenario, ScenarioSet
from bench.inputs.slo import Slo
from bench.store.capacity import CapacityResult, Level
from bench.store.run_dir import read_telemetry

DEFAULT_TARGET = 0.99
DEFAULT_MAX_CONCURRENCY = 64
DEFAULT_REQUESTS_PER_STREAM = 4


@dataclass(frozen=True, slots=True)
class CapacityOptions:
    run: RunOptions  # endpoint or embedded server, results directory, label; its scenarios are ignored
    prompt_tokens: int
    output_tokens: int
    slo: Slo
    target: float = DEFAULT_TARGET
    start: int = 1
    max_concurrency: int = DEFAULT_MAX_CONCURRENCY
    requests_per_stream: int = DEFAULT_REQUESTS_PER_STREAM

    def __post_init__(self) -> None:
        if not self.slo.limits():
            raise ConfigError("bench capacity needs at least one SLO limit, e.g. --slo ttft_ms=2000,tpot_ms=50")
        if not 0 < self.target <= 1:
            raise ConfigError(f"--target must be a percentage above 0, at most 100; got {self.target * 100:g}")
        if not 1 <= self.start <= self.max_concurrency <= MAX_CONCURRENCY:
            raise ConfigError(
                f"--start and --max-concurrency must satisfy 1 <= start <= max <= {MAX_CONCURRENCY}; "
                f"got {self.start} and {self.max_concurrency}"
            )
        for name, value in (("--prompt-tokens", self.prompt_tokens), ("--output-tokens", self.output_tokens)):
            if not 1 <= value <= MAX_TOKENS:
                raise ConfigError(f"{name} must be from 1 to {MAX_TOKENS:,}; got {value}")
        if not 1 <= self.requests_per_stream <= 1000:
            raise ConfigError(f"--requests-per-stream must be from 1 to 1,000; got {self.requests_per_stream}")

    def scenarios(self, concurrency: int) -> ScenarioSet:
        scenario = Scenario(
            name="capacity",
            prompt_tokens=(self.prompt_tokens,),
            output_tokens=(self.output_tokens,),
            concurrency=(concurrency,),
            repetitions=self.requests_per_stream,
            warmup=1,
            pattern=Pattern.CONCURRENT,
            slo=self.slo,
            description=f"capacity search level: {concurrency} concurrent streams",
        )
        return ScenarioSet("capacity", "bench capacity", (scenario,), "one closed-loop level of a capacity search")


def _level(concurrency: int, options: CapacityOptions, observer: RunObserver | None) -> Level:
    run_options = replace(
        options.run,
        scenarios=options.scenarios(concurrency),
        label=f"{options.run.label or 'capacity'}-c{concurrency}",
    )
    result = run_benchmark(run_options, observer)
    (case,) = result.summary.cases
    slo = case.slo
    attainment = slo.attainment if slo is not None else None
    holds = (
        attainment is not None
        and attainment >= options.target
        and result.summary.error_rate <= options.run.max_error_rate
    )
    return Level(
        concurrency=concurrency,
        run_id=result.run_id,
        attainment=attainment,
        error_rate=result.summary.error_rate,
        holds=holds,
        goodput_rps=slo.goodput_rps if slo is not None else None,
        output_tps=case.output_tps,
        ttft_p50_ms=case.ttft_ms.p50 if case.ttft_ms else None,
        ttft_p99_ms=case.ttft_ms.p99 if case.ttft_ms else None,
        tpot_p50_ms=case.tpot_ms.p50 if case.tpot_ms else None,
        e2e_p99_ms=case.e2e_ms.p99 if case.e2e_ms else None,
        broken=dict(slo.broken) if slo is not None else {},
        slots=result.endpoint.total_slots if result.endpoint is not None else None,
        **_server_view(result.run_dir),
    )


def _server_view(run_dir: Path) -> dict[str, float | None]:
    """Busy slots and deferred requests from the run's /metrics samples (None where it had none)."""
    rows = read_telemetry(run_dir, "server_metrics")
    busy = [float(v) for r in rows if isinstance(v := r.get("llamacpp:n_busy_slots_per_decode"), int | float)]
    deferred = [float(v) for r in rows if isinstance(v := r.get("llamacpp:requests_deferred"), int | float)]
    return {
        "busy_slots_mean": sum(busy) / len(busy) if busy else None,
        "deferred_max": max(deferred) if deferred else None,
    }


def search(
    options: CapacityOptions,
    observer: RunObserver | None = None,
    measure: Callable[[int, CapacityOptions, RunObserver | None], Level] = _level,
) -> CapacityResult:
    """Bracket by doubling, then bisect; each level measured once. ``measure`` is for tests of the search."""
    levels: dict[int, Level] = {}

    def at(concurrency: int) -> Level:
        if concurrency not in levels:
            if observer is not None:
                observer.message(f"level: {concurrency} concurrent stream(s)")
            levels[concurrency] = measure(concurrency, options, observer)
            level = levels[concurrency]
            if observer is not None:
                share = "-" if level.attainment is None else f"{level.attainment:.1%}"
                observer.message(
                    f"level {concurrency}: SLO met {share}, errors {level.error_rate:.1%}: "
                    + ("holds" if level.holds else "fails")
                )
        return levels[concurrency]

    low, high = 0, None  # low: the highest level known to hold (0 holds trivially); high: the lowest failing
    level = options.start
    while True:
        if not at(level).holds:
            high = level
            break
        low = level
        if level >= options.max_concurrency:
            break
        level = min(level * 2, options.max_concurrency)
    if high is not None:
        while high - low > 1:
            mid = (low + high) // 2
            if at(mid).holds:
                low = mid
            else:
                high = mid
    ordered = tuple(levels[c] for c in sorted(levels))
    return CapacityResult(
        capacity=low,
        levels=ordered,
        target=options.target,
        slo=options.slo,
        reached_max=high is None,
    )
