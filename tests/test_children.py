"""The one supervisor: a child's whole group is ended on a stop, on a bound, and when the suite is killed."""

from __future__ import annotations

import ast
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

import bench
from bench.doors.children import run_command, spawn, stop_popen, wait_gone

BENCH = Path(bench.__file__).parent


def _wait_for_file(path: Path, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and (text := path.read_text().strip()):
            return text
        time.sleep(0.02)
    raise AssertionError(f"{path} was not written within {timeout_s} s")


def wrapper_script(tmp_path: Path) -> Path:
    """A wrapper without ``exec`` (a common way to set variables): its child is the real 'server'."""
    script = tmp_path / "wrap.sh"
    pid_file = tmp_path / "grandchild.pid"
    script.write_text(f"#!/bin/sh\nsleep 300 &\necho $! > {pid_file}\nwait\n")
    script.chmod(0o755)
    return script


def test_a_stop_ends_what_the_child_forked(tmp_path: Path) -> None:
    process, child = spawn([str(wrapper_script(tmp_path))])
    grandchild = int(_wait_for_file(tmp_path / "grandchild.pid"))
    stop_popen(process, child, grace_s=5)
    assert wait_gone([process.pid, grandchild], 5), "the wrapper's child outlived the stop"


def test_a_killed_suite_leaves_no_grandchild_behind(tmp_path: Path) -> None:
    """SIGKILL reaches no handler: the watchdog, not the suite, ends the group."""
    suite = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time\nfrom bench.doors.children import spawn\n"
         f"spawn([{str(wrapper_script(tmp_path))!r}])\nprint('up', flush=True)\ntime.sleep(300)\n"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert suite.stdout is not None and suite.stdout.readline().strip() == "up"
        grandchild = int(_wait_for_file(tmp_path / "grandchild.pid"))
        suite.kill()
        suite.wait(timeout=10)
        assert wait_gone([grandchild], 10), "the server under a wrapper outlived the killed suite"
    finally:
        suite.kill()
        suite.communicate(timeout=10)  # reaps it and closes its pipe


def test_a_child_that_ignores_term_is_killed_after_the_grace(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    process, child = spawn(["sh", "-c", f"trap '' TERM; sleep 300 & echo $! > {pid_file}; wait"])
    left = int(_wait_for_file(pid_file))
    started = time.monotonic()
    stop_popen(process, child, grace_s=0.5)
    assert process.returncode == -signal.SIGKILL
    assert time.monotonic() - started < 5
    assert wait_gone([left], 5)


def test_a_bounded_command_is_ended_with_its_group_at_the_bound(tmp_path: Path) -> None:
    pid_file = tmp_path / "pid"
    done = run_command(["sh", "-c", f"sleep 300 & echo $! > {pid_file}; wait"], timeout_s=1)
    assert done.returncode is None
    assert wait_gone([int(pid_file.read_text())], 5)


def test_a_bounded_command_that_ends_keeps_what_it_started_in_the_background(tmp_path: Path) -> None:
    """A switch command that restarts a server in the background means to leave it running."""
    pid_file = tmp_path / "pid"
    done = run_command(["sh", "-c", f"sleep 300 > /dev/null 2>&1 & echo $! > {pid_file}; echo switched"], timeout_s=30)
    left = int(pid_file.read_text())
    try:
        assert done.returncode == 0 and done.stdout.strip() == "switched"
        assert not wait_gone([left], 0.3)
    finally:
        os.kill(left, signal.SIGKILL)


def test_a_command_whose_background_child_keeps_its_output_open_is_done_when_it_exits(tmp_path: Path) -> None:
    """A deploy script that starts a server without redirecting it: the server holds the command's stdout and
    stderr, and the command is still done when it exits, not when that server does."""
    pid_file = tmp_path / "pid"
    started = time.monotonic()
    done = run_command(["sh", "-c", f"sleep 300 & echo $! > {pid_file}; echo deployed; echo warn >&2"], timeout_s=60)
    left = int(pid_file.read_text())
    try:
        assert done.returncode == 0 and done.stdout.strip() == "deployed" and done.stderr.strip() == "warn"
        assert time.monotonic() - started < 30  # not the 60 s bound: it did not wait for the sleep's end
    finally:
        os.kill(left, signal.SIGKILL)


def test_a_forking_telemetry_command_leaves_nothing_after_the_run(tmp_path: Path) -> None:
    from bench.telemetry.smi import SmiCommandSource

    pid_file = tmp_path / "pid"
    command = ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; while :; do echo junk; sleep 0.05; done"]
    source = SmiCommandSource(command, now=time.monotonic, on_sample=lambda s: None, on_gap=lambda g: None)
    source.start()
    left = int(_wait_for_file(pid_file))
    source.stop()
    assert wait_gone([left], 5), "the telemetry command's child outlived the run"


STARTS = {
    "subprocess": {"Popen", "run", "call", "check_call", "check_output"},
    "asyncio": {"create_subprocess_exec", "create_subprocess_shell"},
    "os": {"fork", "forkpty", "system", "popen", "posix_spawn", "posix_spawnp", "spawnv", "spawnvp", "execv", "execvp"},
}


def _process_starts(tree: ast.AST) -> list[int]:
    """Lines that call a process-starting function (``subprocess.Popen[bytes]`` as a type is no start)."""
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and isinstance(node.func.value, ast.Name)
        and node.func.attr in STARTS.get(node.func.value.id, ())
    ]


def test_no_module_of_the_suite_starts_a_process_but_the_supervisor() -> None:
    """Developer tools (peers, the truth server) are not the suite; everything else goes through the door."""
    strays = {}
    for path in BENCH.rglob("*.py"):
        relative = path.relative_to(BENCH)
        if relative.parts[0] == "devtools" or relative == Path("doors/children.py"):
            continue
        if lines := _process_starts(ast.parse(path.read_text())):
            strays[str(relative)] = lines
    assert not strays, f"processes started outside bench.doors.children: {strays}"


@pytest.mark.parametrize("code", ["subprocess.Popen(['x'])", "asyncio.create_subprocess_exec('x')", "os.system('x')"])
def test_the_source_check_sees_a_stray_start(code: str) -> None:
    assert _process_starts(ast.parse(code))


def test_the_source_check_does_not_mistake_a_loop_or_a_type_for_a_process() -> None:
    assert not _process_starts(ast.parse("asyncio.run(main())\nx: subprocess.Popen[bytes] | None = None"))


def test_a_stop_while_the_telemetry_command_is_starting_still_ends_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Under load a stop could come after the command started but before its thread took note of
    # it: the stop found nothing to end, the thread then read the command's output for ever. Here
    # the stop is made to come in just there, every time.
    import threading

    from bench.telemetry import smi

    real_spawn = smi.spawn
    stopping = threading.Event()

    def slow_to_take_note(*args: Any, **kwargs: Any) -> Any:
        started = real_spawn(*args, **kwargs)
        stopping.wait(5)
        time.sleep(0.2)  # the stop, unless it waits for the start to be noted, has looked by now
        return started

    monkeypatch.setattr(smi, "spawn", slow_to_take_note)
    pid_file = tmp_path / "pid"
    command = ["sh", "-c", f"sleep 300 & echo $! > {pid_file}; while :; do echo junk; sleep 0.05; done"]
    source = smi.SmiCommandSource(command, now=time.monotonic, on_sample=lambda s: None, on_gap=lambda g: None)
    source.start()
    left = int(_wait_for_file(pid_file))
    stopping.set()
    source.stop()
    assert wait_gone([left], 5), "the telemetry command outlived a stop that came while it started"
