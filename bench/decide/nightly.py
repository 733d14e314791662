"""The nightly regression gate: run, judge against baselines, last good night and history.

Judgement, per case and figure (pp and tg t/s from the server's timings):

1. **Baselines**: a figure below its baseline by more than the baseline's
   tolerance (for the baseline's model) is a regression.
2. **Last good nightly** (the newest earlier nightly judged ``ok``): the two runs
   are compared as ``bench compare`` compares one run a side with a noise profile,
   the profile being the earlier nights' own spread (``bench.decide.noise``): nights, not
   requests, are the unit. Every figure of the night is one test of a family held
   together by Benjamini-Hochberg. A significant drop is then held against a
   threshold from measured noise: ``T = max(min_effect, 2 x night-to-night robust
   CV)`` over the last nights. Before five nights there is no spread to test
   against: the requests are compared and ``T`` is at least the allowance
   (``bench.decide.compare.DEFAULT_ALLOWANCE``), which the headline says.
   A drop of at least ``2T`` is a regression at once; a drop between ``T`` and
   ``2T`` is *suspect* and only becomes a regression if the previous nightly was
   suspect for the same figure too, so one noisy night pages nobody.
3. **History**: E-divisive means over the figure's nightly series; a change
   point in the last three nights that moves the figure the wrong way by at
   least ``T`` is a regression.

``run_nightly`` is the whole gate as one library call (lock, run, judge,
verdict file, retention, reports); ``bench nightly`` only parses and prints.
Exit status: 0 no regression, 1 regression; when the run itself fails, the
code of what failed, as for every command (``bench.errors.ExitCode``: 2
configuration, 3 endpoint, 4 results directory or another nightly holding the
lock, 5 error rate above the limit).
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import shlex
import shutil
import statistics
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any

from bench.decide.compare import (
    ALPHA,
    DEFAULT_ADJUSTMENT,
    FigureComparison,
    Verdict,
    adjusted,
    compare_figure,
    own_spread,
    run_values_row,
)
from bench.decide.noise import NoiseSource, Spread, spreads_of
from bench.decide.stats import ChangePoint, e_divisive, robust_cv
from bench.doors import files, strict_json
from bench.errors import ExitCode, NightlyLocked, ResultsError
from bench.figures.baselines import BaselineStatus, baseline_headline
from bench.figures.summary import RunSummary
from bench.figures.throughput import FIGURES, GOODPUT
from bench.inputs.baselines import Baselines
from bench.records import RequestRecord
from bench.store.meta import RunFile, RunStatus
from bench.store.run_dir import read_records, read_run_meta, runs_with_meta
from bench.telemetry.host import contention_phrase

NIGHTLY_SCHEMA = 1
JUDGED_FIGURES = ("pp_tps", "tg_tps")
# shown on the trend page beside them, not judged: a night's joules per generated token (one-stream cases with
# GPU energy), so a build that holds its t/s at more power shows
ENERGY_FIGURE = "j_per_output_token"
MIN_EFFECT = 0.03
HISTORY_WINDOW = 30
MIN_NIGHTS_FOR_NOISE = 5
# Before five nights give their spread, the smallest drop the gate looks at: two nights of one build
# land several percent apart (tg 4.5 % between server starts here), which their requests cannot show.
FIRST_NIGHTS_ALLOWANCE = 0.15
# Two fresh runs make tonight three: enough for the spread between them where five nights have not
# given one yet (bench.decide.compare.own_spread), and a pooled figure a single bad start cannot carry.
DEFAULT_CONFIRM_RUNS = 2
MAX_CONFIRM_RUNS = 10
RECENT_NIGHTS = 3
CHANGE_POINT_PERMUTATIONS = 199


def change_points(series: Sequence[float]) -> list[ChangePoint]:
    """A figure's change points over its nights, as the gate judges them and the trend page marks them.

    E-divisive means over the last ``HISTORY_WINDOW`` nights (``bench.decide.stats.e_divisive``,
    ``CHANGE_POINT_PERMUTATIONS`` shuffles); indices point into ``series``. One computation for
    both, so the page never marks a change the gate did not see, nor misses one it paged on.
    """
    offset = max(0, len(series) - HISTORY_WINDOW)
    found = e_divisive(series[offset:], permutations=CHANGE_POINT_PERMUTATIONS)
    return [replace(change, index=change.index + offset) for change in found]


class NightState(StrEnum):
    """A night's verdict."""

    OK = "ok"
    SUSPECT = "suspect"  # a drop above the noise threshold once: watching, not paging
    REGRESSION = "regression"
    # a drop past its threshold that the night's spread cannot tell from noise: neither good nor paged
    INSUFFICIENT = "insufficient"


