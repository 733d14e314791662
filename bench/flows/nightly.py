"""The nightly regression gate end to end, as a library call the CLI only parses for.

``run_nightly``: hold the lock, run the scenario set, judge it (``bench.decide.nightly``), write
``nightly.json``, apply retention and write the run and trend reports::

    from bench import RunOptions, load_scenario_set
    from bench.flows.nightly import NightlyOptions, run_nightly

    outcome = run_nightly(NightlyOptions(RunOptions(load_scenario_set("baseline"), label="nightly")))
    print(outcome.verdict.headline if outcome.verdict else outcome.failure, outcome.exit_code)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from pathlib import Path

from bench.decide.nightly import (
    DEFAULT_CONFIRM_RUNS,
    FIRST_NIGHTS_ALLOWANCE,
    MAX_CONFIRM_RUNS,
    MIN_EFFECT,
    Evidence,
    FindingKind,
    NightlyVerdict,
    apply_retention,
    gather,
    judge,
    nightly_history,
    nightly_lock,
    protected_runs,
    write_verdict,
)
from bench.errors import BenchError, ConfigError, ExitCode
from bench.flows.run import RunObserver, RunOptions, RunResult, run_benchmark
from bench.report import DEFAULT_REPORTS_DIR
from bench.report.render import render_run_report, render_trend_report
from bench.store.run_dir import read_records

CONFIRM_SUFFIX = "-confirm"  # their label: the label's nights are never confirmation runs


@dataclass(frozen=True, slots=True)
class NightlyOptions:
    run: RunOptions  # its label names the series of nights ("nightly" from the CLI)
    min_effect: float = MIN_EFFECT  # smallest drop that can count, as a fraction; noise can raise it
    allowance: float = FIRST_NIGHTS_ALLOWANCE  # smallest drop that can count before the nights give their spread
    keep_runs: int | None = None  # retention: the newest N runs of the label
    keep_days: float | None = None  # retention: runs of the label younger than D days
    reports_dir: Path | None = DEFAULT_REPORTS_DIR  # None: no reports
    # a drop past its threshold is measured again on this many fresh runs (server starts where the
    # suite starts the server) before it pages; 0: page on the night alone (a second night confirms)
    confirm_runs: int = DEFAULT_CONFIRM_RUNS

    def __post_init__(self) -> None:
        if not self.run.label:
            raise ConfigError("a nightly needs a label: its earlier nights are the runs with the same label")
        if not 0 <= self.confirm_runs <= MAX_CONFIRM_RUNS:
            raise ConfigError(f"--confirm-runs must be from 0 to {MAX_CONFIRM_RUNS}; got {self.confirm_runs}")
        if self.keep_runs is not None and self.keep_runs < 1:
            raise ConfigError(f"--keep-runs must be at least 1; got {self.keep_runs}")
        if self.keep_days is not None and not 0 < self.keep_days < math.inf:
            raise ConfigError(f"--keep-days must be a positive, finite number of days; got {self.keep_days}")
        for name, value in (("--min-effect", self.min_effect), ("--allowance", self.allowance)):
            if not 0 <= value < 1:
                raise ConfigError(f"{name} must be a percentage from 0 to 100; got {value * 100:g}")


@dataclass(frozen=True, slots=True)
class NightlyOutcome:
    run: RunResult
    verdict: NightlyVerdict | None  # None when the run failed its error-rate limit and was not judged
    removed: tuple[Path, ...] = ()  # old runs deleted by retention
    reports: tuple[Path, ...] = ()  # the run report, then the trend report
    failure: str | None = None  # why the night failed as a run

    @property
    def exit_code(self) -> ExitCode:
        if self.verdict is None:
            return ExitCode.ERROR_RATE
        return self.verdict.exit_code


def run_nightly(options: NightlyOptions, observer: RunObserver | None = None) -> NightlyOutcome:
    """The nightly gate; raises ``BenchError`` (with its exit code) when the run itself fails."""
    run_options = options.run
    label = run_options.label
    assert label is not None  # checked by NightlyOptions
    with nightly_lock(run_options.results_dir):
        result = run_benchmark(run_options, observer)
        if result.error_rate_exceeded:
            return NightlyOutcome(result, None, failure="; ".join(result.notes))
        history = nightly_history(run_options.results_dir, label, run_options.scenarios.name)
        evidence = gather(result.run_dir, result.summary, history)
        verdict = judge(evidence, min_effect=options.min_effect, allowance=options.allowance)
        flagged = sorted({f.case_id for f in verdict.findings if f.kind is FindingKind.LAST_GOOD and f.case_id})
        if flagged and options.confirm_runs:
            verdict = _confirmed(options, evidence, flagged, observer)
        write_verdict(result.run_dir, verdict)
        protect = protected_runs(run_options.baselines) | {result.run_id}
        if verdict.compared_with:
            protect.add(verdict.compared_with)
        removed = [
            path
            for series in (label, f"{label}{CONFIRM_SUFFIX}")  # confirmation runs age out like the nights
            for path in apply_retention(
                run_options.results_dir, series, keep_runs=options.keep_runs, keep_days=options.keep_days,
                protect=protect | set(verdict.confirmed_with),
            )
        ]  # fmt: skip
    reports: tuple[Path, ...] = ()
    if options.reports_dir is not None:
        reports = (
            render_run_report(result.run_dir, options.reports_dir, run_options.baselines),
            render_trend_report(run_options.results_dir, label, options.reports_dir, run_options.baselines),
        )
    return NightlyOutcome(result, verdict, tuple(removed), reports)


def _confirmed(
    options: NightlyOptions, evidence: Evidence, cases: list[str], observer: RunObserver | None
) -> NightlyVerdict:
    """Measure the flagged cases again on fresh runs and judge the night on them too."""
    scenarios = {r.scenario for r in evidence.records if r.case_id in cases}
    base = options.run
    chosen = replace(base.scenarios, scenarios=tuple(s for s in base.scenarios.scenarios if s.name in scenarios))
    runs, started, note = [], time.monotonic(), ""
    for k in range(options.confirm_runs):
        try:
            run = run_benchmark(
                replace(base, scenarios=chosen, label=f"{base.label}{CONFIRM_SUFFIX}", seed=base.seed + 1 + k),
                observer,
            )
        except BenchError as exc:
            # tonight's own run stands; the night is judged on the fresh runs that did finish
            note = f"; a confirmation run failed: {exc}"
            break
        runs.append(run)
    records = tuple(r for run in runs for r in read_records(run.run_dir) if r.case_id in cases)
    verdict = judge(
        replace(evidence, confirmations=records), min_effect=options.min_effect, allowance=options.allowance
    )
    seconds = time.monotonic() - started
    return replace(
        verdict,
        confirmed_with=tuple(run.run_id for run in runs),
        confirm_seconds=seconds,
        headline=f"{verdict.headline} (judged again on {len(runs)} fresh run(s) of {len(cases)} flagged case(s), "
        f"{seconds / 60:.1f} min{note})",
    )
