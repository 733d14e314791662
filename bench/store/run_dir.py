"""The results store: one directory per run, written so a crash loses nothing.

Layout of ``results/<run-id>/`` (every JSON file carries ``schema_version``)::

    run.json          metadata; rewritten atomically; "status" is running,
                      complete, partial (interrupted or stopped early) or failed
    requests.jsonl    one record per request, appended and flushed as each ends
    requests.parquet  the same records as a table, written when the run ends
    summary.json      figures per case and against the baselines
    server.log        the embedded llama-server's log, when the suite started one

A run whose ``run.json`` still says "running" but whose process is gone was
killed: readers report it as partial. ``load_history`` reads every run under a
directory into one pandas DataFrame.
"""

from __future__ import annotations

import fnmatch
import json
import os
import secrets
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from enum import StrEnum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from bench.doors import files, strict_json
from bench.doors.redact import NO_SECRETS, Redactor
from bench.errors import ResultsError
from bench.records import RequestRecord
from bench.store.meta import RUN_SCHEMA, RunFile, RunMeta, RunStatus
from bench.telemetry.samples import GpuSample

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

RUN_JSON_MAX_BYTES = 64 * 2**20  # run.json holds a scenario set and notes: kilobytes, rarely more
DEFAULT_RESULTS_DIR = Path("results")


def _atomic_write_json(path: Path, payload: dict[str, Any], redactor: Redactor = NO_SECRETS) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("w", encoding="utf-8") as handle:
            handle.write(redactor.dumps(payload, indent=2, default=str))
            handle.write("\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)  # a full disk must not leave a half-written temp file behind
        raise


def new_run_id(label: str | None = None) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in (label or "run"))[:40]
    return f"{stamp}-{slug}-{secrets.token_hex(3)}"


def check_writable(results_dir: Path) -> None:
    """Fail before a run starts if results cannot be stored."""
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
        probe = results_dir / f".write-test-{os.getpid()}-{secrets.token_hex(3)}"
        probe.write_bytes(b"x" * 4096)
        probe.unlink()
    except OSError as exc:
        raise ResultsError(f"results directory {results_dir} is not writable: {exc.strerror or exc}") from None


class RunStore:
    """Writes one run directory."""

    def __init__(self, results_dir: Path, run_id: str, redactor: Redactor = NO_SECRETS) -> None:
        self.run_id = run_id
        self.redactor = redactor  # run.json and summary.json are masked of it; records come masked by the client
        self.path = results_dir / run_id
        try:
            self.path.mkdir(parents=True, exist_ok=False)
        except FileExistsError:
            raise ResultsError(f"run directory {self.path} already exists") from None
        except OSError as exc:
            raise ResultsError(f"cannot create run directory {self.path}: {exc.strerror or exc}") from None
        self.meta = RunMeta(run_id, pid=os.getpid(), host=socket.gethostname())
        self._requests: IO[str] = (self.path / RunFile.REQUESTS_LOG).open("a", encoding="utf-8")

    @classmethod
    def create(cls, results_dir: Path, label: str | None = None, redactor: Redactor = NO_SECRETS) -> RunStore:
        check_writable(results_dir)
        return cls(results_dir, new_run_id(label), redactor)

    def write_meta(self, **fields: Any) -> None:
        """``run.json`` rewritten with these fields of ``RunMeta`` changed (a wrong name is a TypeError)."""
        self.meta = replace(self.meta, **fields)
        _atomic_write_json(self.path / RunFile.META, self.meta.to_json(), self.redactor)

    def append(self, record: RequestRecord) -> None:
        # One line, flushed: after a SIGKILL the OS still holds every finished record.
        try:
            # plain: a record's strings from the server were masked by the client that received them
            self._requests.write(strict_json.dumps(record.to_json(), separators=(",", ":")) + "\n")
            self._requests.flush()
        except OSError as exc:
            raise ResultsError(f"cannot write to {self.path / 'requests.jsonl'}: {exc.strerror or exc}") from None

    def write_summary(self, summary: dict[str, Any]) -> None:
        _atomic_write_json(self.path / RunFile.SUMMARY, {"schema_version": RUN_SCHEMA, **summary}, self.redactor)

    def close(self) -> None:
        if not self._requests.closed:
            self._requests.close()

    def finish(self, status: RunStatus, **fields: Any) -> None:
        """Close the request log, write the Parquet table and the final metadata."""
        status = RunStatus(status)
        self.close()
        records = list(read_records(self.path))
        if records:
            records_frame(records).to_parquet(self.path / RunFile.REQUESTS_TABLE, index=False)
        self.write_meta(status=status, records=len(records), **fields)


# ------------------------------------------------------------------ reading


