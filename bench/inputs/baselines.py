"""Baselines: the published figures a run is held against, read from TOML.

The file is data a user edits (``baselines.toml``; the packaged seed holds
gpt-oss-120b on an RTX PRO 6000 Blackwell: pp 5,136 t/s, tg 219.71 t/s,
59.02 GiB). Each entry names its figure, the scenario it is computed over and
the model it belongs to; ``bench.figures.baselines.check_baseline`` holds a run's records
against one (measured value, share of the baseline, pass or fail).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from bench.errors import ConfigError
from bench.inputs.scenarios import Where, check_schema, check_unknown_fields, number_field, read_toml
from bench.records import FigureName


@dataclass(frozen=True, slots=True)
class Baseline:
    """A published figure and the scenario it is compared on."""

    figure: FigureName
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

    def __post_init__(self) -> None:
        # a caller may name the figure as text ("pp_tps"); the record keeps the closed name
        object.__setattr__(self, "figure", FigureName(self.figure))

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
KNOWN_FIGURES = (FigureName.PP_TPS, FigureName.TG_TPS, FigureName.VRAM_USED_GIB)


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
        figure=FigureName(figure),
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
