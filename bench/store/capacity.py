"""A capacity search's result on disk: ``results/capacity-<time>.json``.

The answer, the curve (goodput, output t/s and latency at each level measured) and the run behind
each level, as ``bench capacity`` found them; ``bench compare`` and the capacity report read them back.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.doors import files, strict_json
from bench.errors import ConfigError
from bench.inputs.slo import Slo


@dataclass(frozen=True, slots=True)
class Level:
    concurrency: int
    run_id: str
    attainment: float | None
    error_rate: float
    holds: bool
    goodput_rps: float | None
    output_tps: float | None
    ttft_p50_ms: float | None
    ttft_p99_ms: float | None
    tpot_p50_ms: float | None
    e2e_p99_ms: float | None
    broken: dict[str, int]
    # llama-server's own view where it serves /metrics: its slots, and how busy and backed up they were
    slots: int | None = None
    busy_slots_mean: float | None = None  # llamacpp:n_busy_slots_per_decode, mean over the samples
    deferred_max: float | None = None  # llamacpp:requests_deferred, the most waiting for a slot at once


@dataclass(frozen=True, slots=True)
class CapacityResult:
    capacity: int  # the highest level that held; 0 when even the first failed
    levels: tuple[Level, ...]  # in concurrency order
    target: float
    slo: Slo
    reached_max: bool  # every level up to max_concurrency held: the capacity is at least that

    def sentence(self) -> str:
        within = f"{self.target:.0%} of requests within {self.slo.describe()}"
        if self.capacity == 0:
            return f"capacity: not even {self.levels[0].concurrency} concurrent user(s) with {within}"
        at_least = "at least " if self.reached_max else ""
        return f"capacity: {at_least}{self.capacity} concurrent users with {within}"

    def to_json(self) -> dict[str, Any]:
        return {
            "capacity": self.capacity,
            "reached_max": self.reached_max,
            "target": self.target,
            "slo": asdict(self.slo),
            "sentence": self.sentence(),
            "levels": [asdict(level) for level in self.levels],
        }


def load_result(path: Path) -> CapacityResult:
    """A capacity search as ``save_result`` kept it."""
    if not path.exists():
        raise ConfigError(f"{path}: no such capacity result; bench capacity writes results/capacity-<time>.json")
    data = files.read_json(path, what="capacity result")
    try:
        levels = tuple(Level(**level) for level in data["levels"])
        return CapacityResult(
            capacity=int(data["capacity"]),
            levels=levels,
            target=float(data["target"]),
            slo=Slo(**data["slo"]),
            reached_max=bool(data["reached_max"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path}: not a capacity result ({exc})") from None


def is_capacity_file(ref: str) -> bool:
    return ref.endswith(".json") and Path(ref).name.startswith("capacity-")


def save_result(result: CapacityResult, results_dir: Path) -> Path:
    """``results/capacity-<time>.json``: the answer, the curve and the runs behind each level."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / f"capacity-{time.strftime('%Y%m%d-%H%M%S')}.json"
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(strict_json.dumps(result.to_json(), indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path
