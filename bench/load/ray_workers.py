"""Load workers as Ray actors: the same workers as ``bench.load.workers``, placed across a cluster's nodes.

``--ray ADDRESS`` (or ``auto``) connects this process to a running Ray cluster as its driver and
runs each worker as an actor that asks for one CPU, spread over the nodes. A worker streams each
record back as its request ends (a Ray generator), so the driver stores it as it does its own:
crash-safe, one run directory, telemetry sampled here as always. A worker whose actor dies loses
only the requests it had in flight, and the run says which.

Clocks: a worker on another machine reads another monotonic clock. Every per-request figure is a
duration on the worker's own clock; only start times need the driver's, so the worker's clock is
mapped onto it with an offset measured over a few round trips before the case (the shortest
round trip bounds its error) and again after it, and both go into run.json. No figure depends on
machines' clocks agreeing.

Ray is an optional extra (``pip install 'llama-server-bench[distributed]'``); this module imports
it only when a run asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from bench.clock import RunClock
from bench.errors import BenchError, ConfigError
from bench.load import messages
from bench.load.messages import Done, Ending, WorkerEnd, WorkerMessage, drain, silence_note
from bench.load.workers import (
    READY_S,
    ClockOffset,
    Placement,
    WorkerBackend,
    WorkersOutcome,
    WorkerSpec,
    outcome_of,
    serve,
)
from bench.records import RequestRecord
from bench.transport.client import is_loopback
from bench.version import __version__

CONNECT_S = 5.0  # a cluster's address that takes longer to accept a connection is not there
ROUND_TRIPS = 5  # clock offsets keep the shortest of these


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ConfigError(
            "--ray needs Ray: pip install 'llama-server-bench[distributed]' on this machine and every node"
        ) from None
    return ray


def connect(address: str) -> None:
    """Join the Ray cluster at ``address`` (host:port of its head, or ``auto``) as its driver."""
    options: dict[str, Any] = {}
    if address != "auto":
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ConfigError(f"--ray takes the head node's HOST:PORT (or auto); got {address!r}")
        try:
            socket.create_connection((host.strip("[]"), int(port)), CONNECT_S).close()
        except OSError as exc:
            raise ConfigError(
                f"no Ray cluster answers at {address} ({exc.strerror or exc}): start one with "
                "'ray start --head', or give the address it printed"
            ) from None
        if is_loopback(host):
            # Ray swaps a loopback address for this machine's outward one, where a cluster that listens
            # on loopback only is not: this asks it to keep to loopback. Ray reads it when it is imported.
            os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
            options["_node_ip_address"] = "127.0.0.1"
    ray = _ray()
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR", **options)
    except (ConnectionError, RuntimeError) as exc:  # no cluster there; another Ray version there
        raise ConfigError(f"cannot join the Ray cluster at {address}: {exc}") from None


def disconnect() -> None:
    try:
        import ray
    except ImportError:  # never joined: connect said why
        return
    if ray.is_initialized():
        ray.shutdown()


def nodes_with_a_cpu() -> int:
    """The cluster's live nodes that can hold a worker: one worker each, by default."""
    return sum(1 for node in _ray().nodes() if node.get("Alive") and node.get("Resources", {}).get("CPU", 0) >= 1)


class LoadWorker:
    """One worker, as a Ray actor (async: its event loop times the requests)."""

    async def where(self) -> tuple[str, int, str, str]:
        return socket.gethostname(), os.getpid(), _ray().util.get_node_ip_address(), __version__

    async def clock(self) -> float:
        # monotonic here, perf_counter in RunClock: the same CLOCK_MONOTONIC on Linux, where Ray clusters run
        return time.monotonic()

    async def run(self, spec: WorkerSpec) -> Any:
        """Stream the worker's messages as ``serve`` sends them; the last is ``Done``."""
        queue: asyncio.Queue[WorkerMessage | _Failed] = asyncio.Queue()
        task = asyncio.ensure_future(serve(spec, queue.put_nowait))

        def ended(task: asyncio.Future[None]) -> None:
            if task.cancelled() or task.exception() is not None:
                queue.put_nowait(_Failed())

        task.add_done_callback(ended)
        while True:
            message = await queue.get()
            if isinstance(message, _Failed):
                await task  # raises the worker's error in the driver
                return
            yield message
            if isinstance(message, Done):
                return


@dataclass(frozen=True, slots=True)
class _Failed:
    """The actor's own marker: its serve task ended in an error, which the driver gets raised."""


async def _next(stream: Any) -> WorkerMessage | None:
    """The actor's next message, or None at the stream's end."""
    try:
        ref = await stream.__anext__()
    except StopAsyncIteration:
        return None
    message: WorkerMessage = await ref
    return message


async def _offset(actor: Any) -> ClockOffset:
    """The actor's monotonic clock minus ours, from the shortest of a few round trips."""
    best: tuple[float, float] | None = None
    for _ in range(ROUND_TRIPS):
        sent = time.monotonic()
        theirs = await actor.clock.remote()
        back = time.monotonic()
        if best is None or back - sent < best[0]:
            best = (back - sent, theirs - (sent + back) / 2)
    assert best is not None
    return ClockOffset(offset_s=best[1], uncertainty_s=best[0] / 2)