class Severity(StrEnum):
    REGRESSION = "regression"
    SUSPECT = "suspect"
    UNDECIDED = "undecided"  # past the threshold, not told from noise: what more runs would settle


class FindingKind(StrEnum):
    BASELINE = "baseline"  # below a baseline beyond its tolerance
    LAST_GOOD = "last_good"  # a significant drop against the last good night
    CHANGE_POINT = "change_point"  # a recent E-divisive change point in the history


@dataclass(frozen=True, slots=True)
class Finding:
    kind: FindingKind
    severity: Severity
    figure: str
    case_id: str | None
    change: float | None  # relative, signed (-0.05 = 5 % lower)
    detail: str

    @classmethod
    def from_json(cls, data: object) -> Finding | None:
        """A finding as ``nightly.json`` keeps it; None for one a damaged file left unreadable."""
        if not isinstance(data, dict):
            return None
        try:
            change = data.get("change")
            return cls(
                FindingKind(data["kind"]),
                Severity(data["severity"]),
                str(data["figure"]),
                None if data.get("case_id") is None else str(data["case_id"]),
                None if change is None else float(change),
                str(data.get("detail", "")),
            )
        except (KeyError, TypeError, ValueError):
            return None


@dataclass(frozen=True, slots=True)
class NightlyVerdict:
    run_id: str
    verdict: NightState
    findings: tuple[Finding, ...]
    compared_with: str | None
    thresholds: dict[str, float] = field(default_factory=dict)
    headline: str = ""
    confirmed_with: tuple[str, ...] = ()  # the fresh runs that re-measured flagged cases (--confirm-runs)
    confirm_seconds: float = 0.0  # the server time they took
    bisect: str | None = None  # a regression between two builds: the bench bisect command that finds its commit

    @property
    def exit_code(self) -> ExitCode:
        return {NightState.REGRESSION: ExitCode.REGRESSION, NightState.INSUFFICIENT: ExitCode.UNDECIDED}.get(
            self.verdict, ExitCode.OK
        )

    def to_json(self) -> dict[str, Any]:
        return {"schema_version": NIGHTLY_SCHEMA, **asdict(self)}

    @classmethod
    def from_json(cls, data: object) -> NightlyVerdict | None:
        """A verdict as ``nightly.json`` keeps it; None for a file a crash or a full disk damaged."""
        if not isinstance(data, dict) or data.get("verdict") not in set(NightState):
            return None
        findings = tuple(f for raw in data.get("findings") or () if (f := Finding.from_json(raw)) is not None)
        thresholds = data.get("thresholds")
        return cls(
            run_id=str(data.get("run_id", "")),
            verdict=NightState(data["verdict"]),
            findings=findings,
            compared_with=None if data.get("compared_with") is None else str(data["compared_with"]),
            thresholds=thresholds if isinstance(thresholds, dict) else {},
            headline=str(data.get("headline", "")),
            confirmed_with=tuple(str(r) for r in data.get("confirmed_with") or ()),
            confirm_seconds=float(data.get("confirm_seconds") or 0.0),
            bisect=None if data.get("bisect") is None else str(data["bisect"]),
        )


