"""Figures per case and against the baselines, from request records.

Throughput figures are ratios of sums, never means of per-request rates; which
request measures what is ``bench.figures.throughput``' one rule. Per case the summary adds
latency distributions (TTFT, ITL, TPOT, e2e), the stream delivery check, length
mismatches and errors; per run the baseline checks, GPU figures and the
bandwidth figure. ``load_summary`` recomputes a stored run's summary exactly as
the run did, from its records, telemetry and the options it kept in ``run.json``.

Percentiles use linear interpolation between order statistics (NumPy's default,
Hyndman & Fan 1996 type 7).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.figures.baselines import BaselineCheck, check_baseline
from bench.figures.delivery import Delivery, stream_delivery
from bench.figures.drift import Drift, case_drift
from bench.figures.prompt_cache import CacheSummary, cache_notes, summarise_cache
from bench.figures.slo import SloSummary, summarise_slo
from bench.figures.speculative import DraftSummary, summarise_drafts
from bench.figures.throughput import (
    client_pp_tps,
    client_tg_tps,
    flatten_token_times,
    output_tps,
    pp_sample,
    rates,
    server_pp_tps,
    server_tg_tps,
    tg_sample,
    wall_s,
    within_request_gaps,
)
from bench.inputs.baselines import Baselines
from bench.inputs.slo import Slo, slo_from_json
from bench.records import FigureSource, RequestRecord
from bench.store.meta import RunMeta
from bench.store.run_dir import read_gpu_samples, read_records, read_run_meta, scenario_definitions
from bench.telemetry.figures import (
    BandwidthFigure,
    GpuCaseFigures,
    bandwidth_figure,
    case_gpu_figures,
    run_vram_peak_gib,
)
from bench.telemetry.host import HostConditions
from bench.telemetry.samples import GpuSample
from bench.transport.lag import ClientLag

# an open loop's requests may go out this late after their scheduled arrival before the run says so
SCHEDULE_TOLERANCE_MS = 1.0


@dataclass(frozen=True, slots=True)
class Distribution:
    n: int
    mean: float
    p50: float
    p90: float
    p99: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float] | NDArray[np.float64]) -> Distribution | None:
        if len(values) == 0:
            return None
        array = np.asarray(values, dtype=float)
        p50, p90, p99 = np.percentile(array, [50, 90, 99])
        return cls(
            n=len(array),
            mean=float(array.mean()),
            p50=float(p50),
            p90=float(p90),
            p99=float(p99),
            min=float(array.min()),
            max=float(array.max()),
        )


@dataclass(frozen=True, slots=True)
class CaseSummary:
    case_id: str
    scenario: str
    prompt_tokens: int
    output_tokens: int
    concurrency: int
    depth: int
    stream: bool
    requests: int
    ok: int
    failed: int
    pp_tps: float | None
    pp_source: FigureSource | None
    tg_tps: float | None
    tg_source: FigureSource | None
    pp_tps_per_request: Distribution | None
    tg_tps_per_request: Distribution | None
    ttft_ms: Distribution | None
    ttfb_ms: Distribution | None
    itl_ms: Distribution | None
    tpot_ms: Distribution | None
    e2e_ms: Distribution | None
    wall_s: float
    request_rps: float | None
    output_tps: float | None
    cache_excluded: int
    prompt_length_mismatches: int
    output_length_mismatches: int
    stream_delivery: Delivery
    errors: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    slo: SloSummary | None = None  # attainment and goodput, where the scenario states an SLO
    # open loop: how late requests went out after their scheduled arrival, and latency read from it
    schedule_delay_ms: Distribution | None = None
    ttft_from_schedule_ms: Distribution | None = None
    e2e_from_schedule_ms: Distribution | None = None
    # a reasoning model: time to the first answer token, and the share of streamed tokens that reasoned
    ttfct_ms: Distribution | None = None
    reasoning_share: float | None = None
    # a depth, conversations or shared prefixes: what the prompt cache reused against what was meant
    cache: CacheSummary | None = None
    # a server with a draft model: drafted and accepted tokens
    drafts: DraftSummary | None = None
    # how long the client's event loop kept a ready callback waiting while the case ran
    client_lag: ClientLag | None = None
    # what else the machine did meanwhile: CPU time by the suite, the server and everything else
    conditions: HostConditions | None = None
    # pp and tg trends over the case's requests in the order sent (a server slowing as it runs)
    drift: tuple[Drift, ...] = ()
    warmups: int = 0  # warm-up requests sent before the measured ones (warmup = "auto": until two agreed)
    # opening the connections its requests went out on (each connection once: opened ahead of the case's
    # clock, or cold, one per request, inside its time: TTFT and latency then include it, and say so)
    connect_ms: Distribution | None = None
    cold: bool = False
    # which clock timed each end of its measured requests: {"send": {"kernel": n, "loop": m}, "receive": {...}}
    clocks: dict[str, dict[str, int]] = field(default_factory=dict)


def stamp_sources(records: Sequence[RequestRecord]) -> dict[str, dict[str, int]]:
    """How many of the records had each end timed by the kernel's stamps, and how many by the event loop's clock."""
    counts: dict[str, dict[str, int]] = {}
    for end in ("send", "receive"):
        tally = Counter(str(source) for r in records if (source := getattr(r, f"{end}_clock")) is not None)
        if tally:
            counts[end] = dict(sorted(tally.items()))
    return counts


@dataclass(frozen=True, slots=True)
class RunSummary:
    cases: tuple[CaseSummary, ...]
    baselines: tuple[BaselineCheck, ...]
    requests: int
    failed: int
    gpu: tuple[GpuCaseFigures, ...] = ()
    bandwidth: BandwidthFigure | None = None

    @property
    def error_rate(self) -> float:
        return self.failed / self.requests if self.requests else 0.0

    def throughput(self) -> dict[str, dict[str, float]]:
        """Each case's pp and tg (``pp_tps``, ``tg_tps``), where it has them: what bisect and soak follow."""
        return {
            c.case_id: {name: value for name in ("pp_tps", "tg_tps") if (value := getattr(c, name)) is not None}
            for c in self.cases
        }

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "failed": self.failed,
            "error_rate": self.error_rate,
            "cases": [asdict(c) for c in self.cases],
            "baselines": [asdict(b) for b in self.baselines],
            "gpu": [asdict(g) for g in self.gpu],
            "bandwidth": asdict(self.bandwidth) if self.bandwidth else None,
        }


