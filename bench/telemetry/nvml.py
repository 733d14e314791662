"""Local GPU telemetry through NVML (the ``nvidia-ml-py`` package, imported as ``pynvml``).

``NvmlReader`` is built around the module object so tests can hand it a fake
with the same functions and exceptions; nothing else in the suite touches NVML.
"""

from __future__ import annotations

import contextlib
from types import ModuleType
from typing import Any

from bench.errors import TelemetryUnavailable
from bench.telemetry.samples import GpuSample

# NVML's clock-event (throttle) reason bits, by the names nvidia-smi prints.
_THROTTLE_BITS = {
    0x1: "gpu_idle",
    0x2: "applications_clocks_setting",
    0x4: "sw_power_cap",
    0x8: "hw_slowdown",
    0x10: "sync_boost",
    0x20: "sw_thermal_slowdown",
    0x40: "hw_thermal_slowdown",
    0x80: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
}


def _import_pynvml() -> Any:
    try:
        import pynvml
    except ImportError:
        raise TelemetryUnavailable("nvidia-ml-py is not installed") from None
    return pynvml


def throttle_names(mask: int) -> str:
    return ",".join(name for bit, name in _THROTTLE_BITS.items() if mask & bit)


class NvmlReader:
    """Reads every GPU on this host; ``server_pid`` picks out the llama-server's own memory."""

    source = "nvml"

    def __init__(self, nvml: ModuleType | None = None, server_pid: int | None = None) -> None:
        self.nvml: Any = nvml if nvml is not None else _import_pynvml()
        self.server_pid = server_pid
        try:
            self.nvml.nvmlInit()
            count = self.nvml.nvmlDeviceGetCount()
        except self.nvml.NVMLError as exc:
            raise TelemetryUnavailable(f"NVML unavailable: {exc}") from None
        if count == 0:
            raise TelemetryUnavailable("NVML found no GPU")
        self.handles = [self.nvml.nvmlDeviceGetHandleByIndex(i) for i in range(count)]
        self.names = [self._call(self.nvml.nvmlDeviceGetName, h) for h in self.handles]

    def _call(self, function: Any, *args: Any) -> Any:
        """One NVML query; None where the GPU does not support it (never a made-up 0)."""
        try:
            return function(*args)
        except self.nvml.NVMLError_NotSupported:
            return None
        except self.nvml.NVMLError_NoPermission:
            return None

    def read(self, t: float) -> list[GpuSample]:
        """A sample per GPU. Raises TelemetryUnavailable if a GPU is lost (NVML says so)."""
        nvml = self.nvml
        samples = []
        for index, handle in enumerate(self.handles):
            try:
                samples.append(self._read_one(t, index, handle))
            except nvml.NVMLError as exc:
                raise TelemetryUnavailable(f"GPU {index} stopped answering NVML: {exc}") from None
        return samples

    def _read_one(self, t: float, index: int, handle: Any) -> GpuSample:
        nvml = self.nvml
        memory = self._call(nvml.nvmlDeviceGetMemoryInfo, handle)
        util = self._call(nvml.nvmlDeviceGetUtilizationRates, handle)
        power_mw = self._call(nvml.nvmlDeviceGetPowerUsage, handle)
        limit_mw = self._call(nvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        temperature = self._call(nvml.nvmlDeviceGetTemperature, handle, nvml.NVML_TEMPERATURE_GPU)
        sm_clock = self._call(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_SM)
        mem_clock = self._call(nvml.nvmlDeviceGetClockInfo, handle, nvml.NVML_CLOCK_MEM)
        reasons = self._call(nvml.nvmlDeviceGetCurrentClocksThrottleReasons, handle)
        energy = self._call(nvml.nvmlDeviceGetTotalEnergyConsumption, handle)
        persistence = self._call(nvml.nvmlDeviceGetPersistenceMode, handle)
        processes = self._call(nvml.nvmlDeviceGetComputeProcesses, handle)
        return GpuSample(
            t=t,
            source=self.source,
            gpu=index,
            name=_text(self.names[index]),
            memory_used_bytes=_int(getattr(memory, "used", None)),
            memory_total_bytes=_int(getattr(memory, "total", None)),
            memory_reserved_bytes=_int(getattr(memory, "reserved", None)),
            gpu_util_pct=_float(getattr(util, "gpu", None)),
            memory_util_pct=_float(getattr(util, "memory", None)),
            power_w=power_mw / 1000.0 if power_mw is not None else None,
            power_limit_w=limit_mw / 1000.0 if limit_mw is not None else None,
            temperature_c=_float(temperature),
            sm_clock_mhz=_float(sm_clock),
            memory_clock_mhz=_float(mem_clock),
            throttle_reasons=throttle_names(reasons) if reasons is not None else None,
            process_memory_bytes=self._process_memory(processes),
            energy_mj=_int(energy),
            persistence_mode=None if persistence is None else bool(persistence == nvml.NVML_FEATURE_ENABLED),
            other_processes=self._others(processes),
        )

    def _process_memory(self, processes: Any) -> int | None:
        if self.server_pid is None:
            return None
        for process in processes or ():
            if getattr(process, "pid", None) == self.server_pid:
                return _int(getattr(process, "usedGpuMemory", None))
        return None

    def _others(self, processes: Any) -> int | None:
        """Compute processes other than the server; None where the server's pid or the list is unknown."""
        if self.server_pid is None or processes is None:
            return None
        return sum(1 for p in processes if getattr(p, "pid", None) != self.server_pid)

    def close(self) -> None:
        with contextlib.suppress(self.nvml.NVMLError):
            self.nvml.nvmlShutdown()


def _int(value: object) -> int | None:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _float(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return value if isinstance(value, str) else None