def _mapped(spec: WorkerSpec, offset: ClockOffset) -> WorkerSpec:
    """The spec on the worker's clock: its run clock reads the driver's time, its arrivals fall on its own."""
    clock = RunClock(wall_start=spec.clock.wall_start, perf_start=spec.clock.perf_start + offset.offset_s)
    arrivals = None if spec.arrivals is None else {i: at + offset.offset_s for i, at in spec.arrivals.items()}
    return replace(spec, clock=clock, arrivals=arrivals)


class RayPool:
    """Workers as Ray actors, one CPU each, spread over the cluster's nodes."""

    def __init__(self, actors: list[Any], placements: list[Placement]) -> None:
        self.actors = actors
        self.placements = placements

    @classmethod
    async def start(cls, count: int, endpoint: str) -> RayPool:
        ray = _ray()
        worker = ray.remote(LoadWorker).options(num_cpus=1, scheduling_strategy="SPREAD", max_restarts=0)
        pool = cls([worker.remote() for _ in range(count)], [])
        try:
            wheres = await asyncio.wait_for(asyncio.gather(*(a.where.remote() for a in pool.actors)), READY_S)
        except TimeoutError:
            await pool.close()
            raise ConfigError(
                f"the Ray cluster did not place {count} load workers of one CPU each within {READY_S:g} s: "
                f"it has {nodes_with_a_cpu()} node(s) with a CPU; ask for fewer with --workers, or add nodes"
            ) from None
        except ray.exceptions.RayError as exc:  # a node without the suite, say
            await pool.close()
            raise BenchError(f"a Ray load worker could not start: {exc}") from None
        here = ray.util.get_node_ip_address()
        for k, (host, pid, ip, version) in enumerate(wheres):
            if version != __version__:
                await pool.close()
                raise ConfigError(f"node {ip} has llama-server-bench {version}, this machine {__version__}: "
                                  "install the same version on every node")  # fmt: skip
            if ip != here and is_loopback(endpoint):
                await pool.close()
                raise ConfigError(f"the endpoint {endpoint} is this machine's loopback, which a worker on node "
                                  f"{ip} cannot reach: give an address every node reaches")  # fmt: skip
            offset = await _offset(pool.actors[k])
            pool.placements.append(Placement(k, WorkerBackend.RAY, host, pid, node=ip, clock_at_start=offset))
        return pool

    async def run(self, specs: Sequence[WorkerSpec], sink: Callable[[RequestRecord], None]) -> WorkersOutcome:
        drained = await asyncio.gather(
            *(
                self._drain(actor, _mapped(spec, placement.clock_at_start or ClockOffset(0.0, 0.0)), sink)
                for actor, spec, placement in zip(self.actors, specs, self.placements, strict=True)
            )
        )
        ends = [end for end, _ in drained]
        notes = []
        for k, (end, ending) in enumerate(drained):
            placement = self.placements[k]
            if end is None:
                what = silence_note(messages.SILENCE_S) if ending is Ending.SILENT else "died before its end"
                notes.append(
                    f"worker {k} (Ray, node {placement.node}, pid {placement.pid}) {what}: the requests "
                    "it had in flight were lost (those it finished are kept)"
                )
                continue
            self.placements[k] = replace(placement, clock_at_end=await _offset(self.actors[k]))
            if (drift := _drift(self.placements[k])) is not None:
                notes.append(drift)
        return outcome_of(specs[0].case, ends, tuple(notes), self.placements)

    async def _drain(
        self, actor: Any, spec: WorkerSpec, sink: Callable[[RequestRecord], None]
    ) -> tuple[WorkerEnd | None, Ending]:
        ray = _ray()
        stream = actor.run.remote(spec).__aiter__()

        async def end_silent() -> None:
            # bounded as a process worker is: a live actor beats every HEARTBEAT_S, one silent for
            # SILENCE_S is stopped or stuck, and is ended rather than waited on for ever
            ray.kill(actor)

        try:
            return await drain(lambda: _next(stream), sink, end_silent, messages.SILENCE_S)
        except ray.exceptions.RayActorError:
            return None, Ending.EXITED
        except ray.exceptions.RayTaskError as exc:
            raise BenchError(f"a Ray load worker failed: {exc}") from None

    async def close(self) -> None:
        ray = _ray()
        for actor in self.actors:
            with contextlib.suppress(Exception):
                ray.kill(actor)


def _drift(placement: Placement) -> str | None:
    start, end = placement.clock_at_start, placement.clock_at_end
    if start is None or end is None:
        return None
    moved = abs(end.offset_s - start.offset_s)
    if moved <= start.uncertainty_s + end.uncertainty_s:
        return None
    return (f"worker {placement.worker}'s clock (node {placement.node}) moved {moved * 1e3:.2f} ms against this "
            "machine's over the case: its requests' start times are within that")  # fmt: skip
