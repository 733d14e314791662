"""The door for the kernel's own files: /proc and /sys, read bounded and without blocking.

They are not files a user hands the suite (``bench.doors.files`` is for those): each is a small
text the kernel writes on read, which may vanish between a listing and a read (a process that
exits) or not exist at all on a given kernel (a VM without thermal counters, a container without
cpufreq). So a read answers None rather than raising, opens without blocking, and never takes more
than ``KERNEL_FILE_BYTES``. The process supervisor, the host-conditions sampler and the perf
harness read processes through here.
"""

from __future__ import annotations

import os
from pathlib import Path

KERNEL_FILE_BYTES = 1 << 20  # /proc/stat of a 512-CPU host is about 100 KB
PROC = Path("/proc")


def read(path: Path | str) -> str | None:
    """A kernel file's text, at most ``KERNEL_FILE_BYTES``; None where it is absent, gone or unreadable."""
    try:
        fd = os.open(str(path), os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks, left = [], KERNEL_FILE_BYTES
        while left > 0:
            chunk = os.read(fd, min(left, 65536))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    except OSError:
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("ascii", errors="replace")


def process_stat(pid: int | str, proc: Path = PROC) -> list[str] | None:
    """A process's stat fields after its command's name (state, ppid, pgrp, ... utime at [11]); None once gone.

    The name is cut at the last ``)``: a command may put spaces and parentheses in its own name.
    """
    text = read(proc / str(pid) / "stat")
    if text is None or ")" not in text:
        return None
    return text.rsplit(")", 1)[1].split()


def processes(proc: Path = PROC) -> dict[int, list[str]]:
    """Every process's stat fields (as ``process_stat``), by pid; those that ended meanwhile left out."""
    try:
        entries = [e for e in os.listdir(proc) if e.isdigit()]
    except OSError:
        return {}
    found = {}
    for entry in entries:
        fields = process_stat(entry, proc)
        if fields is not None and len(fields) > 14:
            found[int(entry)] = fields
    return found


def descendants(root: int, table: dict[int, list[str]]) -> set[int]:
    """``root`` and every process under it, by the parent pids in ``table`` (``processes()``)."""
    children: dict[int, list[int]] = {}
    for pid, fields in table.items():
        if fields[1].isdigit():
            children.setdefault(int(fields[1]), []).append(pid)
    found, todo = set(), [root]
    while todo:
        pid = todo.pop()
        if pid not in found:
            found.add(pid)
            todo.extend(children.get(pid, ()))
    return found


def tree_rss_bytes(root: int, proc: Path = PROC) -> int:
    """Resident memory of ``root`` and every process under it (``statm``'s resident pages); 0 once gone."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in descendants(root, processes(proc)):
        fields = (read(proc / str(pid) / "statm") or "").split()
        if len(fields) > 1 and fields[1].isdigit():
            total += int(fields[1]) * page
    return total
