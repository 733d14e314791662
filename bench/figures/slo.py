"""SLO attainment and goodput per case: the share of requests that met a scenario's SLO.

Per case: **attainment** (the share of measured requests that met it, and how many broke each
limit: a request may break several) and **goodput** (requests/s and output tokens/s counting
only the requests that met it, over the case's wall time: DistServe, Zhong et al., OSDI 2024;
as vLLM's ``bench serve --goodput``). What meeting an SLO means is ``bench.inputs.slo``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.figures.throughput import wall_s
from bench.inputs.slo import Slo
from bench.records import RequestRecord


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