def _pooled_gaps_ms(records: Sequence[RequestRecord]) -> NDArray[np.float64]:
    """Every gap between consecutive token events of the records, in ms (a big run has millions)."""
    flat, counts = flatten_token_times([r.token_times for r in records])
    return within_request_gaps(flat, counts) * 1000.0


def _median_target(targets: Sequence[int]) -> int | None:
    return round(float(np.median(targets))) if targets else None


def _throughput(
    ok: Sequence[RequestRecord], with_timings: Sequence[RequestRecord]
) -> tuple[float | None, FigureSource | None, float | None, FigureSource | None, list[str]]:
    """pp and tg t/s and where each came from: the server's timings, else the client's estimate."""
    if with_timings:
        pp, tg, source = server_pp_tps(with_timings), server_tg_tps(with_timings), FigureSource.SERVER
        notes = []
    else:
        pp, tg, source = client_pp_tps(ok), client_tg_tps(ok), FigureSource.CLIENT
        notes = ["server sent no llama.cpp timings: pp/tg are client-side estimates"] if ok else []
    return pp, source if pp is not None else None, tg, source if tg is not None else None, notes


def _length_checks(
    depth_target: int,
    ok: Sequence[RequestRecord],
    with_timings: Sequence[RequestRecord],
    conversational: bool,
) -> tuple[int, int, int, list[str]]:
    """Whether requests were the lengths and depths asked: (kept out of pp, prompt off, output off, notes)."""
    notes = []
    cache_excluded = sum(1 for r in with_timings if pp_sample(r) is None)
    # conversations and shared prefixes say how their reuse fell short with the cache's own notes
    short_depth = [r for r in with_timings if r.timings is not None and r.timings.cache_n < r.depth_target]
    if short_depth and not conversational:
        reused = min(r.timings.cache_n for r in short_depth if r.timings is not None)
        notes.append(
            f"depth not reached: the server reused as few as {reused} of {depth_target} cached tokens "
            "(a sliding-window model needs llama-server --swa-full)"
        )
    if cache_excluded:
        notes.append(f"{cache_excluded} request(s) with cache_n != depth kept out of pp")  # the tokens meant
    prompt_mismatch = sum(
        1
        for r in with_timings
        if r.prompt_length_source == "tokenize"
        and pp_sample(r) is not None
        and r.timings is not None
        and r.timings.prompt_n != r.prompt_tokens_target
    )
    if prompt_mismatch:
        # the prompt was built to its length with the server's own /tokenize: one that counts
        # differently from what the server then processes makes every prompt off, unnoticed but here
        notes.append(
            f"{prompt_mismatch} request(s) had a prompt of another length than asked (the server's "
            "timings.prompt_n vs its /tokenize count): pp is of the lengths the server processed"
        )
    output_mismatch = sum(
        1 for r in ok if r.generated_tokens is not None and r.generated_tokens != r.output_tokens_target
    )
    if output_mismatch:
        notes.append(f"{output_mismatch} request(s) generated a different number of tokens than asked")
    return cache_excluded, prompt_mismatch, output_mismatch, notes


