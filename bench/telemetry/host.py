"""What else the machine did while a case ran: its CPU time split by who took it, from the kernel.

At each case's start and end the suite reads the machine's CPU counters (``/proc/stat``: busy,
idle and, in a VM, stolen time over every CPU) and each process's CPU time (``/proc/PID/stat``,
its own and its reaped children's), and splits the busy time of the case three ways: the suite's
own process tree (the client and its load workers), the tree of the server the suite started,
and everything else. With the load average, the CPU frequency governor and, where the kernel
counts them, thermal throttling events, that is the case's ``HostConditions``.

The rule for a note on the case (``disturbed``): other processes used at least
``OTHERS_CORES`` of a core on average, or the hypervisor stole as much, while the machine had
less than ``IDLE_CORES`` of a core idle: what they took came out of what the server and the
client would have had. A busy neighbour on a machine with cores to spare is recorded, not noted.

On a machine with no ``/proc`` (not Linux) there are no conditions: None, said once.
"""

from __future__ import annotations

import asyncio
import glob
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from bench.doors import kernel

OTHERS_CORES = 0.25  # a quarter of a core taken by others, on average over the case
IDLE_CORES = 0.5  # ... while less than half a core was left idle
QUIET_WINDOW_S = 1.0  # --require-quiet looks at the machine this long at a time
DEFAULT_QUIET_WAIT_S = 300.0
GOVERNORS = "/sys/devices/system/cpu/cpu*/cpufreq/scaling_governor"
THROTTLE_COUNTS = "/sys/devices/system/cpu/cpu*/thermal_throttle/*_throttle_count"


class ServerPlace(StrEnum):
    """Where the measured server ran, as far as its CPU time goes."""

    STARTED = "started"  # by the suite, on this machine: its process tree is counted on its own
    ELSEWHERE = "elsewhere"  # another machine: everything on this one is the client's or others'
    UNSEEN = "unseen"  # this machine (a loopback endpoint) but not started by the suite: among "others"


@dataclass(frozen=True, slots=True)
class CpuSnapshot:
    """The machine's and the two process trees' CPU seconds so far, at one monotonic instant."""

    t: float
    busy_s: float  # every CPU, user + nice + system + irq + softirq (guest time is inside user)
    idle_s: float  # idle + iowait
    steal_s: float
    suite_s: float  # this process and everything under it, the server's tree excepted
    server_s: float | None  # the server's tree; None when the suite did not start it
    throttle_events: int | None  # the kernel's thermal throttle counters summed, where it has them


