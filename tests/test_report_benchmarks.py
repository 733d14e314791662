"""Rendering the nightly trend over a year of nights (pytest-benchmark; ``nox -s bench_client``).

365 synthetic nightly runs of the baseline set (10 cases, pp and tg each: 20 panels,
each with an E-divisive pass). Target: a few seconds on 2 cores.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from pytest_benchmark.fixture import BenchmarkFixture

from bench.inputs.baselines import load_baselines
from bench.inputs.scenarios import load_scenario_set
from bench.report.render import render_trend_report
from tests.conftest import SuiteFigure

DAY = 86400.0


def write_year(results: Path, nights: int = 365) -> None:
    cases = load_scenario_set("baseline").cases()
    rng = np.random.default_rng(0)
    for night in range(nights):
        run_id = f"2026{night:04d}-020000-nightly-{night:06x}"
        run = results / run_id
        run.mkdir(parents=True)
        drift = 0.93 if night >= 300 else 1.0  # a regression in the last two months
        summary = {
            "schema_version": 1,
            "cases": [
                {"case_id": c.case_id, "pp_tps": 650 * rng.normal(1, 0.01), "tg_tps": 72 * drift * rng.normal(1, 0.005)}
                for c in cases
            ],
        }
        meta = {
            "schema_version": 1, "run_id": run_id, "status": "complete", "label": "nightly",
            "started": 1_760_000_000 + night * DAY, "build": f"b{6400 + night // 30}", "model": "gemma",
            "scenario_set": {"name": "baseline"},
        }  # fmt: skip
        (run / "run.json").write_text(json.dumps(meta))
        (run / "summary.json").write_text(json.dumps(summary))
        (run / "nightly.json").write_text(json.dumps({"verdict": "ok", "headline": "", "findings": []}))


def test_trend_report_over_a_year_of_nightlies(
    benchmark: BenchmarkFixture, tmp_path: Path, suite_figure: SuiteFigure
) -> None:
    write_year(tmp_path / "results")
    baselines = load_baselines(None)

    def render() -> float:
        started = time.perf_counter()
        render_trend_report(tmp_path / "results", "nightly", tmp_path / "reports", baselines)
        return time.perf_counter() - started

    seconds = benchmark.pedantic(render, rounds=1, iterations=1)
    benchmark.extra_info["seconds"] = seconds
    suite_figure("trend_report_365_nights_s", seconds)
    print(f"\ntrend report over 365 nights: {seconds:.2f} s")
    html = (tmp_path / "reports" / "trend-nightly.html").read_text()
    panels = 2 * len(load_scenario_set("baseline").cases())  # pp and tg per case
    assert "365 nights" in html and html.count("<svg") == panels
    assert "change point at" in html  # the injected -7 % shift is found
