"""A run's figures held against its baselines: measured value, share of the baseline, pass or fail.

Throughput is the server's ratio of sums (``bench.figures.throughput``), or the client's
estimate where the endpoint sends no timings; VRAM is the run's peak from GPU telemetry. A
baseline for another model is shown for scale and never fails.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bench.figures.throughput import client_pp_tps, client_tg_tps, server_pp_tps, server_tg_tps
from bench.inputs.baselines import Baseline
from bench.records import FigureName, FigureSource, RequestRecord


class BaselineStatus(StrEnum):
    PASS = "pass"
    BELOW = "below"  # a throughput figure under its baseline beyond the tolerance
    ABOVE = "above"  # VRAM over its baseline beyond the tolerance (less is never worse)
    NO_DATA = "no data"
    OTHER_MODEL = "other model"  # the baseline belongs to another model: shown for scale only


@dataclass(frozen=True, slots=True)
class BaselineCheck:
    figure: FigureName
    baseline: float
    unit: str
    measured: float | None
    ratio: float | None
    status: BaselineStatus
    scenario: str | None
    model: str | None  # the baseline's model
    run_model: str | None
    cases: tuple[str, ...]
    tolerance_pct: float
    condition: str
    source: FigureSource | None  # where the measured figure came from

    def sentence(self) -> str:
        name = self.figure.label
        if self.measured is None or self.ratio is None:
            why = "no GPU telemetry in this run" if self.figure == FigureName.VRAM_USED_GIB else "no data"
            return f"{name}: {why} (baseline {self.baseline:,g} {self.unit})"
        text = f"{name} {self.measured:,.2f} {self.unit} = {self.ratio * 100:.1f} % of {self.baseline:,g} {self.unit}"
        if self.status is BaselineStatus.OTHER_MODEL:
            return f"{text} (baseline is for {self.model}, this run is {self.run_model}: for scale only)"
        return f"{text}: {self.status}"


def baseline_headline(checks: Sequence[BaselineCheck]) -> str:
    """'prompt 92 % of 5,136 t/s, generation 101 % of 219.71 t/s' (and a caveat for another model)."""
    text = ", ".join(
        f"{c.figure.label} {c.ratio * 100:.0f} % of {c.baseline:,g} {c.unit}" for c in checks if c.ratio is not None
    )
    other = next((c for c in checks if c.status is BaselineStatus.OTHER_MODEL), None)
    if other is not None:
        text += f" (baselines are for {other.model}; this run is {other.run_model}: for scale only)"
    return text


def check_baseline(
    baseline: Baseline,
    records: Sequence[RequestRecord],
    case_ids: Sequence[str],
    vram_peak_gib: float | None = None,
) -> BaselineCheck:
    ok = [r for r in records if r.ok and not r.warmup]
    measured: float | None = None
    source: FigureSource | None = None
    if baseline.figure == FigureName.VRAM_USED_GIB:
        measured = vram_peak_gib
        source = FigureSource.GPU_TELEMETRY if measured is not None else None
    if baseline.figure in (FigureName.PP_TPS, FigureName.TG_TPS):
        server = [r for r in ok if r.timings is not None]
        if server:
            measured = server_pp_tps(server) if baseline.figure == FigureName.PP_TPS else server_tg_tps(server)
            source = FigureSource.SERVER
        else:
            measured = client_pp_tps(ok) if baseline.figure == FigureName.PP_TPS else client_tg_tps(ok)
            source = FigureSource.CLIENT if measured is not None else None
    ratio = measured / baseline.value if measured is not None else None
    run_model = next((r.model for r in ok if r.model), None)
    if ratio is None:
        status = BaselineStatus.NO_DATA
    elif not baseline.applies_to(run_model):
        status = BaselineStatus.OTHER_MODEL
    elif baseline.figure == FigureName.VRAM_USED_GIB:
        # less memory is never a regression; more than the tolerance above is
        status = BaselineStatus.PASS if ratio <= 1 + baseline.tolerance_pct / 100 else BaselineStatus.ABOVE
    elif ratio >= 1 - baseline.tolerance_pct / 100:
        status = BaselineStatus.PASS
    else:
        status = BaselineStatus.BELOW
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