@dataclass(frozen=True, slots=True)
class HostConditions:
    """One case's share of the machine: CPU seconds by who took them, over its wall seconds."""

    wall_s: float
    cores: int
    suite_s: float
    server_s: float | None
    others_s: float
    steal_s: float
    idle_s: float
    load_average: float | None = None  # 1-minute, at the case's end
    governor: str | None = None  # cpufreq's scaling governor(s), e.g. "performance"; None without cpufreq
    throttle_events: int | None = None  # thermal throttling events during the case; None where not counted
    server_place: ServerPlace = ServerPlace.STARTED
    waited_s: float = 0.0  # --require-quiet: how long the case waited for a quiet machine first

    def cores_of(self, seconds: float | None) -> float | None:
        """Seconds of CPU as the average number of cores they kept busy over the case."""
        return None if seconds is None else seconds / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def disturbed(self) -> bool:
        if self.server_place is ServerPlace.UNSEEN:
            return False  # the server's own time is among the others: nothing to tell them apart by
        return (self.cores_of(self.idle_s) or 0.0) < IDLE_CORES and self.taken_cores >= OTHERS_CORES

    @property
    def client_starved(self) -> bool:
        """The machine was full and the client itself used little of it: it waited for a CPU."""
        return (self.cores_of(self.idle_s) or 0.0) < IDLE_CORES and (self.cores_of(self.suite_s) or 0.0) < 0.5

    def sentence(self) -> str:
        """The note on a disturbed case: who took the CPU, and the rule that called it."""

        def c(seconds: float | None) -> str:
            return f"{self.cores_of(seconds) or 0.0:.2f}"

        server = "" if self.server_s is None else f", the server {c(self.server_s)}"
        stolen = f", the hypervisor stole {c(self.steal_s)}" if (self.cores_of(self.steal_s) or 0.0) >= 0.01 else ""
        return (
            f"other processes took {c(self.others_s)} of this machine's {self.cores} cores on average while the case "
            f"ran (this suite {c(self.suite_s)}{server}{stolen}; {c(self.idle_s)} idle): its figures were measured "
            f"under contention (noted at {OTHERS_CORES:g} cores taken with under {IDLE_CORES:g} idle)"
        )

    @property
    def taken_cores(self) -> float:
        """What others took, on average: other processes or, in a VM, the hypervisor, whichever took more."""
        return max(self.cores_of(self.others_s) or 0.0, self.cores_of(self.steal_s) or 0.0)

    def merged(self, other: HostConditions) -> HostConditions:
        """Two shares of one case (a run in rounds): seconds add, the last state holds."""

        def add(a: float | None, b: float | None) -> float | None:
            return None if a is None and b is None else (a or 0.0) + (b or 0.0)

        throttles = (
            None
            if self.throttle_events is None and other.throttle_events is None
            else ((self.throttle_events or 0) + (other.throttle_events or 0))
        )
        return HostConditions(
            wall_s=self.wall_s + other.wall_s,
            cores=other.cores,
            suite_s=self.suite_s + other.suite_s,
            server_s=add(self.server_s, other.server_s),
            others_s=self.others_s + other.others_s,
            steal_s=self.steal_s + other.steal_s,
            idle_s=self.idle_s + other.idle_s,
            load_average=max(x for x in (self.load_average, other.load_average, -1.0) if x is not None)
            if self.load_average is not None or other.load_average is not None
            else None,
            governor=other.governor,
            throttle_events=throttles,
            server_place=other.server_place,
            waited_s=self.waited_s + other.waited_s,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "others_cores": self.cores_of(self.others_s),
            "disturbed": self.disturbed,
        }

    @classmethod
    def from_json(cls, raw: object) -> HostConditions | None:
        if not isinstance(raw, dict):
            return None
        names = {f.name for f in fields(cls)}
        try:
            values = {k: v for k, v in raw.items() if k in names}
            values["server_place"] = ServerPlace(values.get("server_place", ServerPlace.STARTED))
            return cls(**values)
        except (TypeError, ValueError):
            return None


