from __future__ import annotations

import itertools
import time
from pathlib import Path

import pytest

from bench.clock import RunClock
from bench.errors import TelemetryUnavailable
from bench.store.run_dir import TelemetryLogs, read_telemetry
from bench.telemetry.nvml import NvmlReader, throttle_names
from bench.telemetry.sampler import TelemetryConfig, TelemetrySampler
from tests.fake_nvml import FakeGpu, make_nvml

GIB = 1024**3


def test_reads_every_field_in_its_unit() -> None:
    gpu = FakeGpu(
        used=[60 * GIB], util=[97], power_mw=612_500, temperature=71, throttle=0x4, processes=[(4242, 59 * GIB)]
    )
    (sample,) = NvmlReader(make_nvml(gpu), server_pid=4242).read(t=123.0)
    assert sample.t == 123.0 and sample.source == "nvml" and sample.gpu == 0
    assert sample.name == "NVIDIA H100 80GB HBM3"
    assert (sample.memory_used_bytes, sample.memory_total_bytes) == (60 * GIB, 80 * GIB)
    assert (sample.gpu_util_pct, sample.memory_util_pct) == (97.0, 48.0)
    assert (sample.power_w, sample.power_limit_w) == (612.5, 700.0)
    assert sample.temperature_c == 71.0 and sample.sm_clock_mhz == 1980.0
    assert sample.throttle_reasons == "sw_power_cap"
    assert sample.process_memory_bytes == 59 * GIB


def test_unsupported_fields_are_missing_not_zero() -> None:
    gpu = FakeGpu(power_mw=None, unsupported={"temperature", "throttle", "util"})
    (sample,) = NvmlReader(make_nvml(gpu)).read(t=0.0)
    assert sample.power_w is None and sample.temperature_c is None
    assert sample.throttle_reasons is None and sample.gpu_util_pct is None
    assert sample.memory_used_bytes is not None


def test_no_library_is_a_clear_reason() -> None:
    with pytest.raises(TelemetryUnavailable, match="NVML unavailable: NVML Shared Library Not Found"):
        NvmlReader(make_nvml(FakeGpu(), library_missing=True))


def test_throttle_bits_have_nvidia_smi_names() -> None:
    assert throttle_names(0) == ""
    assert throttle_names(0x1 | 0x40) == "gpu_idle,hw_thermal_slowdown"


def wait_for(condition: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not met in time")


def test_sampler_records_a_gap_when_a_gpu_vanishes_and_resumes(tmp_path: Path) -> None:
    gpu = FakeGpu(used=[GIB, 2 * GIB, 3 * GIB], lost_after=3, back_after=8)
    sampler = TelemetrySampler(
        TelemetryLogs(tmp_path), RunClock(), TelemetryConfig(interval_s=0.05), nvml_module=make_nvml(gpu)
    )
    assert sampler.start().gpu_source == "nvml"
    wait_for(lambda: gpu.reads >= 11)
    status = sampler.stop()
    (gap,) = status.gaps
    assert gap["source"] == "nvml" and "stopped answering NVML" in gap["reason"]
    assert gap["t_end"] is not None and gap["t_end"] > gap["t_start"]
    rows = read_telemetry(tmp_path, "gpu")
    assert [r["memory_used_bytes"] for r in rows[:2]] == [GIB, 2 * GIB]
    assert all(a["t"] < b["t"] for a, b in itertools.pairwise(rows))
    assert len(rows) == status.gpu_samples >= 5
    assert (tmp_path / "gpu.parquet").exists()


def test_without_nvml_the_run_records_no_gpu_telemetry_and_why(tmp_path: Path) -> None:
    sampler = TelemetrySampler(
        TelemetryLogs(tmp_path), RunClock(), TelemetryConfig(), nvml_module=make_nvml(FakeGpu(), library_missing=True)
    )
    status = sampler.start()
    sampler.stop()
    assert status.gpu_source == "none"
    assert status.gpu_reason is not None and status.gpu_reason.startswith("no GPU telemetry: NVML unavailable")
    assert not (tmp_path / "gpu.jsonl").exists()


def test_gpu_telemetry_can_be_switched_off(tmp_path: Path) -> None:
    status = TelemetrySampler(TelemetryLogs(tmp_path), RunClock(), TelemetryConfig(gpu="none")).start()
    assert status.gpu_source == "none" and "switched off" in (status.gpu_reason or "")


def test_interval_has_a_floor(tmp_path: Path) -> None:
    assert TelemetrySampler(TelemetryLogs(tmp_path), RunClock(), TelemetryConfig(interval_s=0.001)).interval_s == 0.05
