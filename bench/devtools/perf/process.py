"""Run one command and account for it: exit code, wall time, CPU time and peak memory of its process tree."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from bench.doors import kernel

# Each tool under test runs on one core; the truth server and this harness on the other.
TOOL_CORE, SERVER_CORE = 1, 0


@dataclass(frozen=True)
class Usage:
    exit_code: int
    wall_s: float
    cpu_s: float  # user + system, the command and every descendant it waited for
    peak_rss_mb: float  # the largest sum of resident memory over the whole process tree, sampled every 0.1 s


@contextlib.contextmanager
def _peak_rss(pid: int) -> Iterator[list[int]]:
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.1):
            peak[0] = max(peak[0], kernel.tree_rss_bytes(pid))

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield peak
    finally:
        stop.set()
        thread.join()


def run_measured(command: list[str], *, cwd: Path, env: dict[str, str], log: Path, timeout_s: float) -> Usage:
    """Run ``command`` to the end (killed after ``timeout_s``), its output appended to ``log``.

    CPU time comes from RUSAGE_CHILDREN around the wait, so only one measured
    command may run at a time in this process.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.monotonic()
    with log.open("a") as out:
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=out, stderr=subprocess.STDOUT)
        with _peak_rss(process.pid) as peak:
            try:
                exit_code = process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                process.kill()
                exit_code = process.wait()
    wall = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return Usage(exit_code, wall, cpu, peak[0] / 2**20)


def pinned(command: list[str], core: int | None) -> list[str]:
    """Run ``command`` on one CPU core where taskset exists and the core is there."""
    if core is None or shutil.which("taskset") is None or core >= (os.cpu_count() or 1):
        return command
    return ["taskset", "-c", str(core), *command]


def keep_off_the_tools_core() -> None:
    """Move this process (its /proc sampling for memory) onto the server's core, away from the tool's."""
    if (os.cpu_count() or 1) > TOOL_CORE and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {SERVER_CORE})
