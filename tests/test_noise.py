"""The spread between runs: measured, stored, chosen for a comparison, and what it changes there."""

from __future__ import annotations

import dataclasses
import json
import math
import statistics
from pathlib import Path

import pytest

from bench.cli import main
from bench.decide.compare import Verdict, compare_runs
from bench.decide.noise import (
    DEFAULT_PROFILE,
    NoiseSource,
    Spread,
    choose_noise,
    history_profile,
    load_profile,
    measure_profile,
    save_profile,
    spreads_of,
)
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError
from bench.records import RequestRecord
from tests.factories import noisy_records, write_run

FACTORS = [1.0, 1.04, 0.97, 1.02, 0.99, 1.01]  # each run's whole speed, as server starts differ


def run_of(factor: float, seed: int, cv: float = 0.0, n: int = 6) -> list[RequestRecord]:
    return noisy_records(n, pp_tps=650 * factor, tg_tps=72 * factor, cv=cv, seed=seed)


def test_the_spread_between_runs_is_the_sd_of_the_logs_of_their_figures() -> None:
    runs = [[dataclasses.replace(r, run_id=f"r{i}") for r in run_of(f, i)] for i, f in enumerate(FACTORS)]
    spreads = {(s.case_id, s.figure): s for s in spreads_of(runs)}
    tg = spreads[("s/p100-o10-c1-d0", "tg_tps")]
    assert tg.between == pytest.approx(statistics.stdev(math.log(f) for f in FACTORS), rel=1e-9)
    assert tg.runs == 6 and tg.df == 5 and tg.requests == 6 and tg.within == pytest.approx(0.0, abs=1e-12)
    # requests of one run agree exactly here: all of the spread is the runs' own
    assert tg.run_part == pytest.approx(tg.between)
    assert spreads_of(runs[:2]) == []  # two runs give no spread worth testing against


def test_more_requests_shrink_only_the_sampling_part_of_the_spread() -> None:
    spread = Spread("c", "tg_tps", between=0.03, runs=6, within=0.04, requests=5)
    assert spread.at_requests(5) == pytest.approx(0.03)
    sampling = math.sqrt(math.pi / 2 / 5) * 0.04
    assert spread.run_part == pytest.approx(math.sqrt(0.03**2 - sampling**2))
    assert spread.run_part < spread.at_requests(1000) < spread.at_requests(20) < spread.at_requests(5)
    assert Spread("c", "tg_tps", 0.01, 6, 0.2, 5).run_part == 0.0  # all sampling: nothing left for the runs


