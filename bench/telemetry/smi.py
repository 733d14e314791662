"""Remote GPU telemetry: a user-given command that streams nvidia-smi CSV.

The usual case is a client machine and a GPU behind SSH::

    --gpu-telemetry-cmd "ssh gpu-host nvidia-smi --query-gpu=FIELDS --format=csv,noheader,nounits -lms 250"

with FIELDS as ``SMI_QUERY`` below (``bench telemetry-command`` prints it).
Any field order and any subset works: the columns are read from the command's
own ``--query-gpu=`` and, with ``--format=csv``, from the header line it prints.
Without ``index`` every line is GPU 0. When lines arrive and none parse, the
source says so once (``problem``), with the first offending line. The command
runs as an argument list, never through a shell. Lines are parsed as they
arrive; a partial line waits for its end; junk is counted and skipped; units in
values ("81559 MiB", "250.3 W", "45 %") are tolerated; "[N/A]" and
"[Not Supported]" become None. When the command dies (an SSH session drops)
it is restarted with back-off and the gap is recorded.
"""

from __future__ import annotations

import io
import re
import subprocess
import threading
from collections.abc import Callable, Sequence

from bench.doors.children import Child, describe_exit, spawn, stop_popen
from bench.telemetry.samples import GpuSample, TelemetryGap

STOP_GRACE_S = 5.0
SMI_FIELDS = (
    "index",
    "name",
    "memory.used",
    "memory.total",
    "memory.reserved",
    "utilization.gpu",
    "utilization.memory",
    "power.draw",
    "power.limit",
    "temperature.gpu",
    "clocks.sm",
    "clocks.mem",
    "clocks_event_reasons.active",
)
SMI_QUERY = ",".join(SMI_FIELDS)
MIB = 1024 * 1024
_MISSING = {"", "[n/a]", "n/a", "[not supported]", "not supported", "[unknown error]", "[insufficient permissions]"}
_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?")
# header names nvidia-smi prints, with units, mapped back to query fields
_HEADER_ALIASES = {"clocks_throttle_reasons.active": "clocks_event_reasons.active"}


def suggested_command(interval_ms: int = 250, host: str = "gpu-host") -> list[str]:
    return [
        "ssh",
        host,
        "nvidia-smi",
        f"--query-gpu={SMI_QUERY}",
        "--format=csv,noheader,nounits",
        "-lms",
        str(interval_ms),
    ]


def _header_field(name: str) -> str:
    field = name.strip().split(" [", 1)[0].strip().lower()
    return _HEADER_ALIASES.get(field, field)


def _number(raw: str) -> float | None:
    text = raw.strip()
    if text.lower() in _MISSING:
        return None
    match = _NUMBER.search(text)
    return float(match.group()) if match else None


def _mib_bytes(raw: str) -> int | None:
    value = _number(raw)
    if value is None:
        return None
    text = raw.lower()
    if "gib" in text:
        return int(value * 1024 * MIB)
    if "kib" in text:
        return int(value * 1024)
    return int(value * MIB)  # nvidia-smi reports memory in MiB


def _throttle(raw: str) -> str | None:
    value = raw.strip()
    if value.lower() in _MISSING:
        return None
    try:
        mask = int(value, 16) if value.lower().startswith("0x") else int(value)
    except ValueError:
        return value  # already names
    from bench.telemetry.nvml import throttle_names

    return throttle_names(mask)


def query_fields(command: Sequence[str]) -> tuple[str, ...] | None:
    """The fields a command's ``--query-gpu=a,b,c`` (or ``--query-gpu a,b,c``) asks for, if it names them."""
    for position, arg in enumerate(command):
        value = None
        if arg.startswith("--query-gpu="):
            value = arg.split("=", 1)[1]
        elif arg == "--query-gpu" and position + 1 < len(command):
            value = command[position + 1]
        if value:
            return tuple(_header_field(name) for name in value.split(",") if name.strip())
    return None


MAX_QUOTED_LINE = 200
PROBLEM_AFTER_LINES = 3  # a header or a stray line is normal; three in a row with no sample is not


