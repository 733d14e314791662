"""One supervisor for every child process the suite starts.

The server, its helpers, a GPU telemetry command, load workers and a variant's switch
command all start through :func:`spawn` (or :func:`spawn_async` on an event loop), so
each of them:

- runs in a session of its own: its pid is its process group, and a stop (:meth:`Child.stop`)
  reaches whatever it forked (a wrapper script without ``exec``, ``sh -c 'a & b'``);
- gets SIGKILL from the kernel when the suite dies (Linux's parent-death signal);
- is watched by a *watchdog*: a small ``sh`` in a session of its own, blocked reading a pipe
  whose only writer is the suite. When the suite ends in any way, SIGKILL included, the
  kernel closes that pipe and the watchdog ends the child's whole group (TERM, then KILL a
  second later). The parent-death signal alone reaches only the direct child: the real
  server under a wrapper script would live on with PPID 1 and skew the next night.

Nothing in the suite starts a process any other way (``tests/test_children.py`` checks
the source for stray ``Popen`` and ``create_subprocess``).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import IO, Any

from bench.doors import kernel

PR_SET_PDEATHSIG = 1
WATCHDOG_SHELL = "/bin/sh"
# $1 is the group to end. `read` returns when the suite's end of the pipe closes: at its exit,
# however it exits. The second kill catches what ignored or outlived the TERM.
# `kill -SIG -PGID`, not `kill -SIG -- -PGID`: dash, Debian's /bin/sh, takes no "--".
WATCHDOG_SCRIPT = 'read _ignored; kill -TERM "-$1" 2>/dev/null; sleep 1; kill -KILL "-$1" 2>/dev/null'
DEFAULT_GRACE_S = 10.0

Stream = int | IO[Any] | None


def die_with_parent() -> Callable[[], None] | None:
    """For ``preexec_fn``: the child gets SIGKILL when the suite dies, even by SIGKILL (Linux).

    The signal is tied to the thread that starts the child, which for the suite is one that
    outlives the run. libc is loaded here, in the parent: the child only makes the call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the suite died before the signal was armed
            os._exit(1)

    return arm


@dataclass(slots=True)
class _Watchdog:
    """The watchdog process and the suite's end of its pipe; released on a clean stop."""

    process: subprocess.Popen[bytes] | None
    pipe_fd: int | None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)  # a stop may come from two threads

    @classmethod
    def watch(cls, group: int) -> _Watchdog:
        if not os.path.exists(WATCHDOG_SHELL):
            return cls(None, None)  # not a POSIX system: the parent-death signal is all there is
        read_fd, write_fd = os.pipe()  # non-inheritable: no other child holds the suite's end
        try:
            process = subprocess.Popen(  # the one Popen outside spawn(): the watchdog must outlive us
                [WATCHDOG_SHELL, "-c", WATCHDOG_SCRIPT, "bench-watchdog", str(group)],
                stdin=read_fd,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )
        except OSError:
            os.close(write_fd)
            return cls(None, None)
        finally:
            os.close(read_fd)
        return cls(process, write_fd)

    def release(self) -> None:
        """Stand the watchdog down without letting it act (the group is already stopped)."""
        with self._lock:
            process, self.process = self.process, None
            fd, self.pipe_fd = self.pipe_fd, None
        if process is not None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            process.wait()
        if fd is not None:
            os.close(fd)


@dataclass(slots=True)
class Child:
    """A started child: its pid (and process group) and its watchdog."""

    pid: int
    argv: tuple[str, ...]
    _watchdog: _Watchdog = field(repr=False)
    _exited: Callable[[], int | None] = field(repr=False)

    @property
    def returncode(self) -> int | None:
        return self._exited()

    def signal_group(self, number: signal.Signals) -> bool:
        """Send a signal to the child's whole group; False when no member is left."""
        try:
            os.killpg(self.pid, number)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def group_alive(self) -> bool:
        """Whether a member of the group still runs (a zombie waiting for a reaper does not)."""
        if os.path.isdir("/proc/self"):
            return any(_running_in_group(entry, self.pid) for entry in os.listdir("/proc") if entry.isdigit())
        try:
            os.killpg(self.pid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def stop(self, wait: Callable[[float], bool], grace_s: float = DEFAULT_GRACE_S) -> None:
        """TERM the group, give it ``grace_s`` to exit, KILL what is left; then release the watchdog.

        ``wait(timeout)`` waits for the child itself and says whether it exited. The rest of the
        group gets the same grace: a wrapper script dies at once, the server it started may still
        be shutting down.
        """
        try:
            self.signal_group(signal.SIGTERM)
            deadline = time.monotonic() + grace_s
            exited = wait(grace_s)
            while exited and self.group_alive() and time.monotonic() < deadline:
                time.sleep(0.02)
            self.signal_group(signal.SIGKILL)
            if not exited:
                wait(grace_s)
        finally:
            self.release()

    def release(self) -> None:
        """Stand the watchdog down (the group is stopped, or was never started)."""
        self._watchdog.release()


def spawn(
    argv: Sequence[str],
    *,
    stdin: Stream = subprocess.DEVNULL,
    stdout: Stream = None,
    stderr: Stream = None,
    env: dict[str, str] | None = None,
    cwd: str | os.PathLike[str] | None = None,
) -> tuple[subprocess.Popen[bytes], Child]:
    """Start ``argv`` supervised (see the module docstring). OSError if it cannot be started."""
    process = subprocess.Popen(
        list(argv),
        stdin=stdin,
        stdout=stdout,
        stderr=stderr,
        env=env,
        cwd=cwd,
        start_new_session=True,
        preexec_fn=die_with_parent(),
    )
    watchdog = _Watchdog.watch(process.pid)
    return process, Child(process.pid, tuple(argv), watchdog, process.poll)


def stop_popen(process: subprocess.Popen[bytes], child: Child, grace_s: float = DEFAULT_GRACE_S) -> None:
    """Stop a child started by :func:`spawn`, and reap it."""

    def wait(timeout: float) -> bool:
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    child.stop(wait, grace_s)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=grace_s)


