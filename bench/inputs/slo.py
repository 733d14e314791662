"""Service-level objectives: what a user calls acceptable, and whether one request met it.

A scenario may state what a user calls acceptable, request by request::

    slo = { ttft_ms = 2000, tpot_ms = 50, itl_p99_ms = 150, e2e_ms = 30000 }

(``ttfct_ms``, the time to the first *content* token, is the wait a user of a reasoning model
sees: gpt-oss streams ``reasoning_content`` first.) A request **meets** the SLO when it
succeeded and every stated limit holds: its TTFT (or first content token), its
TPOT (time per output token after the first), the 99th percentile of its own inter-token gaps,
its end-to-end latency. A request too short to have a TPOT or a gap cannot break those limits.
Attainment and goodput per case are figures: ``bench.figures.slo``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import numpy as np

from bench.errors import ConfigError
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


def parse_slo(text: str) -> Slo:
    """``ttft_ms=2000,tpot_ms=50`` -> Slo, with the error a user can act on."""
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