def read_verdict(run_dir: Path) -> NightlyVerdict | None:
    """The gate's verdict on a nightly run (``nightly.json``); None where the gate wrote none.

    A file that is there but holds no verdict (a crash, a full disk) is a ``ResultsError``: a night
    whose verdict is unknown must not pass for a good one.
    """
    path = run_dir / RunFile.NIGHTLY
    if not path.exists():
        return None
    verdict = NightlyVerdict.from_json(files.read_json(path, what="night's verdict", error=ResultsError))
    if verdict is None:
        raise ResultsError(f"{path}: not a night's verdict")
    return verdict


# ------------------------------------------------------------------ history


@dataclass(frozen=True, slots=True)
class Night:
    path: Path
    run_id: str
    started: float
    verdict: NightState | None
    figures: dict[tuple[str, str], float]  # (case_id, figure) -> value
    findings: tuple[Finding, ...]
    build: str | None = None
    server_flags: str | None = None
    model: str | None = None


def _night(path: Path) -> Night | None:
    try:
        meta = read_run_meta(path)
    except ResultsError:
        return None
    if meta.status != RunStatus.COMPLETE or not (path / RunFile.SUMMARY).exists():
        return None
    try:
        summary = files.read_json(path / RunFile.SUMMARY, what="run's summary", error=ResultsError)
        verdict = read_verdict(path)
        figures = {
            (case["case_id"], name): float(case[name])
            for case in summary.get("cases", [])
            for name in JUDGED_FIGURES
            if case.get(name) is not None
        }
        for case in summary.get("cases", []):
            if isinstance(case.get("slo"), dict) and case["slo"].get("goodput_rps") is not None:
                figures[(case["case_id"], GOODPUT.name)] = float(case["slo"]["goodput_rps"])
        for gpu in summary.get("gpu") or []:
            energy = gpu.get("energy")
            if isinstance(energy, dict) and energy.get(ENERGY_FIGURE) is not None:
                figures[(gpu["case_id"], ENERGY_FIGURE)] = float(energy[ENERGY_FIGURE])
    except (ResultsError, AttributeError, KeyError, TypeError, ValueError):
        return None  # a night whose files a crash or a full disk damaged is not one to judge against
    return Night(
        path=path,
        run_id=str(meta.run_id),
        started=float(meta.started or 0),
        verdict=verdict.verdict if verdict else None,
        figures=figures,
        findings=verdict.findings if verdict else (),
        build=meta.build,
        server_flags=meta.server_flags,
        model=meta.model,
    )


def nightly_history(results_dir: Path, label: str, scenario_set: str) -> list[Night]:
    """Completed nightlies of this label and scenario set, oldest first."""
    nights = []
    for path, meta in runs_with_meta(results_dir):
        if meta.label != label or meta.scenario_set.get("name") != scenario_set:
            continue
        night = _night(path)
        if night is not None:
            nights.append(night)
    return sorted(nights, key=lambda n: n.started)


# ------------------------------------------------------------------ judging


def _baseline_findings(summary: RunSummary) -> list[Finding]:
    return [
        Finding(FindingKind.BASELINE, Severity.REGRESSION, check.figure, None, (check.ratio or 0) - 1, check.sentence())
        for check in summary.baselines
        if check.status in (BaselineStatus.BELOW, BaselineStatus.ABOVE)
    ]


@dataclass(frozen=True, slots=True)
class GateCheck:
    """One figure held against the last good night: its change and the threshold it met or not."""

    case_id: str
    figure: str
    change: float | None  # relative, signed
    threshold: float
    p_value: float | None
    verdict: Verdict = Verdict.UNDECIDED
    margin: float = 0.0  # "the same within +-margin", where the verdict is SAME
    reason: str = ""  # why it could not be compared, where it could not


_STATE_WORDS = {
    NightState.OK: "no regression",
    NightState.SUSPECT: "a suspect drop",
    NightState.REGRESSION: "REGRESSION",
    NightState.INSUFFICIENT: "UNDECIDED (the night's spread cannot tell a drop from noise)",
}
_SEVERITY_ORDER = (Severity.REGRESSION, Severity.SUSPECT, Severity.UNDECIDED)


