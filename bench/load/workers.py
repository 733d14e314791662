"""Load workers in processes: a case's streams, or its arrivals, spread over several event loops.

One event loop stamps every token it receives; past a few thousand token events a second its own
lag shows in TTFT and ITL (``bench.transport.lag`` measures it). ``--workers N`` runs a closed-loop
case's streams, or an open loop's arrivals, in N processes, each with its own event loop and
connections: plain ``python -m bench.load._worker`` processes that say they are ready once they have
imported the suite, read their work from stdin and write length-prefixed pickles to stdout (they
trust only their parent). The prompts are built here, once; each worker takes every N-th of them
and its share of the streams, sends each record here as its request ends (this process stores it
as it does its own: crash-safe, one file) and its lag at the end. All share the run's clock: it
counts from a monotonic clock every process on the machine reads alike. A worker that dies loses
only the requests it had in flight, and the run says which; one whose run is killed stops.

An open loop's arrivals are drawn here, one schedule, once the workers are up, and a trace's times
are set here the same way; each worker sends its share on time. A conversation (and a trace's
session) stays with one worker, which builds its later turns from the answers with its own copy of
the run's prompt builder. ``bench.load.ray_workers`` runs the same workers as Ray actors.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import pickle
import random
import socket
import struct
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, BinaryIO, Protocol

from bench.clock import RunClock
from bench.doors.children import Child, spawn_async, stop_async
from bench.doors.redact import Redactor
from bench.errors import BenchError
from bench.inputs.scenarios import Case, Pattern
from bench.load import messages
from bench.load.loadgen import CaseOutcome, CaseRunner, combined
from bench.load.messages import (
    HEARTBEAT_S,
    Beat,
    Done,
    Ending,
    Ready,
    RecordDone,
    WorkerEnd,
    WorkerMessage,
    drain,
    silence_note,
)
from bench.load.workload import CasePrompts, PromptBuilder
from bench.records import RequestRecord
from bench.transport.client import ChatClient
from bench.transport.lag import ClientLag

MAX_WORKERS = 64
STOP_S = 10.0


def supports(case: Case) -> bool:
    """Cases workers can share: closed loops (conversations too), Poisson arrivals and traces, several at once."""
    return case.pattern in (Pattern.CONCURRENT, Pattern.POISSON, Pattern.TRACE) and case.concurrency > 1


START_S = 1.0  # an open loop's first arrival is this far ahead of the schedule's drawing: the workers are up

# What one worker's event loop times within 1 ms at p99 (TTFT and every gap), alone on one core of
# this project's 2-core machine at 219.71 t/s a stream, in three runs out of three (160 was not):
# docs/measured/lean-lane-capacity-run*.md. A worker that shares its core with the server does far
# worse (docs/performance.md), so the automatic choice keeps a core for a server on this machine and
# never runs more workers than cores.
STREAMS_PER_WORKER = 128


def auto_workers(case: Case, *, server_here: bool, cores: int | None = None) -> int:
    """Workers for a case when --workers is not given: its streams over one worker's, one core each.

    ``server_here``: the endpoint is on this machine (loopback), so one of its cores is the server's.
    """
    available = (cores if cores is not None else len(os.sched_getaffinity(0))) - (1 if server_here else 0)
    return max(1, min(available, MAX_WORKERS, math.ceil(case.concurrency / STREAMS_PER_WORKER)))


def arrivals(indices: Sequence[int], start: float, rate: float, rng: random.Random) -> dict[int, float]:
    """One Poisson schedule for all workers (the loop's clock: one monotonic clock for every process)."""
    out, at = {}, start
    for index in indices:
        out[index] = at
        at += rng.expovariate(rate)
    return out


@dataclass(frozen=True, slots=True)
class WorkerSpec:
    """Everything one worker needs, sent to it whole (it shares nothing with this process)."""

    worker: int
    endpoint: str
    api_key: str
    model: str | None
    timeout_s: float
    max_body_bytes: int
    redactor: Redactor
    clock: RunClock
    run_id: str
    case: Case
    prompts: CasePrompts
    indices: tuple[int, ...]
    streams: int
    seed: int
    round_number: int
    arrivals: dict[int, float] | None = None  # an open loop or a trace: its requests' times (the loop's clock)
    builder: PromptBuilder | None = None  # conversations: builds their later turns (bound to the worker's client)


def split(case: Case, indices: Sequence[int], workers: int) -> list[tuple[tuple[int, ...], int]]:
    """Each worker's prompts and streams (the case's, shared as evenly as they go).

    Every N-th prompt (a conversation is one prompt: its turns stay together), or for a trace every
    N-th session, in order of first appearance: a session's later turns are built from its answers.
    """
    count = max(1, min(workers, case.concurrency, len(indices)))
    streams = [case.concurrency // count + (1 if k < case.concurrency % count else 0) for k in range(count)]
    if case.trace is None:
        return [(tuple(indices[k::count]), streams[k]) for k in range(count)]
    rows = case.trace.rows
    owner: dict[tuple[str, int], int] = {}  # a session (or a lone line) -> its worker
    shares: list[list[int]] = [[] for _ in range(count)]
    for index in indices:  # in time order: each worker replays its lines in order
        session = rows[index].session
        key = ("session", session) if session is not None else ("line", index)
        shares[owner.setdefault(key, len(owner) % count)].append(index)
    return [(tuple(share), streams[k]) for k, share in enumerate(shares)]


FRAME = struct.Struct("!I")  # each message a length-prefixed pickle
READY_S = 60.0  # a worker imports the suite before it says it is ready: seconds on a loaded machine
ORPHANED = 3  # a worker's exit code when its run ended (or was killed) before it did


class WorkerBackend(StrEnum):
    """Where workers run: processes on this machine, or Ray actors across a cluster (bench.load.ray_workers)."""

    PROCESS = "process"
    RAY = "ray"


@dataclass(frozen=True, slots=True)
class ClockOffset:
    """A worker's monotonic clock minus this process's, from the shortest of a few round trips."""

    offset_s: float
    uncertainty_s: float  # half that round trip: the true offset is within this of offset_s

    def to_json(self) -> dict[str, float]:
        return {"offset_ms": self.offset_s * 1e3, "uncertainty_ms": self.uncertainty_s * 1e3}


@dataclass(frozen=True, slots=True)
class Placement:
    """Where one worker ran, and how its clock related to the run's (None: this machine's own clock)."""

    worker: int
    backend: WorkerBackend
    host: str
    pid: int
    node: str | None = None
    clock_at_start: ClockOffset | None = None
    clock_at_end: ClockOffset | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "worker": self.worker,
            "backend": self.backend.value,
            "host": self.host,
            "pid": self.pid,
            "node": self.node,
            "clock_at_start": None if self.clock_at_start is None else self.clock_at_start.to_json(),
            "clock_at_end": None if self.clock_at_end is None else self.clock_at_end.to_json(),
        }


@dataclass(frozen=True, slots=True)
class WorkersOutcome:
    outcome: CaseOutcome
    lag: ClientLag | None  # the worst worker's (by p99), with the token events all of them handled
    notes: tuple[str, ...]
    placements: tuple[Placement, ...] = ()


class WorkerPool(Protocol):
    """Workers that are up and waiting for their work: processes here, or Ray actors."""

    placements: list[Placement]

    async def run(self, specs: Sequence[WorkerSpec], sink: Callable[[RequestRecord], None]) -> WorkersOutcome:
        """Give worker k ``specs[k]``; ``sink`` gets every record as it arrives."""
        ...

    async def close(self) -> None: ...


def _frame(message: WorkerMessage) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return FRAME.pack(len(data)) + data


def _send(stream: BinaryIO, message: WorkerMessage) -> None:
    stream.write(_frame(message))
    stream.flush()


class _Drained(asyncio.Protocol):
    def __init__(self) -> None:
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class PipeOut:
    """Messages framed onto a pipe without ever blocking the event loop.

    A worker that wrote its records with blocking writes would stop all of its streams whenever the
    run is slow to read them (a pipe holds 64 KiB: a few records of 2,048 tokens). The frames wait in
    the transport's buffer instead, and ``aclose`` returns once every one has been written.
    """

    def __init__(self, transport: asyncio.WriteTransport, protocol: _Drained) -> None:
        self._transport = transport
        self._protocol = protocol

    @classmethod
    async def open(cls, fd: int) -> PipeOut:
        pipe = os.fdopen(fd, "wb", buffering=0, closefd=False)
        transport, protocol = await asyncio.get_running_loop().connect_write_pipe(_Drained, pipe)
        return cls(transport, protocol)

    def send(self, message: WorkerMessage) -> None:
        self._transport.write(_frame(message))

    async def aclose(self) -> None:
        self._transport.close()  # once what is buffered has been written
        await self._protocol.closed


async def serve_on_pipe(spec: WorkerSpec, fd: int) -> None:
    """``serve``, its messages onto the pipe ``fd`` (the worker's stdout) through a ``PipeOut``."""
    out = await PipeOut.open(fd)
    try:
        await serve(spec, out.send)
    finally:
        await out.aclose()


def main() -> None:
    """A worker process (``python -m bench.load._worker``): ready, its spec on stdin, records and end on stdout.

    Its stdin stays open until the run has its end: when it closes first (the run was killed), the
    worker stops at once instead of loading the server for a run nobody records.
    """
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the frames
    _send(out, Ready(os.getpid(), socket.gethostname()))
    try:
        spec = pickle.load(sys.stdin.buffer)
    except EOFError:  # the run ended before it had work for this worker
        sys.exit(ORPHANED)
    threading.Thread(target=_exit_when_orphaned, daemon=True).start()
    out.flush()
    asyncio.run(serve_on_pipe(spec, out.fileno()))


def _exit_when_orphaned() -> None:
    # the raw descriptor: a thread blocked in the buffered stdin would hold its lock at exit
    while os.read(sys.stdin.fileno(), 4096):
        pass
    os._exit(ORPHANED)


async def serve(spec: WorkerSpec, send: Callable[[WorkerMessage], None]) -> None:
    """One worker's share of a case: a ``RecordDone`` for each request, beats, then ``Done``."""
    async with ChatClient(
        spec.endpoint,
        api_key=spec.api_key,
        model=spec.model,
        max_connections=spec.streams + 2,
        timeout_s=spec.timeout_s,
        clock=spec.clock,
        redactor=spec.redactor,
        max_body_bytes=spec.max_body_bytes,
    ) as client:
        if spec.builder is not None:
            spec.builder.bind(client)
        runner = CaseRunner(
            client,
            spec.run_id,
            spec.case,
            spec.prompts,
            lambda record: send(RecordDone(record)),
            seed=spec.seed + spec.worker,
            builder=spec.builder,
            streams=spec.streams,
            arrivals=spec.arrivals,
        )
        beat = asyncio.ensure_future(_beat(send))
        try:
            outcome = await runner.run(spec.indices, warm=False, round_number=spec.round_number)
        finally:
            beat.cancel()
        lag = runner.client_lag()
        send(Done(outcome, None if lag is None else lag.to_json()))


async def _beat(send: Callable[[WorkerMessage], None]) -> None:
    """A ``Beat`` every HEARTBEAT_S from the worker's loop: the parent's proof that it is not stuck."""
    while True:
        send(Beat())
        await asyncio.sleep(HEARTBEAT_S)


class ProcessPool:
    """Workers as ``python -m bench.load._worker`` processes on this machine, sharing its monotonic clock.

    Plain subprocesses, not multiprocessing: a spawned multiprocessing child imports the caller's
    main script again, and a script that calls the suite without a ``__main__`` guard would run twice.
    Each starts through the suite's supervisor (``bench.doors.children``), and each is bounded from here:
    a worker silent for ``SILENCE_S`` (stopped, or stuck in a call that never returns; a live one
    beats every ``HEARTBEAT_S``) is ended, named, and its requests in flight are counted as lost.
    """

    def __init__(self, processes: list[asyncio.subprocess.Process], placements: list[Placement]) -> None:
        self.processes = processes
        self.placements = placements
        self.children: list[Child] = []

    @classmethod
    async def start(cls, count: int) -> ProcessPool:
        processes: list[asyncio.subprocess.Process] = []
        pool = cls(processes, [])
        try:
            pipe = asyncio.subprocess.PIPE
            for _ in range(count):
                process, child = await spawn_async(
                    [sys.executable, "-m", "bench.load._worker"], stdin=pipe, stdout=pipe, stderr=None
                )
                processes.append(process)
                pool.children.append(child)
            for k, process in enumerate(processes):
                ready = await asyncio.wait_for(_message(process), READY_S)
                if not isinstance(ready, Ready):
                    raise BenchError(
                        f"load worker {k} exited with code {await process.wait()} before it was ready "
                        "(its error is above)"
                    )
                pool.placements.append(Placement(k, WorkerBackend.PROCESS, host=ready.host, pid=ready.pid))
        except TimeoutError:
            await pool.close()
            raise BenchError(f"a load worker process was not ready within {READY_S:g} s") from None
        except BaseException:
            await pool.close()
            raise
        return pool

    async def run(self, specs: Sequence[WorkerSpec], sink: Callable[[RequestRecord], None]) -> WorkersOutcome:
        for process, spec in zip(self.processes, specs, strict=True):
            assert process.stdin is not None
            process.stdin.write(pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL))
            with contextlib.suppress(ConnectionError):  # one that died already is named below
                await process.stdin.drain()
        ends = await asyncio.gather(*(self._drain(k, sink) for k in range(len(self.processes))))
        notes = tuple(
            f"worker {k} {why}: the requests it had in flight were lost (those it finished are kept)"
            for k, (end, why) in enumerate(ends)
            if end is None
        )
        return outcome_of(specs[0].case, [end for end, _ in ends], notes, self.placements)

    async def _drain(self, k: int, sink: Callable[[RequestRecord], None]) -> tuple[WorkerEnd | None, str]:
        """One worker's frames: records to ``sink``; its outcome and lag, or None and why it has none."""
        process = self.processes[k]

        async def end_silent() -> None:
            await stop_async(process, self.children[k], grace_s=1.0)

        end, ending = await drain(lambda: _message(process), sink, end_silent, messages.SILENCE_S)
        if ending is Ending.SILENT:
            return end, silence_note(messages.SILENCE_S)
        if ending is Ending.EXITED:
            return end, f"exited with code {await process.wait()} before its end"
        return end, "ended"

    async def close(self) -> None:
        for process in self.processes:
            if process.stdin is not None:
                process.stdin.close()  # a worker that is still sending stops: its run has ended
        for process, child in zip(self.processes, self.children, strict=False):
            if process.returncode is None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(process.wait(), STOP_S)
            await stop_async(process, child, grace_s=1.0)  # it had its STOP_S: what is left is ended


