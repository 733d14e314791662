"""Run every tool on the same jobs against the truth server and score what each measured.

Errors are differences of quantiles: a tool's median (p99) TTFT minus the median
(p99) TTFT the server logged for the requests of the job's shape in that tool's
run. The peers do not export anything the server sees per request, so requests
cannot be paired one to one; the same rule is used for every tool, this suite
included. The truth's own error is the longest time one token event's write()
took (its p99 is reported as the truth bound).

Each tool runs pinned to one core and the truth server to the other (where there
are two), so "per core" figures are per core.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from bench.devtools.perf.process import SERVER_CORE, TOOL_CORE, keep_off_the_tools_core, pinned, run_measured
from bench.devtools.perf.tools import TOOLS, Job, Measured, Tool, environment, install, prepare_offline_assets
from bench.devtools.perf.truth import Schedule, TruthRequest, read_log, truth_server
from bench.errors import NothingToScore

DISTORTION_LIMIT_MS = 1.0


@dataclass
class Score:
    tool: str
    streams: int
    requests_scored: int
    failed: int
    ttft_err_median_ms: float
    ttft_err_p99_ms: float
    itl_mean_err_median_ms: float  # per-request mean ITL, median
    itl_mean_err_p99_ms: float
    itl_gap_err_p99_ms: float | None  # every gap, where the tool reports gaps
    truth_bound_p99_ms: float
    events_per_s: float  # token events the server sent per second of the run
    cpu_s: float  # the tool's user + system time, start-up included
    wall_s: float
    peak_rss_mb: float  # the tool's whole process tree
    exit_code: int
    # the first wave (each stream's first request) against the truth's first wave, and the rest against its
    # rest, where the tool says when each request went out; the connects it reported, where it reports them
    first_wave_ttft_err_p99_ms: float | None = None
    later_ttft_err_p99_ms: float | None = None
    connect_p50_ms: float | None = None
    connect_p99_ms: float | None = None

    @property
    def distortion_ms(self) -> float:
        itl = self.itl_gap_err_p99_ms if self.itl_gap_err_p99_ms is not None else self.itl_mean_err_p99_ms
        return max(abs(self.ttft_err_p99_ms), abs(itl))


def _q(values: Sequence[float], pct: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=float), pct))


def score(tool: str, job: Job, measured: Measured, truth: list[TruthRequest], usage: dict[str, float]) -> Score:
    served = [r for r in truth if r.stream and len(r.sends) == job.output_tokens]
    if not served or not measured.ttft_ms:
        raise NothingToScore(f"{tool} at {job.streams} streams: nothing to score ({len(served)} served, "
                           f"{len(measured.ttft_ms)} measured)")  # fmt: skip
    truth_ttft = [r.ttft_ms for r in served]
    truth_mean = [(r.sends[-1] - r.sends[0]) * 1000 / (len(r.sends) - 1) for r in served]
    truth_gaps = [(b - a) * 1000 for r in served for a, b in itertools.pairwise(r.sends)]
    gap_err = None
    if measured.itl_gap_ms:
        gap_err = _q(measured.itl_gap_ms, 99) - _q(truth_gaps, 99)
    start = min(r.arrival for r in truth)
    end = max(r.sends[-1] for r in truth)
    waves = _wave_errors(job.streams, measured, served)
    connects = measured.connect_ms or None
    return Score(
        tool=tool,
        streams=job.streams,
        requests_scored=len(measured.ttft_ms),
        failed=measured.failed,
        ttft_err_median_ms=_q(measured.ttft_ms, 50) - _q(truth_ttft, 50),
        ttft_err_p99_ms=_q(measured.ttft_ms, 99) - _q(truth_ttft, 99),
        itl_mean_err_median_ms=_q(measured.itl_mean_ms, 50) - _q(truth_mean, 50),
        itl_mean_err_p99_ms=_q(measured.itl_mean_ms, 99) - _q(truth_mean, 99),
        itl_gap_err_p99_ms=gap_err,
        truth_bound_p99_ms=_q([r.write_max_s * 1000 for r in truth], 99),
        events_per_s=sum(len(r.sends) for r in truth) / max(end - start, 1e-9),
        **usage,  # type: ignore[arg-type]
        first_wave_ttft_err_p99_ms=waves[0],
        later_ttft_err_p99_ms=waves[1],
        connect_p50_ms=None if connects is None else _q(connects, 50),
        connect_p99_ms=None if connects is None else _q(connects, 99),
    )


def _wave_errors(streams: int, measured: Measured, served: Sequence[TruthRequest]) -> tuple[float | None, float | None]:
    """TTFT p99 error of the first wave (each stream's first request) and of the requests after it.

    The truth's first wave is its first ``streams`` requests to arrive; the tool's, its first ``streams``
    sent. The rest is every other request: its TTFT p99 against the truth's rest.
    """
    first = measured.first_wave_ttft_ms
    if not first or len(served) <= streams or len(measured.ttft_ms) <= len(first):
        return None, None
    by_arrival = sorted(served, key=lambda r: r.arrival)
    truth_first = [r.ttft_ms for r in by_arrival[:streams]]
    truth_later = [r.ttft_ms for r in by_arrival[streams:]]
    later = list(measured.ttft_ms)
    for value in first:  # the rest: every measured TTFT but the first wave's (a multiset difference)
        later.remove(value)
    return _q(first, 99) - _q(truth_first, 99), _q(later, 99) - _q(truth_later, 99)


def run_tool(tool: Tool, job: Job, root: Path, venvs: Path, schedule: Schedule, timeout_s: float) -> Score:
    work = root / "runs" / tool.name / f"streams-{job.streams}"
    shutil.rmtree(work, ignore_errors=True)  # a log or run directory left from an earlier try would be scored
    work.mkdir(parents=True)
    log = work / "truth.jsonl"
    with truth_server(log, schedule, core=SERVER_CORE) as url:
        command = pinned(tool.command(job, url, work, root), None if tool.on_every_core else TOOL_CORE)
        env = environment(root, tool, venvs)
        used = run_measured(command, cwd=work, env=env, log=work / "output.log", timeout_s=timeout_s)
    usage = {"cpu_s": used.cpu_s, "wall_s": used.wall_s, "peak_rss_mb": used.peak_rss_mb, "exit_code": used.exit_code}
    if used.exit_code != 0:
        print(f"  {tool.name} exited {used.exit_code}; its output: {work / 'output.log'}")
    return score(tool.name, job, tool.parse(job, work), read_log(log), usage)


def prepare(tools: Sequence[str], root: Path) -> None:
    """Offline assets, then each peer's own virtualenv (installed once, kept under ``root``)."""
    prepare_offline_assets(root)
    for name in tools:
        install(TOOLS[name], root / "venvs", root / "install.log")


def compare(
    tools: Sequence[str], levels: Sequence[int], root: Path, *, schedule: Schedule | None = None,
    output_tokens: int = 64, timeout_s: float = 600.0,
) -> list[Score]:  # fmt: skip
    schedule = schedule or Schedule()
    venvs = root / "venvs"
    keep_off_the_tools_core()
    scores = []
    for streams in levels:
        job = Job(streams=streams, requests=max(4 * streams, 32), output_tokens=output_tokens)
        for name in tools:
            print(f"{name}: {job.requests} requests, {streams} streams ...", flush=True)
            try:
                result = run_tool(TOOLS[name], job, root, venvs, schedule, timeout_s)
            except (NothingToScore, OSError, KeyError, ValueError) as exc:
                print(f"  {name} at {streams} streams could not be scored: {exc}")
                continue
            scores.append(result)
            print(f"  TTFT error median {result.ttft_err_median_ms:+.2f} ms, p99 {result.ttft_err_p99_ms:+.2f} ms; "
                  f"CPU {result.cpu_s:.1f} s, wall {result.wall_s:.1f} s", flush=True)  # fmt: skip
    (root / "scores.json").write_text(json.dumps([asdict(s) for s in scores], indent=1))
    return scores
