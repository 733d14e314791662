"""Telemetry records: one format whatever the source (NVML, nvidia-smi CSV, /metrics).

A field a GPU or driver does not report is None, never 0: a missing power
reading must not look like an idle card.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

TELEMETRY_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class GpuSample:
    t: float  # run clock (epoch seconds), same clock as request records
    source: str  # "nvml" or "command"
    gpu: int
    name: str | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    memory_reserved_bytes: int | None = None
    gpu_util_pct: float | None = None
    memory_util_pct: float | None = None
    power_w: float | None = None
    power_limit_w: float | None = None
    temperature_c: float | None = None
    sm_clock_mhz: float | None = None
    memory_clock_mhz: float | None = None
    throttle_reasons: str | None = None  # comma-separated names, "" when none
    process_memory_bytes: int | None = None  # held by the llama-server process, where listed
    energy_mj: int | None = None  # the card's energy counter since the driver loaded (Volta and later), mJ
    persistence_mode: bool | None = None  # the driver kept loaded between clients (nvidia-smi -pm 1)
    other_processes: int | None = None  # compute processes on this GPU besides the server (its pid known)

    def to_json(self) -> dict[str, Any]:
        return {"schema": TELEMETRY_SCHEMA, "kind": "gpu", **asdict(self)}


@dataclass(frozen=True, slots=True)
class TelemetryGap:
    """A stretch with no samples: a source died and was restarted, or a GPU vanished."""

    t_start: float
    t_end: float | None
    source: str
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"schema": TELEMETRY_SCHEMA, "kind": "gap", **asdict(self)}


@dataclass(frozen=True, slots=True)
class MetricsSample:
    """One scrape of llama-server's Prometheus /metrics: every numeric series found."""

    t: float
    values: dict[str, float]

    def to_json(self) -> dict[str, Any]:
        return {"schema": TELEMETRY_SCHEMA, "kind": "metrics", "t": self.t, **self.values}
