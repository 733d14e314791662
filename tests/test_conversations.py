"""Multi-turn conversations and shared system prompts on the prompt cache, checked request by request."""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError
from bench.figures.prompt_cache import CacheMiss, miss_of, misses_of, summarise_cache
from bench.flows.run import QuietObserver, RunOptions, run_benchmark
from bench.inputs.scenarios import parse_scenario_set
from bench.records import RequestRecord
from bench.store.run_dir import read_records, read_run_meta
from tests.factories import record, timings


def scenario_set(**fields: Any) -> Any:
    scenario = {"name": "chat", "prompt_tokens": 24, "output_tokens": 6, "warmup": 0, **fields}
    return parse_scenario_set({"scenario": [scenario]}, "test-set")


def measured(url: str, tmp_path: Path, workers: int | None = None, **fields: Any) -> list[RequestRecord]:
    options = RunOptions(scenarios=scenario_set(**fields), endpoint=url, results_dir=tmp_path, workers=workers)
    result = run_benchmark(options)
    assert result.status == "complete"
    assert bool(read_run_meta(result.run_dir).workers) == (workers is not None and workers > 1)
    return [r for r in read_records(result.run_dir) if not r.warmup]


# ------------------------------------------------------------------ conversations
@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
def test_every_turn_resends_the_history_and_the_server_reuses_exactly_it(
    fake: FakeLlamaServer, tmp_path: Path, workers: int
) -> None:
    # a slot for each of the four conversations: with two, a user's next conversation may take the
    # least recently used slot, the other user's live one (as llama-server would), and it would miss.
    # In two workers each user's conversations stay with one worker, which builds their later turns.
    fake.config.cache_slots = 8
    records = measured(fake.url, tmp_path, workers, turns=4, concurrency=2, pattern="concurrent", repetitions=2)

    assert len(records) == 4 * 4  # 2 users x 2 conversations x 4 turns
    for r in records:
        assert r.timings is not None
        assert r.timings.prompt_n == 24  # every turn's new tokens, exactly
        assert r.timings.cache_n == r.depth_target  # and the history the suite meant, exactly
    by_turn = {turn: {r.depth_target for r in records if r.turn == turn} for turn in range(1, 5)}
    assert by_turn[1] == {0}  # a conversation opens cold
    # each later turn reuses the previous turn's whole prompt and its answer but the answer's last token
    # (6 generated, 5 decoded into the cache): 24 + 5 more tokens per turn
    assert by_turn[2] == {29} and by_turn[3] == {58} and by_turn[4] == {87}
    # one body per turn, each resending the conversation so far: the answers as the server sent them
    bodies = [b for b in fake.log.chat_bodies if len(b["messages"]) == 2 + 2 * 3]
    assert bodies and all(m["content"] == " tok" * 6 for b in bodies for m in b["messages"][2::2])
    assert all(b["cache_prompt"] is True for b in bodies)