async def run_in_workers(specs: Sequence[WorkerSpec], sink: Callable[[RequestRecord], None]) -> WorkersOutcome:
    """Run each spec in a worker process of its own; ``sink`` gets every record as it arrives."""
    pool = await ProcessPool.start(len(specs))
    try:
        return await pool.run(specs, sink)
    finally:
        await pool.close()


async def _message(process: asyncio.subprocess.Process) -> WorkerMessage | None:
    assert process.stdout is not None
    try:
        head = await process.stdout.readexactly(FRAME.size)
        message: WorkerMessage = pickle.loads(await process.stdout.readexactly(FRAME.unpack(head)[0]))
    except asyncio.IncompleteReadError:
        return None
    return message


def outcome_of(
    case: Case,
    ends: Sequence[WorkerEnd | None],
    notes: tuple[str, ...],
    placements: Sequence[Placement],
) -> WorkersOutcome:
    """The case's outcome from its workers' ends (None for a worker that died before its end)."""
    finished = [end for end in ends if end is not None]
    outcomes = [outcome for outcome, _ in finished]
    return WorkersOutcome(
        combined(outcomes, case.case_id), _worst([lag for _, lag in finished]), notes, tuple(placements)
    )


def _worst(lags: Sequence[ClientLag | None]) -> ClientLag | None:
    known = [lag for lag in lags if lag is not None]
    if not known:
        return None
    worst = max(known, key=lambda lag: lag.p99_ms)
    rates = [lag.token_events_per_s for lag in known if lag.token_events_per_s]
    return replace(worst, token_events_per_s=sum(rates) if rates else None)
