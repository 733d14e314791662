from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.cli import main
from bench.decide.compare import CompareSettings, FigureComparison, Multiplicity, Verdict, compare_runs
from bench.decide.noise import NoiseSource
from bench.errors import ConfigError, ResultsError
from bench.records import RequestRecord
from bench.report.text import headline, to_markdown
from bench.store.run_dir import read_records, resolve_run
from tests.factories import noisy_records, write_run


def verdicts(comparison: object) -> dict[str, str]:
    return {f.figure: f.verdict for f in comparison.figures}  # type: ignore[attr-defined]


def test_a_vs_a_of_one_run_a_side_with_nothing_else_is_undecided(tmp_path: Path) -> None:
    a = write_run(tmp_path, noisy_records(12, pp_tps=650, tg_tps=72, cv=0.03, seed=1))
    b = write_run(tmp_path, noisy_records(12, pp_tps=650, tg_tps=72, cv=0.03, seed=2))
    found = verdicts(compare_runs(a, b))
    assert found["pp_tps"] == Verdict.UNDECIDED and found["tg_tps"] == Verdict.UNDECIDED


def test_one_run_a_side_with_no_spread_between_runs_decides_nothing(tmp_path: Path) -> None:
    # requests of one run cannot show how far two server starts land apart (a two-stream case's pp
    # landed 37 % apart between identical runs): not a 6.5 % change with p far under 0.05, not even
    # 25 %; the comparison says why and what to do
    a = write_run(tmp_path, noisy_records(12, pp_tps=650, tg_tps=72, cv=0.02, seed=1))
    b = write_run(tmp_path, noisy_records(12, pp_tps=650, tg_tps=72 * 1.065, cv=0.02, seed=2))
    c = write_run(tmp_path, noisy_records(12, pp_tps=650, tg_tps=72 * 1.25, cv=0.02, seed=3))
    comparison = compare_runs(a, b)
    tg = next(f for f in comparison.figures if f.figure == "tg_tps")
    assert tg.verdict == Verdict.UNDECIDED and tg.p_value is not None and tg.p_value < 0.001
    assert "cannot tell a change from a second server start" in tg.reason and "bench noise" in tg.reason
    assert tg.noise == NoiseSource.NONE and tg.more_runs is None and tg.spread is None
    assert "so they stay undecided" in headline(comparison)
    assert verdicts(compare_runs(a, c))["tg_tps"] == Verdict.UNDECIDED
    # the user's word for how far their runs land apart (--allowance) calls a change past it
    allowed = compare_runs(a, c, CompareSettings(allowance=0.15))
    assert verdicts(allowed)["tg_tps"] == Verdict.IMPROVED
    assert "a change under 15% is not called (your --allowance)" in headline(allowed)
    assert verdicts(compare_runs(a, b, CompareSettings(allowance=0.15)))["tg_tps"] == Verdict.UNDECIDED


def test_a_real_generation_speed_up_is_improved_with_its_interval(tmp_path: Path) -> None:
    a = write_run(tmp_path, noisy_records(12, pp_tps=650, tg_tps=72, cv=0.02, seed=1), label="fa-off")
    b = write_run(tmp_path, noisy_records(12, pp_tps=650, tg_tps=72 * 1.065, cv=0.02, seed=2), label="fa-on")
    comparison = compare_runs(a, b, CompareSettings(allowance=0.0))  # the user says runs of this server agree
    tg = next(f for f in comparison.figures if f.figure == "tg_tps")
    assert tg.verdict == Verdict.IMPROVED
    assert tg.ratio == pytest.approx(1.065, abs=0.02)
    assert tg.ci_low is not None and tg.ci_high is not None and 1 < tg.ci_low < tg.ratio < tg.ci_high
    assert tg.p_value is not None and tg.p_value < 0.05
    # the same change seen from the other side is a regression, and latencies follow
    back = compare_runs(b, a, CompareSettings(allowance=0.0))
    assert verdicts(back)["tg_tps"] == Verdict.REGRESSED and verdicts(back)["itl_ms"] == Verdict.REGRESSED
    assert "label: fa-off -> fa-on" in comparison.differences


def test_a_certain_but_tiny_change_is_not_news(tmp_path: Path) -> None:
    a = write_run(tmp_path, noisy_records(40, pp_tps=650, tg_tps=72, cv=0.001, seed=1))
    b = write_run(tmp_path, noisy_records(40, pp_tps=650 * 1.01, tg_tps=72, cv=0.001, seed=2))
    pp = next(f for f in compare_runs(a, b, CompareSettings(allowance=0.0)).figures if f.figure == "pp_tps")
    assert pp.verdict == Verdict.UNDECIDED and pp.reason == "change below 2%, not shown within ±5%"
    assert pp.p_value is not None and pp.p_value < 0.001