def test_a_conversation_summary_gives_every_turn_its_figures(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.cache_slots = 2
    result = run_benchmark(
        RunOptions(
            scenarios=scenario_set(turns=3, concurrency=2, pattern="concurrent", repetitions=1),
            endpoint=fake.url,
            results_dir=tmp_path,
        )
    )
    (case,) = result.summary.cases
    cache = case.cache
    assert cache is not None
    assert case.case_id == "chat/p24-o6-c2-d0-t3" and case.requests == 6 and case.prompt_tokens == 24
    assert (cache.meant, cache.hits, cache.hit_rate, cache.misses) == (4, 4, 1.0, {})
    assert (cache.conversations, cache.conversations_complete) == (2, 2)
    assert [t.turn for t in cache.turns] == [1, 2, 3]
    assert [t.hit_rate for t in cache.turns] == [None, 1.0, 1.0]
    assert [t.reused_tokens for t in cache.turns] == [0, 29, 58]
    assert all(t.ttft_p50_ms is not None and t.pp_tps is not None for t in cache.turns)


def test_a_reasoning_answer_is_resent_without_its_reasoning_and_only_the_prompt_is_meant(
    fake: FakeLlamaServer, tmp_path: Path
) -> None:
    fake.config.reasoning_tokens = 2  # the answer's first tokens are reasoning, not resent in the history
    records = measured(fake.url, tmp_path, turns=2)
    second = next(r for r in records if r.turn == 2)
    assert second.depth_target == 24  # the previous prompt, none of the answer
    assert second.timings is not None and second.timings.cache_n == 24


def test_conversations_sharing_one_slot_are_reported_as_the_misses_they_are(
    fake: FakeLlamaServer, tmp_path: Path
) -> None:
    """Two users, one cache slot: a turn finds the slot the other user's turn left, and says so."""
    fake.config.cache_slots = 1
    fake.config.ttft_s = 0.05  # the two users' turns overlap, so each turn meets the other's cache
    records = measured(fake.url, tmp_path, turns=3, concurrency=2, pattern="concurrent", repetitions=1)
    cache = summarise_cache(records)
    assert cache is not None
    later = [r for r in records if r.turn and r.turn > 1]
    missed = [r for r in later if r.timings is not None and r.timings.cache_n != r.depth_target]
    assert cache.hits == len(later) - len(missed)
    assert sum(cache.misses.values()) == len(missed)
    assert set(cache.misses) <= {CacheMiss.NOTHING, CacheMiss.HISTORY}


def test_a_turn_shorter_than_the_template_adds_is_refused_before_any_load(
    fake: FakeLlamaServer, tmp_path: Path
) -> None:
    # after a shared prefix a first turn can be this short; a later one also carries the template
    # around the answer and the new message
    short = scenario_set(turns=2, prompt_tokens=4, prefixes=1, prefix_tokens=40)
    with pytest.raises(ConfigError, match=r"a turn of 4 new tokens .* use prompt_tokens >= \d+"):
        run_benchmark(RunOptions(scenarios=short, endpoint=fake.url, results_dir=tmp_path))
    (run_dir,) = tmp_path.iterdir()
    assert list(read_records(run_dir)) == []


# ------------------------------------------------------------------ shared system prompts
def test_requests_on_a_shared_prefix_reuse_exactly_it_after_its_first_use(
    fake: FakeLlamaServer, tmp_path: Path
) -> None:
    fake.config.cache_slots = 3
    records = measured(fake.url, tmp_path, prefixes=3, prefix_tokens=40, repetitions=12)
    first_uses = {}
    for r in sorted(records, key=lambda r: r.index):
        first_uses.setdefault(r.prefix, r.index)
        assert r.timings is not None
        if first_uses[r.prefix] == r.index:
            # cold: nothing meant, the prefix and the request's own tokens all processed, no cache asked
            assert (r.depth_target, r.timings.cache_n) == (0, 0)
            assert r.timings.prompt_n == r.prompt_tokens_target > 40
        else:
            assert (r.depth_target, r.timings.cache_n, r.timings.prompt_n) == (40, 40, 24)
    assert set(first_uses) == {0, 1, 2}


def test_more_prefixes_than_slots_miss_exactly_where_the_slot_was_taken(fake: FakeLlamaServer, tmp_path: Path) -> None:
    fake.config.cache_slots = 1
    records = sorted(measured(fake.url, tmp_path, prefixes=2, prefix_tokens=40, repetitions=16), key=lambda r: r.index)
    # one slot, one request at a time: a request finds its prefix only where the request before used it
    expected_misses = [
        i for i, (before, now) in enumerate(itertools.pairwise(records), 1) if before.prefix != now.prefix
    ]
    expected_misses = [i for i in expected_misses if any(r.prefix == records[i].prefix for r in records[:i])]
    misses = [i for i, miss in enumerate(misses_of(records)) if miss is not None]
    assert misses == expected_misses and misses  # the seeded order switches prefixes
    # the slot held the other prefix: at most the template's opening is shared with it
    assert all(miss_of(records[i]) in {CacheMiss.NOTHING, CacheMiss.PART} for i in misses)


def test_a_prefix_shorter_than_the_template_around_it_is_refused(fake: FakeLlamaServer, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"shared prefix of 2 tokens .* use prefix_tokens >= \d+"):
        run_benchmark(
            RunOptions(scenarios=scenario_set(prefixes=1, prefix_tokens=2), endpoint=fake.url, results_dir=tmp_path)
        )


# ------------------------------------------------------------------ how a miss is told
def turn(cache_n: int, meant: int, *, session: int = 0, number: int = 2, prompt_n: int = 10) -> RequestRecord:
    return record(
        timings=timings(prompt_n, 10.0, 6, 30.0, cache_n=cache_n), depth_target=meant, session=session, turn=number
    )


def test_a_miss_says_which_part_of_the_history_the_server_lost() -> None:
    first = turn(0, 0, number=1, prompt_n=30)  # a 30-token first prompt
    assert misses_of([first, turn(40, 40)]) == [None, None]
    assert misses_of([first, turn(0, 40)])[1] is CacheMiss.NOTHING
    assert misses_of([first, turn(34, 40)])[1] is CacheMiss.ANSWER  # the prompt reused, the answer not
    assert misses_of([first, turn(20, 40)])[1] is CacheMiss.HISTORY  # less than the prompt
    assert misses_of([first, turn(41, 40)])[1] is CacheMiss.MORE
    assert (
        miss_of(record(timings=timings(10, 10.0, 6, 30.0, cache_n=10), depth_target=40)) is CacheMiss.PART
    )  # a depth or a prefix


# ------------------------------------------------------------------ scenario files
@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"prefixes": 2}, "needs 'prefix_tokens'"),
        ({"prefix_tokens": 100}, "needs 'prefixes'"),
        ({"turns": 2, "depth": 100}, "cannot be combined"),
        ({"turns": 2, "pattern": "poisson", "rate_rps": 1.0}, "closed loop"),
        ({"turns": 0}, "field 'turns'"),
        ({"prefixes": -1, "prefix_tokens": 10}, "field 'prefixes'"),
    ],
)
def test_scenario_files_refuse_conversations_and_prefixes_that_cannot_run(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        scenario_set(**fields)


def test_case_ids_name_turns_and_prefixes_only_where_used() -> None:
    cases = scenario_set(turns=3, prefixes=[0, 4], prefix_tokens=100).cases()
    assert [c.case_id for c in cases] == ["chat/p24-o6-c1-d0-t3", "chat/p24-o6-c1-d0-t3-k4x100"]
    assert [c.measured_requests for c in cases] == [9, 9]
    assert cases[1].context_tokens == 100 + 3 * (24 + 6)
    assert scenario_set().cases()[0].case_id == "chat/p24-o6-c1-d0"
    stored = scenario_set().to_dict()["scenarios"][0]
    assert not {"turns", "prefixes", "prefix_tokens"} & set(stored)  # runs from before them read the same


# ------------------------------------------------------------------ what a user sees
CHAT_SET = """
[[scenario]]
name = "chat"
prompt_tokens = 24
output_tokens = 6
turns = 3
concurrency = 2
pattern = "concurrent"
repetitions = 1
[[scenario]]
name = "sys"
prompt_tokens = 24
output_tokens = 6
prefixes = 2
prefix_tokens = 40
repetitions = 6
"""


def test_bench_run_shows_the_cache_and_the_turns_in_the_terminal_and_the_report(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.config.cache_slots = 2
    (tmp_path / "set.toml").write_text(CHAT_SET)
    reports = tmp_path / "reports"
    args = ["run", "--endpoint", fake.url, "--scenarios", str(tmp_path / "set.toml")]
    assert main([*args, "--results-dir", str(tmp_path / "results"), "--reports-dir", str(reports)]) == 0
    out = capsys.readouterr().out
    assert "Prompt cache per case" in out and "Conversations by turn" in out
    assert re.search(r"chat/p24-o6-c2-d0-t3\s+4/4\s+100 %", out)  # turns 2 and 3 of both conversations hit
    (report,) = reports.glob("run-*.html")
    html = report.read_text()
    for element in ('id="cache"', 'id="turns"', 'id="plot-turns"'):
        assert element in html, element
    assert "2 of 2 conversations without a failed turn" in html


@pytest.mark.parametrize(("honour", "shown"), [(True, "honoured"), (False, "IGNORED")])
def test_bench_check_says_whether_the_endpoint_honours_cache_prompt(
    fake: FakeLlamaServer, honour: bool, shown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.config.honour_cache = honour
    assert main(["check", "--endpoint", fake.url]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"prompt cache\s+{shown}", out)
    assert ("reused nothing (timings.cache_n 0)" in out) is not honour


def test_a_run_on_an_endpoint_that_ignores_the_cache_says_so_and_counts_every_miss(
    fake: FakeLlamaServer, tmp_path: Path
) -> None:
    fake.config.honour_cache = False
    notes: list[str] = []

    class Listener(QuietObserver):
        def message(self, text: str) -> None:
            notes.append(text)

    result = run_benchmark(
        RunOptions(scenarios=scenario_set(turns=2), endpoint=fake.url, results_dir=tmp_path), Listener()
    )
    assert any("reused nothing" in note for note in notes)
    cache = result.summary.cases[0].cache
    assert cache is not None and (cache.hits, cache.misses) == (0, {CacheMiss.NOTHING: 3})


def test_bench_compare_sets_two_runs_of_conversations_and_a_trace_side_by_side(
    fake: FakeLlamaServer, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.config.cache_slots = 32
    (tmp_path / "set.toml").write_text(
        CHAT_SET + '[[scenario]]\nname = "replay"\npattern = "trace"\ntrace = "sample"\nspeed = 50\n'
    )
    results, reports = tmp_path / "results", tmp_path / "reports"
    for label in ("a", "b"):
        args = ["run", "--endpoint", fake.url, "--scenarios", str(tmp_path / "set.toml"), "--label", label]
        assert main([*args, "--results-dir", str(results), "--no-report"]) == 0
    run_a, run_b = sorted(p for p in results.iterdir() if p.is_dir())
    capsys.readouterr()
    assert main(["compare", str(run_a), str(run_b), "--reports-dir", str(reports)]) == 0
    out = capsys.readouterr().out
    for case_id in ("chat/p24-o6-c2-d0-t3", "sys/p24-o6-c1-d0-k2x40", "replay/trace-sample-x50-c8"):
        assert re.search(rf"{re.escape(case_id)}\s+pp", out), case_id
        assert re.search(rf"{re.escape(case_id)}\s+prompt cache hits \(%\)\s+100\.00\s+100\.00", out), case_id
    (report,) = reports.glob("compare-*.html")
    assert "prompt cache hits" in report.read_text()