def headline_text(summary: RunSummary, checks: Sequence[GateCheck], findings: Sequence[Finding], verdict: NightState,
                  compared: bool, nights: int = MIN_NIGHTS_FOR_NOISE) -> str:  # fmt: skip
    """'prompt 92 % of 5,136 t/s, generation 101 % of 219.71 t/s, no regression vs last good night (...)'.

    What the gate decided and why: the figure that regressed (or that it could not decide), or the
    largest drop it saw and why that drop is no news: under its threshold, or the same within the
    margin; never a drop past its threshold called "under" it.
    """
    throughput = [c for c in summary.baselines if c.figure in JUDGED_FIGURES]
    parts = [baseline_headline(throughput)] if any(c.ratio is not None for c in throughput) else []
    state = _STATE_WORDS[verdict]
    # said first where it explains what follows: a night measured beside a busy neighbour
    if contention := contention_phrase([case.conditions for case in summary.cases]):
        parts.append(contention)
    if not compared:
        parts.append(f"{state} (no earlier good night to compare with)")
        return ", ".join(parts)
    named = {f.name: f.label for f in FIGURES} | {GOODPUT.name: "goodput"}  # "pp", "tg", as the comparison names them
    if findings:
        first = min(findings, key=lambda f: _SEVERITY_ORDER.index(f.severity))
        where = f"{first.case_id} " if first.case_id else ""
        change = f" {first.change * 100:+.1f} %" if first.change is not None else ""
        more = f", and {len(findings) - 1} more" if len(findings) > 1 else ""
        parts.append(f"{state}: {where}{named.get(first.figure, first.figure)}{change} ({first.kind}){more}")
        return ", ".join(parts)
    drops = [c for c in checks if c.change is not None and c.change < 0]
    if checks and all(c.change is None for c in checks):
        # nothing was held against the last good night: "no figure lower" would claim what was not seen
        parts.append(f"{state}; not compared with the last good night ({checks[0].reason})")
    elif drops:
        worst = min(drops, key=lambda c: (c.change or 0) / c.threshold)
        p_text = f", p = {worst.p_value:.2g}" if worst.p_value is not None else ""
        why = (
            f"under its {worst.threshold * 100:.1f} % threshold"
            if -(worst.change or 0) < worst.threshold
            else f"past its {worst.threshold * 100:.1f} % threshold but the same within ±{worst.margin:.0%}"
        )
        parts.append(
            f"{state} vs last good night (largest drop {worst.case_id} {named.get(worst.figure, worst.figure)} "
            f"{(worst.change or 0) * 100:+.1f} %{p_text}, {why})"
        )
    else:
        unseen = sum(c.change is None for c in checks)
        parts.append(f"{state} vs last good night (no figure lower{f', {unseen} not compared' if unseen else ''})")
    if nights < MIN_NIGHTS_FOR_NOISE:
        # said, not hidden: the first nights gate on the allowance, not on a measured spread
        parts.append(f"night-to-night spread not known yet ({nights} of {MIN_NIGHTS_FOR_NOISE} nights)")
    return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Evidence:
    """What the gate judges, read beforehand (``gather``), so that ``judge`` is a function of values."""

    run_id: str
    summary: RunSummary
    records: tuple[RequestRecord, ...]  # tonight's
    earlier: tuple[Night, ...]  # the nights before tonight, oldest first
    last_good_records: tuple[RequestRecord, ...] | None  # the last good night's, None before the first
    spreads: Mapping[tuple[str, str], Spread]  # between the quiet nights of the window, per case and figure
    # fresh runs of the flagged cases after a first judgement (--confirm-runs), each its own run id
    confirmations: tuple[RequestRecord, ...] = ()
    build: str | None = None  # tonight's server build, as /props or system_fingerprint gave it
    scenario_set: str | None = None