def test_too_few_requests_and_one_sided_cases_are_not_comparable(tmp_path: Path) -> None:
    a = write_run(
        tmp_path,
        noisy_records(2, pp_tps=650, tg_tps=72, cv=0.02, seed=1)
        + noisy_records(3, pp_tps=650, tg_tps=72, cv=0.02, seed=3, case_id="only-a"),
    )
    b = write_run(tmp_path, noisy_records(5, pp_tps=650, tg_tps=72, cv=0.02, seed=2))
    figures = compare_runs(a, b).figures
    few = next(f for f in figures if f.case_id == "s/p100-o10-c1-d0" and f.figure == "pp_tps")
    assert few.verdict == Verdict.NOT_COMPARABLE and few.reason == "too few samples (A 2, B 5; need 3)"
    alone = next(f for f in figures if f.case_id == "only-a")
    assert alone.verdict == Verdict.NOT_COMPARABLE and alone.reason == "case ran only in A"


def test_different_models_or_scenario_definitions_are_refused_unless_forced(tmp_path: Path) -> None:
    records = noisy_records(5, pp_tps=650, tg_tps=72, cv=0.02, seed=1)
    a = write_run(tmp_path, records, model="gpt-oss-120b")
    b = write_run(tmp_path, records, model="gpt-oss-20b")
    with pytest.raises(ConfigError, match="different models"):
        compare_runs(a, b)
    assert compare_runs(a, b, CompareSettings(force=True)).figures
    c = write_run(
        tmp_path,
        records,
        model="gpt-oss-120b",
        scenarios={"name": "s", "scenarios": [{"name": "s", "prompt_tokens": [200]}]},
    )
    with pytest.raises(ConfigError, match=r"scenario definitions differ between the runs \(s\)"):
        compare_runs(a, c)


def test_runs_resolve_by_id_label_latest_and_previous(tmp_path: Path) -> None:
    records = noisy_records(3, pp_tps=650, tg_tps=72, cv=0.02, seed=1)
    first = write_run(tmp_path, records, label="nightly", started=1.0)
    second = write_run(tmp_path, records, label="fa-on", started=2.0)
    third = write_run(tmp_path, records, label="nightly", started=3.0)
    assert resolve_run("latest", tmp_path) == third
    assert resolve_run("previous", tmp_path) == second
    assert resolve_run("nightly", tmp_path) == third
    assert resolve_run(first.name, tmp_path) == first
    assert resolve_run(str(second), tmp_path) == second
    with pytest.raises(ResultsError, match="no run 'nope'"):
        resolve_run("nope", tmp_path)


