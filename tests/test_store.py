from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.errors import ResultsError
from bench.store.run_dir import RunStore, check_writable, load_history, read_records, read_run_meta
from tests.factories import record, timings


def test_records_are_on_disk_as_soon_as_appended(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path, "x")
    store.write_meta(label="x")
    store.append(record(index=0, timings=timings(10, 1.0, 5, 10.0)))
    # read while the writer still holds the file open
    (got,) = list(read_records(store.path))
    assert got.timings == timings(10, 1.0, 5, 10.0)
    assert got.index == 0
    store.close()


def test_finish_writes_parquet_and_status(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path, "nightly")
    store.write_meta(label="nightly")
    for i in range(3):
        store.append(record(index=i, token_times=(1.0, 1.1), timings=timings(10, 1.0, 5, 10.0)))
    store.finish("complete")
    meta = read_run_meta(store.path)
    assert meta.status == "complete" and meta.records == 3
    assert json.loads((store.path / "run.json").read_text())["schema_version"] == 1
    history = load_history(tmp_path)
    assert len(history) == 3
    assert set(history["label"]) == {"nightly"} and set(history["run_status"]) == {"complete"}
    assert list(history["prompt_n"]) == [10, 10, 10]
    assert list(history["token_times"].iloc[0]) == [1.0, 1.1]


def test_a_torn_last_line_is_skipped(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path)
    store.append(record(index=0))
    store.finish("complete")
    with (store.path / "requests.jsonl").open("a") as handle:
        handle.write('{"run_id": "r", "trunc')
    assert [r.index for r in read_records(store.path)] == [0]


def test_a_run_whose_process_died_reads_as_partial(tmp_path: Path) -> None:
    store = RunStore.create(tmp_path)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    store.write_meta(pid=int(dead.stdout))
    store.append(record(index=0))
    store.close()
    meta = read_run_meta(store.path)
    assert meta.status == "partial" and "killed" in meta.partial_reason
    frame = load_history(tmp_path)
    assert list(frame["run_status"]) == ["partial"]


def test_run_ids_are_unique_and_never_reused(tmp_path: Path) -> None:
    stores = [RunStore.create(tmp_path, "same") for _ in range(20)]
    for store in stores:
        store.close()
    assert len({s.run_id for s in stores}) == 20


def test_unknown_schema_version_is_refused(tmp_path: Path) -> None:
    run = tmp_path / "r"
    run.mkdir()
    (run / "run.json").write_text(json.dumps({"schema_version": 99, "status": "complete"}))
    with pytest.raises(ResultsError, match="schema_version 99"):
        read_run_meta(run)


def test_results_dir_that_is_a_file_fails_clearly(tmp_path: Path) -> None:
    blocker = tmp_path / "results"
    blocker.write_text("not a directory")
    with pytest.raises(ResultsError, match="not writable"):
        check_writable(blocker)


def test_empty_history_is_an_empty_frame(tmp_path: Path) -> None:
    assert load_history(tmp_path / "none").empty


def test_one_unreadable_run_is_skipped_and_named_not_fatal_to_the_history(tmp_path: Path) -> None:
    from bench.store.run_dir import load_history
    from tests.factories import noisy_records, write_run

    write_run(tmp_path, noisy_records(3, pp_tps=650, tg_tps=72, cv=0.02, seed=1), label="a", started=1.0)
    empty = write_run(tmp_path, noisy_records(3, pp_tps=650, tg_tps=72, cv=0.02, seed=2), label="b", started=2.0)
    (empty / "run.json").write_text("")  # a full disk at the wrong moment
    torn = write_run(tmp_path, noisy_records(3, pp_tps=650, tg_tps=72, cv=0.02, seed=3), label="c", started=3.0)
    (torn / "requests.parquet").write_bytes(b"")  # a 0-byte Parquet file
    history = load_history(tmp_path)
    assert set(history["label"]) == {"a"}  # the readable run, whole
    skipped = history.attrs["skipped_runs"]
    assert len(skipped) == 2 and any(empty.name in s for s in skipped) and any(torn.name in s for s in skipped)
