"""GPU figures per case, from samples lined up with request times.

A sample belongs to a case when it falls between the case's first request sent
and last request ended. Within that, a sample is in a *prompt phase* when it
falls between a request's send and its first token (or, without streaming, its
send plus the server's ``prompt_ms``), and in a *generation phase* from there to
the request's end. Utilisation is the mean of the samples in each phase, with
their count, since short prompt phases may catch few samples at 250 ms.

Memory-bandwidth utilisation of generation (a roofline figure): each generated
token reads the active weights once, so

    achieved GB/s = active weight bytes per token x tg t/s
    utilisation   = achieved GB/s / the card's peak memory bandwidth

with the inputs reported beside it. KV-cache reads are left out, so the figure
is a slight underestimate at depth.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.records import RequestRecord
from bench.telemetry.energy import CaseEnergy, case_energy, phases
from bench.telemetry.samples import GpuSample

GIB = 1024**3

# Peak memory bandwidth in GB/s (10^9 bytes/s) from the vendors' data sheets,
# matched as substrings of the NVML / nvidia-smi device name (first match wins).
PEAK_BANDWIDTH_GBS: tuple[tuple[str, float], ...] = (
    ("RTX PRO 6000 Blackwell", 1792.0),
    ("H200", 4800.0),
    ("H100 NVL", 3900.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),
    ("GH200", 4000.0),
    ("B200", 8000.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),
    ("L40S", 864.0),
    ("RTX 5090", 1792.0),
    ("RTX 4090", 1008.0),
)


def peak_bandwidth_gbs(gpu_name: str | None) -> float | None:
    if not gpu_name:
        return None
    for key, value in PEAK_BANDWIDTH_GBS:
        if key.lower() in gpu_name.lower():
            return value
    return None


BENIGN_THROTTLES = frozenset({"gpu_idle", "applications_clocks_setting", "display_clock_setting"})


@dataclass(frozen=True, slots=True)
class GpuCaseFigures:
    case_id: str
    samples: int
    vram_peak_gib: float | None
    vram_mean_gib: float | None
    process_vram_peak_gib: float | None
    gpu_util_prompt_pct: float | None
    prompt_samples: int
    gpu_util_generation_pct: float | None
    generation_samples: int
    power_mean_w: float | None
    temperature_max_c: float | None
    sm_clock_mean_mhz: float | None
    throttle_reasons: tuple[str, ...]
    energy: CaseEnergy | None = None  # joules per token, where the samples tell the case's energy
    other_processes_max: int | None = None  # most compute processes besides the server seen on a GPU at once
    persistence_mode: bool | None = None  # False where any GPU ran without it during the case

    def notes(self) -> tuple[str, ...]:
        """What the GPU's conditions say about the case's figures."""
        found = []
        if self.other_processes_max:
            found.append(
                f"{self.other_processes_max} other process(es) ran on the GPU while the case ran: its figures "
                "were measured beside them"
            )
        # idle and the clocks an application set are no slowdown of the work: the others are
        held = [r for r in self.throttle_reasons if r not in BENIGN_THROTTLES]
        if held:
            found.append(f"the GPU's clocks were held back while the case ran ({', '.join(held)})")
        return tuple(found)


@dataclass(frozen=True, slots=True)
class BandwidthFigure:
    gpu_name: str | None
    tg_tps: float
    active_weight_gib: float
    peak_bandwidth_gbs: float
    achieved_gbs: float
    utilisation: float

    def sentence(self) -> str:
        return (
            f"generation reads {self.active_weight_gib:.2f} GiB of weights per token x {self.tg_tps:,.2f} t/s = "
            f"{self.achieved_gbs:,.0f} GB/s, {self.utilisation * 100:.1f} % of the "
            f"{self.gpu_name or 'GPU'}'s {self.peak_bandwidth_gbs:,.0f} GB/s"
        )


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(np.mean(present)) if present else None


def _max(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return float(max(present)) if present else None


def case_gpu_figures(case_id: str, records: Sequence[RequestRecord], samples: Sequence[GpuSample]) -> GpuCaseFigures:
    measured = [r for r in records if not r.warmup]
    if measured:
        start, end = min(r.t_sent for r in measured), max(r.t_end for r in measured)
        window = [s for s in samples if start <= s.t <= end]
    else:
        window = []
    spans = [p for p in (phases(r) for r in measured if r.ok) if p is not None]
    in_prompt = [s for s in window if any(a <= s.t < b for (a, b), _ in spans)]
    in_generation = [s for s in window if any(a <= s.t <= b for _, (a, b) in spans)]
    reasons = sorted({name for s in window if s.throttle_reasons for name in s.throttle_reasons.split(",")} - {""})
    used = [s.memory_used_bytes / GIB if s.memory_used_bytes is not None else None for s in window]
    process = [s.process_memory_bytes / GIB if s.process_memory_bytes is not None else None for s in window]
    return GpuCaseFigures(
        case_id=case_id,
        samples=len(window),
        vram_peak_gib=_max(used),
        vram_mean_gib=_mean(used),
        process_vram_peak_gib=_max(process),
        gpu_util_prompt_pct=_mean([s.gpu_util_pct for s in in_prompt]),
        prompt_samples=len(in_prompt),
        gpu_util_generation_pct=_mean([s.gpu_util_pct for s in in_generation]),
        generation_samples=len(in_generation),
        power_mean_w=_mean([s.power_w for s in window]),
        temperature_max_c=_max([s.temperature_c for s in window]),
        sm_clock_mean_mhz=_mean([s.sm_clock_mhz for s in window]),
        throttle_reasons=tuple(reasons),
        energy=case_energy(records, samples),
        other_processes_max=_max_int([s.other_processes for s in window]),
        persistence_mode=None
        if all(s.persistence_mode is None for s in window)
        else all(s.persistence_mode is not False for s in window),
    )


def _max_int(values: Sequence[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None


def run_vram_peak_gib(samples: Sequence[GpuSample]) -> float | None:
    """Peak VRAM the server used: its own process memory where NVML lists it, else the device's."""
    process = [s.process_memory_bytes for s in samples if s.process_memory_bytes is not None]
    if process:
        return max(process) / GIB
    used = [s.memory_used_bytes for s in samples if s.memory_used_bytes is not None]
    return max(used) / GIB if used else None


def bandwidth_figure(
    tg_tps: float | None,
    active_weight_gib: float | None,
    samples: Sequence[GpuSample],
    peak_override_gbs: float | None = None,
) -> BandwidthFigure | None:
    """The roofline figure, where tg, the active weights and the card's bandwidth are all known."""
    if tg_tps is None or active_weight_gib is None:
        return None
    name = next((s.name for s in samples if s.name), None)
    peak = peak_override_gbs or peak_bandwidth_gbs(name)
    if peak is None:
        return None
    achieved = active_weight_gib * GIB * tg_tps / 1e9
    return BandwidthFigure(name, tg_tps, active_weight_gib, peak, achieved, achieved / peak)