def test_markdown_and_json_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path, noisy_records(8, pp_tps=650, tg_tps=72, cv=0.02, seed=1), label="a", started=1.0)
    b = write_run(tmp_path, noisy_records(8, pp_tps=650, tg_tps=60, cv=0.02, seed=2), label="b", started=2.0)
    markdown = to_markdown(compare_runs(a, b, CompareSettings(allowance=0.1)))
    assert "| case | figure | A | B | change (medians) | 95 % CI | p (adjusted) | n A/B | verdict |" in markdown
    assert "regressed" in markdown
    assert "out t/s (wall) (t/s)" in markdown and "not tested (one value per run)" in markdown
    assert main(["compare", "a", "b", "--results-dir", str(tmp_path), "--json", "--allowance", "10"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert {f["verdict"] for f in data["figures"] if f["figure"] == "tg_tps"} == {Verdict.REGRESSED}
    assert data["equivalence"] == 0.05
    argv = ["compare", "previous", "latest", "--results-dir", str(tmp_path), "--fail-on-regression"]
    assert main(argv) == 0  # one run a side and nothing else: undecided, no regression to fail on
    capsys.readouterr()
    assert main([*argv, "--allowance", "10"]) == 1
    out = capsys.readouterr().out
    assert "regressed" in out
    assert "B against the baselines:" not in out  # scenario "s" is not one the baselines are computed over


def _blocks(spreads: list[float], tg_tps: float, seed: int) -> list[RequestRecord]:
    """One block of 6 requests per spread factor: each block a server start running that much off nominal."""
    import dataclasses

    records = []
    for i, factor in enumerate(spreads):
        block = noisy_records(6, pp_tps=650, tg_tps=tg_tps * factor, cv=0.01, seed=seed + i)
        records += [dataclasses.replace(r, run_id=f"block-{seed}-{i}") for r in block]
    return records


def test_pooled_blocks_are_compared_block_by_block_not_request_by_request() -> None:
    from bench.decide.compare import FIGURES, Verdict, compare_figure

    tg = next(f for f in FIGURES if f.name == "tg_tps")
    # A/A whose server starts differ by +/-3 %: 12 requests a side, which a request-level
    # test would call significant, but only two starts a side to tell starts from variants
    same = compare_figure("c", tg, _blocks([1.03, 0.98], 72, 1), _blocks([0.97, 1.02], 72, 10))
    assert same.verdict == Verdict.UNDECIDED and "2 vs 2 runs" in same.reason
    # a change far beyond the spread between starts is found even with two blocks a side
    faster = compare_figure("c", tg, _blocks([1.0, 1.01], 72, 1), _blocks([1.0, 1.01], 72 * 1.3, 10))
    assert faster.verdict == Verdict.IMPROVED and faster.ci_low is not None and faster.ci_low > 1


def test_a_comparison_in_a_pipe_or_a_mail_has_one_row_per_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # capsys is not a terminal, as cron mail and CI logs are not: no cell is folded into one-word lines
    write_run(tmp_path, noisy_records(8, pp_tps=650, tg_tps=72, cv=0.02, seed=1), label="a", started=1.0)
    write_run(tmp_path, noisy_records(8, pp_tps=650, tg_tps=60, cv=0.02, seed=2), label="b", started=2.0)
    assert main(["compare", "a", "b", "--results-dir", str(tmp_path), "--no-report", "--allowance", "10"]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = next(line for line in lines if line.startswith("case"))
    assert header.split() == [
        "case", "figure", "A", "B", "change", "(medians)", "95", "%", "CI", "p", "(adjusted)", "n", "A/B", "verdict"
    ]  # fmt: skip
    tg = [line for line in lines if "tg (t/s)" in line]
    assert len(tg) == 1 and "regressed" in tg[0] and "%" in tg[0]  # the whole row: case to verdict
    assert any(line.startswith("B vs A: ") for line in lines)  # the headline, unwrapped


def test_output_throughput_is_the_summarys_figure_in_a_comparison_too(tmp_path: Path) -> None:
    # One rule for out t/s: tokens of the successful requests over the wall time of all measured
    # requests, a failed one included (it held the server's time too).
    from bench.figures.summary import summarise_run
    from tests.factories import record, timings

    def run(label: str, started: float) -> Path:
        records = [
            record(run_id=label, index=i, t_sent=float(i), t_end=i + 1.0, timings=timings(100, 100.0, 10, 100.0))
            for i in range(3)
        ]
        records.append(record(run_id=label, index=3, t_sent=3.0, t_end=7.0, ok=False, error="HTTP 500: boom"))
        return write_run(tmp_path, records, label=label, started=started)

    a, b = run("a", 1.0), run("b", 2.0)
    summary = summarise_run(list(read_records(a)))
    assert summary.cases[0].output_tps == pytest.approx(30 / 7.0)  # 3 x 10 tokens over 0 s .. 7 s
    (row,) = [f for f in compare_runs(a, b).figures if f.figure == "output_tps"]
    assert row.a == pytest.approx(summary.cases[0].output_tps) and row.b == pytest.approx(30 / 7.0)


def test_the_library_refuses_thresholds_the_cli_refuses(tmp_path: Path) -> None:
    a = write_run(tmp_path, noisy_records(4, pp_tps=650, tg_tps=72, cv=0.02, seed=1), label="a", started=1.0)
    with pytest.raises(ConfigError, match="--alpha must be between 0 and 1; got 5"):
        compare_runs(a, a, CompareSettings(alpha=5))
    with pytest.raises(ConfigError, match="--min-effect must be a percentage from 0 to 100; got -1"):
        compare_runs(a, a, CompareSettings(min_effect=-0.01))


def _row(p: float, ratio: float = 0.9) -> FigureComparison:
    from bench.decide.compare import FIGURES, _comparison

    tg = next(f for f in FIGURES if f.name == "tg_tps")
    return _comparison("c", tg, Verdict.UNDECIDED, "", 5, 5, a=100.0, b=100 * ratio, ratio=ratio,
                       ci_low=ratio - 0.03, ci_high=ratio + 0.03, p_value=p)  # fmt: skip


def test_a_family_of_tests_is_held_together() -> None:
    from bench.decide.compare import adjusted

    # ten figures, one with p = 0.008 and a 10 % drop: alone it is a regression, among ten it is not
    rows = [_row(0.008), *(_row(0.5, ratio=1.0) for _ in range(9))]
    alone = adjusted(rows, Multiplicity.NONE, alpha=0.05, min_effect=0.02)
    assert alone[0].verdict == Verdict.REGRESSED and alone[0].p_adjusted == 0.008
    holm = adjusted(rows, Multiplicity.HOLM, alpha=0.05, min_effect=0.02)
    assert holm[0].verdict == Verdict.UNDECIDED and holm[0].p_adjusted == pytest.approx(0.08)
    assert holm[0].reason == "p = 0.008, holm 0.08 over 10 tests"
    # two strong ones of ten survive both adjustments
    strong = [_row(0.001), _row(0.002), *(_row(0.5, ratio=1.0) for _ in range(8))]
    for method in (Multiplicity.HOLM, Multiplicity.BH):
        verdicts = [row.verdict for row in adjusted(strong, method, alpha=0.05, min_effect=0.02)]
        assert verdicts[:2] == [Verdict.REGRESSED, Verdict.REGRESSED] and set(verdicts[2:]) == {Verdict.UNDECIDED}


def test_the_table_shows_the_figures_the_change_is_made_of(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = write_run(tmp_path, noisy_records(8, pp_tps=650, tg_tps=72, cv=0.02, seed=1), label="a", started=1.0)
    b = write_run(tmp_path, noisy_records(8, pp_tps=650, tg_tps=60, cv=0.02, seed=2), label="b", started=2.0)
    comparison = compare_runs(a, b, CompareSettings(allowance=0.1))
    tg = next(f for f in comparison.figures if f.figure == "tg_tps")
    assert tg.a_center is not None and tg.b_center is not None
    assert tg.ratio == pytest.approx(tg.b_center / tg.a_center)  # the change is the ratio of what is shown
    row = next(line for line in to_markdown(comparison).splitlines() if "| tg (t/s) |" in line)
    assert f"({tg.a_center:,.2f} -> {tg.b_center:,.2f})" in row
    assert f"{tg.p_value:.3g} ({tg.p_adjusted:.3g})" in row
    argv = ["compare", "a", "b", "--results-dir", str(tmp_path), "--json", "--no-report", "--allowance", "10"]
    assert main(argv) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["adjustment"] == "bh" and data["tests"] == comparison.tests
    assert "Benjamini-Hochberg-adjusted (false discovery rate) over" in headline(comparison)
    assert headline(comparison).startswith(f"B vs A: pp undecided; tg regressed {tg.change * 100:+.1f} % (")


def test_several_runs_a_side_make_the_run_the_unit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from bench.store.run_dir import resolve_runs

    for side, tg in (("a", 72.0), ("b", 60.0)):
        for seed in range(3):
            write_run(tmp_path, noisy_records(6, pp_tps=650, tg_tps=tg * (1 + 0.01 * seed), cv=0.02, seed=seed),
                      label=side, started=float(seed + (10 if side == "b" else 0)))  # fmt: skip
    group_a, group_b = resolve_runs("all:a", tmp_path), resolve_runs("all:b", tmp_path)
    assert len(group_a) == len(group_b) == 3
    assert resolve_runs(",".join(p.name for p in group_a), tmp_path) == group_a  # a list names the same runs
    assert resolve_runs(group_a[0].name[:9] + "*", tmp_path) == [*group_a, *group_b]  # a glob of run ids
    comparison = compare_runs(group_a, group_b)
    assert comparison.a.runs == comparison.b.runs == 3 and comparison.a.run_id.endswith("(+2 more)")
    tg = next(f for f in comparison.figures if f.figure == "tg_tps")
    assert tg.basis == "(3 vs 3 runs)" and tg.n_a == tg.n_b == 18 and tg.verdict == Verdict.REGRESSED
    assert "one run a side" not in headline(comparison)
    one_each = headline(compare_runs(group_a[0], group_b[0]))
    assert (
        "one run a side and no noise profile or label history for these cases: requests alone cannot tell a "
        "change from a second server start" in one_each
    )
    argv = ["compare", "all:a", "all:b", "--results-dir", str(tmp_path), "--no-report", "--json"]
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["b"]["runs"] == 3
    with pytest.raises(ResultsError, match="no run labelled 'c'"):
        resolve_runs("all:c", tmp_path)


def test_a_run_on_both_sides_is_refused(tmp_path: Path) -> None:
    a = write_run(tmp_path, noisy_records(4, pp_tps=650, tg_tps=72, cv=0.02, seed=1), label="a", started=1.0)
    b = write_run(tmp_path, noisy_records(4, pp_tps=650, tg_tps=72, cv=0.02, seed=2), label="b", started=2.0)
    with pytest.raises(ConfigError, match=r"1 run\(s\) are on both sides of the comparison"):
        compare_runs([a, b], [b])