def _last_good(earlier: Sequence[Night]) -> Night | None:
    return next((n for n in reversed(earlier) if n.verdict in (NightState.OK, None)), None)


def _quiet(earlier: Sequence[Night]) -> list[Night]:
    # nights the gate found a drop in are shifts, not noise: their spread would hide the next one
    return [n for n in earlier[-HISTORY_WINDOW:] if n.verdict in (NightState.OK, None)]


def gather(run_dir: Path, summary: RunSummary, history: Sequence[Night]) -> Evidence:
    """Read what ``judge`` needs: tonight's requests, the last good night's, the quiet nights' spread."""
    earlier = tuple(n for n in history if n.path != run_dir)
    last_good = _last_good(earlier)
    quiet = _quiet(earlier)
    meta = read_run_meta(run_dir)
    return Evidence(
        build=meta.build,
        scenario_set=str(meta.scenario_set.get("name") or "") or None,
        run_id=run_dir.name,
        summary=summary,
        records=tuple(read_records(run_dir)),
        earlier=earlier,
        last_good_records=tuple(read_records(last_good.path)) if last_good else None,
        spreads=_night_spreads(quiet) if len(quiet) >= MIN_NIGHTS_FOR_NOISE else {},
    )


def judge(
    evidence: Evidence, *, min_effect: float = MIN_EFFECT, allowance: float = FIRST_NIGHTS_ALLOWANCE
) -> NightlyVerdict:
    """Judge tonight against the baselines, the last good night and the history: three rules, one verdict."""
    earlier = evidence.earlier
    last_good, quiet = _last_good(earlier), _quiet(earlier)
    window = earlier[-HISTORY_WINDOW:]
    tonight = _night_from_summary(evidence.summary)
    series = {key: [n.figures[key] for n in window if key in n.figures] for key in tonight}
    thresholds = {key: _threshold(series[key], min_effect, allowance) for key in sorted(tonight)}
    checks, against_last = _against_last_good(evidence, tonight, thresholds, last_good, quiet, min_effect, allowance)
    findings = [
        *_baseline_findings(evidence.summary),
        *against_last,
        *_change_point_findings(tonight, series, thresholds),
    ]
    verdict = _state(findings)
    regressed = next((f for f in findings if f.severity is Severity.REGRESSION and f.case_id), None)
    return NightlyVerdict(
        bisect=bisect_command(last_good.build if last_good else None, evidence.build, regressed, evidence.scenario_set),
        run_id=evidence.run_id,
        verdict=verdict,
        findings=tuple(findings),
        compared_with=last_good.run_id if last_good else None,
        thresholds={f"{case_id} {figure}": value for (case_id, figure), value in thresholds.items()},
        headline=headline_text(
            evidence.summary, checks, findings, verdict, compared=evidence.last_good_records is not None,
            nights=len(window),
        ),
    )  # fmt: skip


def _threshold(series: Sequence[float], min_effect: float, allowance: float) -> float:
    """The smallest drop of a figure that can count: twice its night-to-night noise, at least ``min_effect``.

    Without the spread of ``MIN_NIGHTS_FOR_NOISE`` nights yet, a drop under the allowance is not
    news: two nights of one build can land that far apart, which their requests cannot show.
    """
    noise = robust_cv(series) if len(series) >= MIN_NIGHTS_FOR_NOISE else None
    return max(min_effect, 2 * noise) if noise is not None else max(min_effect, allowance)


