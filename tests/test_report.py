from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import pytest
from markupsafe import escape as html_escape

from bench.cli import main
from bench.decide.compare import compare_runs
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.inputs.baselines import load_baselines
from bench.report.render import render_comparison_report, render_run_report, render_trend_report
from tests.factories import noisy_records, write_run

HOSTILE = '<script>window.__pwned=1;alert(1)</script>"><img src=x onerror="window.__pwned=2">'
SET = """
[[scenario]]
name = "pp"
prompt_tokens = [40, 80]
output_tokens = 8
repetitions = 4
[[scenario]]
name = "tg"
prompt_tokens = 40
output_tokens = [8, 16]
repetitions = 4
"""


def no_external_resources(html: str) -> bool:
    return not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:""", html)


def test_run_report_has_verdict_plots_tables_and_metadata(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "set.toml").write_text(SET)
    reports = tmp_path / "reports"
    code = main(
        [
            "run",
            "--endpoint",
            fake.url,
            "--scenarios",
            str(tmp_path / "set.toml"),
            "--results-dir",
            str(tmp_path / "results"),
            "--reports-dir",
            str(reports),
            "--label",
            "nightly",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    (report,) = reports.glob("run-*.html")
    assert f"report: {report}" in out
    html = report.read_text()
    for element in (
        'id="baselines"',
        'id="cases"',
        'id="plot-pp"',
        'id="plot-tg"',
        'id="plot-latency"',
        'id="no-gpu"',
        'id="metadata"',
    ):
        assert element in html, element
    assert html.count("<svg") >= 3
    assert "prompt processing" in html and "of 5,136 t/s" in html
    assert no_external_resources(html)
    index = (reports / "index.html").read_text()
    assert report.name in index and "nightly" in index


def test_hostile_strings_from_servers_and_users_are_escaped(tmp_path: Path) -> None:
    records = noisy_records(4, pp_tps=650, tg_tps=72, cv=0.02, seed=1)
    from dataclasses import replace

    records[0] = replace(records[0], ok=False, error=HOSTILE, http_status=500)
    run = write_run(tmp_path / "results", records, label=HOSTILE, model=HOSTILE, build=HOSTILE, server_flags=HOSTILE)
    html = render_run_report(run, tmp_path / "reports", load_baselines(None)).read_text()
    assert "<script>window.__pwned" not in html and "<img src=x" not in html
    assert "&lt;script&gt;window.__pwned=1" in html
    index = (tmp_path / "reports" / "index.html").read_text()
    assert "<script>window.__pwned" not in index


def test_comparison_report_has_forest_plot_and_distributions(tmp_path: Path) -> None:
    a = write_run(tmp_path / "r", noisy_records(8, pp_tps=650, tg_tps=72, cv=0.02, seed=1), label="fa-off", started=1)
    b = write_run(tmp_path / "r", noisy_records(8, pp_tps=650, tg_tps=77, cv=0.02, seed=2), label="fa-on", started=2)
    path = render_comparison_report(compare_runs(a, b), tmp_path / "reports")
    html = path.read_text()
    for element in ('id="plot-forest"', 'id="comparison"', 'id="plot-dist-pp"', 'id="plot-dist-tg"', "improved"):
        assert element in html, element
    assert html.count("<svg") == 3
    assert no_external_resources(html)


def write_nights(
    results: Path, values: list[float], *, build_change_at: int | None = None, label: str = "nightly"
) -> None:
    """Nightly runs with a tg figure per night, as `bench nightly` leaves them."""
    for i, tg in enumerate(values):
        build = "b2" if build_change_at is not None and i >= build_change_at else "b1"
        run = write_run(
            results,
            noisy_records(4, pp_tps=650, tg_tps=tg, cv=0.002, seed=i, case_id="tg/x", scenario="tg"),
            label=label,
            started=86400.0 * (i + 1),
            build=build,
        )
        from bench.figures.summary import summarise_run
        from bench.store.run_dir import read_records

        summary = summarise_run(list(read_records(run)))
        (run / "summary.json").write_text(json.dumps({"schema_version": 1, **summary.to_json()}))
        (run / "nightly.json").write_text(json.dumps({"verdict": "ok", "headline": f"night {i}", "findings": []}))


def test_trend_report_marks_change_points_with_what_changed(tmp_path: Path) -> None:
    write_nights(tmp_path / "results", [72.0] * 12 + [66.0] * 8, build_change_at=12)
    html = render_trend_report(tmp_path / "results", "nightly", tmp_path / "reports").read_text()
    assert "20 nights" in html and "tg/x: generation" in html
    assert "build b1 -&gt; b2" in html  # the change point names the build that changed there
    assert "change point at" in html
    assert no_external_resources(html)


def test_the_bandwidth_figure_reaches_the_report_and_bench_show(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What the run was told (weights read per token, the card's bandwidth) is kept in run.json,
    # so a stored run's report and `bench show` give the same roofline figure the run printed.
    from bench.figures.summary import load_summary
    from bench.report.render import render_run_report
    from tests.factories import noisy_records, write_run

    records = noisy_records(6, pp_tps=650, tg_tps=80, cv=0.01, seed=3)
    run = write_run(
        tmp_path / "results", records, bandwidth_inputs={"active_weight_gib": 0.25, "peak_bandwidth_gbs": 100}
    )
    bandwidth = load_summary(run).bandwidth
    assert bandwidth is not None and bandwidth.active_weight_gib == 0.25 and bandwidth.peak_bandwidth_gbs == 100
    sentence = bandwidth.sentence()
    html = render_run_report(run, tmp_path / "reports").read_text(encoding="utf-8")
    assert "<dt>bandwidth</dt>" in html and html_escape(sentence) in html
    assert main(["show", str(run)]) == 0
    assert sentence in capsys.readouterr().out


@pytest.mark.parametrize(("label", "name"), [("team/gpu1", "trend-team-gpu1.html"), ("x/../../escaped", None)])
def test_a_label_that_becomes_a_file_name_stays_one_name_in_the_reports_directory(
    tmp_path: Path, label: str, name: str | None
) -> None:
    results, reports = tmp_path / "results", tmp_path / "reports"
    write_nights(results, [72.0, 71.0, 72.5], label=label)
    path = render_trend_report(results, label, reports)
    assert path.parent == reports and path.exists()
    assert name is None or path.name == name
    assert sorted(p.relative_to(tmp_path).parts[0] for p in tmp_path.rglob("*.html")) == ["reports"] * 2  # + index
    index = json.loads((reports / "index.json").read_text())
    assert path.name in [entry["file"] for entry in index["reports"]]


def test_the_trend_page_marks_exactly_the_change_points_the_gate_judges(tmp_path: Path) -> None:
    from bench.decide.nightly import HISTORY_WINDOW, change_points

    # a step long before the gate's window and one inside it: the gate sees only the second,
    # and so must the page (it once ran its own search over every night, with other settings)
    values = [80.0] * 6 + [72.0] * 20 + [66.0] * 14
    assert len(values) > HISTORY_WINDOW
    write_nights(tmp_path / "results", values, build_change_at=26)
    judged = change_points(values)
    assert [c.index for c in judged] == [26]
    html = render_trend_report(tmp_path / "results", "nightly", tmp_path / "reports").read_text()
    marked = re.findall(r"change point at (\d{4}-\d\d-\d\d)", html)
    assert marked == [dt.datetime.fromtimestamp(86400.0 * 27, tz=dt.UTC).strftime("%Y-%m-%d")]


def test_the_trend_page_shows_each_nights_joules_per_generated_token_unjudged(tmp_path: Path) -> None:
    results = tmp_path / "results"
    write_nights(results, [72.0] * 12)
    for i, summary_path in enumerate(sorted(results.glob("*/summary.json"))):
        summary = json.loads(summary_path.read_text())
        # a build that holds its t/s at more power from the seventh night
        summary["gpu"] = [{"case_id": "tg/x", "energy": {"j_per_output_token": 0.5 if i < 6 else 0.8}}]
        summary_path.write_text(json.dumps(summary))
    html = render_trend_report(results, "nightly", tmp_path / "reports").read_text()
    assert "tg/x: energy (J per generated token)" in html and "tg/x: generation (t/s)" in html
    assert "change point at" not in html  # the gate judges t/s, and the page marks only what it judges
