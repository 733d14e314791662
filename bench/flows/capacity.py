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

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.doors import files, strict_json
from bench.errors import ConfigError
from bench.figures.slo import Slo
from bench.flows.run import RunObserver, RunOptions, run_benchmark
from bench.inputs.scenarios import MAX_CONCURRENCY, MAX_TOKENS, Scenario, ScenarioSet
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
            pattern="concurrent",
            slo=self.slo,
            description=f"capacity search level: {concurrency} concurrent streams",
        )
        return ScenarioSet("capacity", "bench capacity", (scenario,), "one closed-loop level of a capacity search")


@dataclass(frozen=True, slots=True)
class Level:
    concurrency: int
    run_id: str
    attainment: float | None
    error_rate: float
    holds: bool
    goodput_rps: float | None
    output_tps: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    tpot_p50_ms: float | None
    e2e_p99_ms: float | None
    broken: dict[str, int]
    # llama-server's own view where it serves /metrics: its slots, and how busy and backed up they were
    slots: int | None = None
    busy_slots_mean: float | None = None  # llamacpp:n_busy_slots_per_decode, mean over the samples
    deferred_max: float | None = None  # llamacpp:requests_deferred, the most waiting for a slot at once


@dataclass(frozen=True, slots=True)
class CapacityResult:
    capacity: int  # the highest level that held; 0 when even the first failed
    levels: tuple[Level, ...]  # in concurrency order
    target: float
    slo: Slo
    reached_max: bool  # every level up to max_concurrency held: the capacity is at least that

    def sentence(self) -> str:
        within = f"{self.target:.0%} of requests within {self.slo.describe()}"
        if self.capacity == 0:
            return f"capacity: not even {self.levels[0].concurrency} concurrent user(s) with {within}"
        at_least = "at least " if self.reached_max else ""
        return f"capacity: {at_least}{self.capacity} concurrent users with {within}"

    def to_json(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "reached_max": self.reached_max,
            "target": self.target,
            "slo": asdict(self.slo),
            "sentence": self.sentence(),
            "levels": [asdict(level) for level in self.levels],
        }


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


def load_result(path: Path) -> CapacityResult:
    """A capacity search as ``save_result`` kept it."""
    if not path.exists():
        raise ConfigError(f"{path}: no such capacity result; bench capacity writes results/capacity-<time>.json")
    data = files.read_json(path, what="capacity result")
    try:
        levels = tuple(Level(**level) for level in data["levels"])
        return CapacityResult(
            capacity=int(data["capacity"]),
            levels=levels,
            target=float(data["target"]),
            slo=Slo(**data["slo"]),
            reached_max=bool(data["reached_max"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a capacity result ({exc})") from None


def capacity_change(a: CapacityResult, b: CapacityResult) -> str:
    """One line: how the two searches' answers differ, and how far one search can be trusted."""
    if a.slo != b.slo or a.target != b.target:
        raise ConfigError(
            "the two searches asked different questions (SLO or target differ): their capacities do not compare"
        )
    more = "at least " if b.reached_max else ""
    less = "at least " if a.reached_max else ""
    step = b.capacity - a.capacity
    if step == 0:
        verdict = "the same"
    elif abs(step) == 1:
        verdict = f"{step:+d} level: within the one step two searches of one setup can differ by"
    else:
        verdict = f"{step:+d} levels"
    return f"capacity A {less}{a.capacity} -> B {more}{b.capacity} concurrent users ({verdict})"


def is_capacity_file(ref: str) -> bool:
    return ref.endswith(".json") and Path(ref).name.startswith("capacity-")


def save_result(result: CapacityResult, results_dir: Path) -> Path:
    """``results/capacity-<time>.json``: the answer, the curve and the runs behind each level."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"capacity-{time.strftime('%Y%m%d-%H%M%S')}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(strict_json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def parse_slo(text: str) -> Slo:
    """``ttft_ms=2000,tpot_ms=50`` -> Slo, with the error a user can act on."""
    from bench.figures.slo import SloLimit, valid_limit

    limits: dict[str, float] = {}
    names = ", ".join(limit.value for limit in SloLimit)
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        key, sep, value = part.partition("=")
        key = key.strip()
        try:
            number = float(value)
        except ValueError:
            number = math.nan
        if not sep or key not in {limit.value for limit in SloLimit} or not valid_limit(number):
            raise ConfigError(f"--slo: {part!r} is not LIMIT=MS with LIMIT one of {names} and MS a positive number")
        limits[key] = number
    if not limits:
        raise ConfigError(f"--slo needs at least one LIMIT=MS ({names})")
    return Slo(**limits)
