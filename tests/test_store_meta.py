"""run.json has one owner (RunMeta): every version ever written is read, nothing unknown is lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from bench.errors import ResultsError
from bench.figures.summary import load_summary
from bench.store.meta import MIGRATIONS, RUN_SCHEMA, RunFile, RunMeta, RunStatus, migrate
from bench.store.run_dir import RunStore, load_run, read_run_meta

STORED = Path(__file__).parent / "data" / "runs"


def stored_versions() -> list[Path]:
    return sorted(STORED.glob("v*"))


def test_a_stored_run_of_every_schema_version_is_kept_as_a_fixture() -> None:
    # a new schema version must come with a migration and a stored run of the version before it
    assert [p.name for p in stored_versions()] == [f"v{n}" for n in range(1, RUN_SCHEMA + 1)]
    assert set(MIGRATIONS) == set(range(1, RUN_SCHEMA))


@pytest.mark.parametrize("run_dir", stored_versions(), ids=lambda p: p.name)
def test_every_stored_version_reads_into_today_s_record(run_dir: Path, tmp_path: Path) -> None:
    copy = shutil.copytree(run_dir, tmp_path / run_dir.name)
    meta = read_run_meta(copy)
    assert meta.status is RunStatus.COMPLETE and meta.run_id == "20261207-150017-run-360a0e"
    assert meta.model == "gemma-3-270m-q4_k_m" and meta.records == 60 and meta.seed == 0
    assert meta.scenario_set["name"] == "baseline" and meta.endpoint is not None
    assert meta.started is not None and meta.ended is not None and meta.ended > meta.started
    frame = load_run(copy)
    assert len(frame) == 10  # the fixture keeps one request per case
    assert {type(v) for v in frame.run_status} == {str} and set(frame.run_status) == {"complete"}
    assert {c.case_id for c in load_summary(copy).cases} >= {"pp/p512-o16-c1-d0"}


def test_rewriting_today_s_format_keeps_every_key_and_value() -> None:
    data = json.loads((STORED / f"v{RUN_SCHEMA}" / RunFile.META).read_text())
    rewritten = RunMeta.from_json(data).to_json()
    assert {key: rewritten[key] for key in data} == data
    assert all(rewritten[key] is None for key in rewritten.keys() - data.keys())  # a field the run never set


def test_keys_this_version_does_not_know_survive_a_rewrite(tmp_path: Path) -> None:
    data = {"schema_version": RUN_SCHEMA, "run_id": "r", "status": "complete", "written_by_a_later_minor": [1, 2]}
    meta = RunMeta.from_json(data)
    assert meta.extra == {"written_by_a_later_minor": [1, 2]}
    assert meta.to_json()["written_by_a_later_minor"] == [1, 2]


def test_the_store_writes_what_it_reads(tmp_path: Path) -> None:
    store = RunStore(tmp_path, "r1")
    store.write_meta(label="nightly", started=10.0, notes=("one",), schedule=((0, "s/c", 4),))
    store.finish(RunStatus.COMPLETE, ended=12.0)
    meta = read_run_meta(store.path)
    assert (meta.label, meta.notes, meta.schedule, meta.records) == ("nightly", ("one",), ((0, "s/c", 4),), 0)
    with pytest.raises(TypeError):
        store.write_meta(no_such_field=1)  # a misspelt field fails where it is written, not where it is read


def test_migrations_run_in_order_one_version_at_a_time() -> None:
    def rename(data: dict[str, Any]) -> dict[str, Any]:
        out = {**data, "seen": [*data["seen"], 2], "renamed": data["old"]}
        del out["old"]
        return out

    steps: dict[int, Any] = {1: lambda d: {**d, "seen": [*d.get("seen", []), 1]}, 2: rename}
    out = migrate({"schema_version": 1, "old": "x"}, migrations=steps, target=3)
    assert out == {"schema_version": 3, "seen": [1, 2], "renamed": "x"}
    assert migrate({"schema_version": 2, "old": "y", "seen": []}, migrations=steps, target=3)["seen"] == [2]


@pytest.mark.parametrize(
    ("version", "message"),
    [(RUN_SCHEMA + 1, "newer llama-server-bench"), (0, "no schema_version"), ("1", "no schema_version"), (None, "no")],
)
def test_a_version_it_cannot_read_is_refused_with_the_reason(version: object, message: str) -> None:
    with pytest.raises(ResultsError, match=message):
        RunMeta.from_json({"schema_version": version, "run_id": "r"})


def test_a_missing_migration_is_named() -> None:
    with pytest.raises(ResultsError, match="schema_version 1 has no migration to 2"):
        migrate({"schema_version": 1}, migrations={}, target=2)
