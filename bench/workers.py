"""Load workers in processes: a closed loop's streams spread over several event loops.

One event loop stamps every token it receives; past a few thousand token events a second its own
lag shows in TTFT and ITL (``bench.transport.lag`` measures it). ``--workers N`` runs a closed-loop
case's streams, or an open loop's arrivals, in N processes, each with its own event loop and connections: plain
``python -m bench._worker`` processes that read their work from stdin and write length-prefixed
pickles to stdout (they trust only their parent). The prompts are built here, once; each worker
takes every N-th of them and its share of the streams, sends each record here as its request
ends (this process stores it as it does its own: crash-safe, one file) and its lag at the end.
All share the run's clock: it counts from a monotonic clock every process on the machine reads
alike. A worker that dies loses only the requests it had in flight, and the run says which.

An open loop's arrivals are drawn here, one schedule, and each worker sends its share of them
on time. Conversations and traces still run in one process.
"""

from __future__ import annotations

import asyncio
import contextlib
import pickle
import random
import struct
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, BinaryIO

from bench.clock import RunClock
from bench.config import Case
from bench.loadgen import CaseOutcome, CaseRunner
from bench.records import RequestRecord
from bench.redact import Redactor
from bench.transport.client import ChatClient
from bench.transport.lag import ClientLag
from bench.workload import CasePrompts

MAX_WORKERS = 64
STOP_S = 10.0


def supports(case: Case) -> bool:
    """Cases workers can share: closed loops and Poisson arrivals of single requests, more than one at once."""
    return case.pattern in ("concurrent", "poisson") and case.turns == 1 and case.concurrency > 1


START_S = 2.0  # an open loop's first arrival is this far ahead of the workers' start: they are up by then


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
    arrivals: dict[int, float] | None = None  # an open loop: its requests' arrivals (the loop's clock)


@dataclass(frozen=True, slots=True)
class WorkersOutcome:
    outcome: CaseOutcome
    lag: ClientLag | None  # the worst worker's (by p99), with the token events all of them handled
    notes: tuple[str, ...]


def split(case: Case, indices: Sequence[int], workers: int) -> list[tuple[tuple[int, ...], int]]:
    """Each worker's prompts (every N-th) and streams (the case's, shared as evenly as they go)."""
    count = max(1, min(workers, case.concurrency, len(indices)))
    return [
        (tuple(indices[k::count]), case.concurrency // count + (1 if k < case.concurrency % count else 0))
        for k in range(count)
    ]


FRAME = struct.Struct("!I")  # each message a length-prefixed pickle


def _send(stream: BinaryIO, message: tuple[Any, ...]) -> None:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(FRAME.pack(len(data)) + data)
    stream.flush()


def main() -> None:
    """A worker process (``python -m bench._worker``): its spec on stdin, records and its end on stdout."""
    spec = pickle.load(sys.stdin.buffer)
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing else may write into the frames
    asyncio.run(_serve(spec, lambda message: _send(out, message)))


async def _serve(spec: WorkerSpec, send: Callable[[tuple[Any, ...]], None]) -> None:
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
        runner = CaseRunner(
            client,
            spec.run_id,
            spec.case,
            spec.prompts,
            lambda record: send(("record", record)),
            seed=spec.seed + spec.worker,
            streams=spec.streams,
            arrivals=spec.arrivals,
        )
        outcome = await runner.run(spec.indices, warm=False, round_number=spec.round_number)
        lag = runner.client_lag()
        send(("done", outcome, None if lag is None else lag.to_json()))


async def run_in_workers(specs: Sequence[WorkerSpec], sink: Callable[[RequestRecord], None]) -> WorkersOutcome:
    """Run the workers as ``python -m bench._worker`` processes; ``sink`` gets every record as it arrives.

    Plain subprocesses, not multiprocessing: a spawned multiprocessing child imports the caller's
    main script again, and a script that calls the suite without a ``__main__`` guard would run twice.
    """
    processes = []
    try:
        for spec in specs:
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bench._worker",
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
            assert process.stdin is not None
            process.stdin.write(pickle.dumps(spec, protocol=pickle.HIGHEST_PROTOCOL))
            process.stdin.close()
            processes.append(process)
        ends = await asyncio.gather(*(_drain(process, sink) for process in processes))
    finally:
        for process in processes:
            if process.returncode is None:
                process.terminate()
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(process.wait(), STOP_S)
    finished = [end for end in ends if end is not None]
    notes = tuple(
        f"worker {k} exited with code {processes[k].returncode} before its end: the requests it had in "
        "flight were lost (those it finished are kept)"
        for k, end in enumerate(ends)
        if end is None
    )
    outcomes = [outcome for outcome, _ in finished]
    return WorkersOutcome(_merged(outcomes, specs[0].case), _worst([lag for _, lag in finished]), notes)


async def _drain(
    process: asyncio.subprocess.Process, sink: Callable[[RequestRecord], None]
) -> tuple[CaseOutcome, ClientLag | None] | None:
    """One worker's frames: records to ``sink``; its outcome and lag, or None if it ended without them."""
    assert process.stdout is not None
    end = None
    while True:
        try:
            head = await process.stdout.readexactly(FRAME.size)
            message = pickle.loads(await process.stdout.readexactly(FRAME.unpack(head)[0]))
        except asyncio.IncompleteReadError:
            break
        if message[0] == "record":
            sink(message[1])
        else:
            end = (message[1], ClientLag.from_json(message[2]))
    await process.wait()
    return end


def _merged(outcomes: Sequence[CaseOutcome], case: Case) -> CaseOutcome:
    if not outcomes:
        return CaseOutcome(case.case_id, 0, 0, 0.0, 0.0, stopped_by_deadline=False)
    return CaseOutcome(
        case_id=case.case_id,
        measured=sum(o.measured for o in outcomes),
        failed=sum(o.failed for o in outcomes),
        wall_start=min(o.wall_start for o in outcomes),
        wall_end=max(o.wall_end for o in outcomes),
        stopped_by_deadline=any(o.stopped_by_deadline for o in outcomes),
    )


def _worst(lags: Sequence[ClientLag | None]) -> ClientLag | None:
    known = [lag for lag in lags if lag is not None]
    if not known:
        return None
    worst = max(known, key=lambda lag: lag.p99_ms)
    rates = [lag.token_events_per_s for lag in known if lag.token_events_per_s]
    return replace(worst, token_events_per_s=sum(rates) if rates else None)
