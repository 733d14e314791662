"""Generated reports in real headless Chromium (Debian's): no console errors, key parts there, no script runs."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from bench.decide.compare import CompareSettings, compare_runs
from bench.inputs.baselines import load_baselines
from bench.report.render import render_comparison_report, render_run_report, render_trend_report
from tests.factories import noisy_records, write_run
from tests.test_report import HOSTILE, write_nights

pytestmark = pytest.mark.integration
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", "--no-first-run", "--disable-quic"]  # fmt: skip


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.fail("report tests need Debian's chromium: apt-get install -y chromium (see README)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield instance
        instance.close()


def open_report(browser: Any, path: Path, screenshot: Path) -> tuple[Any, list[str], list[str]]:
    page = browser.new_page(viewport={"width": 1366, "height": 900})
    errors: list[str] = []
    dialogs: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    # anything that tries the network is a bug: a report must open offline
    page.route("**/*", lambda route: route.continue_() if route.request.url.startswith("file://") else route.abort())
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    page.screenshot(path=str(screenshot), full_page=True)
    return page, errors, dialogs


def test_run_report_renders_cleanly_and_tables_sort(browser: Any, tmp_path: Path) -> None:
    records = noisy_records(6, pp_tps=650, tg_tps=72, cv=0.02, seed=1, case_id="pp/p100-o10-c1-d0", scenario="pp")
    records += noisy_records(6, pp_tps=640, tg_tps=70, cv=0.02, seed=2, case_id="tg/p200-o10-c1-d0", scenario="tg")
    run = write_run(tmp_path / "results", records, label="nightly")
    path = render_run_report(run, tmp_path / "reports", load_baselines(None))
    page, errors, dialogs = open_report(browser, path, tmp_path / "run.png")
    assert errors == [] and dialogs == []
    assert page.locator("#headline").inner_text().startswith("prompt")
    assert page.locator("#baselines .card").count() == 3
    assert page.locator("#cases tbody tr").count() == 2
    assert page.locator(".plot svg").count() >= 3
    first_before = page.locator("#cases tbody tr").first.inner_text()
    page.locator("#cases th", has_text="case").click()
    page.locator("#cases th", has_text="case").click()  # descending
    assert page.locator("#cases tbody tr").first.inner_text() != first_before
    assert (tmp_path / "run.png").stat().st_size > 10_000


def test_comparison_and_trend_reports_render_cleanly(browser: Any, tmp_path: Path) -> None:
    a = write_run(tmp_path / "r", noisy_records(8, pp_tps=650, tg_tps=72, cv=0.02, seed=1), label="a", started=1)
    b = write_run(tmp_path / "r", noisy_records(8, pp_tps=650, tg_tps=55, cv=0.02, seed=2), label="b", started=2)
    # one run a side: the test's word that runs of this "server" land within 10 % (--allowance)
    compared = render_comparison_report(compare_runs(a, b, CompareSettings(allowance=0.1)), tmp_path / "reports")
    page, errors, _ = open_report(browser, compared, tmp_path / "compare.png")
    assert errors == [] and page.locator("#plot-forest svg").count() == 1
    assert "regressed" in page.locator("#comparison").inner_text()
    # and without it nothing is decided, which the page says in the table's words
    undecided = render_comparison_report(compare_runs(b, a), tmp_path / "reports")
    page, errors, _ = open_report(browser, undecided, tmp_path / "undecided.png")
    assert errors == []
    assert "undecided (needs runs a side or a noise profile)" in page.locator("#comparison").inner_text()
    write_nights(tmp_path / "nights", [72.0] * 10 + [65.0] * 6, build_change_at=10)
    trend = render_trend_report(tmp_path / "nights", "nightly", tmp_path / "reports")
    page, errors, _ = open_report(browser, trend, tmp_path / "trend.png")
    assert errors == [] and page.locator(".trend svg").count() >= 1
    index, errors, _ = open_report(browser, tmp_path / "reports" / "index.html", tmp_path / "index.png")
    assert errors == [] and index.locator("#reports tbody tr").count() == 3  # two comparisons, one trend


def test_hostile_strings_do_not_run_in_the_browser(browser: Any, tmp_path: Path) -> None:
    records = noisy_records(4, pp_tps=650, tg_tps=72, cv=0.02, seed=1)
    records[0] = replace(records[0], ok=False, error=HOSTILE, http_status=500)
    run = write_run(tmp_path / "results", records, label=HOSTILE, model=HOSTILE, build=HOSTILE, server_flags=HOSTILE)
    path = render_run_report(run, tmp_path / "reports", load_baselines(None))
    for page_path in (path, tmp_path / "reports" / "index.html"):
        page, errors, dialogs = open_report(browser, page_path, tmp_path / f"{page_path.stem}.png")
        assert dialogs == [] and page.evaluate("window.__pwned") is None
        assert HOSTILE in page.locator("body").inner_text()  # shown as text, not run
        assert errors == []


def test_the_capacity_report_renders_its_curve_and_levels(browser: Any, tmp_path: Path) -> None:
    from bench.flows.capacity import CapacityOptions, search
    from bench.flows.run import RunOptions
    from bench.inputs.scenarios import load_scenario_set
    from bench.inputs.slo import Slo
    from bench.report.render import render_capacity_report
    from bench.store.capacity import Level

    def measure(concurrency: int, options: CapacityOptions, observer: object) -> Level:
        holds = concurrency <= 5
        return Level(concurrency, f"run-c{concurrency}", 1.0 if holds else 0.8, 0.0, holds, 0.5 * concurrency,
                     40.0 * concurrency, 100.0 * concurrency, 150.0 * concurrency, 20.0 + concurrency, 900.0,
                     {} if holds else {"ttft_ms": 3})  # fmt: skip

    plan = CapacityOptions(RunOptions(scenarios=load_scenario_set("smoke")), 64, 16, Slo(ttft_ms=800, tpot_ms=30))
    result = search(plan, measure=measure)
    path = render_capacity_report(result, tmp_path / "reports", "capacity-test")
    page, errors, _ = open_report(browser, path, tmp_path / "capacity.png")
    assert errors == [] and page.locator("#plot-capacity svg").count() == 1
    assert "capacity: 5 concurrent users" in page.locator("#headline").inner_text()
    assert page.locator("#levels tbody tr").count() == len(result.levels)


def test_the_prompt_cache_and_turns_render_with_their_plot(browser: Any, fake: Any, tmp_path: Path) -> None:
    from bench.flows.run import RunOptions, run_benchmark
    from bench.inputs.scenarios import parse_scenario_set

    fake.config.cache_slots = 32
    scenarios = parse_scenario_set(
        {
            "scenario": [
                {"name": "chat", "prompt_tokens": 24, "output_tokens": 6, "turns": 3, "concurrency": 2,
                 "pattern": "concurrent", "repetitions": 1, "warmup": 0},
                {"name": "replay", "pattern": "trace", "trace": "sample", "speed": 50, "warmup": 0},
            ]
        },
        "browser-set",
    )  # fmt: skip
    options = RunOptions(scenarios=scenarios, endpoint=fake.url, results_dir=tmp_path / "results")
    with ThreadPoolExecutor(1) as worker:  # the browser's own event loop runs in this thread
        run = worker.submit(run_benchmark, options).result()
    path = render_run_report(run.run_dir, tmp_path / "reports", load_baselines(None))
    page, errors, dialogs = open_report(browser, path, tmp_path / "turns.png")
    assert errors == [] and dialogs == []
    assert page.locator("#cache tbody tr").count() == 2
    assert page.locator("#turns tbody tr").count() == 3 + 3  # three turns in each case's conversations
    assert page.locator("#plot-turns svg").count() == 1
    first_before = page.locator("#turns tbody tr").first.inner_text()
    page.locator("#turns th", has_text="turn").first.click()
    page.locator("#turns th", has_text="turn").first.click()  # descending
    assert page.locator("#turns tbody tr").first.inner_text() != first_before
