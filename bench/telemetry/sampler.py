"""The background sampler: GPU and /metrics samples on the run clock, written as they come.

One thread ticks every ``interval_s`` (default 250 ms, floor 50 ms) and reads
NVML and the server's ``/metrics``; a remote telemetry command runs in its own
thread at its own cadence. Samples go to a ``TelemetrySink`` as they arrive: the store's
``TelemetryLogs`` appends them to the run directory (a crash keeps them) and writes Parquet
tables when the run ends. The thread only sleeps and
makes a few short calls, so it costs well under 1 % of a core at 250 ms (the
benchmark in tests/test_telemetry_benchmarks.py measures it).

Sources are chosen in this order: a configured command; NVML when the suite runs
on a host with an NVIDIA driver; otherwise none, with the reason recorded.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

import httpx

from bench.clock import RunClock
from bench.errors import ConfigError, TelemetryUnavailable
from bench.telemetry.nvml import NvmlReader
from bench.telemetry.prom import parse_prometheus
from bench.telemetry.samples import GpuSample, MetricsSample, TelemetryGap
from bench.telemetry.smi import SmiCommandSource

MIN_INTERVAL_S = 0.05
DEFAULT_INTERVAL_S = 0.25
GPU_MODES = ("auto", "nvml", "none")
SCRAPE_LIMIT_S = 2.0  # one /metrics read, whole
MAX_SCRAPE_BYTES = 4 * 2**20  # llama-server's is a few KiB


class GpuSource(StrEnum):
    NONE = "none"  # gpu_reason says why
    NVML = "nvml"  # in-process, on the GPU host
    COMMAND = "command"  # a user's nvidia-smi command, e.g. over ssh


class MetricsSource(StrEnum):
    NONE = "none"  # metrics_reason says why
    PROMETHEUS = "prometheus"  # the server's /metrics


@dataclass(frozen=True, slots=True)
class TelemetryConfig:
    interval_s: float = DEFAULT_INTERVAL_S
    gpu: str = "auto"  # "auto": NVML if it works here; "nvml": NVML or a clear reason; "none"
    command: tuple[str, ...] | None = None  # remote nvidia-smi CSV command (argument list)
    metrics: bool = True  # scrape the server's /metrics when it serves them

    def __post_init__(self) -> None:
        if not 0 < self.interval_s < math.inf:
            raise ConfigError(
                f"--telemetry-interval must be a positive, finite number of seconds; got {self.interval_s}"
            )
        if self.gpu not in GPU_MODES:
            raise ConfigError(f"--gpu-telemetry must be one of {', '.join(GPU_MODES)}; got {self.gpu!r}")
        if self.command is not None and not self.command:
            raise ConfigError("--gpu-telemetry-cmd is empty")


@dataclass
class TelemetryStatus:
    gpu_source: GpuSource = GpuSource.NONE
    gpu_reason: str | None = None
    metrics_source: MetricsSource = MetricsSource.NONE
    metrics_reason: str | None = None
    gpu_samples: int = 0
    metrics_samples: int = 0
    gaps: list[dict[str, Any]] = field(default_factory=list)
    interval_s: float = DEFAULT_INTERVAL_S
    gpu_parse_problem: str | None = None  # lines came from the command and none parsed: one of them, quoted

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


class TelemetrySink(Protocol):
    """Where samples go as they come (``bench.store.run_dir.TelemetryLogs`` in a run)."""

    def gpu(self, row: dict[str, Any]) -> None: ...

    def metrics(self, row: dict[str, Any]) -> None: ...

    def close(self) -> None: ...


class TelemetrySampler:
    def __init__(
        self,
        sink: TelemetrySink,
        clock: RunClock,
        config: TelemetryConfig,
        *,
        metrics_url: str | None = None,
        api_key: str = "EMPTY",
        server_pid: int | None = None,
        nvml_module: Any = None,
        say: Callable[[str], None] = lambda _: None,
    ) -> None:
        self.sink = sink
        self.clock = clock
        self.config = config
        self.interval_s = max(config.interval_s, MIN_INTERVAL_S)
        self.status = TelemetryStatus(interval_s=self.interval_s)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._nvml: NvmlReader | None = None
        self._command: SmiCommandSource | None = None
        self._open_gap: TelemetryGap | None = None
        self._http: httpx.Client | None = None
        self._metrics_url = metrics_url
        self._api_key = api_key
        self._server_pid = server_pid
        self._nvml_module = nvml_module
        self._say = say

    # ------------------------------------------------------------ sources
    def _choose_gpu_source(self) -> None:
        config = self.config
        if config.command:
            self._command = SmiCommandSource(
                config.command, self.clock.now, self._write_sample, self._write_gap, on_problem=self._say
            )
            self.status.gpu_source = GpuSource.COMMAND
            return
        if config.gpu == "none":
            self.status.gpu_reason = "GPU telemetry switched off (--gpu-telemetry none)"
            return
        try:
            self._nvml = NvmlReader(self._nvml_module, server_pid=self._server_pid)
            self.status.gpu_source = GpuSource.NVML
        except TelemetryUnavailable as exc:
            self.status.gpu_reason = f"no GPU telemetry: {exc}; on a client, pass --gpu-telemetry-cmd"

    def _choose_metrics_source(self) -> None:
        if not self.config.metrics or not self._metrics_url:
            self.status.metrics_reason = "not requested"
            return
        self._http = httpx.Client(
            timeout=SCRAPE_LIMIT_S, headers={"Authorization": f"Bearer {self._api_key}"}, trust_env=False
        )
        try:
            status, text = self._scrape()
        except httpx.HTTPError as exc:
            self.status.metrics_reason = f"/metrics unreachable: {type(exc).__name__}"
            return
        except TelemetryUnavailable as exc:
            self.status.metrics_reason = f"/metrics unreachable: {exc}"
            return
        if status != 200 or not parse_prometheus(text):
            self.status.metrics_reason = (
                f"/metrics answered HTTP {status}: start llama-server with --metrics to record it"
            )
            return
        self.status.metrics_source = MetricsSource.PROMETHEUS

    def _scrape(self) -> tuple[int, str]:
        """One /metrics read, bounded as a whole in time and size: a trickling server cannot hold the thread."""
        assert self._http is not None and self._metrics_url is not None
        deadline = time.monotonic() + SCRAPE_LIMIT_S
        parts: list[bytes] = []
        size = 0
        with self._http.stream("GET", self._metrics_url) as response:
            for chunk in response.iter_bytes():
                parts.append(chunk)
                size += len(chunk)
                if size > MAX_SCRAPE_BYTES:
                    raise TelemetryUnavailable(f"/metrics larger than {MAX_SCRAPE_BYTES // 2**20} MiB")
                if time.monotonic() > deadline:
                    raise TelemetryUnavailable(f"/metrics took longer than {SCRAPE_LIMIT_S:g} s")
            return response.status_code, b"".join(parts).decode("utf-8", errors="replace")

    # ------------------------------------------------------------ writing
    def _gpu_line(self, row: dict[str, Any]) -> None:
        """One GPU sample or gap to the sink; the caller holds the lock."""
        self.sink.gpu(row)

    def _write_sample(self, sample: GpuSample) -> None:
        with self._lock:
            if self._open_gap is not None:
                self._close_gap(sample.t)
            self._gpu_line(sample.to_json())
            self.status.gpu_samples += 1

    def _write_gap(self, gap: TelemetryGap) -> None:
        with self._lock:
            self._gpu_line(gap.to_json())
            self.status.gaps.append(gap.to_json())

    def _close_gap(self, t: float) -> None:
        gap = self._open_gap
        assert gap is not None
        closed = TelemetryGap(gap.t_start, t, gap.source, gap.reason)
        self._open_gap = None
        self._gpu_line(closed.to_json())
        self.status.gaps.append(closed.to_json())

    # ------------------------------------------------------------ running
    def start(self) -> TelemetryStatus:
        self._choose_gpu_source()
        self._choose_metrics_source()
        if self._command is not None:
            self._command.start()
        if self._nvml is not None or self.status.metrics_source is not MetricsSource.NONE:
            self._thread = threading.Thread(target=self._loop, name="telemetry-sampler", daemon=True)
            self._thread.start()
        return self.status

    def _loop(self) -> None:
        next_tick = self.clock.now()
        while not self._stop.is_set():
            self._tick()
            next_tick += self.interval_s
            # fixed cadence: a slow read does not push every later sample back
            self._stop.wait(max(0.0, next_tick - self.clock.now()))

    def _tick(self) -> None:
        t = self.clock.now()
        if self._nvml is not None:
            try:
                samples = self._nvml.read(t)
            except TelemetryUnavailable as exc:
                with self._lock:
                    if self._open_gap is None:
                        self._open_gap = TelemetryGap(t, None, "nvml", str(exc))
            else:
                for sample in samples:
                    self._write_sample(sample)
        if self._http is not None and self.status.metrics_source is not MetricsSource.NONE and self._metrics_url:
            try:
                status, text = self._scrape()
            except (httpx.HTTPError, TelemetryUnavailable):
                return
            if status == 200:
                values = parse_prometheus(text)
                if values:
                    scrape = MetricsSample(t, values)
                    with self._lock:
                        self.sink.metrics(scrape.to_json())
                        self.status.metrics_samples += 1

    def stop(self) -> TelemetryStatus:
        """Stop every source and close the sink (which writes the Parquet tables)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._command is not None:
            self._command.stop()
            self.status.gpu_parse_problem = self._command.parser.problem
            if self.status.gpu_parse_problem and not self.status.gpu_samples:
                self.status.gpu_reason = f"no GPU telemetry: {self.status.gpu_parse_problem}"
        with self._lock:
            if self._open_gap is not None:
                self._close_gap(self.clock.now())
            self.sink.close()
        if self._nvml is not None:
            self._nvml.close()
        if self._http is not None:
            self._http.close()
        return self.status