def _against_last_good(
    evidence: Evidence,
    tonight: Mapping[tuple[str, str], float],
    thresholds: Mapping[tuple[str, str], float],
    last_good: Night | None,
    quiet: Sequence[Night],
    min_effect: float,
    allowance: float,
) -> tuple[list[GateCheck], list[Finding]]:
    """Rule 2: each figure against the last good night, nights as the unit, held together (BH)."""
    if last_good is None:
        return [], []
    rows: list[FigureComparison] = []
    for case_id, figure in sorted(tonight):
        if figure == GOODPUT.name:
            if (row := _goodput_row(case_id, tonight[(case_id, figure)], last_good, quiet, min_effect)) is not None:
                rows.append(row)
            continue
        if evidence.last_good_records is not None:
            spec = next(f for f in FIGURES if f.name == figure)
            before = [r for r in evidence.last_good_records if r.case_id == case_id]
            # tonight, and the fresh runs that re-measured it where the first judgement flagged it
            now = [r for r in (*evidence.records, *evidence.confirmations) if r.case_id == case_id]
            spread, source = evidence.spreads.get((case_id, figure)), NoiseSource.HISTORY
            if spread is None:
                # before five nights: the confirmation runs' own spread, where there are enough of them
                spread, source = own_spread(before, now, spec), NoiseSource.RUNS
            rows.append(
                compare_figure(
                    case_id, spec, before, now, min_effect=min_effect, spread=spread, spread_source=source,
                )
            )  # fmt: skip
    previous = evidence.earlier[-1] if evidence.earlier else None
    previous_suspects = {
        (f.case_id, f.figure) for f in (previous.findings if previous else ()) if f.severity is not Severity.UNDECIDED
    }
    confirmed = {r.case_id for r in evidence.confirmations}
    confirm_runs = len({r.run_id for r in evidence.confirmations})
    checks, findings = [], []
    # every figure of the night is a test: held together as a comparison's are (false discovery rate)
    for comparison in adjusted(rows, DEFAULT_ADJUSTMENT, alpha=ALPHA, min_effect=min_effect):
        key = (comparison.case_id, comparison.figure)
        p_gate = comparison.p_adjusted if comparison.p_adjusted is not None else comparison.p_value
        checks.append(
            GateCheck(
                comparison.case_id, comparison.figure, comparison.change, thresholds[key], p_gate,
                comparison.verdict, comparison.margin, comparison.reason,
            )
        )  # fmt: skip
        held = confirm_runs if comparison.case_id in confirmed else 0
        finding = _gate(comparison, thresholds[key], key in previous_suspects, last_good, held)
        if finding is not None:
            findings.append(finding)
    return checks, findings


def _change_point_findings(
    tonight: Mapping[tuple[str, str], float],
    series: Mapping[tuple[str, str], Sequence[float]],
    thresholds: Mapping[tuple[str, str], float],
) -> list[Finding]:
    """Rule 3: a change point in the last ``RECENT_NIGHTS`` nights whose drop passes the figure's threshold."""
    findings = []
    for case_id, figure in sorted(tonight):
        full = [*series[(case_id, figure)], tonight[(case_id, figure)]]
        threshold = thresholds[(case_id, figure)]
        for change in change_points(full):
            recent = change.index >= len(full) - RECENT_NIGHTS
            # tonight itself must sit on the low side: a shift the nights before paged, from which tonight
            # has recovered, is no news tonight (seen: two slowed nights, then a normal one paged for them)
            still_low = full[-1] <= change.mean_before * (1 - threshold)
            if recent and change.relative_change <= -threshold and still_low:
                findings.append(
                    Finding(
                        FindingKind.CHANGE_POINT,
                        Severity.REGRESSION,
                        figure,
                        case_id,
                        change.relative_change,
                        f"E-divisive change point {len(full) - change.index} night(s) ago: "
                        f"mean {change.mean_before:,.2f} -> {change.mean_after:,.2f} "
                        f"({change.relative_change:+.1%}, permutation p = {change.p_value:.2g})",
                    )
                )
    return findings


def _state(findings: Sequence[Finding]) -> NightState:
    severities = {f.severity for f in findings}
    if Severity.REGRESSION in severities:
        return NightState.REGRESSION
    if Severity.SUSPECT in severities:
        return NightState.SUSPECT
    return NightState.INSUFFICIENT if severities else NightState.OK


