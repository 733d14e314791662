"""Figures per case and against the baselines, from request records.

Throughput figures are ratios of sums, never means of per-request rates:

- server pp t/s = sum(prompt_n) / sum(prompt_ms) over requests whose prompt was
  not served from the cache beyond the case's intended depth;
- server tg t/s = sum(predicted_n) / sum(predicted_ms);
- aggregate output t/s = generated tokens of all requests / wall time from the
  first request sent to the last one ended (the figure that grows with concurrency).

Without llama.cpp ``timings`` the same figures are estimated on the client
(pp from prompt tokens over TTFT, tg from tokens after the first over the time
between first and last token) and labelled ``client_estimate``.

Percentiles use linear interpolation between order statistics (NumPy's default,
Hyndman & Fan 1996 type 7).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from bench.config import Baseline, Baselines
from bench.records import RequestRecord, ServerTimings
from bench.telemetry.figures import (
    BandwidthFigure,
    GpuCaseFigures,
    bandwidth_figure,
    case_gpu_figures,
    run_vram_peak_gib,
)
from bench.telemetry.samples import GpuSample

SERVER = "server_timings"
CLIENT = "client_estimate"
BUFFERED_SPAN_RATIO = 0.2  # whole answer arrived in a fifth of the time the server took
BUNCHED_GAP_SHARE = 0.1  # a gap under a tenth of the server's time per token is "bunched"
BUNCHED_SHARE = 0.5  # most gaps bunched: tokens came a buffer at a time
MIN_EVENTS_FOR_DELIVERY = 8


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
    pp_source: str | None
    tg_tps: float | None
    tg_source: str | None
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
    stream_delivery: str
    errors: dict[str, int] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class BaselineCheck:
    figure: str
    baseline: float
    unit: str
    measured: float | None
    ratio: float | None
    status: str  # "pass", "below" (t/s), "above" (VRAM), "no data", "other model"
    scenario: str | None
    model: str | None  # the baseline's model
    run_model: str | None
    cases: tuple[str, ...]
    tolerance_pct: float
    condition: str
    source: str | None  # where the measured figure came from

    def sentence(self) -> str:
        names = {"pp_tps": "prompt", "tg_tps": "generation", "vram_used_gib": "VRAM"}
        name = names.get(self.figure, self.figure)
        if self.measured is None or self.ratio is None:
            why = "no GPU telemetry in this run" if self.figure == "vram_used_gib" else "no data"
            return f"{name}: {why} (baseline {self.baseline:,g} {self.unit})"
        text = f"{name} {self.measured:,.2f} {self.unit} = {self.ratio * 100:.1f} % of {self.baseline:,g} {self.unit}"
        if self.status == "other model":
            return f"{text} (baseline is for {self.model}, this run is {self.run_model}: for scale only)"
        return f"{text}: {self.status}"


def baseline_headline(checks: Sequence[BaselineCheck]) -> str:
    """'prompt 92 % of 5,136 t/s, generation 101 % of 219.71 t/s' (and a caveat for another model)."""
    names = {"pp_tps": "prompt", "tg_tps": "generation", "vram_used_gib": "VRAM"}
    text = ", ".join(
        f"{names.get(c.figure, c.figure)} {c.ratio * 100:.0f} % of {c.baseline:,g} {c.unit}"
        for c in checks
        if c.ratio is not None
    )
    other = next((c for c in checks if c.status == "other model"), None)
    if other is not None:
        text += f" (baselines are for {other.model}; this run is {other.run_model}: for scale only)"
    return text


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


def pp_sample(record: RequestRecord) -> tuple[float, float] | None:
    """(prompt tokens, seconds) of a request that measures prompt processing, else None.

    The one rule every pp figure uses (summary, comparison, reports, export): the
    server's timings are there, and no more and no less of the prompt came from the
    cache than the case's depth intended.
    """
    t = record.timings
    if t is None or t.cache_n != record.depth_target or t.prompt_ms <= 0:
        return None
    return float(t.prompt_n), t.prompt_ms / 1000.0


def tg_sample(record: RequestRecord) -> tuple[float, float] | None:
    """(generated tokens, seconds) of a request that measures generation, else None."""
    t = record.timings
    # A single generated token comes from the prompt's own logits: llama.cpp
    # reports next to no generation time for it, so it says nothing about tg.
    if t is None or t.predicted_n < 2 or t.predicted_ms <= 0:
        return None
    return float(t.predicted_n), t.predicted_ms / 1000.0


def _ratio_of_sums(samples: Iterable[tuple[float, float] | None]) -> float | None:
    tokens = seconds = 0.0
    for sample in samples:
        if sample is not None:
            tokens += sample[0]
            seconds += sample[1]
    return tokens / seconds if seconds > 0 else None


def _rates(samples: Iterable[tuple[float, float] | None]) -> list[float]:
    """Per-request t/s of the samples that measure something."""
    return [tokens / seconds for tokens, seconds in (s for s in samples if s is not None)]


def server_pp_tps(records: Iterable[RequestRecord]) -> float | None:
    return _ratio_of_sums(map(pp_sample, records))


def server_tg_tps(records: Iterable[RequestRecord]) -> float | None:
    return _ratio_of_sums(map(tg_sample, records))


def client_pp_tps(records: Iterable[RequestRecord]) -> float | None:
    """Prompt tokens over time to first token: an upper bound on prompt time, so a lower bound on pp."""
    tokens = seconds = 0.0
    for r in records:
        ttft = r.ttft_ms
        if ttft is not None and ttft > 0:
            tokens += r.prompt_tokens_target
            seconds += ttft / 1000.0
    return tokens / seconds if seconds > 0 else None


def client_tg_tps(records: Iterable[RequestRecord]) -> float | None:
    tokens = seconds = 0.0
    for r in records:
        n = r.generated_tokens
        if r.t_first_token is not None and r.token_times and n is not None and n > 1:
            span = r.token_times[-1] - r.t_first_token
            if span > 0:
                tokens += n - 1
                seconds += span
    return tokens / seconds if seconds > 0 else None


def _flatten(token_times: Sequence[Sequence[float]]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    """All token times in one array (one C-level pass, not a numpy call per request) and the counts."""
    counts = np.fromiter((len(t) for t in token_times), dtype=np.int64, count=len(token_times))
    flat = np.fromiter(itertools.chain.from_iterable(token_times), dtype=np.float64, count=int(counts.sum()))
    return flat, counts


def _within_request_gaps(flat: NDArray[np.float64], counts: NDArray[np.int64]) -> NDArray[np.float64]:
    """Gaps between consecutive token times of the same request (request boundaries dropped)."""
    if len(flat) < 2:
        return np.empty(0)
    gaps = np.diff(flat)
    ends = np.cumsum(counts)[:-1] - 1  # the gap from a request's last token to the next request's first
    keep = np.ones(len(gaps), dtype=bool)
    keep[ends[(ends >= 0) & (ends < len(gaps))]] = False
    return gaps[keep]


def stream_delivery(streams: Iterable[tuple[Sequence[float], ServerTimings | None]]) -> str:
    """'buffered' when tokens reach the client in bursts the server did not send them in.

    Each item is one streamed response: its token arrival times and the server's
    timings. A proxy that buffers SSE (nginx with gzip on event streams, say)
    holds tokens back and releases them a buffer at a time: most gaps between
    arrivals then shrink to almost nothing though the server spent its usual
    time per token, or the whole answer lands at once. Either way TTFT and ITL
    measure the proxy, not the server.
    """
    kept = [
        (times, timings)
        for times, timings in streams
        if timings is not None and len(times) >= MIN_EVENTS_FOR_DELIVERY and timings.predicted_n >= 2
    ]
    if not kept:
        return "n/a"
    flat, counts = _flatten([times for times, _ in kept])
    per_token_s = np.array([t.predicted_ms / 1000.0 / max(t.predicted_n - 1, 1) for _, t in kept])
    gaps = _within_request_gaps(flat, counts)
    owner = np.repeat(np.arange(len(kept)), counts - 1)
    bunched = np.bincount(owner, weights=gaps < BUNCHED_GAP_SHARE * per_token_s[owner], minlength=len(kept))
    bunched_share = bunched / (counts - 1)
    starts = np.cumsum(counts) - counts
    span = flat[starts + counts - 1] - flat[starts]
    expected = per_token_s * (counts - 1)
    usable = expected > 0.005  # a server this fast leaves nothing to tell apart
    if not usable.any():
        return "n/a"
    verdicts = (bunched_share > BUNCHED_SHARE) | (span / np.where(usable, expected, 1.0) < BUFFERED_SPAN_RATIO)
    verdicts = verdicts[usable]
    return "buffered" if int(verdicts.sum()) * 2 > len(verdicts) else "incremental"


def _pooled_gaps_ms(records: Sequence[RequestRecord]) -> NDArray[np.float64]:
    """Every gap between consecutive token events of the records, in ms (a big run has millions)."""
    flat, counts = _flatten([r.token_times for r in records])
    return _within_request_gaps(flat, counts) * 1000.0


def summarise_case(case_id: str, records: Sequence[RequestRecord]) -> CaseSummary:
    measured = [r for r in records if not r.warmup]
    ok = [r for r in measured if r.ok]
    first = measured[0] if measured else records[0]
    with_timings = [r for r in ok if r.timings is not None]
    notes: list[str] = []

    pp_source: str | None
    tg_source: str | None
    if with_timings:
        pp, pp_source = server_pp_tps(with_timings), SERVER
        tg, tg_source = server_tg_tps(with_timings), SERVER
    else:
        pp, tg = client_pp_tps(ok), client_tg_tps(ok)
        pp_source = CLIENT if pp is not None else None
        tg_source = CLIENT if tg is not None else None
        if ok:
            notes.append("server sent no llama.cpp timings: pp/tg are client-side estimates")
    if pp is None:
        pp_source = None
    if tg is None:
        tg_source = None

    cache_excluded = sum(1 for r in with_timings if pp_sample(r) is None)
    short_depth = [r for r in with_timings if r.timings is not None and r.timings.cache_n < r.depth_target]
    if short_depth:
        reused = min(r.timings.cache_n for r in short_depth if r.timings is not None)
        notes.append(
            f"depth not reached: the server reused as few as {reused} of {first.depth_target} cached tokens "
            "(a sliding-window model needs llama-server --swa-full)"
        )
    if cache_excluded:
        notes.append(f"{cache_excluded} request(s) with cache_n != depth kept out of pp")
    prompt_mismatch = sum(
        1
        for r in with_timings
        if r.prompt_length_source == "tokenize"
        and pp_sample(r) is not None
        and r.timings is not None
        and r.timings.prompt_n != r.prompt_tokens_target
    )
    output_mismatch = sum(
        1 for r in ok if r.generated_tokens is not None and r.generated_tokens != r.output_tokens_target
    )
    if output_mismatch:
        notes.append(f"{output_mismatch} request(s) generated a different number of tokens than asked")

    errors: dict[str, int] = {}
    for r in measured:
        if not r.ok:
            key = (r.error or "unknown error")[:120]
            errors[key] = errors.get(key, 0) + 1

    wall_s = 0.0
    if measured:
        wall_s = max(r.t_end for r in measured) - min(r.t_sent for r in measured)
    generated = sum(r.generated_tokens or 0 for r in ok)
    delivery = stream_delivery((r.token_times, r.timings) for r in ok if r.stream)
    if delivery == "buffered":
        notes.append("streamed tokens arrived in bursts (a buffering proxy?): TTFT and ITL are distorted")

    return CaseSummary(
        case_id=case_id,
        scenario=first.scenario,
        prompt_tokens=first.prompt_tokens_target,
        output_tokens=first.output_tokens_target,
        concurrency=first.concurrency,
        depth=first.depth_target,
        stream=first.stream,
        requests=len(measured),
        ok=len(ok),
        failed=len(measured) - len(ok),
        pp_tps=pp,
        pp_source=pp_source,
        tg_tps=tg,
        tg_source=tg_source,
        pp_tps_per_request=Distribution.of(_rates(map(pp_sample, with_timings))),
        tg_tps_per_request=Distribution.of(_rates(map(tg_sample, with_timings))),
        ttft_ms=Distribution.of([v for r in ok if (v := r.ttft_ms) is not None]),
        ttfb_ms=Distribution.of([v for r in ok if (v := r.ttfb_ms) is not None]),
        itl_ms=Distribution.of(_pooled_gaps_ms(ok)),
        tpot_ms=Distribution.of([v for r in ok if (v := r.tpot_ms) is not None]),
        e2e_ms=Distribution.of([r.e2e_ms for r in ok]),
        wall_s=wall_s,
        request_rps=len(ok) / wall_s if wall_s > 0 else None,
        output_tps=generated / wall_s if wall_s > 0 and generated else None,
        cache_excluded=cache_excluded,
        prompt_length_mismatches=prompt_mismatch,
        output_length_mismatches=output_mismatch,
        stream_delivery=delivery,
        errors=errors,
        notes=tuple(notes),
    )


def check_baseline(
    baseline: Baseline,
    records: Sequence[RequestRecord],
    case_ids: Sequence[str],
    vram_peak_gib: float | None = None,
) -> BaselineCheck:
    ok = [r for r in records if r.ok and not r.warmup]
    measured: float | None = None
    source: str | None = None
    if baseline.figure == "vram_used_gib":
        measured = vram_peak_gib
        source = "gpu_telemetry" if measured is not None else None
    if baseline.figure in ("pp_tps", "tg_tps"):
        server = [r for r in ok if r.timings is not None]
        if server:
            measured = server_pp_tps(server) if baseline.figure == "pp_tps" else server_tg_tps(server)
            source = SERVER
        else:
            measured = client_pp_tps(ok) if baseline.figure == "pp_tps" else client_tg_tps(ok)
            source = CLIENT if measured is not None else None
    ratio = measured / baseline.value if measured is not None else None
    run_model = next((r.model for r in ok if r.model), None)
    if ratio is None:
        status = "no data"
    elif not baseline.applies_to(run_model):
        status = "other model"
    elif baseline.figure == "vram_used_gib":
        # less memory is never a regression; more than the tolerance above is
        status = "pass" if ratio <= 1 + baseline.tolerance_pct / 100 else "above"
    elif ratio >= 1 - baseline.tolerance_pct / 100:
        status = "pass"
    else:
        status = "below"
    return BaselineCheck(
        figure=baseline.figure,
        baseline=baseline.value,
        unit=baseline.unit,
        measured=measured,
        ratio=ratio,
        status=status,
        scenario=baseline.scenario,
        model=baseline.model,
        run_model=run_model,
        cases=tuple(case_ids),
        tolerance_pct=baseline.tolerance_pct,
        condition=baseline.condition,
        source=source,
    )


def summarise_run(
    records: Sequence[RequestRecord],
    baselines: Baselines | None = None,
    gpu_samples: Sequence[GpuSample] = (),
    *,
    active_weight_gib: float | None = None,
    peak_bandwidth_gbs: float | None = None,
) -> RunSummary:
    by_case: dict[str, list[RequestRecord]] = {}
    for record in records:
        by_case.setdefault(record.case_id, []).append(record)
    cases = tuple(summarise_case(case_id, rs) for case_id, rs in by_case.items())
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
