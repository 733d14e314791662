from __future__ import annotations

import sys
import textwrap
import time
from pathlib import Path

from bench.clock import RunClock
from bench.store.run_dir import TelemetryLogs, read_telemetry
from bench.telemetry.sampler import TelemetryConfig, TelemetrySampler
from bench.telemetry.samples import GpuSample, TelemetryGap
from bench.telemetry.smi import SMI_QUERY, SmiCommandSource, SmiLineParser, query_fields, suggested_command

MIB = 1024 * 1024
LINE = "0, NVIDIA H100 80GB HBM3, 61234, 81559, 512, 97, 83, 612.45, 700.00, 71, 1980, 2619, 0x0000000000000004"


def test_noheader_nounits_line_in_the_documented_order() -> None:
    sample = SmiLineParser().parse(LINE, t=5.0)
    assert sample is not None
    assert (sample.t, sample.source, sample.gpu, sample.name) == (5.0, "command", 0, "NVIDIA H100 80GB HBM3")
    assert sample.memory_used_bytes == 61234 * MIB and sample.memory_total_bytes == 81559 * MIB
    assert (sample.gpu_util_pct, sample.memory_util_pct, sample.power_w) == (97.0, 83.0, 612.45)
    assert (sample.temperature_c, sample.sm_clock_mhz, sample.memory_clock_mhz) == (71.0, 1980.0, 2619.0)
    assert sample.throttle_reasons == "sw_power_cap"


def test_units_and_not_available_values_are_tolerated() -> None:
    parser = SmiLineParser()
    header = "index, name, memory.used [MiB], memory.total [MiB], utilization.gpu [%], power.draw [W]"
    assert parser.parse(header, 0.0) is None
    sample = parser.parse("1, RTX PRO 6000, 60000 MiB, 97887 MiB, 45 %, [N/A]", 1.0)
    assert sample is not None and sample.gpu == 1
    assert sample.memory_used_bytes == 60000 * MIB and sample.gpu_util_pct == 45.0
    assert sample.power_w is None  # "[N/A]" is missing, not zero
    assert sample.temperature_c is None  # a field the command did not ask for


def test_junk_lines_are_counted_and_skipped() -> None:
    parser = SmiLineParser()
    assert parser.parse("ssh: connect to host gpu-host port 22: Connection refused", 0.0) is None
    assert parser.parse("", 0.0) is None
    assert parser.parse("x, y, z, " * 5, 0.0) is None
    assert parser.junk_lines == 2


FAKE_SMI = textwrap.dedent(
    """
    import sys, time
    line = {line!r}
    out = sys.stdout.buffer
    for i in range(3):
        out.write((line + "\\n").encode()); out.flush(); time.sleep(0.02)
    half = len(line) // 2
    out.write(line[:half].encode()); out.flush(); time.sleep(0.05)   # a line split across writes
    out.write((line[half:] + "\\n").encode()); out.flush()
    out.write(b"garbage that is not csv\\n"); out.flush()
    sys.exit(255)  # the SSH session dies
    """
)


def test_a_dying_command_is_restarted_with_the_gap_marked(tmp_path: Path) -> None:
    script = tmp_path / "fake_smi.py"
    script.write_text(FAKE_SMI.format(line=LINE))
    samples: list[GpuSample] = []
    gaps: list[TelemetryGap] = []
    source = SmiCommandSource([sys.executable, str(script)], RunClock().now, samples.append, gaps.append)
    source.start()
    deadline = time.monotonic() + 10
    while len(gaps) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    source.stop()
    assert len(gaps) >= 2 and gaps[0].reason == "telemetry command exited with code 255"
    assert gaps[1].t_end is not None and gaps[1].t_end - gaps[1].t_start >= 0.9  # back-off doubled: 0.5 s, 1 s
    assert len(samples) >= 8 and all(s.memory_used_bytes == 61234 * MIB for s in samples)
    assert source.parser.junk_lines >= 2
    assert source.restarts >= 2


def test_a_command_that_cannot_start_is_a_gap_not_a_crash(tmp_path: Path) -> None:
    gaps: list[TelemetryGap] = []
    source = SmiCommandSource([str(tmp_path / "no-such-ssh")], RunClock().now, lambda s: None, gaps.append)
    source.start()
    deadline = time.monotonic() + 5
    while not gaps and time.monotonic() < deadline:
        time.sleep(0.02)
    source.stop()
    assert gaps and gaps[0].reason.startswith("cannot start")


