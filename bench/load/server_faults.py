"""Why a server the suite started died while starting, and the one safe retry where the cause is known.

A child that dies of a signal has a negative return code (-4 is SIGILL); a user needs the
signal's name (``bench.doors.children.describe_exit``) and what to do. One cause is common and
known: a CPU that advertises AMX (``amx_tile`` in /proc/cpuinfo) inside a VM that faults on
tile instructions. llama.cpp's native CPU build then takes its AMX path for repacked weights
and dies at the first tile load (SIGILL on ``tileloadd``, or a general-protection fault,
SIGSEGV, on ``ldtilecfg``).
The same binary runs with weight repacking off (``--no-repack``, env ``LLAMA_ARG_REPACK=0``),
so the suite retries once with that flag and says so wherever the run is recorded.
"""

from __future__ import annotations

import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")
FAULT_SIGNALS = (signal.SIGILL, signal.SIGSEGV, signal.SIGBUS)
NO_REPACK = "--no-repack"
# every spelling llama.cpp's argument parser takes for repacking on or off
REPACK_FLAGS = ("--repack", "-nr", "--no-repack")
AMX_FLAGS = ("amx_tile", "amx_int8", "amx_bf16")


@dataclass(frozen=True, slots=True)
class SafeRetry:
    """Flags to add for one more start, and the sentence that says why."""

    extra_args: tuple[str, ...]
    reason: str


def cpu_flags(cpuinfo: Path = CPUINFO) -> frozenset[str]:
    """The CPU's feature flags as the kernel lists them (empty where it cannot be read)."""
    try:
        with cpuinfo.open(encoding="ascii", errors="replace") as lines:
            for line in lines:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return frozenset(value.split())
    except OSError:
        pass
    return frozenset()


def names_repack(args: Sequence[str]) -> bool:
    return any(arg.split("=", 1)[0] in REPACK_FLAGS for arg in args)


def fault_signal(returncode: int | None) -> signal.Signals | None:
    """The CPU fault (SIGILL, SIGSEGV, SIGBUS) a process died of, if it died of one."""
    if returncode is None or returncode >= 0 or -returncode not in FAULT_SIGNALS:
        return None
    return signal.Signals(-returncode)


def safe_retry(returncode: int | None, args: Sequence[str], flags: frozenset[str]) -> SafeRetry | None:
    """The retry for a start that died of a CPU fault on an AMX CPU, unless repacking was already set."""
    fault = fault_signal(returncode)
    amx = sorted(flag for flag in AMX_FLAGS if flag in flags)
    if fault is None or not amx or names_repack(args):
        return None
    name = fault.name
    return SafeRetry(
        (NO_REPACK,),
        f"llama-server was killed by {name} while starting on a CPU that advertises AMX ({' '.join(amx)}): "
        f"a VM that faults on AMX tile instructions does this to llama.cpp's repacked weights; started again "
        f"with {NO_REPACK} (weights not repacked: CPU figures may be lower than on a machine where AMX works)",
    )


def advice(returncode: int | None, args: Sequence[str]) -> str:
    """What to try after a start that died, where the suite has no safe retry left."""
    if fault_signal(returncode) is None:
        return ""
    tried = names_repack(args)
    return (
        "an instruction the CPU advertises may fault in this VM: "
        + ("" if tried else f"try --server-args with {NO_REPACK} added, or ")
        + "a llama.cpp build without native CPU features (CMAKE_ARGS='-DGGML_NATIVE=OFF', see docs/install.md)"
    )
