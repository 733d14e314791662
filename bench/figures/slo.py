"""Service-level objectives per request, SLO attainment and goodput per case.

A scenario may state what a user calls acceptable, request by request::

    slo = { ttft_ms = 2000, tpot_ms = 50, itl_p99_ms = 150, e2e_ms = 30000 }

(``ttfct_ms``, the time to the first *content* token, is the wait a user of a reasoning model
sees: gpt-oss streams ``reasoning_content`` first.) A request **meets** the SLO when it
succeeded and every stated limit holds: its TTFT (or first content token), its
TPOT (time per output token after the first), the 99th percentile of its own inter-token gaps,
its end-to-end latency. A request too short to have a TPOT or a gap cannot break those limits.
Per case: **attainment** (the share of measured requests that met it, and how many broke each
limit: a request may break several) and **goodput** (requests/s and output tokens/s counting
only the requests that met it, over the case's wall time: DistServe, Zhong et al., OSDI 2024;
as vLLM's ``bench serve --goodput``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any

import numpy as np

from bench.figures.throughput import wall_s
from bench.records import RequestRecord

MAX_LIMIT = 1e9  # ms: eleven days, far beyond any request's timeout


class SloLimit(StrEnum):
    TTFT = "ttft_ms"
    TTFCT = "ttfct_ms"  # time to the first content token, after a reasoning model's reasoning
    TPOT = "tpot_ms"
    ITL_P99 = "itl_p99_ms"
    E2E = "e2e_ms"


FAILED = "failed"  # a request that did not succeed meets no SLO
STREAMED_ONLY = (SloLimit.TTFT, SloLimit.TTFCT, SloLimit.TPOT, SloLimit.ITL_P99)  # need token times
LABELS = {
    SloLimit.TTFT: "TTFT",
    SloLimit.TTFCT: "first content token",
    SloLimit.TPOT: "TPOT",
    SloLimit.ITL_P99: "ITL p99",
    SloLimit.E2E: "e2e",
}


@dataclass(frozen=True, slots=True)
class Slo:
    ttft_ms: float | None = None
    ttfct_ms: float | None = None
    tpot_ms: float | None = None
    itl_p99_ms: float | None = None
    e2e_ms: float | None = None

    def limits(self) -> list[tuple[SloLimit, float]]:
        return [(limit, value) for limit in SloLimit if (value := getattr(self, limit.value)) is not None]

    def describe(self) -> str:
        return ", ".join(f"{LABELS[limit]} <= {value:,g} ms" for limit, value in self.limits())

    def broken(self, record: RequestRecord) -> tuple[str, ...]:
        """The limits this request broke (``failed`` for a request that did not succeed); () when it met them."""
        if not record.ok:
            return (FAILED,)
        return tuple(limit.value for limit, value in self.limits() if _breaks(record, limit, value))


def _breaks(record: RequestRecord, limit: SloLimit, value: float) -> bool:
    if limit is SloLimit.E2E:
        return record.e2e_ms > value
    if limit is SloLimit.TTFT:
        return record.ttft_ms is None or record.ttft_ms > value  # no first token seen: not met
    if limit is SloLimit.TTFCT:
        return record.ttfct_ms is None or record.ttfct_ms > value  # all reasoning, no answer: not met
    if limit is SloLimit.TPOT:
        return record.tpot_ms is not None and record.tpot_ms > value
    gaps = record.itl_ms
    return bool(gaps) and float(np.percentile(gaps, 99)) > value


@dataclass(frozen=True, slots=True)
class SloSummary:
    slo: Slo
    judged: int  # measured requests
    met: int
    broken: dict[str, int] = field(default_factory=dict)  # limit (or "failed") -> requests that broke it
    goodput_rps: float | None = None
    goodput_tps: float | None = None

    @property
    def attainment(self) -> float | None:
        return self.met / self.judged if self.judged else None

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "attainment": self.attainment}


def summarise_slo(records: Sequence[RequestRecord], slo: Slo) -> SloSummary:
    measured = [r for r in records if not r.warmup]
    broken: dict[str, int] = {}
    met = []
    for record in measured:
        why = slo.broken(record)
        for limit in why:
            broken[limit] = broken.get(limit, 0) + 1
        if not why:
            met.append(record)
    seconds = wall_s(records)
    tokens = sum(r.generated_tokens or 0 for r in met)
    return SloSummary(
        slo=slo,
        judged=len(measured),
        met=len(met),
        broken=broken,
        goodput_rps=len(met) / seconds if seconds > 0 else None,
        goodput_tps=tokens / seconds if seconds > 0 else None,
    )


def slo_from_json(data: Mapping[str, Any] | None) -> Slo | None:
    """A scenario's SLO as ``run.json`` keeps it (None where the scenario stated none)."""
    if not data:
        return None
    return Slo(**{limit.value: data.get(limit.value) for limit in SloLimit})


def valid_limit(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and 0 < value <= MAX_LIMIT
    )