def _goodput_row(
    case_id: str, tonight: float, last_good: Night, quiet: Sequence[Night], min_effect: float
) -> FigureComparison | None:
    """Tonight's goodput against the last good night's, with the quiet nights' spread; None before five."""
    before = last_good.figures.get((case_id, GOODPUT.name))
    series = [v for n in quiet if (v := n.figures.get((case_id, GOODPUT.name))) is not None and v > 0]
    if before is None or before <= 0 or len(series) < MIN_NIGHTS_FOR_NOISE:
        return None
    spread = Spread(case_id, GOODPUT.name, statistics.stdev(math.log(v) for v in series), len(series), None, 0)
    # no request met the SLO tonight: as far down as goodput goes, with no logarithm to take
    value = tonight if tonight > 0 else before * 1e-6
    return run_values_row(case_id, GOODPUT, before, value, spread, source=NoiseSource.HISTORY, min_effect=min_effect)


def _night_spreads(nights: Sequence[Night]) -> dict[tuple[str, str], Spread]:
    """Each case's and judged figure's spread between these nights, from their requests."""
    judged = tuple(f for f in FIGURES if f.name in JUDGED_FIGURES)
    spreads = spreads_of([list(read_records(night.path)) for night in nights], judged)
    return {(s.case_id, s.figure): s for s in spreads}


def _night_from_summary(summary: RunSummary) -> dict[tuple[str, str], float]:
    values: dict[tuple[str, str], float] = {}
    for case in summary.cases:
        for name in JUDGED_FIGURES:
            value = getattr(case, name)
            if value is not None:
                values[(case.case_id, name)] = float(value)
        if case.slo is not None and case.slo.goodput_rps is not None:
            values[(case.case_id, GOODPUT.name)] = case.slo.goodput_rps
    return values


def _gate(
    comparison: FigureComparison, threshold: float, was_suspect: bool, last_good: Night | None, confirmed_by: int = 0
) -> Finding | None:
    """A finding for a drop past its threshold: regression, suspect, or undecided; None for no drop that counts.

    ``confirmed_by``: fresh runs re-measured the case, and the drop is judged on them too; one that
    holds on them pages at once, as a second night in a row would.
    """
    if comparison.change is None or -comparison.change < threshold:
        return None
    drop = -comparison.change
    if comparison.verdict is Verdict.UNDECIDED:
        # past the threshold but not told from noise: said as such, never "under its threshold"
        return Finding(
            FindingKind.LAST_GOOD, Severity.UNDECIDED, comparison.figure, comparison.case_id, comparison.change,
            f"{comparison.change:+.1%} vs last good night {last_good.run_id if last_good else '-'}, past the "
            f"{threshold:.1%} threshold, but the nights' spread cannot tell it from noise ({comparison.reason})",
        )  # fmt: skip
    if comparison.verdict is not Verdict.REGRESSED:
        return None
    adjusted_p = f", {DEFAULT_ADJUSTMENT} {comparison.p_adjusted:.2g}" if comparison.p_adjusted is not None else ""
    basis = f" {comparison.basis}" if comparison.basis else " (requests; no night-to-night spread yet)"
    how_sure = (
        f"{comparison.a:,.2f} -> {comparison.b:,.2f} {comparison.unit} ({comparison.change:+.1%}, 95 % CI "
        f"[{(comparison.ci_low or 0) - 1:+.1%}, {(comparison.ci_high or 0) - 1:+.1%}], "
        f"p = {comparison.p_value:.2g}{adjusted_p}{basis}) vs last good night {last_good.run_id if last_good else '-'}"
    )
    if drop >= 2 * threshold:
        severity, why = Severity.REGRESSION, f"large: at least twice the {threshold:.1%} noise threshold"
    elif confirmed_by:
        severity, why = Severity.REGRESSION, f"held on {confirmed_by} fresh run(s), above the {threshold:.1%} threshold"
    elif was_suspect:
        severity, why = Severity.REGRESSION, f"second night in a row above the {threshold:.1%} noise threshold"
    else:
        severity, why = Severity.SUSPECT, f"above the {threshold:.1%} noise threshold once: watching, not paging"
    return Finding(
        FindingKind.LAST_GOOD, severity, comparison.figure, comparison.case_id, comparison.change, f"{how_sure}; {why}"
    )