def _errors(measured: Sequence[RequestRecord]) -> dict[str, int]:
    errors: dict[str, int] = {}
    for r in measured:
        if not r.ok:
            key = (r.error or "unknown error")[:120]
            errors[key] = errors.get(key, 0) + 1
    return errors


def _reasoning(ok: Sequence[RequestRecord]) -> tuple[Distribution | None, float | None, list[str]]:
    """A reasoning model's time to the first answer token and the share of streamed tokens that reasoned."""
    streamed_ok = [r for r in ok if r.stream]
    reasoned = [r for r in streamed_ok if r.reasoning_events]
    ttfct = Distribution.of([v for r in reasoned if (v := r.ttfct_ms) is not None]) if reasoned else None
    events = sum(r.token_event_count for r in streamed_ok)
    share = sum(r.reasoning_events for r in reasoned) / events if reasoned and events else None
    if share is None:
        return ttfct, None, []
    first_content = f"; first content token p50 {ttfct.p50:,.1f} ms" if ttfct is not None else ""
    return ttfct, share, [f"reasoning: {share:.0%} of streamed tokens{first_content} (TTFT counts the first "
                          "reasoning token)"]  # fmt: skip


def _schedule(measured: Sequence[RequestRecord], concurrency: int) -> tuple[Distribution | None, list[str]]:
    """How late an open loop's requests went out after their scheduled arrival."""
    delays = Distribution.of(
        [d for r in measured if r.t_scheduled is not None and (d := r.schedule_delay_ms) is not None]
    )
    if delays is None or delays.p99 <= SCHEDULE_TOLERANCE_MS:
        return delays, []
    # an open loop that sends late measures a gentler load than it claims (coordinated omission)
    return delays, [
        f"requests went out up to {delays.p99:,.1f} ms (p99) after their scheduled arrival: the case's "
        f"concurrency cap ({concurrency}) held them or the client lagged; latency from the "
        "scheduled arrival is in ttft_from_schedule_ms / e2e_from_schedule_ms"
    ]


