"""GPU and server telemetry during runs: NVML, a remote nvidia-smi command, llama-server /metrics."""

from bench.telemetry.figures import BandwidthFigure, GpuCaseFigures
from bench.telemetry.sampler import TelemetryConfig, TelemetrySampler, TelemetryStatus
from bench.telemetry.samples import GpuSample, MetricsSample, TelemetryGap

__all__ = [
    "BandwidthFigure",
    "GpuCaseFigures",
    "GpuSample",
    "MetricsSample",
    "TelemetryConfig",
    "TelemetryGap",
    "TelemetrySampler",
    "TelemetryStatus",
]
