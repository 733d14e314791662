"""What a load worker tells the run, and the one loop that reads it: process pipes and Ray streams alike.

A worker sends ``Ready`` once (a process worker, before its work), then a ``RecordDone`` for each
request as it ends, a ``Beat`` every ``HEARTBEAT_S`` from its event loop, and ``Done`` with its
share's outcome last. ``drain`` reads one worker's messages until its ``Done``, hands each record
to the run, and ends a worker silent for ``SILENCE_S`` (stopped, or stuck in a call that never
returns) instead of waiting on it for ever.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bench.load.loadgen import CaseOutcome
from bench.records import RequestRecord
from bench.transport.lag import ClientLag

HEARTBEAT_S = 1.0  # a live worker's loop says so this often
SILENCE_S = 30.0  # nothing from a worker for this long: it is stopped or stuck, and is ended


@dataclass(frozen=True, slots=True)
class Ready:
    pid: int
    host: str


@dataclass(frozen=True, slots=True)
class RecordDone:
    record: RequestRecord


@dataclass(frozen=True, slots=True)
class Beat:
    pass


@dataclass(frozen=True, slots=True)
class Done:
    outcome: CaseOutcome
    lag: Mapping[str, Any] | None  # ClientLag.to_json(): plain data across a pipe or a cluster


WorkerMessage = Ready | RecordDone | Beat | Done
WorkerEnd = tuple[CaseOutcome, ClientLag | None]


class Ending(StrEnum):
    """How a worker's stream of messages ended."""

    DONE = "done"  # with its Done: its outcome is known
    SILENT = "silent"  # nothing for SILENCE_S: stopped or stuck, and ended from here
    EXITED = "exited"  # the stream ended without a Done: the worker died


async def drain(
    next_message: Callable[[], Awaitable[WorkerMessage | None]],
    sink: Callable[[RequestRecord], None],
    end_silent: Callable[[], Awaitable[None]],
    silence_s: float = SILENCE_S,
) -> tuple[WorkerEnd | None, Ending]:
    """One worker's messages until its end: records to ``sink``; its outcome and lag (or None) and how it ended.

    ``next_message`` gives None when the worker's stream ended without a ``Done`` (it exited);
    ``end_silent`` stops a worker that sent nothing for ``silence_s``.
    """
    while True:
        try:
            message = await asyncio.wait_for(next_message(), silence_s)
        except TimeoutError:
            await end_silent()
            return None, Ending.SILENT
        if message is None:
            return None, Ending.EXITED
        if isinstance(message, RecordDone):
            sink(message.record)
        elif isinstance(message, Done):
            return (message.outcome, ClientLag.from_json(message.lag)), Ending.DONE


def silence_note(silence_s: float) -> str:
    return f"sent nothing for {silence_s:g} s (stopped, or stuck) and was ended"
