"""Length distributions: drawn from the seed, bounded, exact per request, refused with a clear error."""

from __future__ import annotations

import random
import statistics
from pathlib import Path
from typing import Any

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError
from bench.flows.run import RunOptions, run_benchmark
from bench.inputs.lengths import LengthDist, LengthKind, parse_lengths
from bench.inputs.scenarios import load_scenario_set, parse_scenario_set
from bench.store.run_dir import read_records


def dist(**table: Any) -> LengthDist:
    return parse_lengths(table, minimum=1, maximum=100_000, base=None, where="test")


def draws(lengths: LengthDist, n: int = 20_000, seed: int = 7) -> list[int]:
    rng = random.Random(seed)
    return [lengths.draw(rng) for _ in range(n)]


def test_each_distribution_draws_within_its_bounds_around_its_centre() -> None:
    uniform = draws(dist(dist="uniform", min=64, max=512))
    assert (min(uniform), max(uniform)) == (64, 512)
    assert abs(statistics.mean(uniform) - 288) < 5  # SE of the mean ~0.9 tokens over 20,000 seeded draws

    normal = draws(dist(dist="normal", mean=300, sd=50, min=200, max=400))
    assert min(normal) >= 200 and max(normal) <= 400
    assert abs(statistics.mean(normal) - 300) < 3 and 40 < statistics.stdev(normal) < 50  # truncated at 2 SD

    lognormal = draws(dist(dist="lognormal", median=200, sigma=0.6, min=16, max=4096))
    assert abs(statistics.median(lognormal) - 200) < 8
    assert statistics.mean(lognormal) > statistics.median(lognormal)  # the long right tail of real answers

    empirical = draws(dist(dist="empirical", values=[10, 20, 20, 40]))
    assert set(empirical) == {10, 20, 40} and abs(empirical.count(20) / len(empirical) - 0.5) < 0.02


def test_the_same_seed_draws_the_same_lengths() -> None:
    lengths = dist(dist="lognormal", median=200, sigma=0.6, min=16, max=4096)
    assert draws(lengths, 100, seed=3) == draws(lengths, 100, seed=3) != draws(lengths, 100, seed=4)


def test_labels_and_medians_name_a_distribution_in_case_ids_and_plots() -> None:
    assert dist(dist="uniform", min=64, max=512).label == "u64-512"
    assert dist(dist="normal", mean=300, sd=50, min=1, max=1000).label == "n300sd50"
    assert dist(dist="lognormal", median=200, sigma=0.6, min=1, max=9000).nominal == 200
    assert dist(dist="empirical", values=[1, 3, 9]).nominal == 3


def test_an_empirical_list_reads_from_a_file_beside_the_scenario_set(tmp_path: Path) -> None:
    (tmp_path / "lengths.txt").write_text("# answers seen last week\n40\n\n120\n  75\n")
    (tmp_path / "set.toml").write_text(
        '[[scenario]]\nname = "real"\nprompt_tokens = 64\n'
        'output_tokens = { dist = "empirical", file = "lengths.txt" }\n'
    )
    (case,) = load_scenario_set(tmp_path / "set.toml").cases()
    assert case.output_lengths is not None and case.output_lengths.values == (40, 120, 75)
    assert case.output_tokens == 75 and case.longest_output == 120
    assert case.case_id.startswith("real/p64-oe")


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"dist": "zipf"}, "'dist' must be one of"),
        ({"dist": "uniform", "min": 10}, "needs 'max'"),
        ({"dist": "uniform", "min": 10, "max": 5}, "min <= max"),
        ({"dist": "uniform", "min": 0, "max": 5}, "1 <= min"),
        ({"dist": "normal", "mean": 50, "sd": 0, "min": 1, "max": 100}, "positive spread"),
        ({"dist": "normal", "mean": 500, "sd": 5, "min": 1, "max": 100}, "centre within"),
        ({"dist": "uniform", "min": 1, "max": 5, "sd": 3}, "unknown field"),
        ({"dist": "empirical", "values": [3, 0]}, "integers from 1"),
        ({"dist": "empirical"}, "needs 'values'"),
        ({"dist": "lognormal", "median": float("nan"), "sigma": 1, "min": 1, "max": 9}, "finite number"),
    ],
)
def test_a_bad_distribution_is_refused_with_what_is_allowed(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        dist(**table)


def test_a_bad_line_in_a_lengths_file_is_named_by_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "lengths.txt").write_text("40\nforty\n")
    with pytest.raises(ConfigError, match=r"lengths.txt:2: each line must be one length"):
        dist(dist="empirical", file=str(tmp_path / "lengths.txt"))
    (tmp_path / "lengths.txt").write_text("40\n4\u00b2\n")  # a digit to str.isdigit, not to int()
    with pytest.raises(ConfigError, match=r"lengths.txt:2: each line must be one length"):
        dist(dist="empirical", file=str(tmp_path / "lengths.txt"))
    with pytest.raises(ConfigError, match=r"missing.txt: cannot read the lengths file of .*: no such file"):
        dist(dist="empirical", file=str(tmp_path / "missing.txt"))


