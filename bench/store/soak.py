"""A soak's result on disk: ``results/soak-<time>.json``.

Each window's run and figures, the server's memory after it, and the shifts the change points found,
as ``bench soak`` measured them; the soak report reads them back.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.doors import strict_json

SOAK_SCHEMA = 1


@dataclass(frozen=True, slots=True)
class Window:
    number: int
    run_id: str
    started: float  # seconds since the soak began
    figures: dict[str, dict[str, float]]  # case id -> pp_tps / tg_tps
    rss_mib: float | None  # the suite-started server's resident memory after the window


@dataclass(frozen=True, slots=True)
class Shift:
    case_id: str
    figure: str
    window: int  # the first window after the change point
    before: float
    after: float
    p_value: float

    @property
    def change(self) -> float:
        return self.after / self.before - 1


@dataclass(frozen=True, slots=True)
class SoakResult:
    windows: tuple[Window, ...]
    shifts: tuple[Shift, ...]
    path: Path

    def sentence(self) -> str:
        if not self.windows:
            return "no window completed"
        span = f"{len(self.windows)} windows over {self.windows[-1].started / 60:.0f} min"
        rss = [w.rss_mib for w in self.windows if w.rss_mib is not None]
        memory = f"; server memory {rss[0]:,.0f} -> {rss[-1]:,.0f} MiB" if len(rss) >= 2 else ""
        if not self.shifts:
            return f"steady: no figure shifted across {span}{memory}"
        worst = min(self.shifts, key=lambda s: s.change)
        return (
            f"{worst.case_id} {worst.figure} shifted {worst.change:+.1%} at window {worst.window} "
            f"(E-divisive, p {worst.p_value:.2g}), {len(self.shifts)} shift(s) across {span}{memory}"
        )


def save(result: SoakResult, duration_s: float) -> None:
    """Written whole or not at all."""
    document: dict[str, Any] = {
        "schema_version": SOAK_SCHEMA,
        "duration_s": duration_s,
        "windows": [asdict(w) for w in result.windows],
        "shifts": [{**asdict(s), "change": s.change} for s in result.shifts],
        "sentence": result.sentence(),
    }
    tmp = result.path.with_name(f".{result.path.name}.{os.getpid()}.tmp")
    tmp.write_text(strict_json.dumps(document, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, result.path)