def test_a_profile_is_written_atomically_and_read_back_whole(tmp_path: Path) -> None:
    paths = [write_run(tmp_path / "results", run_of(f, i)) for i, f in enumerate(FACTORS)]
    profile = measure_profile(paths)
    assert profile.source == NoiseSource.PROFILE and profile.model == "m" and len(profile.run_ids) == 6
    assert set(profile.scenarios) == {"s"}
    out = tmp_path / "profile.json"
    save_profile(profile, out)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    back = load_profile(out)
    assert back.spreads == profile.spreads and back.scenarios == profile.scenarios and back.where == str(out)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{", "not valid JSON.*write it again with bench noise"),
        ('{"schema_version": 1, "spreads": [], "run_ids": [], "x": NaN}', "NaN is not a number JSON allows"),
        ('{"schema_version": 9}', "not a noise profile of schema 1"),
        ("[]", "not a noise profile"),
        ('{"schema_version": 1, "run_ids": [], "spreads": [{"case_id": "c", "figure": "tg_tps", "between": 0.1,'
         ' "runs": 2, "within": null, "requests": 5}]}', "fewer than 3 runs"),
        ('{"schema_version": 1, "run_ids": [], "spreads": [{"case_id": "c", "figure": "tg_tps", "between": -1,'
         ' "runs": 5, "within": null, "requests": 5}]}', "not a valid noise profile"),
        ('{"schema_version": 1, "run_ids": [], "spreads": [{"case_id": "c", "figure": "tg_tps", "between": 1e308,'
         ' "runs": 5, "within": null, "requests": 5}]}', "1e\\+308 is not a number from 0 to 10"),
        ('{"schema_version": 1, "run_ids": [], "spreads": [{"case_id": "c", "figure": "tg_tps", "between": 0.1,'
         ' "runs": 1e20, "within": null, "requests": 5}]}', "not a count"),
    ],
)  # fmt: skip
def test_a_broken_profile_is_refused_with_what_to_do(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_profile(path)
    with pytest.raises(ConfigError, match="no such noise profile; bench noise writes one"):
        load_profile(tmp_path / "absent.json")


def test_a_profile_needs_three_runs_of_one_setup(tmp_path: Path) -> None:
    one = write_run(tmp_path, run_of(1.0, 1))
    two = write_run(tmp_path, run_of(1.0, 2))
    with pytest.raises(ConfigError, match="at least 3 runs"):
        measure_profile([one, two])
    other = write_run(tmp_path, run_of(1.0, 3), model="other")
    with pytest.raises(ConfigError, match="different models"):
        measure_profile([one, two, other])
    redefined = write_run(tmp_path, run_of(1.0, 4), scenarios={"name": "s", "scenarios": [{"name": "s", "x": 1}]})
    with pytest.raises(ConfigError, match="defines s differently"):
        measure_profile([one, two, redefined])


def test_one_run_a_side_is_tested_against_the_profile(tmp_path: Path) -> None:
    profile_runs = [write_run(tmp_path / "p", run_of(f, i, cv=0.01)) for i, f in enumerate(FACTORS)]
    profile = measure_profile(profile_runs)  # runs ~2.5 % apart
    a = write_run(tmp_path, run_of(1.0, 20, cv=0.01))
    same = write_run(tmp_path, run_of(1.0, 21, cv=0.01))
    faster = write_run(tmp_path, run_of(1.15, 22, cv=0.01))
    small = write_run(tmp_path, run_of(1.03, 23, cv=0.01))
    # an A/A with requests far tighter than the runs' spread: nothing called, the profile named
    aa = compare_runs(a, same, noise=profile)
    tg = next(f for f in aa.figures if f.figure == "tg_tps")
    assert tg.verdict in (Verdict.SAME, Verdict.UNDECIDED) and tg.noise == NoiseSource.PROFILE and "6 runs" in tg.basis
    assert "tested against the spread between runs of the noise profile" in aa.noise_note
    # a change several times the spread is found; its interval is the profile's, not the requests'
    up = next(f for f in compare_runs(a, faster, noise=profile).figures if f.figure == "tg_tps")
    assert up.verdict == Verdict.IMPROVED and up.ratio == pytest.approx(1.15, rel=0.02)
    # a change within the spread is not, and the row says what it could have found
    near = next(f for f in compare_runs(a, small, noise=profile).figures if f.figure == "tg_tps")
    assert near.verdict == Verdict.UNDECIDED and near.detectable is not None and near.detectable > 0.03
    assert near.more_runs is not None and "more run(s) a side would decide it" in near.reason
    # the same small change with one run a side and nothing else: undecided, no count of runs
    bare = next(f for f in compare_runs(a, small).figures if f.figure == "tg_tps")
    assert bare.noise == NoiseSource.NONE and bare.verdict == Verdict.UNDECIDED and bare.more_runs is None
    with pytest.raises(ConfigError, match="of other, the runs of m"):
        compare_runs(a, same, noise=dataclasses.replace(profile, model="other"))


def test_a_profile_holds_only_for_cases_defined_as_it_measured_them(tmp_path: Path) -> None:
    profile = measure_profile([write_run(tmp_path / "p", run_of(f, i)) for i, f in enumerate(FACTORS)])
    redefined = {"name": "s", "scenarios": [{"name": "s", "prompt_tokens": [999]}]}
    a = write_run(tmp_path, run_of(1.0, 20, cv=0.01), scenarios=redefined)
    b = write_run(tmp_path, run_of(1.0, 21, cv=0.01), scenarios=redefined)
    comparison = compare_runs(a, b, noise=profile)
    tg = next(f for f in comparison.figures if f.figure == "tg_tps")
    assert tg.noise == NoiseSource.NONE  # not this case's spread: the allowance holds instead
    assert "holds no spread for these cases (defined otherwise, or not measured)" in comparison.noise_note


def test_auto_takes_the_profile_beside_the_baselines_then_the_label_history(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    results = tmp_path / "results"
    history = [write_run(results, run_of(f, i), label="nightly", started=float(i)) for i, f in enumerate(FACTORS)]
    partial = write_run(results, run_of(0.5, 99), label="nightly", started=50.0)
    (partial / "run.json").write_text(
        json.dumps({**json.loads((partial / "run.json").read_text()), "status": "partial"})
    )
    compared = history[-2:]
    chosen = choose_noise("auto", results_dir=results, label="nightly", model="m", exclude=[p.name for p in compared])
    assert chosen.profile is not None and chosen.profile.source == NoiseSource.HISTORY
    assert chosen.profile.run_ids == tuple(p.name for p in history[:4])  # compared and partial runs left out
    assert choose_noise("auto", results_dir=results, label=None, model="m").profile is None
    assert choose_noise("none", results_dir=results, label="nightly", model="m").profile is None
    # a profile beside the baselines wins, when it is of the runs' model
    save_profile(measure_profile(history[:3]), DEFAULT_PROFILE)
    assert choose_noise("auto", results_dir=results, label=None, model="m").profile.source == NoiseSource.PROFILE  # type: ignore[union-attr]
    other = choose_noise("auto", results_dir=results, label=None, model="other")
    assert other.profile is None and "noise-profile.json is of m, not other: not used" in other.note
    assert history_profile(results, "nightly", "m", window=2) is None  # too few runs in the window


def test_bench_noise_from_runs_then_compare_reads_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results = tmp_path / "results"
    for i, f in enumerate(FACTORS):
        write_run(results, run_of(f, i, cv=0.01), label="aa", started=float(i))
    out = tmp_path / "noise.json"
    assert main(["noise", "--from", "all:aa", "--results-dir", str(results), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "Noise profile: 6 runs of m" in printed and "between runs" in printed and f"wrote {out}" in printed
    write_run(results, run_of(1.0, 30, cv=0.01), label="x", started=10.0)
    write_run(results, run_of(1.2, 31, cv=0.01), label="y", started=11.0)
    argv = ["compare", "x", "y", "--results-dir", str(results), "--no-report", "--noise", str(out)]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "tested against the spread between runs of the noise profile" in printed and "improved" in printed
    assert main([*argv[:-2], "--noise", str(tmp_path / "nope.json")]) == 2
    assert main(["noise", "--from", "all:x", "--results-dir", str(results), "--out", str(out)]) == 2
    assert "at least 3 runs" in capsys.readouterr().err


def test_bench_noise_runs_the_passes_and_writes_their_profile(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "set.toml").write_text(
        'name = "n"\n[[scenario]]\nname = "tg"\nprompt_tokens = 40\noutput_tokens = 8\nrepetitions = 4\nwarmup = 0\n'
    )
    fake.config.jitter_cv = 0.02
    out = tmp_path / "profile.json"
    argv = [
        "noise", "--endpoint", fake.url, "--scenarios", str(tmp_path / "set.toml"), "--passes", "3",
        "--results-dir", str(tmp_path / "results"), "--out", str(out), "--no-report",
    ]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("tg/p40-o8-c1-d0") >= 3 and "pass 3 of 3" in printed
    profile = load_profile(out)
    assert len(profile.run_ids) == 3 and profile.endpoint == fake.url and profile.model == "fake-model"
    labels = {json.loads((p / "run.json").read_text())["label"] for p in (tmp_path / "results").iterdir() if p.is_dir()}
    assert labels == {"noise"}
    assert main([*argv[:-3], "--passes", "2", "--no-report"]) == 2  # a spread needs three runs


def test_one_run_against_several_takes_the_spread_of_the_several(tmp_path: Path) -> None:
    group = [write_run(tmp_path, run_of(f, i, cv=0.01), label="a", started=float(i)) for i, f in enumerate(FACTORS)]
    one = write_run(tmp_path, run_of(1.2, 40, cv=0.01), label="b", started=20.0)
    comparison = compare_runs(group, one)
    tg = next(f for f in comparison.figures if f.figure == "tg_tps")
    assert tg.noise == NoiseSource.RUNS and "over the other side's 6" in tg.basis and tg.verdict == Verdict.IMPROVED
    assert "one run on a side, several on the other" in comparison.noise_note