def run_records(url: str, tmp_path: Path, **fields: Any) -> list[Any]:
    scenario = {"name": "mix", "warmup": 0, "repetitions": 12, **fields}
    scenarios = parse_scenario_set({"scenario": [scenario]}, "test-set")
    result = run_benchmark(RunOptions(scenarios=scenarios, endpoint=url, results_dir=tmp_path, seed=5))
    return [r for r in read_records(result.run_dir) if not r.warmup]


def test_every_request_gets_its_own_drawn_length_exactly(fake: FakeLlamaServer, tmp_path: Path) -> None:
    records = run_records(
        fake.url,
        tmp_path / "a",
        prompt_tokens={"dist": "uniform", "min": 30, "max": 90},
        output_tokens={"dist": "empirical", "values": [4, 8, 16]},
    )
    assert records[0].case_id == "mix/pu30-90-oe" + dist(dist="empirical", values=[4, 8, 16]).label[1:] + "-c1-d0"
    assert len({r.prompt_tokens_target for r in records}) > 3 and len({r.output_tokens_target for r in records}) > 1
    for r in records:
        assert r.timings is not None
        assert r.timings.prompt_n == r.prompt_tokens_target and 30 <= r.prompt_tokens_target <= 90
        assert r.timings.predicted_n == r.output_tokens_target
    again = run_records(
        fake.url,
        tmp_path / "b",
        prompt_tokens={"dist": "uniform", "min": 30, "max": 90},
        output_tokens={"dist": "empirical", "values": [4, 8, 16]},
    )
    assert [(r.prompt_tokens_target, r.output_tokens_target) for r in again] == [
        (r.prompt_tokens_target, r.output_tokens_target) for r in records
    ]


def test_a_conversation_draws_every_turn_its_own_lengths(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.cache_slots = 2
    records = run_records(
        fake.url,
        tmp_path,
        turns=3,
        repetitions=3,
        prompt_tokens={"dist": "uniform", "min": 20, "max": 60},
        output_tokens={"dist": "uniform", "min": 3, "max": 9},
    )
    assert len(records) == 9 and len({r.prompt_tokens_target for r in records}) > 3
    for r in records:
        assert r.timings is not None
        assert (r.timings.prompt_n, r.timings.predicted_n) == (r.prompt_tokens_target, r.output_tokens_target)
        assert r.timings.cache_n == r.depth_target


def test_kinds_are_a_closed_vocabulary() -> None:
    assert {k.value for k in LengthKind} == {"uniform", "normal", "lognormal", "empirical"}


def test_prompts_can_be_made_of_a_text_corpus_at_the_same_exact_lengths(fake: FakeLlamaServer, tmp_path: Path) -> None:
    corpus = tmp_path / "book.txt"
    words = [f"w{i}" for i in range(500)]
    corpus.write_text(" ".join(words))
    (tmp_path / "set.toml").write_text(
        '[[scenario]]\nname = "book"\nprompt_tokens = [40, 90]\noutput_tokens = 4\nwarmup = 0\ntext = "book.txt"\n'
    )
    scenarios = load_scenario_set(tmp_path / "set.toml")
    result = run_benchmark(RunOptions(scenarios=scenarios, endpoint=fake.url, results_dir=tmp_path / "r"))
    records = [r for r in read_records(result.run_dir) if not r.warmup]
    for r in records:
        assert r.timings is not None and r.timings.prompt_n == r.prompt_tokens_target
    bodies = [b["messages"][-1]["content"].split() for b in fake.log.chat_bodies if b.get("max_tokens") == 4]
    assert bodies and all(set(body) <= set(words) for body in bodies)  # the corpus's words, nothing else
    assert any(body[1] == f"w{(int(body[0][1:]) + 1) % 500}" for body in bodies)  # runs of consecutive words
    missing = tmp_path / "set2.toml"
    missing.write_text('[[scenario]]\nname = "x"\nprompt_tokens = 40\noutput_tokens = 4\ntext = "nope.txt"\n')
    with pytest.raises(ConfigError, match=r"nope\.txt: cannot read the text corpus: no such file"):
        load_scenario_set(missing)
