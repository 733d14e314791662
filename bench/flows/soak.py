"""``bench soak``: one server, a scenario set run window after window for hours, and whether it slows.

llama.cpp users report servers that get slower as they run. A nightly starts a fresh server and
cannot see it; a soak keeps one server up (the suite's, or an endpoint) and runs the set again and
again, each window a stored run (label ``soak-<id>``), with the server's resident memory (the
suite-started server's process tree, from /proc) and its /metrics beside each window. Over the
windows, each case's pp and tg form a series; the nightly gate's change-point method (E-divisive,
bench.decide.nightly.change_points) says where one shifted, and the summary and report say by how
much, with the memory's growth. Each window is one run of the set against the same server: its first
requests are warm-ups as in any run, and nothing is restarted between windows.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from bench.decide.nightly import CHANGE_POINT_PERMUTATIONS
from bench.decide.stats import e_divisive
from bench.doors import kernel
from bench.errors import ConfigError
from bench.flows.run import RunObserver, RunOptions, run_benchmark
from bench.load.server import LocalServer, local_server
from bench.store.run_dir import check_writable
from bench.store.soak import Shift, SoakResult, Window, save

FIGURES = ("pp_tps", "tg_tps")
MIN_WINDOWS_FOR_SHIFTS = 4  # fewer: no series to split


@dataclass(frozen=True, slots=True)
class SoakPlan:
    base: RunOptions  # the set, results directory, and the server the suite starts (or the endpoint)
    duration_s: float
    label: str = "soak"
    windows: int | None = None  # stop after this many windows, if the duration has not ended it first

    def __post_init__(self) -> None:
        if not 0 < self.duration_s < math.inf:
            raise ConfigError(f"--duration must be a positive number of seconds; got {self.duration_s}")
        if self.windows is not None and self.windows < 2:
            raise ConfigError(f"--windows must be at least 2 (a series); got {self.windows}")


def _rss_mib(pid: int | None) -> float | None:
    """Resident memory of the server's process tree, MiB; None for a server the suite did not start."""
    total = kernel.tree_rss_bytes(pid) if pid is not None else 0
    return total / 2**20 if total else None


@contextlib.contextmanager
def _server(plan: SoakPlan, log: Path) -> Iterator[tuple[str, LocalServer | None]]:
    """The endpoint the windows run against: the user's, or one server the suite starts for all of them."""
    if plan.base.endpoint is not None:
        yield plan.base.endpoint, None
        return
    slots = max(c.concurrency for c in plan.base.scenarios.cases())
    server = local_server(
        binary=plan.base.server_binary, model_file=plan.base.model_file, args=plan.base.server_args,
        log_path=log, max_concurrency=slots,
    )  # fmt: skip
    server.start()
    try:
        yield server.url, server
    finally:
        server.stop()


def run_soak(
    plan: SoakPlan, observer: RunObserver | None = None, say: Callable[[str], None] = lambda _: None
) -> SoakResult:
    check_writable(plan.base.results_dir)
    soak_id = f"soak-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    windows: list[Window] = []
    began = time.monotonic()
    path = plan.base.results_dir / f"{soak_id}.json"
    try:
        with _server(plan, plan.base.results_dir / f"{soak_id}.server.log") as (url, server):
            while time.monotonic() - began < plan.duration_s and (plan.windows is None or len(windows) < plan.windows):
                number = len(windows) + 1
                started = time.monotonic() - began
                run = run_benchmark(replace(plan.base, endpoint=url, label=f"{plan.label}-{soak_id}"), observer)
                figures = run.summary.throughput()
                rss = _rss_mib(server.pid if server is not None else None)
                windows.append(Window(number, run.run_id, started, figures, rss))
                tg = "; ".join(f"{case} tg {v['tg_tps']:,.2f}" for case, v in figures.items() if "tg_tps" in v)
                memory = f", server {rss:,.0f} MiB" if rss is not None else ""
                say(f"window {number} at {started / 60:.1f} min: {tg}{memory}")
    finally:
        # an interrupted soak keeps the windows it measured: each is a stored run, and the series is written
        result = SoakResult(tuple(windows), tuple(_shifts(windows)), path)
        save(result, plan.duration_s)
    return result


def _shifts(windows: list[Window]) -> list[Shift]:
    """Change points in each case's pp and tg over the windows (the nightly gate's E-divisive)."""
    found = []
    cases = sorted({case for w in windows for case in w.figures})
    for case_id in cases:
        for figure in FIGURES:
            series = [w.figures[case_id][figure] for w in windows if figure in w.figures.get(case_id, {})]
            if len(series) < MIN_WINDOWS_FOR_SHIFTS:
                continue
            for point in e_divisive(series, permutations=CHANGE_POINT_PERMUTATIONS):
                found.append(
                    Shift(case_id, figure, point.index + 1, point.mean_before, point.mean_after, point.p_value)
                )
    return found