class SmiLineParser:
    """Turns CSV lines into samples; learns the column order from a header if there is one."""

    def __init__(self, fields: Sequence[str] = SMI_FIELDS) -> None:
        self.fields = list(fields)
        self.junk_lines = 0
        self.parsed = 0
        self.first_junk: str | None = None

    def _junk(self, text: str) -> None:
        self.junk_lines += 1
        if self.first_junk is None:
            self.first_junk = text[:MAX_QUOTED_LINE]

    @property
    def problem(self) -> str | None:
        """Why no sample came, when lines arrived and none parsed."""
        if self.parsed or not self.junk_lines:
            return None
        return (
            f"GPU telemetry command printed {self.junk_lines} line(s) and none parsed as nvidia-smi CSV "
            f"with columns {','.join(self.fields)}; first: {self.first_junk!r}"
        )

    def parse(self, line: str, t: float) -> GpuSample | None:
        text = line.strip()
        if not text:
            return None
        cells = [c.strip() for c in text.split(",")]
        if any(c.lower().startswith(("index", "memory.used", "name")) for c in cells[:2]):
            self.fields = [_header_field(c) for c in cells]
            return None
        if len(cells) != len(self.fields):
            self._junk(text)
            return None
        row = dict(zip(self.fields, cells, strict=True))
        index = _number(row.get("index", "0"))  # one GPU when the query has no index
        if index is None:
            self._junk(text)
            return None
        self.parsed += 1
        return GpuSample(
            t=t,
            source="command",
            gpu=int(index),
            name=row.get("name"),
            memory_used_bytes=_mib_bytes(row["memory.used"]) if "memory.used" in row else None,
            memory_total_bytes=_mib_bytes(row["memory.total"]) if "memory.total" in row else None,
            memory_reserved_bytes=_mib_bytes(row["memory.reserved"]) if "memory.reserved" in row else None,
            gpu_util_pct=_number(row.get("utilization.gpu", "")),
            memory_util_pct=_number(row.get("utilization.memory", "")),
            power_w=_number(row.get("power.draw", "")),
            power_limit_w=_number(row.get("power.limit", "")),
            temperature_c=_number(row.get("temperature.gpu", "")),
            sm_clock_mhz=_number(row.get("clocks.sm", "")),
            memory_clock_mhz=_number(row.get("clocks.mem", "")),
            throttle_reasons=_throttle(row.get("clocks_event_reasons.active", "")),
        )


class SmiCommandSource:
    """Runs the command in a thread, restarting it with back-off, until ``stop``."""

    source = "command"

    def __init__(
        self,
        command: Sequence[str],
        now: Callable[[], float],
        on_sample: Callable[[GpuSample], None],
        on_gap: Callable[[TelemetryGap], None],
        *,
        max_backoff_s: float = 10.0,
        on_problem: Callable[[str], None] = lambda _: None,
    ) -> None:
        if not command:
            raise ValueError("empty telemetry command")
        self.command = list(command)
        self.now = now
        self.on_sample = on_sample
        self.on_gap = on_gap
        self.max_backoff_s = max_backoff_s
        self.parser = SmiLineParser(query_fields(command) or SMI_FIELDS)
        self.on_problem = on_problem
        self._told = False
        self.restarts = 0
        self._stop = threading.Event()
        # held while a command starts and while stop looks for it: a stop that came between the
        # start and the thread's taking note of it found nothing to stop, and the command ran on
        self._starting = threading.Lock()
        self._process: subprocess.Popen[bytes] | None = None
        self._child: Child | None = None
        self._thread = threading.Thread(target=self._loop, name="gpu-telemetry-command", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            started = self.now()
            reason = self._run_once()
            if self._stop.is_set():
                return
            self.restarts += 1
            if self.now() - started > 30:
                backoff = 0.5  # it ran a good while: a fresh failure, not a crash loop
            gap_start = self.now()
            self._stop.wait(backoff)
            self.on_gap(TelemetryGap(gap_start, self.now(), self.source, reason))
            backoff = min(backoff * 2, self.max_backoff_s)

    def _run_once(self) -> str:
        with self._starting:
            if self._stop.is_set():
                return "stopped before it started"
            try:
                # supervised: a command that forks (a pipeline, `sh -c 'a & b'`) leaves nothing behind
                process, child = spawn(self.command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
            except OSError as exc:
                return f"cannot start {self.command[0]}: {exc.strerror or exc}"
            self._process, self._child = process, child
        stdout = process.stdout
        assert isinstance(stdout, io.BufferedReader)  # stdout=PIPE, default buffering
        pending = b""
        # read1 returns what has arrived, so a sample is timed when its line lands
        while chunk := stdout.read1(65536):
            t = self.now()
            pending += chunk
            *lines, pending = pending.split(b"\n")
            for line in lines:
                sample = self.parser.parse(line.decode("utf-8", errors="replace"), t)
                if sample is not None:
                    self.on_sample(sample)
                elif not self._told and self.parser.junk_lines >= PROBLEM_AFTER_LINES and self.parser.problem:
                    self._told = True
                    self.on_problem(self.parser.problem)
        code = process.wait()
        stdout.close()
        stop_popen(process, child, grace_s=STOP_GRACE_S)  # what it left in its group
        return f"telemetry command {describe_exit(code)}"

    def stop(self) -> None:
        with self._starting:
            self._stop.set()
            process, child = self._process, self._child
        if process is not None and child is not None:
            stop_popen(process, child, grace_s=STOP_GRACE_S)
        self._thread.join(timeout=10)
