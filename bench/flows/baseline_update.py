"""``bench baseline set --from RUN``: adopt a measured run as the new baselines.

Each baseline entry whose figure the run measured (over the entry's scenario)
takes the run's value, model and a condition naming the run; the old value moves
to the entry's ``history`` (newest first), so nothing is lost. Entries the run
did not measure (VRAM without GPU telemetry, a scenario it did not run) are
left as they were and reported.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w

from bench.figures.summary import load_summary
from bench.inputs.baselines import Baseline, Baselines, load_baselines
from bench.inputs.scenarios import SCHEMA_VERSION
from bench.store.run_dir import read_run_meta


@dataclass(frozen=True, slots=True)
class BaselineChange:
    figure: str
    scenario: str | None
    old: float
    new: float | None  # None: left unchanged (not measured, or not a figure a baseline can hold)
    measured: float | None = None  # what the run gave when it was not adopted (0, NaN, infinity)


def _entry(baseline: Baseline) -> dict[str, Any]:
    entry: dict[str, Any] = {"figure": baseline.figure, "value": baseline.value, "unit": baseline.unit}
    for key in ("scenario", "model", "condition", "source", "run_id", "set_at"):
        value = getattr(baseline, key)
        if value:
            entry[key] = value
    entry["tolerance_pct"] = baseline.tolerance_pct
    if baseline.history:
        entry["history"] = list(baseline.history)
    return entry


def adopt_run(run_dir: Path, baselines_path: Path, *, description: str | None = None) -> list[BaselineChange]:
    """Rewrite ``baselines_path`` (created from the current baselines if absent) from a run."""
    current: Baselines = load_baselines(baselines_path if baselines_path.exists() else None)
    meta = read_run_meta(run_dir)
    summary = load_summary(run_dir, current)
    run_id = str(meta.run_id)
    set_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    condition = f"run {run_id}: model {meta.model}, build {meta.build}"
    if meta.server_flags:
        condition += f", flags {meta.server_flags}"
    entries = []
    changes = []
    for baseline, check in zip(current.entries, summary.baselines, strict=True):
        entry = _entry(baseline)
        if check.measured is None or not 0 < check.measured < math.inf:
            # a figure of 0 or one that is not finite would make every later run refuse the file
            changes.append(BaselineChange(baseline.figure, baseline.scenario, baseline.value, None, check.measured))
            entries.append(entry)
            continue
        previous = {k: entry[k] for k in ("value", "model", "condition", "source", "run_id", "set_at") if k in entry}
        entry["history"] = [previous, *entry.get("history", [])]
        entry.update(
            value=round(check.measured, 2),
            model=meta.model or entry.get("model", ""),
            condition=condition,
            source="bench baseline set",
            run_id=run_id,
            set_at=set_at,
        )
        changes.append(BaselineChange(baseline.figure, baseline.scenario, baseline.value, entry["value"]))
        entries.append(entry)
    document: dict[str, Any] = {"schema_version": SCHEMA_VERSION}
    document["description"] = description or f"adopted from run {run_id} on {set_at}"
    document["baseline"] = entries
    tmp = baselines_path.with_name(f".{baselines_path.name}.{os.getpid()}.tmp")
    tmp.write_text(tomli_w.dumps(document), encoding="utf-8")
    os.replace(tmp, baselines_path)
    return changes
