"""Baselines: the published figures a run is held against, read from TOML and judged.

The file is data a user edits (``baselines.toml``; the packaged seed holds
gpt-oss-120b on an RTX PRO 6000 Blackwell: pp 5,136 t/s, tg 219.71 t/s,
59.02 GiB). Each entry names its figure, the scenario it is computed over and
the model it belongs to; ``check_baseline`` turns a run's records into a
``BaselineCheck`` (measured value, share of the baseline, pass or fail).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from bench.figures.throughput import FigureSource, client_pp_tps, client_tg_tps, server_pp_tps, server_tg_tps
from bench.inputs.scenarios import Where, check_schema, check_unknown_fields, number_field, read_toml
from bench.records import RequestRecord


@dataclass(frozen=True, slots=True)
class Baseline:
    """A published figure and the scenario it is compared on."""

    figure: str
    value: float
    unit: str
    scenario: str | None = None
    model: str | None = None  # the model the figure belongs to; other models are not judged
    condition: str = ""
    tolerance_pct: float = 5.0
    source: str = ""
    run_id: str | None = None  # the run it was adopted from (never deleted by retention)
    set_at: str | None = None
    history: tuple[dict[str, Any], ...] = ()  # earlier values, newest first

    def applies_to(self, model: str | None) -> bool:
        """Whether a run of ``model`` can pass or fail against this figure."""
        if not self.model or not model:
            return True
        return self.model.lower() in model.lower()


@dataclass(frozen=True, slots=True)
class Baselines:
    source: str
    entries: tuple[Baseline, ...] = field(default_factory=tuple)


_BASELINE_FIELDS = {
    "figure": "pp_tps, tg_tps or vram_used_gib",
    "value": "a positive number",
    "unit": "text such as 't/s' or 'GiB'",
    "scenario": "the name of the scenario the figure is computed over",
    "model": "the model name the figure was measured with (matched as a substring of the run's model)",
    "condition": "text: the setup the figure was measured on",
    "tolerance_pct": "a number of percent from 0 to 100",
    "source": "text: where the figure comes from",
    "run_id": "the id of the run the figure was adopted from",
    "set_at": "when the figure was set (ISO 8601 text)",
    "history": "earlier values of this figure, as written by 'bench baseline set'",
}
KNOWN_FIGURES = ("pp_tps", "tg_tps", "vram_used_gib")


def _parse_baseline(source: str, index: int, raw: Mapping[str, Any]) -> Baseline:
    where = Where(source, f"[[baseline]] #{index + 1}")
    check_unknown_fields(where, raw, _BASELINE_FIELDS)
    figure = raw.get("figure")
    if figure not in KNOWN_FIGURES:
        raise where.error("figure", _BASELINE_FIELDS["figure"], figure)
    if "value" not in raw:
        raise ConfigError(f"{source}: {where.table}: missing field 'value'")
    value = number_field(where, "value", raw["value"], _BASELINE_FIELDS["value"])
    if value <= 0:
        raise where.error("value", _BASELINE_FIELDS["value"], raw["value"])
    tolerance = number_field(where, "tolerance_pct", raw.get("tolerance_pct", 5.0), _BASELINE_FIELDS["tolerance_pct"])
    # above 100 % a throughput figure could never fall below it: a gate that passes everything
    if not 0 <= tolerance <= 100:
        raise where.error("tolerance_pct", _BASELINE_FIELDS["tolerance_pct"], tolerance)
    texts = {}
    history = raw.get("history", [])
    if not isinstance(history, list) or not all(isinstance(h, dict) for h in history):
        raise where.error("history", _BASELINE_FIELDS["history"], history)
    for key in ("unit", "scenario", "model", "condition", "source", "run_id", "set_at"):
        value_text = raw.get(key, "")
        if not isinstance(value_text, str):
            raise where.error(key, _BASELINE_FIELDS[key], value_text)
        texts[key] = value_text
    return Baseline(
        figure=str(figure),
        value=value,
        unit=texts["unit"] or ("GiB" if figure == "vram_used_gib" else "t/s"),
        scenario=texts["scenario"] or None,
        model=texts["model"] or None,
        condition=texts["condition"],
        tolerance_pct=tolerance,
        source=texts["source"],
        run_id=texts["run_id"] or None,
        set_at=texts["set_at"] or None,
        history=tuple(history),
    )


def parse_baselines(data: Mapping[str, Any], source: str) -> Baselines:
    check_schema(source, data)
    for key in data:
        if key not in {"schema_version", "baseline", "description"}:
            raise ConfigError(
                f"{source}: unknown top-level field '{key}'; allowed: baseline, description, schema_version"
            )
    raw = data.get("baseline", [])
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: 'baseline' must be an array of tables ([[baseline]])")
    return Baselines(source=source, entries=tuple(_parse_baseline(source, i, b) for i, b in enumerate(raw)))


DEFAULT_BASELINES_FILE = "baselines.toml"


def load_baselines(path: str | Path | None = None) -> Baselines:
    """Load the baselines file: the given path, ``./baselines.toml`` or the packaged seed file."""
    if path is not None:
        return parse_baselines(read_toml(path, what="baselines file"), str(path))
    local = Path(DEFAULT_BASELINES_FILE)
    if local.is_file():
        return parse_baselines(read_toml(local, what="baselines file"), str(local))
    resource = resources.files("bench.inputs").joinpath(DEFAULT_BASELINES_FILE)
    return parse_baselines(read_toml("<packaged baselines>", resource.read_text("utf-8")), "packaged:baselines.toml")


# --------------------------------------------------------------------- judging


class BaselineStatus(StrEnum):
    PASS = "pass"
    BELOW = "below"  # a throughput figure under its baseline beyond the tolerance
    ABOVE = "above"  # VRAM over its baseline beyond the tolerance (less is never worse)
    NO_DATA = "no data"
    OTHER_MODEL = "other model"  # the baseline belongs to another model: shown for scale only


@dataclass(frozen=True, slots=True)
class BaselineCheck:
    figure: str
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
        names = {"pp_tps": "prompt", "tg_tps": "generation", "vram_used_gib": "VRAM"}
        name = names.get(self.figure, self.figure)
        if self.measured is None or self.ratio is None:
            why = "no GPU telemetry in this run" if self.figure == "vram_used_gib" else "no data"
            return f"{name}: {why} (baseline {self.baseline:,g} {self.unit})"
        text = f"{name} {self.measured:,.2f} {self.unit} = {self.ratio * 100:.1f} % of {self.baseline:,g} {self.unit}"
        if self.status is BaselineStatus.OTHER_MODEL:
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
    if baseline.figure == "vram_used_gib":
        measured = vram_peak_gib
        source = FigureSource.GPU_TELEMETRY if measured is not None else None
    if baseline.figure in ("pp_tps", "tg_tps"):
        server = [r for r in ok if r.timings is not None]
        if server:
            measured = server_pp_tps(server) if baseline.figure == "pp_tps" else server_tg_tps(server)
            source = FigureSource.SERVER
        else:
            measured = client_pp_tps(ok) if baseline.figure == "pp_tps" else client_tg_tps(ok)
            source = FigureSource.CLIENT if measured is not None else None
    ratio = measured / baseline.value if measured is not None else None
    run_model = next((r.model for r in ok if r.model), None)
    if ratio is None:
        status = BaselineStatus.NO_DATA
    elif not baseline.applies_to(run_model):
        status = BaselineStatus.OTHER_MODEL
    elif baseline.figure == "vram_used_gib":
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