def read_records(run_dir: Path, skipped: list[int] | None = None) -> Iterator[RequestRecord]:
    """Records of a run from its JSONL log.

    A torn last line (a crash mid-write) is left out; so is a line that is not a record
    (a stray byte, a line of garbage): one bad line must not make a whole run, or a
    history of runs, unreadable. The numbers of lines left out go into ``skipped``.
    """
    path = run_dir / RunFile.REQUESTS_LOG
    if not path.exists():
        return
    set_aside = _superseded(run_dir)
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.endswith(b"\n"):
                break
            try:
                record = RequestRecord.from_json(json.loads(raw.decode("utf-8")))
            except (ValueError, TypeError, AttributeError):  # UnicodeDecodeError is a ValueError
                if skipped is not None:
                    skipped.append(number)
                continue
            if not any(case == record.case_id and low <= record.t_sent <= high for case, low, high in set_aside):
                yield record


def _superseded(run_dir: Path) -> list[tuple[str, float, float]]:
    """The attempts --require-quiet measured again (run.json): their requests stay out of every figure."""
    if not (run_dir / RunFile.META).exists():
        return []
    try:
        meta = read_run_meta(run_dir)
    except ResultsError:
        return []
    windows = []
    for entry in meta.superseded or ():
        try:
            windows.append((str(entry["case_id"]), float(entry["t_from"]), float(entry["t_to"])))
        except (KeyError, TypeError, ValueError):
            continue
    return windows


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_run_meta(run_dir: Path) -> RunMeta:
    """A run's ``run.json`` (of any version), with a run whose process is gone marked partial."""
    path = run_dir / RunFile.META
    if not path.exists():
        raise ResultsError(f"{run_dir} is not a run directory (no run.json)")
    data = files.read_json(path, what="run's metadata (run.json)", max_bytes=RUN_JSON_MAX_BYTES, error=ResultsError)
    if not isinstance(data, dict):
        raise ResultsError(f"{path}: not a run's metadata (a JSON object); it holds a {type(data).__name__}")
    meta = RunMeta.from_json(data, str(path))
    if meta.status is RunStatus.RUNNING:
        same_host = meta.host == socket.gethostname()
        if not (same_host and isinstance(meta.pid, int) and _pid_alive(meta.pid)):
            meta = replace(
                meta,
                status=RunStatus.PARTIAL,
                partial_reason="the run's process ended before it could mark the run finished "
                "(killed, or its last writes failed: a full disk?)",
            )
    return meta


def records_frame(records: list[RequestRecord]) -> pd.DataFrame:
    """Flatten records into one row each: timings and usage as columns, token times kept as lists."""
    import pandas as pd

    rows = []
    for record in records:
        row = record.to_json()
        timings = row.pop("timings") or {}
        usage = row.pop("usage") or {}
        row.pop("schema", None)
        for key in ("cache_n", "prompt_n", "prompt_ms", "predicted_n", "predicted_ms"):
            row[key] = timings.get(key)
        for key in ("prompt_per_second", "predicted_per_second", "prompt_per_token_ms", "predicted_per_token_ms"):
            row[key] = timings.get(key)
        row["has_timings"] = bool(timings)
        for key in ("prompt_tokens", "completion_tokens", "total_tokens"):
            row[f"usage_{key}"] = usage.get(key)
        row["ttft_ms"] = record.ttft_ms
        row["ttfb_ms"] = record.ttfb_ms
        row["tpot_ms"] = record.tpot_ms
        row["e2e_ms"] = record.e2e_ms
        rows.append(row)
    frame = pd.DataFrame(rows)
    for key in (
        "cache_n",
        "prompt_n",
        "predicted_n",
        "http_status",
        "usage_prompt_tokens",
        "usage_completion_tokens",
        "usage_total_tokens",
    ):
        if key in frame:
            frame[key] = frame[key].astype("Int64")
    return frame


def run_dirs(results_dir: Path) -> list[Path]:
    if not results_dir.is_dir():
        return []
    return sorted(p for p in results_dir.iterdir() if (p / RunFile.META).is_file())


def scenario_definitions(meta: RunMeta) -> dict[str, Any]:
    """A run's scenarios as it defined them, by name, from its ``run.json``."""
    scenario_set = meta.scenario_set
    return {s["name"]: s for s in scenario_set.get("scenarios", []) if isinstance(s, dict) and "name" in s}


def runs_with_meta(results_dir: Path) -> Iterator[tuple[Path, RunMeta]]:
    """Every readable run under ``results_dir`` with its metadata; unreadable ones are skipped."""
    for path in run_dirs(results_dir):
        try:
            yield path, read_run_meta(path)
        except ResultsError:
            continue


# ------------------------------------------------------------------ telemetry files


