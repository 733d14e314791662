"""The client's own lag: how long its event loop keeps a ready callback waiting.

One event loop receives every stream's tokens and stamps each with the time its reader runs.
When the loop is busy (many streams, a slow machine, a server on the same cores), a token that
has arrived waits for the callbacks queued before it, and its TTFT or ITL reads late by that
much. ``LagProbe`` measures exactly that wait while a case runs: every few milliseconds it
queues a callback and notes how long the loop took to run it. Its p99 is how late a token's
stamp can be at the 99th percentile; when it passes the accuracy the figures need (1 ms), the
case says so instead of presenting the client's lag as the server's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import numpy as np

PROBE_EVERY_S = 0.005  # 200 probes a second: a few tens of microseconds of the loop's time
LAG_LIMIT_MS = 1.0  # TTFT and ITL are meant to be right to a millisecond at p99


@dataclass(frozen=True, slots=True)
class ClientLag:
    """One case's client lag, and the token events the client handled meanwhile."""

    probes: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    token_events_per_s: float | None  # streamed token events handled per second of the case

    @property
    def too_late(self) -> bool:
        return self.p99_ms > LAG_LIMIT_MS

    def sentence(self) -> str:
        rate = f" while handling {self.token_events_per_s:,.0f} token events/s" if self.token_events_per_s else ""
        return (
            f"client lag p99 {self.p99_ms:,.1f} ms{rate}: TTFT and ITL may read up to that late at p99 "
            "(the client, not the server); spread the streams over client processes (--workers N) or machines"
        )

    def to_json(self) -> dict[str, float | int | None]:
        return {
            "probes": self.probes,
            "p50_ms": self.p50_ms,
            "p99_ms": self.p99_ms,
            "max_ms": self.max_ms,
            "token_events_per_s": self.token_events_per_s,
        }

    @classmethod
    def from_json(cls, raw: object) -> ClientLag | None:
        if not isinstance(raw, dict):
            return None
        try:
            rate = raw.get("token_events_per_s")
            return cls(
                int(raw["probes"]),
                float(raw["p50_ms"]),
                float(raw["p99_ms"]),
                float(raw["max_ms"]),
                None if rate is None else float(rate),
            )
        except (KeyError, TypeError, ValueError):
            return None


class LagProbe:
    """``async with LagProbe() as probe: ...`` then ``probe.result(events, seconds)``."""

    def __init__(self, every_s: float = PROBE_EVERY_S) -> None:
        self.every_s = every_s
        self._waits: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> LagProbe:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        waits = self._waits

        def ran(queued: float) -> None:
            waits.append(time.perf_counter() - queued)

        while True:
            await asyncio.sleep(self.every_s)
            # the wait of a callback made ready now: the loop's queue ahead of it, as a token's reader meets it
            loop.call_soon(ran, time.perf_counter())

    def result(self, token_events: int, seconds: float) -> ClientLag | None:
        if not self._waits:
            return None
        waits = np.asarray(self._waits) * 1000.0
        p50, p99 = np.percentile(waits, [50, 99])
        return ClientLag(
            probes=len(waits),
            p50_ms=float(p50),
            p99_ms=float(p99),
            max_ms=float(waits.max()),
            token_events_per_s=token_events / seconds if seconds > 0 and token_events else None,
        )