def summarise_case(
    case_id: str,
    records: Sequence[RequestRecord],
    slo: Slo | None = None,
    lag: ClientLag | None = None,
    worker_notes: Sequence[str] = (),
    conditions: HostConditions | None = None,
) -> CaseSummary:
    """One case's figures; ``worker_notes``: what befell its load workers (one that died, a clock that moved);
    ``conditions``: what else the machine did while it ran."""
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.ok]
    first = measured[0] if measured else records[0]
    with_timings = [r for r in ok if r.timings is not None]
    conversational = any(r.turn is not None or r.prefix is not None for r in measured)
    pp, pp_source, tg, tg_source, notes = _throughput(ok, with_timings)
    cache_excluded, prompt_mismatch, output_mismatch, length_notes = _length_checks(
        first.depth_target, ok, with_timings, conversational
    )
    ttfct, reasoning_share, reasoning_notes = _reasoning(ok)
    delays, schedule_notes = _schedule(measured, first.concurrency)
    notes += length_notes + reasoning_notes + schedule_notes
    if conditions is not None and conditions.disturbed:
        notes.append(conditions.sentence())
    # warm-ups included: a one-stream case's connection, opened ahead, is its warm-up's
    connect = Distribution.of([v for r in records if (v := r.connect_ms) is not None])
    if first.cold:
        took = f" (connect p50 {connect.p50:,.2f} ms)" if connect is not None else ""
        notes.append(f"cold connections: each request opened its own, and its TTFT and e2e include the connect{took}")
    drift = case_drift(records)
    notes.extend(d.sentence() for d in drift if d.noted)
    if lag is not None and lag.too_late:
        notes.append(lag.sentence(starved=conditions is not None and conditions.client_starved))
    notes.extend(worker_notes)
    drafts = summarise_drafts(records)
    if drafts is not None:
        notes.append(drafts.sentence())
    cache = summarise_cache(records)
    if cache is not None and conversational:
        notes.extend(cache_notes(cache))
    seconds = wall_s(records)
    delivery = stream_delivery((r.token_times, r.timings) for r in ok if r.stream)
    if delivery is Delivery.BUFFERED:
        notes.append("streamed tokens arrived in bursts (a buffering proxy?): TTFT and ITL are distorted")
    errors = _errors(measured)

    return CaseSummary(
        case_id=case_id,
        scenario=first.scenario,
        # lengths drawn per request stand as their median; a prefix's first use, which asks for the
        # prefix's tokens too, stands aside
        prompt_tokens=_median_target([r.prompt_tokens_target for r in measured if r.prefix is None or r.depth_target])
        or first.prompt_tokens_target,
        output_tokens=_median_target([r.output_tokens_target for r in measured]) or first.output_tokens_target,
        concurrency=first.concurrency,
        depth=0 if conversational else first.depth_target,
        stream=first.stream,
        requests=len(measured),
        ok=len(ok),
        failed=len(measured) - len(ok),
        pp_tps=pp,
        pp_source=pp_source,
        tg_tps=tg,
        tg_source=tg_source,
        pp_tps_per_request=Distribution.of(rates(map(pp_sample, with_timings))),
        tg_tps_per_request=Distribution.of(rates(map(tg_sample, with_timings))),
        ttft_ms=Distribution.of([v for r in ok if (v := r.ttft_ms) is not None]),
        ttfb_ms=Distribution.of([v for r in ok if (v := r.ttfb_ms) is not None]),
        itl_ms=Distribution.of(_pooled_gaps_ms(ok)),
        tpot_ms=Distribution.of([v for r in ok if (v := r.tpot_ms) is not None]),
        e2e_ms=Distribution.of([r.e2e_ms for r in ok]),
        wall_s=seconds,
        request_rps=len(ok) / seconds if seconds > 0 else None,
        output_tps=output_tps(records),
        cache_excluded=cache_excluded,
        prompt_length_mismatches=prompt_mismatch,
        output_length_mismatches=output_mismatch,
        stream_delivery=delivery,
        errors=errors,
        notes=tuple(notes),
        slo=summarise_slo(records, slo) if slo is not None else None,
        schedule_delay_ms=delays,
        ttfct_ms=ttfct,
        reasoning_share=reasoning_share,
        cache=cache,
        drafts=drafts,
        client_lag=lag,
        conditions=conditions,
        drift=drift,
        warmups=sum(1 for r in records if r.warmup),
        connect_ms=connect,
        cold=first.cold,
        clocks=stamp_sources(measured),
        ttft_from_schedule_ms=Distribution.of([v for r in ok if (v := r.ttft_from_schedule_ms) is not None]),
        e2e_from_schedule_ms=Distribution.of([v for r in ok if (v := r.e2e_from_schedule_ms) is not None]),
    )


