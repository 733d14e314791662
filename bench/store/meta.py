"""A run's metadata (``run.json``), typed, versioned and migrated, and the names of a run's files.

``RunMeta`` is the one owner of ``run.json``: the runner builds it step by step
(``replace``), the store writes it (``to_json``), every reader gets it back from ``from_json``.
Each version of the format the suite ever wrote is read: ``from_json`` carries an older file
through ``MIGRATIONS`` (one function a version, N -> N + 1) to ``RUN_SCHEMA``, and refuses a newer
one with a message that says which suite wrote it. Keys this suite does not know are kept in
``extra`` and written back, so rewriting a file loses nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any

from bench.errors import ResultsError

RUN_SCHEMA = 1


class RunFile(StrEnum):
    """The files of ``results/<run-id>/``: every module spells them through here."""

    META = "run.json"  # this record; rewritten atomically
    REQUESTS_LOG = "requests.jsonl"  # one record per request, appended and flushed as each ends
    REQUESTS_TABLE = "requests.parquet"  # the same as a table, when the run ends
    SUMMARY = "summary.json"  # figures per case and against the baselines
    NIGHTLY = "nightly.json"  # the gate's verdict on a nightly run
    SERVER_LOG = "server.log"  # the log of a llama-server the suite started
    GPU_LOG = "gpu.jsonl"
    GPU_TABLE = "gpu.parquet"
    METRICS_LOG = "server_metrics.jsonl"
    METRICS_TABLE = "server_metrics.parquet"


class RunStatus(StrEnum):
    RUNNING = "running"  # or killed, when its process is gone: readers then say partial
    COMPLETE = "complete"
    PARTIAL = "partial"  # interrupted or stopped early: what was measured is kept
    FAILED = "failed"  # stopped before any request was measured


JsonObject = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RunMeta:
    """What a run was (suite, machine, server, endpoint, scenarios) and how it ended.

    Nested parts the steps below describe (``server``, ``endpoint``, ``telemetry`` ...) are kept
    as those steps wrote them (their ``to_json``).
    """

    run_id: str
    status: RunStatus = RunStatus.RUNNING
    label: str | None = None
    started: float | None = None  # epoch seconds, the run clock's start
    ended: float | None = None
    records: int | None = None  # requests logged, when the run finished
    partial_reason: str | None = None
    notes: tuple[str, ...] = ()
    # the suite and the machine it ran on
    suite_version: str | None = None
    suite_git_sha: str | None = None
    python: str | None = None
    platform: str | None = None
    host: str | None = None
    pid: int | None = None
    # what was asked
    scenario_set: JsonObject = field(default_factory=dict)  # ScenarioSet.to_dict()
    baselines_source: str | None = None
    seed: int | None = None
    server_flags: str | None = None  # as the user stated them, for a server the suite did not start
    case_order: str | None = None
    schedule: tuple[tuple[int, str, int], ...] | None = None  # (round, case id, requests) in rounds
    bandwidth_inputs: JsonObject | None = None
    # what was met
    server: JsonObject | None = None  # a server the suite started: command, fallbacks
    endpoint: JsonObject | None = None
    props: JsonObject | None = None
    model: str | None = None
    build: str | None = None
    telemetry: JsonObject | None = None
    client_lag: JsonObject | None = None  # case id -> the client's own event-loop lag
    # case id -> which clock timed each end of its measured requests, counted: {"send": {"kernel": n, "loop": m},
    # "receive": {...}}: the kernel's stamps of the bytes (TTFT kernel to kernel), or the event loop's clock
    clocks: JsonObject | None = None
    workers: JsonObject | None = None  # case id -> where its workers ran and what befell them
    conditions: JsonObject | None = None  # case id -> what else the machine did meanwhile (HostConditions)
    # --require-quiet: a case's attempt measured under contention and measured again: its requests
    # ({"case_id", "t_from", "t_to"} on the run clock, by when they were sent) stay in the log, out of the figures
    superseded: tuple[JsonObject, ...] | None = None
    output_sample: JsonObject | None = None
    extra: JsonObject = field(default_factory=dict)  # keys this version does not know, kept

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"schema_version": RUN_SCHEMA}
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if f.name == "notes" or (f.name == "superseded" and value is not None):
                value = list(value)
            elif f.name == "schedule" and value is not None:
                value = [list(row) for row in value]
            out[f.name] = value
        return {**self.extra, **out}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], source: str = "run.json") -> RunMeta:
        """A ``run.json`` of any version this suite ever wrote, migrated to today's."""
        current = migrate(data, source)
        known = {f.name for f in fields(cls)} - {"extra"}
        values: dict[str, Any] = {k: v for k, v in current.items() if k in known}
        try:
            run_id = values.pop("run_id")
            if not isinstance(run_id, str):
                raise TypeError(f"run_id is {type(run_id).__name__}, not text")
            values["status"] = RunStatus(values.get("status") or RunStatus.RUNNING)
            values["notes"] = tuple(str(n) for n in values.get("notes") or ())
            if values.get("superseded") is not None:
                values["superseded"] = tuple(x for x in values["superseded"] if isinstance(x, dict))
            if values.get("schedule") is not None:
                values["schedule"] = tuple((int(r), str(c), int(n)) for r, c, n in values["schedule"])
            values["scenario_set"] = values.get("scenario_set") or {}
            for name in ("started", "ended"):
                if values.get(name) is not None:
                    values[name] = float(values[name])
            extra = {k: v for k, v in current.items() if k not in known | {"schema_version"}}
            meta = cls(run_id, **values, extra=extra)
        except (KeyError, TypeError, ValueError) as exc:
            raise ResultsError(f"{source}: not a run's metadata ({exc})") from None
        return meta


# version N -> the function that turns a file of version N into one of N + 1; each one a test
# reads a stored file of version N with (tests/data/runs/v<N>/)
MIGRATIONS: dict[int, Callable[[dict[str, Any]], dict[str, Any]]] = {}


def migrate(
    data: Mapping[str, Any],
    source: str = "run.json",
    migrations: Mapping[int, Callable[[dict[str, Any]], dict[str, Any]]] = MIGRATIONS,
    target: int = RUN_SCHEMA,
) -> dict[str, Any]:
    """``data`` carried from its ``schema_version`` to ``target``, one migration a version."""
    version = data.get("schema_version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ResultsError(f"{source}: no schema_version a suite writes ({version!r}); not a run's metadata")
    if version > target:
        raise ResultsError(
            f"{source}: schema_version {version} was written by a newer llama-server-bench "
            f"(this one reads up to {target}); upgrade to read it"
        )
    current = dict(data)
    while version < target:
        step = migrations.get(version)
        if step is None:
            raise ResultsError(f"{source}: schema_version {version} has no migration to {version + 1}")
        current = step(current)
        version += 1
        current["schema_version"] = version
    return current
