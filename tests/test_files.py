"""The one reader for input files: a clear error or a valid result, whatever the bytes, and nothing unbounded."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.decide.noise import load_profile
from bench.doors import files
from bench.errors import ConfigError, ResultsError
from bench.inputs.scenarios import load_scenario_set
from bench.inputs.trace import TraceFormat, convert, load_trace
from bench.store.run_dir import read_run_meta


def test_a_named_pipe_is_refused_at_once_not_waited_on(tmp_path: Path) -> None:
    fifo = tmp_path / "trace.jsonl"
    os.mkfifo(fifo)
    outcome: list[BaseException] = []
    reader = threading.Thread(target=lambda: _catch(outcome, lambda: load_trace(fifo)), daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "reading a named pipe blocked"
    (error,) = outcome
    assert isinstance(error, ConfigError) and "must be a regular file; this is a named pipe" in str(error)


def _catch(into: list[BaseException], call: object) -> None:
    try:
        call()  # type: ignore[operator]
    except BaseException as exc:
        into.append(exc)


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/null"])
def test_a_device_is_refused_before_any_byte_is_read(device: str) -> None:
    with pytest.raises(ConfigError, match="must be a regular file; this is a character device"):
        files.read_text(device, what="text corpus")


def test_a_directory_and_a_link_to_a_device_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="this is a directory"):
        files.read_text(tmp_path, what="trace")
    link = tmp_path / "lengths.txt"
    link.symlink_to("/dev/zero")
    with pytest.raises(ConfigError, match="this is a character device"):
        files.read_lines(link, what="lengths file")


def test_a_file_over_the_limit_is_refused_with_the_limit(tmp_path: Path) -> None:
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * 1025)
    with pytest.raises(ConfigError, match="larger than the 1,024 bytes the suite reads"):
        files.read_text(big, what="corpus", max_bytes=1024)
    lines = tmp_path / "lines.txt"
    lines.write_text("1\n" * 11)
    with pytest.raises(ConfigError, match="more than 10 lines"):
        files.read_lines(lines, what="lengths file", max_lines=10)


def test_a_byte_that_is_not_utf8_is_named_by_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "set.toml"
    path.write_bytes(b'name = "ok"\nx = "a\xffb"\n')
    with pytest.raises(ConfigError, match=r"set.toml:2: the scenario set is not UTF-8 text \(byte 0xff at column 7\)"):
        load_scenario_set(str(path))


def test_a_byte_order_mark_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"\xef\xbb\xbfTIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:46.68,374,44\n")
    assert convert(path, TraceFormat.AZURE, tmp_path / "a.jsonl") == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"x": 1e400}', "number 1e400 is too large"),
        ('{"x": NaN}', "NaN is not a number JSON allows"),
        ('{"x": ' + "9" * 31 + "}", "an integer of 31 digits"),
        ("[" * 10_000 + "]" * 10_000, "nested"),
        ("[" * 100 + "]" * 100, "nested deeper than 64 levels"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_json_is_strict_and_every_refusal_is_one_clear_error(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        files.loads_json(text, "p.json", what="noise profile")


def test_run_json_that_is_not_an_object_is_a_results_error(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text("[1, 2]")
    with pytest.raises(ResultsError, match="not a run's metadata"):
        read_run_meta(run)
    (run / "run.json").write_text("")
    with pytest.raises(ResultsError, match="not valid JSON"):
        read_run_meta(run)


def test_toml_numbers_that_overflow_are_refused_and_spelt_nan_is_left_to_the_field(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="number 1e400 is too large"):
        files.loads_toml("x = 1e400", "s.toml", what="scenario set")
    assert files.loads_toml("x = nan", "s.toml", what="scenario set")["x"] != 0  # nan: a field refuses it by name


def test_a_long_csv_field_is_read_and_a_longer_one_refused_clearly() -> None:
    long = "x" * 200_000
    ((_, row),) = files.csv_rows(f"a,b\n{long},1\n", "t.csv", what="Azure trace")
    assert row["a"] == long
    with pytest.raises(ConfigError, match=r"t.csv:2: the Azure trace is not valid CSV"):
        files.csv_rows("a,b\n" + "x" * (files.CSV_FIELD_CHARS + 1) + ",1\n", "t.csv", what="Azure trace")


def test_a_value_quoted_in_an_error_is_cut() -> None:
    assert len(files.shown(10**300)) <= files.SHOWN_CHARS
    assert files.shown("ok") == "'ok'"


# ------------------------------------------------------------------ any bytes: an error or a result


def _lengths(path: Path) -> object:
    from bench.inputs.lengths import parse_lengths

    return parse_lengths({"dist": "empirical", "file": str(path)}, minimum=1, maximum=1_000_000, base=path.parent,
                         where="fuzz")  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048) | st.text(max_size=512).map(str.encode))
@pytest.mark.parametrize("reader", ["scenario set", "trace", "noise profile", "lengths file", "mooncake", "azure"])
def test_arbitrary_bytes_give_a_clean_error_or_a_valid_result(reader: str, data: bytes, tmp_path: Path) -> None:
    path = tmp_path / "input"
    path.write_bytes(data)
    call = {
        "scenario set": lambda: load_scenario_set(str(path)),
        "trace": lambda: load_trace(path),
        "noise profile": lambda: load_profile(path),
        "lengths file": lambda: _lengths(path),
        "mooncake": lambda: convert(path, TraceFormat.MOONCAKE, tmp_path / "out.jsonl"),
        "azure": lambda: convert(path, TraceFormat.AZURE, tmp_path / "out.jsonl"),
    }[reader]
    try:
        call()
    except ConfigError as exc:  # what it says names the file (or, for lengths, the scenario that named it)
        assert str(path) in str(exc) or "fuzz" in str(exc), str(exc)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.dictionaries(st.sampled_from(["timestamp", "input_length", "output_length", "hash_ids"]),
                                     st.integers(-5, 10**6) | st.lists(st.integers(0, 50), max_size=40)
                                     | st.floats(allow_nan=True) | st.text(max_size=5)),
                     max_size=20))  # fmt: skip
def test_arbitrary_mooncake_rows_give_a_clean_error_or_a_trace(rows: list[dict[str, object]], tmp_path: Path) -> None:
    source = tmp_path / "m.jsonl"
    source.write_text("".join(json.dumps(row) + "\n" for row in rows))
    try:
        convert(source, TraceFormat.MOONCAKE, tmp_path / "t.jsonl")
    except ConfigError:
        return
    assert load_trace(tmp_path / "t.jsonl").rows or not rows