def summarise_run(
    records: Sequence[RequestRecord],
    baselines: Baselines | None = None,
    gpu_samples: Sequence[GpuSample] = (),
    *,
    active_weight_gib: float | None = None,
    peak_bandwidth_gbs: float | None = None,
    slos: Mapping[str, Slo] | None = None,
    lags: Mapping[str, ClientLag] | None = None,
    worker_notes: Mapping[str, Sequence[str]] | None = None,
    conditions: Mapping[str, HostConditions] | None = None,
) -> RunSummary:
    """The run's figures; ``slos``: each scenario's SLO by scenario name, where it states one."""
    by_case: dict[str, list[RequestRecord]] = {}
    for record in records:
        by_case.setdefault(record.case_id, []).append(record)
    slos = slos or {}
    lags, conditions = lags or {}, conditions or {}
    cases = tuple(
        summarise_case(
            case_id,
            rs,
            slos.get(rs[0].scenario),
            lags.get(case_id),
            (worker_notes or {}).get(case_id, ()),
            conditions.get(case_id),
        )
        for case_id, rs in by_case.items()
    )
    gpu = tuple(case_gpu_figures(case_id, rs, gpu_samples) for case_id, rs in by_case.items()) if gpu_samples else ()
    vram_peak = run_vram_peak_gib(gpu_samples)
    checks: list[BaselineCheck] = []
    tg_records: Sequence[RequestRecord] = records
    for baseline in baselines.entries if baselines else ():
        chosen = [r for r in records if baseline.scenario is None or r.scenario == baseline.scenario]
        if baseline.figure == "tg_tps" and chosen:
            tg_records = chosen
        case_ids = sorted({r.case_id for r in chosen})
        checks.append(check_baseline(baseline, chosen, case_ids, vram_peak))
    tg_ok = [r for r in tg_records if r.ok and not r.warmup and r.timings is not None]
    measured = [r for r in records if not r.warmup]
    return RunSummary(
        cases=cases,
        baselines=tuple(checks),
        requests=len(measured),
        failed=sum(1 for r in measured if not r.ok),
        gpu=gpu,
        bandwidth=bandwidth_figure(server_tg_tps(tg_ok), active_weight_gib, gpu_samples, peak_bandwidth_gbs),
    )


def load_summary(run_dir: Path, baselines: Baselines | None = None) -> RunSummary:
    """A stored run's summary, recomputed from its records and telemetry as the run computed it.

    What the run was told and a later reader cannot know (the weights read per
    token, the card's bandwidth) comes from ``run.json``, so the bandwidth figure
    reaches ``bench show``, the reports and ``bench baseline set`` too. A partial
    run shows what it measured.
    """
    return summarise_stored(read_run_meta(run_dir), list(read_records(run_dir)), read_gpu_samples(run_dir), baselines)


def summarise_stored(
    meta: RunMeta,
    records: Sequence[RequestRecord],
    gpu_samples: Sequence[GpuSample],
    baselines: Baselines | None = None,
) -> RunSummary:
    """``load_summary`` for a caller that has already read the run's files (a report needs them too)."""
    bandwidth = meta.bandwidth_inputs or {}
    return summarise_run(
        records,
        baselines,
        gpu_samples,
        active_weight_gib=bandwidth.get("active_weight_gib"),
        peak_bandwidth_gbs=bandwidth.get("peak_bandwidth_gbs"),
        slos={
            name: slo
            for name, definition in scenario_definitions(meta).items()
            if (slo := slo_from_json(definition.get("slo"))) is not None
        },
        lags={
            case_id: lag
            for case_id, raw in (meta.client_lag or {}).items()
            if (lag := ClientLag.from_json(raw)) is not None
        },
        worker_notes={
            case_id: [str(note) for note in workers.get("notes") or ()]
            for case_id, workers in (meta.workers or {}).items()
            if isinstance(workers, dict)
        },
        conditions={
            case_id: conditions
            for case_id, raw in (meta.conditions or {}).items()
            if (conditions := HostConditions.from_json(raw)) is not None
        },
    )
