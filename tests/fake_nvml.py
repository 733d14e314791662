"""A stand-in for the ``pynvml`` module: the same functions and exceptions, scripted values."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any


class NVMLError(Exception):
    pass


class NVMLError_NotSupported(NVMLError):
    pass


class NVMLError_NoPermission(NVMLError):
    pass


class NVMLError_GpuIsLost(NVMLError):
    pass


class NVMLError_LibraryNotFound(NVMLError):
    pass


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    total: int = 80 * 1024**3
    used: list[int] = field(default_factory=lambda: [1024**3])  # one value per read, the last repeats
    util: list[int] = field(default_factory=lambda: [50])
    power_mw: int | None = 300_000
    temperature: int = 60
    throttle: int = 0
    processes: list[tuple[int, int]] = field(default_factory=list)  # (pid, bytes)
    energy_mj: list[int] | None = None  # the total energy counter, one value per read; None: not supported
    persistence: int = 1  # NVML_FEATURE_ENABLED
    energy_from_power: bool = False  # the counter rises with power_mw over wall time since the first read
    _first_read: float | None = None
    unsupported: set[str] = field(default_factory=set)
    lost_after: int | None = None  # reads before the GPU vanishes
    back_after: int | None = None  # reads after which it answers again
    reads: int = 0

    def next(self, series: list[int]) -> int:
        return series[min(max(self.reads - 1, 0), len(series) - 1)]


def make_nvml(*gpus: FakeGpu, library_missing: bool = False) -> Any:
    """A module-like object; each nvmlDeviceGetMemoryInfo call advances that GPU's read count."""

    def check(gpu: FakeGpu, what: str) -> None:
        if what in gpu.unsupported:
            raise NVMLError_NotSupported(what)
        lost = gpu.lost_after is not None and gpu.reads >= gpu.lost_after
        back = gpu.back_after is not None and gpu.reads >= gpu.back_after
        if lost and not back:
            raise NVMLError_GpuIsLost("GPU is lost")

    def init() -> None:
        if library_missing:
            raise NVMLError_LibraryNotFound("NVML Shared Library Not Found")

    def memory(gpu: FakeGpu) -> Any:
        gpu.reads += 1
        check(gpu, "memory")
        return SimpleNamespace(total=gpu.total, used=gpu.next(gpu.used), free=gpu.total - gpu.next(gpu.used))

    def utilisation(gpu: FakeGpu) -> Any:
        check(gpu, "util")
        return SimpleNamespace(gpu=gpu.next(gpu.util), memory=gpu.next(gpu.util) // 2)

    def power(gpu: FakeGpu) -> int:
        check(gpu, "power")
        if gpu.power_mw is None:
            raise NVMLError_NotSupported("power")
        return gpu.power_mw

    def energy(gpu: FakeGpu) -> int:
        check(gpu, "energy")
        if gpu.energy_from_power and gpu.power_mw is not None:
            now = time.monotonic()
            gpu._first_read = gpu._first_read if gpu._first_read is not None else now
            return round(gpu.power_mw * (now - gpu._first_read))  # mW x s = mJ
        if gpu.energy_mj is None:
            raise NVMLError_NotSupported("energy")
        return gpu.next(gpu.energy_mj)

    def simple(what: str, value: Any) -> Any:
        def call(gpu: FakeGpu, *args: Any) -> Any:
            check(gpu, what)
            return value(gpu) if callable(value) else value

        return call

    return SimpleNamespace(
        NVMLError=NVMLError,
        NVMLError_NotSupported=NVMLError_NotSupported,
        NVMLError_NoPermission=NVMLError_NoPermission,
        NVML_TEMPERATURE_GPU=0,
        NVML_CLOCK_SM=1,
        NVML_CLOCK_MEM=2,
        NVML_FEATURE_ENABLED=1,
        nvmlInit=init,
        nvmlShutdown=lambda: None,
        nvmlDeviceGetCount=lambda: len(gpus),
        nvmlDeviceGetHandleByIndex=lambda i: gpus[i],
        nvmlDeviceGetName=lambda gpu: gpu.name,
        nvmlDeviceGetMemoryInfo=memory,
        nvmlDeviceGetUtilizationRates=utilisation,
        nvmlDeviceGetPowerUsage=power,
        nvmlDeviceGetEnforcedPowerLimit=simple("power_limit", 700_000),
        nvmlDeviceGetTemperature=simple("temperature", lambda gpu: gpu.temperature),
        nvmlDeviceGetClockInfo=simple("clocks", 1980),
        nvmlDeviceGetCurrentClocksThrottleReasons=simple("throttle", lambda gpu: gpu.throttle),
        nvmlDeviceGetTotalEnergyConsumption=energy,
        nvmlDeviceGetPersistenceMode=simple("persistence", lambda gpu: gpu.persistence),
        nvmlDeviceGetComputeProcesses=simple(
            "processes", lambda gpu: [SimpleNamespace(pid=p, usedGpuMemory=b) for p, b in gpu.processes]
        ),
    )