async def spawn_async(
    argv: Sequence[str], *, stdin: Stream = subprocess.DEVNULL, stdout: Stream = None, stderr: Stream = None
) -> tuple[asyncio.subprocess.Process, Child]:
    """Start ``argv`` on the running event loop, supervised as :func:`spawn` does."""
    process = await asyncio.create_subprocess_exec(
        *argv, stdin=stdin, stdout=stdout, stderr=stderr, start_new_session=True, preexec_fn=die_with_parent()
    )
    watchdog = _Watchdog.watch(process.pid)
    return process, Child(process.pid, tuple(argv), watchdog, lambda: process.returncode)


async def stop_async(process: asyncio.subprocess.Process, child: Child, grace_s: float) -> None:
    """Stop a child started by :func:`spawn_async`, and reap it, without blocking the loop."""
    try:
        if process.returncode is None:
            child.signal_group(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), grace_s)
        child.signal_group(signal.SIGKILL)  # the child, if it is still there, and what it left in its group
        await process.wait()
    finally:
        child.release()


def describe_exit(returncode: int | None) -> str:
    """``exited with code 1`` or ``was killed by SIGILL (illegal instruction)``."""
    if returncode is None:
        return "exited"
    if returncode >= 0:
        return f"exited with code {returncode}"
    try:
        number = signal.Signals(-returncode)
    except ValueError:
        return f"was killed by signal {-returncode}"
    meaning = signal.strsignal(number) or ""
    return f"was killed by {number.name} ({meaning.lower()})" if meaning else f"was killed by {number.name}"


def wait_gone(pids: Sequence[int], timeout_s: float) -> bool:
    """Whether every pid has exited (or become a zombie) within ``timeout_s``; for tests and checks."""
    deadline = time.monotonic() + timeout_s
    while any(_running(kernel.process_stat(pid)) for pid in pids):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)
    return True


def _running(fields: list[str] | None) -> bool:
    """Not gone, and not a zombie waiting for a reaper."""
    return fields is not None and len(fields) > 0 and fields[0] not in ("Z", "X")


def _running_in_group(entry: str, group: int) -> bool:
    fields = kernel.process_stat(entry)
    return _running(fields) and fields is not None and len(fields) > 2 and fields[2] == str(group)


@dataclass(frozen=True, slots=True)
class Finished:
    """What a bounded command left: its exit code (None if it was stopped at its bound) and output."""

    returncode: int | None
    stdout: str
    stderr: str


OUTPUT_KEPT_BYTES = 16 * 2**20  # of each stream a command wrote, the end: a build's log, a deploy's last words


def run_command(argv: Sequence[str], *, timeout_s: float, cwd: str | os.PathLike[str] | None = None) -> Finished:
    """Run ``argv`` to its end, or stop its whole group at ``timeout_s``; OSError if it cannot start.

    What a command that ended by itself left running is its own business (a switch command
    that restarts a server in the background means to leave it): only a command stopped at
    its bound, or by an interrupt, has its group ended. Its output goes to files, not pipes:
    a server it started in the background holds its stdout and stderr open, and a reader
    waiting for the pipes' end would wait for that server's.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        process, child = spawn(argv, stdout=out, stderr=err, cwd=cwd)
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            stop_popen(process, child, grace_s=2.0)
            return Finished(None, _written(out), _written(err))
        except BaseException:
            stop_popen(process, child, grace_s=2.0)
            raise
        child.release()
        return Finished(process.returncode, _written(out), _written(err))


def _written(stream: IO[bytes]) -> str:
    """What a command wrote to one of its files: the last ``OUTPUT_KEPT_BYTES`` of it."""
    size = stream.seek(0, os.SEEK_END)
    stream.seek(max(0, size - OUTPUT_KEPT_BYTES))
    return stream.read(OUTPUT_KEPT_BYTES).decode(errors="replace")