class HostSampler:
    """Snapshots of the machine's CPU counters around each case (``start`` / ``stop``)."""

    def __init__(
        self,
        server_pid: int | None = None,
        place: ServerPlace = ServerPlace.STARTED,
        proc: Path = kernel.PROC,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.server_pid, self.place, self.proc, self.clock = server_pid, place, proc, clock
        # the CPUs this process may run on: in a container pinned to 2 of a host's 64, the other 62's idle
        # time is not the server's to have
        self.usable = frozenset(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else frozenset()
        self.cores = len(self.usable) or os.cpu_count() or 1
        self._start: CpuSnapshot | None = None

    @property
    def available(self) -> bool:
        return kernel.read(self.proc / "stat") is not None

    def snapshot(self) -> CpuSnapshot | None:
        stat = kernel.read(self.proc / "stat")
        if stat is None or not stat.startswith("cpu "):
            return None
        tick = os.sysconf("SC_CLK_TCK")
        user = nice = system = idle = iowait = irq = softirq = steal = 0
        for line in _cpu_lines(stat, self.usable):
            values = [int(v) for v in line.split()[1:9] if v.isdigit()] + [0] * 8
            user, nice, system, idle = user + values[0], nice + values[1], system + values[2], idle + values[3]
            iowait, irq, softirq, steal = iowait + values[4], irq + values[5], softirq + values[6], steal + values[7]
        table = kernel.processes(self.proc)
        server_tree = kernel.descendants(self.server_pid, table) if self.server_pid else set()
        suite_tree = kernel.descendants(os.getpid(), table) - server_tree

        def cpu_s(pids: set[int]) -> float:
            total = 0
            for pid in pids:
                f = table.get(pid)
                if f is not None:
                    total += sum(int(v) for v in f[11:15] if v.lstrip("-").isdigit())
            return total / tick

        return CpuSnapshot(
            t=self.clock(),
            busy_s=(user + nice + system + irq + softirq) / tick,
            idle_s=(idle + iowait) / tick,
            steal_s=steal / tick,
            suite_s=cpu_s(suite_tree),
            server_s=cpu_s(server_tree) if self.server_pid else None,
            throttle_events=_throttle_events(),
        )

    def start(self) -> None:
        self._start = self.snapshot()

    def stop(self) -> HostConditions | None:
        """The conditions since ``start``; None where the kernel offers no counters."""
        end, begin, self._start = self.snapshot(), self._start, None
        if begin is None or end is None:
            return None
        return between(begin, end, self.cores, load_average(self.proc), governor(), self.place)


async def wait_for_quiet(sampler: HostSampler, limit_s: float, say: Callable[[str], None]) -> tuple[float, bool]:
    """Wait, at most ``limit_s``, for a window of ``QUIET_WINDOW_S`` in which others took under ``OTHERS_CORES``.

    Between cases the server idles, so only what others take counts, not what is left idle. Returns
    the seconds waited and whether the machine was quiet; a machine without counters is taken as quiet.
    """
    began, said = time.monotonic(), False
    while True:
        sampler.start()
        await asyncio.sleep(QUIET_WINDOW_S)
        window = sampler.stop()
        waited = time.monotonic() - began
        if window is None or window.taken_cores < OTHERS_CORES:
            return (0.0 if window is None else waited - QUIET_WINDOW_S), True
        if waited >= limit_s:
            return waited, False
        if not said:
            say(
                f"waiting for a quiet machine: others take {window.taken_cores:.2f} of {window.cores} cores "
                f"(--require-quiet, up to {limit_s:g} s)"
            )
            said = True


def contention_phrase(conditions: Sequence[HostConditions | None]) -> str | None:
    """'measured under contention in 1 of 3 cases (others took up to 0.46 of 2 cores)', or None if none was."""
    disturbed = [c for c in conditions if c is not None and c.disturbed]
    if not disturbed:
        return None
    worst = max(disturbed, key=lambda c: c.taken_cores)
    known = sum(c is not None for c in conditions)
    return (
        f"measured under contention in {len(disturbed)} of {known} case{'s' if known != 1 else ''} "
        f"(others took up to {worst.taken_cores:.2f} of {worst.cores} cores)"
    )


def between(
    begin: CpuSnapshot,
    end: CpuSnapshot,
    cores: int,
    load: float | None = None,
    governor_name: str | None = None,
    place: ServerPlace = ServerPlace.STARTED,
) -> HostConditions:
    """The conditions over two snapshots: who took the busy seconds between them."""
    suite = max(0.0, end.suite_s - begin.suite_s)
    server = None if end.server_s is None or begin.server_s is None else max(0.0, end.server_s - begin.server_s)
    busy = max(0.0, end.busy_s - begin.busy_s)
    throttles = (
        None
        if end.throttle_events is None or begin.throttle_events is None
        else max(0, end.throttle_events - begin.throttle_events)
    )
    return HostConditions(
        wall_s=max(0.0, end.t - begin.t),
        cores=cores,
        suite_s=suite,
        server_s=server,
        # the trees' times come from another counter than the machine's: never below zero
        others_s=max(0.0, busy - suite - (server or 0.0)),
        steal_s=max(0.0, end.steal_s - begin.steal_s),
        idle_s=max(0.0, end.idle_s - begin.idle_s),
        load_average=load,
        governor=governor_name,
        throttle_events=throttles,
        server_place=place,
    )


def _cpu_lines(stat: str, usable: frozenset[int]) -> list[str]:
    """/proc/stat's lines of the ``usable`` CPUs ("cpu3 ..."), or its all-CPU line where they are not listed."""
    per_cpu = [line for line in stat.splitlines() if line.startswith("cpu") and line[3:4].isdigit()]
    chosen = [line for line in per_cpu if int(line.split()[0][3:]) in usable]
    return chosen or [stat.split("\n", 1)[0]]


def load_average(proc: Path = kernel.PROC) -> float | None:
    text = kernel.read(proc / "loadavg")
    try:
        return float(text.split()[0]) if text else None
    except (ValueError, IndexError):
        return None


def governor() -> str | None:
    """The CPUs' frequency governors, each named once ("performance", "powersave,performance")."""
    found = sorted({text.strip() for path in glob.glob(GOVERNORS) if (text := kernel.read(path))})
    return ",".join(found) or None


def _throttle_events() -> int | None:
    counts = [int(t) for path in glob.glob(THROTTLE_COUNTS) if (t := (kernel.read(path) or "").strip()).isdigit()]
    return sum(counts) if counts else None