def read_telemetry(run_dir: Path, kind: str) -> list[dict[str, Any]]:
    """Rows of ``gpu.jsonl`` ("gpu", samples only) or ``server_metrics.jsonl`` ("server_metrics")."""
    name = RunFile.GPU_LOG if kind == "gpu" else RunFile.METRICS_LOG
    path = run_dir / name
    if not path.exists():
        return []
    rows = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if not line.endswith("\n"):
                break  # torn by a crash mid-write
            row = json.loads(line)
            if kind == "gpu" and row.get("kind") != "gpu":
                continue
            row.pop("schema", None)
            row.pop("kind", None)
            rows.append(row)
    return rows


def read_gpu_samples(run_dir: Path) -> list[GpuSample]:
    return [GpuSample(**row) for row in read_telemetry(run_dir, "gpu")]


def write_telemetry_tables(run_dir: Path) -> None:
    """The GPU and /metrics logs as Parquet tables, when the run ends."""
    import pandas as pd

    for kind, table in (("gpu", RunFile.GPU_TABLE), ("server_metrics", RunFile.METRICS_TABLE)):
        rows = read_telemetry(run_dir, kind)
        if rows:
            pd.DataFrame(rows).to_parquet(run_dir / table, index=False)


class TelemetryLogs:
    """A run's telemetry sink: ``gpu.jsonl`` and ``server_metrics.jsonl``, a flushed line a sample.

    A log is opened by its first line, so a run without telemetry has no empty files; ``close``
    writes the Parquet tables. Not thread-safe: the sampler calls it under its lock.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self._logs: dict[str, IO[str]] = {}

    def _line(self, name: str, row: dict[str, Any]) -> None:
        log = self._logs.get(name)
        if log is None:
            log = self._logs[name] = (self.run_dir / name).open("a", encoding="utf-8")
        log.write(strict_json.dumps(row) + "\n")
        log.flush()

    def gpu(self, row: dict[str, Any]) -> None:
        self._line(RunFile.GPU_LOG, row)

    def metrics(self, row: dict[str, Any]) -> None:
        self._line(RunFile.METRICS_LOG, row)

    def close(self) -> None:
        for log in self._logs.values():
            log.close()
        self._logs.clear()
        write_telemetry_tables(self.run_dir)


# ------------------------------------------------------------------ finding runs


def resolve_run(ref: str, results_dir: Path) -> Path:
    """A run id, a run directory, a label (its newest run), ``latest`` or ``previous``."""
    as_path = Path(ref)
    if (as_path / RunFile.META).is_file():
        return as_path
    if (results_dir / ref / RunFile.META).is_file():
        return results_dir / ref
    ordered = _by_start(results_dir)
    if ref in ("latest", "previous"):
        need = 1 if ref == "latest" else 2
        if len(ordered) < need:
            raise ResultsError(f"'{ref}': {results_dir} holds {len(ordered)} run(s)")
        return ordered[-need][0]
    labelled = [path for path, meta in ordered if meta.label == ref]
    if labelled:
        return labelled[-1]
    raise ResultsError(
        f"no run '{ref}' in {results_dir}: give a run id, a run directory, a label, 'latest' or 'previous'"
    )


GROUP_HELP = "a run (id, directory, label, latest, previous), RUN1,RUN2,..., a glob of run ids, or all:LABEL"


def resolve_runs(ref: str, results_dir: Path) -> list[Path]:
    """One side of a comparison: a run as ``resolve_run`` takes it, or several (oldest first).

    ``a,b,c`` lists runs; a pattern with ``*``, ``?`` or ``[`` matches run ids; ``all:LABEL``
    is every run of a label. Several runs a side make the run the unit of the comparison.
    """
    if "," in ref:
        paths = [path for part in ref.split(",") if part.strip() for path in resolve_runs(part.strip(), results_dir)]
    elif ref.startswith("all:"):
        label = ref[len("all:") :]
        paths = [path for path, meta in _by_start(results_dir) if meta.label == label]
        if not paths:
            raise ResultsError(f"no run labelled '{label}' in {results_dir}")
    elif any(c in ref for c in "*?["):
        paths = [path for path, _ in _by_start(results_dir) if fnmatch.fnmatchcase(path.name, ref)]
        if not paths:
            raise ResultsError(f"no run id in {results_dir} matches '{ref}'")
    else:
        paths = [resolve_run(ref, results_dir)]
    return list(dict.fromkeys(paths))  # a run named twice counts once


def _by_start(results_dir: Path) -> list[tuple[Path, RunMeta]]:
    return sorted(runs_with_meta(results_dir), key=lambda run: run[1].started or 0)


def _requests_table(run_dir: Path, meta: RunMeta) -> pa.Table:
    """One run's records as an Arrow table: Parquet when written, else the JSONL log."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parquet = run_dir / RunFile.REQUESTS_TABLE
    if parquet.exists() and meta.status != RunStatus.RUNNING:
        return pq.read_table(parquet)
    return pa.Table.from_pandas(records_frame(list(read_records(run_dir))), preserve_index=False)


def _with_run_columns(frame: pd.DataFrame, runs: list[tuple[int, RunMeta]]) -> pd.DataFrame:
    """Each row's run status, label and start, from (rows, meta) per run in row order: set once, not per run."""
    import pandas as pd

    counts = [rows for rows, _ in runs]
    for column, key in (("run_status", "status"), ("label", "label"), ("run_started", "started")):
        # a Series infers the column's type (run_started is a float), as one value per run did
        # plain values, as run.json holds them: a status is the text "complete", not an enum member
        values = [_plain(getattr(meta, key)) for _, meta in runs]
        frame[column] = pd.Series(values).repeat(counts).to_numpy()
    return frame


def _plain(value: object) -> object:
    return value.value if isinstance(value, StrEnum) else value


def load_run(run_dir: Path) -> pd.DataFrame:
    """One run's records as a DataFrame (Parquet when written, else the JSONL log)."""
    meta = read_run_meta(run_dir)
    table = _requests_table(run_dir, meta)
    return _with_run_columns(table.to_pandas(), [(table.num_rows, meta)])


TABLES = ("requests", "gpu", "server_metrics")


def load_telemetry(run_dir: Path, table: str) -> pd.DataFrame:
    """A run's GPU samples (``gpu``) or /metrics scrapes (``server_metrics``), one row each."""
    import pandas as pd

    meta = read_run_meta(run_dir)
    parquet = run_dir / f"{table}.parquet"
    frame = pd.read_parquet(parquet) if parquet.exists() else pd.DataFrame(read_telemetry(run_dir, table))
    if not frame.empty:
        frame["run_id"] = meta.run_id
        frame["run_status"] = meta.status.value
        frame["label"] = meta.label
    return frame


def load_history(results_dir: str | Path = "results", table: str = "requests") -> pd.DataFrame:
    """Every row of one table of every run under ``results_dir`` in one DataFrame.

    ``table`` is ``requests`` (one row per request: ``run_id``, ``label``,
    ``run_status``, ``case_id``, timings, usage, client times), ``gpu`` (one row
    per GPU sample) or ``server_metrics`` (one row per /metrics scrape). Partial
    runs are included and marked by ``run_status``. A run directory that cannot be read
    (an empty ``run.json``, a 0-byte Parquet file) is left out, and named with its reason
    in ``frame.attrs["skipped_runs"]``.
    """
    import pandas as pd

    if table not in TABLES:
        raise ValueError(f"table must be one of {', '.join(TABLES)}; got {table!r}")
    paths = run_dirs(Path(results_dir))
    skipped: list[str] = []
    if table == "requests":
        return _requests_history(paths, skipped)
    frames = []
    for path in paths:
        try:
            frames.append(load_telemetry(path, table))
        except (ResultsError, OSError, ValueError) as exc:
            _skip(skipped, path, exc)
    frames = [f for f in frames if not f.empty]
    if not frames:
        return _noting(pd.DataFrame(), skipped)
    return _noting(pd.concat(frames, ignore_index=True), skipped)


def _requests_history(paths: list[Path], skipped: list[str]) -> pd.DataFrame:
    # One Arrow concatenation and one conversion to pandas: converting a year of nightlies
    # run by run, and adding their columns run by run, took two thirds of the time.
    import pandas as pd
    import pyarrow as pa

    tables, runs = [], []
    for path in paths:
        try:
            meta = read_run_meta(path)
            requests = _requests_table(path, meta)
        except (ResultsError, OSError, ValueError, pa.ArrowException) as exc:
            _skip(skipped, path, exc)
            continue
        if requests.num_rows:
            tables.append(requests)
            runs.append((requests.num_rows, meta))
    if not tables:
        return _noting(pd.DataFrame(), skipped)
    combined = pa.concat_tables(tables, promote_options="permissive")
    return _noting(_with_run_columns(combined.to_pandas(), runs), skipped)


def _skip(skipped: list[str], path: Path, exc: BaseException) -> None:
    """One unreadable run (an empty run.json, a 0-byte Parquet a full disk left) must not hide the others."""
    reason = str(exc) if isinstance(exc, ResultsError) else f"{type(exc).__name__}: {exc}"
    skipped.append(f"{path.name}: {reason}")


def _noting(frame: pd.DataFrame, skipped: list[str]) -> pd.DataFrame:
    """The runs left out, where a caller (``bench show``, the trend report) can say so: ``frame.attrs``."""
    frame.attrs["skipped_runs"] = list(skipped)
    return frame