def test_sampler_runs_the_command_and_writes_its_samples(tmp_path: Path) -> None:
    script = tmp_path / "fake_smi.py"
    script.write_text(FAKE_SMI.format(line=LINE))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    sampler = TelemetrySampler(
        TelemetryLogs(run_dir), RunClock(), TelemetryConfig(command=(sys.executable, str(script)))
    )
    assert sampler.start().gpu_source == "command"
    deadline = time.monotonic() + 5
    while sampler.status.gpu_samples < 4 and time.monotonic() < deadline:
        time.sleep(0.02)
    sampler.stop()
    rows = read_telemetry(run_dir, "gpu")
    assert len(rows) >= 4 and rows[0]["source"] == "command"
    assert (run_dir / "gpu.parquet").exists()


def test_suggested_command_queries_every_parsed_field() -> None:
    command = suggested_command(250)
    assert command[:3] == ["ssh", "gpu-host", "nvidia-smi"]
    assert f"--query-gpu={SMI_QUERY}" in command and command[-2:] == ["-lms", "250"]


USER_QUERY = "timestamp,name,memory.used,utilization.gpu,power.draw"
USER_SMI = textwrap.dedent(
    """
    import sys, time
    for i in range({lines}):
        print({line!r}, flush=True); time.sleep(0.01)
    time.sleep(30)  # still running: a stream of nvidia-smi -lms lines
    """
)


def _run_user_command(tmp_path: Path, line: str, said: list[str]) -> TelemetrySampler:
    script = tmp_path / "user_smi.py"
    script.write_text(USER_SMI.format(lines=5, line=line))
    # The command names its own fields, in its own order, without index: as a user writes it.
    command = (sys.executable, str(script), f"--query-gpu={USER_QUERY}", "--format=csv,noheader,nounits")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    sampler = TelemetrySampler(TelemetryLogs(run_dir), RunClock(), TelemetryConfig(command=command), say=said.append)
    sampler.start()
    return sampler


def test_a_users_own_query_is_read_in_its_own_column_order(tmp_path: Path) -> None:
    said: list[str] = []
    sampler = _run_user_command(tmp_path, "2026/11/26 04:21:13.120, NVIDIA H100 80GB HBM3, 61234, 97, 612.45", said)
    deadline = time.monotonic() + 10
    while sampler.status.gpu_samples < 5 and time.monotonic() < deadline:
        time.sleep(0.02)
    status = sampler.stop()
    assert status.gpu_samples == 5 and status.gpu_parse_problem is None and said == []
    (row, *_) = read_telemetry(tmp_path / "run", "gpu")
    assert (row["gpu"], row["name"], row["memory_used_bytes"]) == (0, "NVIDIA H100 80GB HBM3", 61234 * MIB)
    assert (row["gpu_util_pct"], row["power_w"]) == (97.0, 612.45)


def test_lines_that_never_parse_are_said_during_the_run_and_kept_in_the_status(tmp_path: Path) -> None:
    said: list[str] = []
    sampler = _run_user_command(tmp_path, "Failed to initialize NVML: Driver/library version mismatch", said)
    deadline = time.monotonic() + 10
    while not said and time.monotonic() < deadline:
        time.sleep(0.02)
    status = sampler.stop()
    assert len(said) == 1 and "none parsed as nvidia-smi CSV" in said[0]
    assert "'Failed to initialize NVML: Driver/library version mismatch'" in said[0]
    assert status.gpu_samples == 0 and status.gpu_parse_problem is not None
    assert status.gpu_reason is not None and status.gpu_reason.startswith("no GPU telemetry: GPU telemetry command")


def test_query_fields_come_from_either_spelling_of_the_option() -> None:
    assert query_fields(["nvidia-smi", "--query-gpu=index,memory.used"]) == ("index", "memory.used")
    assert query_fields(["nvidia-smi", "--query-gpu", "name,power.draw"]) == ("name", "power.draw")
    assert query_fields(["nvidia-smi", "-lms", "250"]) is None