# ------------------------------------------------------------------ unattended running


@contextlib.contextmanager
def nightly_lock(results_dir: Path) -> Iterator[None]:
    """Hold ``results_dir/.nightly.lock`` for the run; a second nightly fails at once."""
    results_dir.mkdir(parents=True, exist_ok=True)
    path = results_dir / ".nightly.lock"
    handle: IO[str] = path.open("a+", encoding="utf-8")
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise NightlyLocked(f"another nightly holds {path} (pid {holder}); not starting a second one") from None
        handle.seek(0)
        handle.truncate()
        handle.write(str(os.getpid()))
        handle.flush()
        yield
    finally:
        handle.close()


def protected_runs(baselines: Baselines | None) -> set[str]:
    return {b.run_id for b in (baselines.entries if baselines else ()) if b.run_id}


def apply_retention(
    results_dir: Path,
    label: str,
    *,
    keep_runs: int | None,
    keep_days: float | None,
    protect: set[str],
    now: float | None = None,
) -> list[Path]:
    """Delete old runs of this label beyond ``keep_runs`` or older than ``keep_days``; never protected ones."""
    if keep_runs is None and keep_days is None:
        return []
    now = time.time() if now is None else now
    candidates = []
    for path, meta in runs_with_meta(results_dir):
        if meta.label == label and meta.status != RunStatus.RUNNING:
            candidates.append((float(meta.started or 0), path, str(meta.run_id)))
    candidates.sort(reverse=True)  # newest first
    removed = []
    for position, (started, path, run_id) in enumerate(candidates):
        too_many = keep_runs is not None and position >= keep_runs
        too_old = keep_days is not None and now - started > keep_days * 86400
        if (too_many or too_old) and run_id not in protect and path.name not in protect:
            shutil.rmtree(path)
            removed.append(path)
    return removed


def write_verdict(run_dir: Path, verdict: NightlyVerdict) -> None:
    tmp = run_dir / ".nightly.json.tmp"
    tmp.write_text(strict_json.dumps(verdict.to_json(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, run_dir / RunFile.NIGHTLY)


def plain_summary(verdict: NightlyVerdict) -> str:
    lines = [f"nightly {verdict.run_id}: {verdict.verdict.upper()} (exit {verdict.exit_code})", verdict.headline]
    for finding in verdict.findings:
        where = f"{finding.case_id} " if finding.case_id else ""
        lines.append(f"  [{finding.severity}] {where}{finding.figure}: {finding.detail}")
    if verdict.bisect:
        lines.append(f"the build changed since the last good night; to find the commit: {verdict.bisect}")
    return "\n".join(lines)


BUILD = re.compile(r"\bb(\d+)-([0-9a-f]{7,40})\b")  # llama.cpp's build_info and system_fingerprint: b6458-abc1234


def bisect_command(good: str | None, bad: str | None, finding: Finding | None, scenario_set: str | None) -> str | None:
    """The bench bisect command between two builds that name their commits; None where they do not, or match."""
    commits = [BUILD.search(build or "") for build in (good, bad)]
    if finding is None or not all(commits) or good == bad:
        return None
    (good_commit, bad_commit) = (m.group(2) for m in commits if m is not None)
    figure = finding.figure if finding.figure in ("pp_tps", "tg_tps") else "tg_tps"
    return shlex.join(
        ["bench", "bisect", "--repo", "LLAMA_CPP_CHECKOUT", "--good", good_commit, "--bad", bad_commit,
         "--case", str(finding.case_id), "--figure", figure, *(["--scenarios", scenario_set] if scenario_set else []),
         "--model-file", "MODEL.gguf"]
    )  # fmt: skip
