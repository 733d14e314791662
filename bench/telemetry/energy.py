"""What each token cost the GPU in joules: from its energy counter where it has one, else power integrated.

Between two consecutive samples of one GPU, the energy spent is the difference of NVML's total
energy counter (millijoules since the driver loaded; Volta and later). Where either sample lacks the
counter, or it went backwards (a driver reload resets it; a counter that wrapped), it is the mean
of the two power readings times the time between them. A span of time takes each interval's energy
in proportion to how much of the interval it covers: power is taken as even within an interval, so
at the default 250 ms a 50 ms prompt phase gets a fifth of the interval around it. GPUs are summed.
A span the samples cover less than ``MIN_COVERAGE`` of has no energy (None), never a guess.

Per case: the energy from its first request sent to its last one ended, its mean power, and the
tokens it generated per joule of all of it (prompts included). A case of one stream, whose prompt
and generation phases never overlap, also gets joules per prompt token (its prompt phases'
energy over the prompt tokens the server processed) and per generated token (its generation
phases' energy over the tokens generated).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bench.records import RequestRecord
from bench.telemetry.samples import GpuSample

MIN_COVERAGE = 0.9  # of a span, covered by sample intervals, for its energy to be said


class EnergySource(StrEnum):
    COUNTER = "counter"  # NVML's total energy counter throughout
    POWER = "power"  # power samples integrated (no counter: nvidia-smi CSV, older GPUs)
    MIXED = "counter and power"  # the counter, with power where it was missing or went backwards


@dataclass(frozen=True, slots=True)
class Interval:
    """The energy one GPU spent between two consecutive samples; None where neither way tells it."""

    t0: float
    t1: float
    joules: float | None
    from_counter: bool


@dataclass(frozen=True, slots=True)
class CaseEnergy:
    energy_j: float
    power_mean_w: float
    output_tokens_per_j: float | None  # tokens generated per joule of the whole case
    j_per_prompt_token: float | None  # one stream only: prompt phases' joules per prompt token processed
    j_per_output_token: float | None  # one stream only: generation phases' joules per token generated
    source: EnergySource

    def sentence(self) -> str:
        per = []
        if self.j_per_prompt_token is not None:
            per.append(f"{self.j_per_prompt_token:.3g} J a prompt token")
        if self.j_per_output_token is not None:
            per.append(f"{self.j_per_output_token:.3g} J a generated token")
        rate = f", {self.output_tokens_per_j:.3g} generated tokens per joule" if self.output_tokens_per_j else ""
        return (
            f"{self.energy_j:,.1f} J at {self.power_mean_w:,.0f} W mean{rate}"
            f"{': ' + ', '.join(per) if per else ''} (from the {self.source})"
        )


def intervals(samples: Sequence[GpuSample]) -> dict[int, list[Interval]]:
    """Each GPU's consecutive sample pairs, with the energy spent between them."""
    by_gpu: dict[int, list[GpuSample]] = {}
    for sample in sorted(samples, key=lambda s: s.t):
        by_gpu.setdefault(sample.gpu, []).append(sample)
    out: dict[int, list[Interval]] = {}
    for gpu, series in by_gpu.items():
        spans = []
        for a, b in itertools.pairwise(series):
            if b.t <= a.t:
                continue
            if a.energy_mj is not None and b.energy_mj is not None and b.energy_mj >= a.energy_mj:
                spans.append(Interval(a.t, b.t, (b.energy_mj - a.energy_mj) / 1000.0, True))
            elif a.power_w is not None and b.power_w is not None:
                spans.append(Interval(a.t, b.t, (a.power_w + b.power_w) / 2 * (b.t - a.t), False))
            else:
                spans.append(Interval(a.t, b.t, None, False))
        out[gpu] = spans
    return out


def energy_over(
    per_gpu: dict[int, list[Interval]], spans: Sequence[tuple[float, float]]
) -> tuple[float, set[bool]] | None:
    """Joules all GPUs spent over ``spans`` (and which ways they were known); None where not known."""
    wanted = sum(max(0.0, b - a) for a, b in spans)
    if not per_gpu or wanted <= 0:
        return None
    total, ways = 0.0, set()
    for gpu_intervals in per_gpu.values():
        joules, covered = 0.0, 0.0
        for a, b in spans:
            for i in gpu_intervals:
                overlap = min(i.t1, b) - max(i.t0, a)
                if overlap <= 0:
                    continue
                if i.joules is None:
                    return None
                joules += i.joules * overlap / (i.t1 - i.t0)
                covered += overlap
                ways.add(i.from_counter)
        if covered < MIN_COVERAGE * wanted:
            return None
        total += joules * wanted / covered  # the uncovered edges at the covered part's mean power
    return total, ways


def _source(ways: set[bool]) -> EnergySource:
    return EnergySource.MIXED if len(ways) > 1 else EnergySource.COUNTER if True in ways else EnergySource.POWER


def case_energy(records: Sequence[RequestRecord], samples: Sequence[GpuSample]) -> CaseEnergy | None:
    """A case's energy figures; None without samples that tell its energy."""
    measured = [r for r in records if not r.warmup and r.ok]
    if not measured or not samples:
        return None
    per_gpu = intervals(samples)
    start, end = min(r.t_sent for r in measured), max(r.t_end for r in measured)
    whole = energy_over(per_gpu, [(start, end)])
    if whole is None or whole[0] <= 0:
        return None
    joules, ways = whole
    generated = sum(_generated(r) for r in measured)
    prompt_tokens = sum(r.timings.prompt_n for r in measured if r.timings is not None)
    per_prompt = per_output = None
    if all(r.concurrency == 1 for r in measured):
        spans = [p for p in (phases(r) for r in measured) if p is not None]
        prompt = energy_over(per_gpu, [p for p, _ in spans])
        generation = energy_over(per_gpu, [g for _, g in spans])
        if prompt is not None and prompt_tokens:
            per_prompt, ways = prompt[0] / prompt_tokens, ways | prompt[1]
        if generation is not None and generated:
            per_output, ways = generation[0] / generated, ways | generation[1]
    return CaseEnergy(
        energy_j=joules,
        power_mean_w=joules / (end - start),
        output_tokens_per_j=generated / joules if generated else None,
        j_per_prompt_token=per_prompt,
        j_per_output_token=per_output,
        source=_source(ways),
    )


def _generated(record: RequestRecord) -> int:
    if record.timings is not None:
        return record.timings.predicted_n
    if record.usage is not None and record.usage.completion_tokens is not None:
        return record.usage.completion_tokens
    return 0


def phases(record: RequestRecord) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """(prompt phase, generation phase) of a request: to its first token, or its server's prompt_ms."""
    if record.t_first_token is not None:
        split = record.t_first_token
    elif record.timings is not None:
        split = record.t_sent + record.timings.prompt_ms / 1000.0
    else:
        return None
    return (record.t_sent, split), (split, record.t_end)
