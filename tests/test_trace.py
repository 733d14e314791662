"""Trace replay: a documented JSONL format, refused line by line when wrong, replayed exactly and on time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench.cli import main
from bench.devtools.replay_check import check as replay_check
from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import ConfigError
from bench.flows.run import RunOptions, run_benchmark
from bench.inputs.scenarios import parse_scenario_set
from bench.inputs.trace import TraceFormat, convert, import_azure, import_mooncake, load_trace, parse_trace
from bench.load.order import CaseOrder
from bench.store.run_dir import read_records, read_run_meta


def lines(*rows: dict[str, Any] | str) -> list[str]:
    return [(row if isinstance(row, str) else json.dumps(row)) + "\n" for row in rows]


def test_a_trace_numbers_sessions_and_prefixes_and_knows_its_longest_context() -> None:
    trace = parse_trace(
        lines(
            {"t": 0, "input_tokens": 100, "output_tokens": 10},
            {"t": 0.5, "session": "u1", "prefix": "sys", "prefix_tokens": 50, "input_tokens": 80, "output_tokens": 20},
            {"t": 1.0, "prefix": "sys", "prefix_tokens": 50, "input_tokens": 30, "output_tokens": 5},
            {"t": 2.0, "session": "u1", "input_tokens": 40, "output_tokens": 20},
        ),
        "t.jsonl",
    )
    assert [(r.session, r.turn, r.prefix) for r in trace.rows] == [
        (None, None, None),
        (0, 1, 0),
        (None, None, 0),
        (0, 2, 0),
    ]
    assert trace.longest_context == 50 + 80 + 20 + 40 + 20
    assert (trace.sessions, trace.prefixes, trace.duration_s) == (1, {0: 50}, 2.0)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ({"t": 0.5, "input_tokens": 10, "output_tokens": 5}, r"t.jsonl:2: field 't' goes back in time"),
        ({"t": 2, "input_tokens": -3, "output_tokens": 5}, r"t.jsonl:2: field 'input_tokens' must be an integer"),
        ({"t": 2, "input_tokens": 10, "output_tokens": 0}, r"t.jsonl:2: field 'output_tokens'"),
        ({"t": 2, "input_tokens": 10, "output_tokens": 5, "user": "x"}, r"t.jsonl:2: unknown field\(s\) user"),
        ({"t": 2, "session": "a", "turn": 3, "input_tokens": 10, "output_tokens": 5}, r"t.jsonl:2: field 'turn'"),
        ({"t": 2, "turn": 1, "input_tokens": 10, "output_tokens": 5}, r"t.jsonl:2: field 'turn' needs a 'session'"),
        ({"t": 2, "prefix": "p", "input_tokens": 10, "output_tokens": 5}, r"t.jsonl:2: field 'prefix_tokens'"),
        ({"t": "soon", "input_tokens": 10, "output_tokens": 5}, r"t.jsonl:2: field 't' must be a number"),
        ("[1, 2]", r"t.jsonl:2: not a JSON object"),
        ("{not json", r"t.jsonl:2: the trace line is not valid JSON"),
    ],
)
def test_a_wrong_line_is_refused_with_its_line_and_field(row: dict[str, Any] | str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_trace(lines({"t": 1, "input_tokens": 10, "output_tokens": 5}, row), "t.jsonl")


def test_a_prefix_keeps_one_length_and_a_later_turn_does_not_rename_it() -> None:
    first = {"t": 0, "session": "s", "prefix": "p", "prefix_tokens": 50, "input_tokens": 10, "output_tokens": 5}
    with pytest.raises(ConfigError, match=r":2: field 'prefix_tokens': prefix 'p' was 50 tokens"):
        parse_trace(lines(first, {**first, "session": "q", "prefix_tokens": 60}), "t.jsonl")
    with pytest.raises(ConfigError, match=r":2: field 'prefix': a session names its prefix on its first turn"):
        parse_trace(lines(first, {**first, "turn": 2}), "t.jsonl")
    with pytest.raises(ConfigError, match="has no requests"):
        parse_trace(["\n"], "t.jsonl")


def trace_set(trace: str, **fields: Any) -> Any:
    scenario = {"name": "replay", "pattern": "trace", "trace": trace, "warmup": 0, **fields}
    return parse_scenario_set({"scenario": [scenario]}, "test-set")


@pytest.mark.parametrize("workers", [1, 2], ids=["one-process", "two-workers"])
def test_the_shipped_trace_is_replayed_exactly_and_never_early(
    fake: FakeLlamaServer, tmp_path: Path, workers: int
) -> None:
    fake.config.cache_slots = 32  # a slot per line: no line's cache is evicted (with 8, singles evict prefixes)
    trace = load_trace("sample")
    options = RunOptions(
        scenarios=trace_set("sample", speed=25), endpoint=fake.url, results_dir=tmp_path, workers=workers
    )
    result = run_benchmark(options)
    assert result.status == "complete"
    records = sorted((r for r in read_records(result.run_dir) if not r.warmup), key=lambda r: r.index)
    assert len(records) == len(trace.rows) == 24
    for record, row in zip(records, trace.rows, strict=True):
        assert record.timings is not None
        # each line's lengths exactly: the new tokens after any history or prefix (the whole prompt on a
        # prefix's first use, which finds it cold), and the answer
        cold = row.prefix_tokens if record.depth_target == 0 else 0
        assert (record.timings.prompt_n, record.timings.predicted_n) == (row.input_tokens + cold, row.output_tokens)
        assert record.timings.cache_n == record.depth_target  # the history and the prefixes reused as meant
        assert (record.session, record.turn) == (row.session, row.turn)
        assert record.t_scheduled is not None and record.t_request >= record.t_scheduled  # never before its time
    start = records[0].t_scheduled
    assert start is not None
    for record, row in zip(records, trace.rows, strict=True):
        if row.session is None:  # a turn may wait for its answer; every other line keeps the trace's time
            # (each worker maps the loop's clock onto the run's with two reads: they may be a moment apart)
            exact = 1e-6 if workers == 1 else 0.02
            assert record.t_scheduled == pytest.approx(start + (row.t - trace.rows[0].t) / 25, abs=exact)
    meta = read_run_meta(result.run_dir)
    assert len(next(iter((meta.workers or {None: {"placements": [0]}}).values()))["placements"]) == workers
    stored = meta.scenario_set["scenarios"][0]["trace"]
    assert stored == {"source": "built-in:sample", "sha256": trace.sha256, "requests": 24}  # named, not copied
    cache = result.summary.cases[0].cache
    assert cache is not None and cache.hits == cache.meant == 8 and cache.conversations == 2
    (line,) = replay_check(result.run_dir)
    assert line.startswith("replay/trace-sample-x25-c8") and line.endswith(" 24/24")


def test_a_session_longer_than_a_slot_is_refused_before_any_load_with_its_line(
    fake: FakeLlamaServer, tmp_path: Path
) -> None:
    fake.config.n_ctx = 300
    path = tmp_path / "long.jsonl"
    path.write_text(
        "".join(
            lines(
                {"t": 0, "session": "a", "input_tokens": 100, "output_tokens": 50},
                {"t": 1, "input_tokens": 100, "output_tokens": 50},
                {"t": 2, "session": "a", "input_tokens": 100, "output_tokens": 60},
            )
        )
    )
    with pytest.raises(ConfigError, match=r"long.jsonl:3: field 'input_tokens': session 0's turn 2 needs 310 tokens"):
        run_benchmark(RunOptions(scenarios=trace_set(str(path)), endpoint=fake.url, results_dir=tmp_path / "r"))
    (run_dir,) = (tmp_path / "r").iterdir()
    assert list(read_records(run_dir)) == []


def test_a_trace_scenario_refuses_lengths_of_its_own_and_rounds(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="takes field 'prompt_tokens' from the trace"):
        trace_set("sample", prompt_tokens=100)
    with pytest.raises(ConfigError, match="need pattern 'trace'"):
        parse_scenario_set(
            {"scenario": [{"name": "x", "prompt_tokens": 64, "output_tokens": 8, "trace": "sample"}]}, "test-set"
        )
    with pytest.raises(ConfigError, match="longer than max_duration_s"):
        trace_set("sample", max_duration_s=10)
    with pytest.raises(ConfigError, match="rounds would split a trace"):
        RunOptions(scenarios=trace_set("sample"), results_dir=tmp_path, order=CaseOrder.ROUNDS)


# ------------------------------------------------------------------ importers
def test_mooncake_rows_become_a_trace_with_shared_prefixes_from_repeated_blocks() -> None:
    rows = list(
        import_mooncake(
            lines(
                {"timestamp": 1000, "input_length": 1100, "output_length": 10, "hash_ids": [1, 2, 3]},
                {"timestamp": 1500, "input_length": 1200, "output_length": 20, "hash_ids": [1, 2, 4]},
                {"timestamp": 4000, "input_length": 600, "output_length": 30, "hash_ids": [9, 8]},
            ),
            "m.jsonl",
        )
    )
    assert [row["t"] for row in rows] == [0.0, 0.5, 3.0]
    assert "prefix" not in rows[0] and "prefix" not in rows[2]
    # the second request begins with the first's two leading blocks: 1,024 tokens shared
    assert (rows[1]["prefix_tokens"], rows[1]["input_tokens"], rows[1]["output_tokens"]) == (1024, 176, 20)


def test_azure_rows_become_a_trace_in_seconds_from_the_first() -> None:
    csv_lines = [
        "TIMESTAMP,ContextTokens,GeneratedTokens\n",
        "2023-11-16 18:15:46.6805900,374,44\n",
        "2023-11-16 18:15:50.9951690,396,109\n",
    ]
    rows = list(import_azure(csv_lines, "a.csv"))
    assert rows == [
        {"t": 0.0, "input_tokens": 374, "output_tokens": 44},
        {"t": pytest.approx(4.314579), "input_tokens": 396, "output_tokens": 109},
    ]
    with pytest.raises(ConfigError, match=r"a.csv:2: not an Azure trace row"):
        list(import_azure(["TIMESTAMP,ContextTokens\n", "yesterday,3\n"], "a.csv"))


def test_bench_trace_imports_and_shows_and_never_overwrites(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    source = tmp_path / "az.csv"
    source.write_text(
        "TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n2023-11-16 18:15:47.68,96,8\n"
    )
    out = tmp_path / "az.jsonl"
    assert main(["trace", "import", str(source), "--format", "azure", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote" in printed and "2 requests over 1.0 s" in printed
    assert load_trace(out).rows[1].input_tokens == 96
    assert main(["trace", "import", str(source), "--format", "azure", "--out", str(out)]) == 2
    assert "exists" in capsys.readouterr().err
    assert convert(source, TraceFormat.AZURE, tmp_path / "again.jsonl") == 2
    assert main(["trace", "show", "sample"]) == 0
    assert "24 requests" in capsys.readouterr().out


def test_a_trace_s_p50_is_the_median_as_every_p50_of_the_suite() -> None:
    rows = [json.dumps({"t": i, "input_tokens": n, "output_tokens": 7}) for i, n in enumerate((100, 200, 300, 400))]
    lines_out = parse_trace(rows, "four.jsonl").describe()
    assert lines_out[0] == "four.jsonl: 4 requests over 3.0 s (1.33 req/s)"
    assert lines_out[1] == "  input tokens   p50 250  max 400"  # the upper median said 300
    assert lines_out[2] == "  output tokens  p50 7  max 7"


def test_a_mooncake_row_of_many_blocks_costs_its_blocks_not_every_prefix() -> None:
    import tracemalloc

    blocks = list(range(20_000))  # a 110 KB row: every prefix of it kept was 1.65 GB
    tracemalloc.start()
    rows = list(import_mooncake(lines(
        {"timestamp": 0, "input_length": 20_000 * 512, "output_length": 1, "hash_ids": blocks},
        {"timestamp": 1, "input_length": 20_000 * 512, "output_length": 1, "hash_ids": [*blocks[:15_000], -1]},
    ), "m.jsonl"))  # fmt: skip
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 * 2**20
    assert rows[1]["prefix_tokens"] == 15_000 * 512


def test_mooncake_blocks_past_the_input_do_not_count() -> None:
    rows = list(import_mooncake(lines(
        {"timestamp": 0, "input_length": 1000, "output_length": 1, "hash_ids": [1, 2, 3, 4]},
        {"timestamp": 1, "input_length": 1000, "output_length": 1, "hash_ids": [1, 2, 3, 4]},
    ), "m.jsonl"))  # fmt: skip
    # 1,000 tokens hold two blocks of 512: the shared prefix is what the input can hold, less the last token
    assert rows[1]["prefix_tokens"] == 999


def test_imported_rows_out_of_time_order_are_timed_from_the_earliest_and_sorted(tmp_path: Path) -> None:
    source = tmp_path / "m.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in [
        {"timestamp": 5000, "input_length": 10, "output_length": 2},
        {"timestamp": 1000, "input_length": 20, "output_length": 3},
    ]))  # fmt: skip
    assert convert(source, TraceFormat.MOONCAKE, tmp_path / "t.jsonl") == 2
    trace = load_trace(tmp_path / "t.jsonl")
    assert [(r.t, r.input_tokens) for r in trace.rows] == [(0.0, 20), (4.0, 10)]


AZURE_HEAD = "TIMESTAMP,ContextTokens,GeneratedTokens\n"


@pytest.mark.parametrize(
    ("kind", "text", "message"),
    [
        (TraceFormat.MOONCAKE, '{"timestamp": 0, "input_length": -5, "output_length": 2}\n', "must not be negative"),
        (TraceFormat.AZURE, f"{AZURE_HEAD}2023-11-16 18:15:46,-3,4\n", "must not be negative"),
        (TraceFormat.AZURE, f"{AZURE_HEAD}2023-11-16 18:15:46,3,4\n2023-11-16 18:15:47+00:00,3,4\n",
         r"a.in:3: field 'TIMESTAMP': has time zone where line 2"),
    ],
)  # fmt: skip
def test_imports_refuse_what_they_cannot_mean(tmp_path: Path, kind: TraceFormat, text: str, message: str) -> None:
    source = tmp_path / "a.in"
    source.write_text(text)
    with pytest.raises(ConfigError, match=message):
        convert(source, kind, tmp_path / "out.jsonl")
