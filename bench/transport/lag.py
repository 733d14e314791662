"""The client's own lag: how long its event loop leaves a socket that became readable unread.

One event loop receives every stream's tokens. When it is busy (many streams, a slow machine, a
server on the same cores), a token that has arrived waits for the work queued before it. Its time
is still the kernel's receive stamp on plain HTTP, but once the wait passes the gap between a
stream's tokens, events that waited together share one time; over TLS the loop's clock stamps
them, late by the whole wait. ``LagProbe`` measures that wait while a case runs, and when its p99
passes the accuracy the figures need (1 ms), the case says so instead of presenting the client's
lag as the server's latency.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass

import numpy as np

PROBE_EVERY_S = 0.005  # 200 probes a second: a few tens of microseconds of the loop's time
_STAMP = struct.Struct("d")  # a probe: when it was sent (perf_counter)
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

    def sentence(self, starved: bool = False) -> str:
        """The note on a late client, with what helps: more client processes if the client was busy,
        a core of its own if it was ``starved`` (the machine full, the client itself using little)."""
        rate = f" while handling {self.token_events_per_s:,.0f} token events/s" if self.token_events_per_s else ""
        helps = (
            "the client waited for a CPU the server and other processes held: leave it a core (fewer server "
            "threads, -t, or the server pinned with taskset), more client processes cannot help"
            if starved
            else "spread the streams over client processes (--workers N) or machines"
        )
        return (
            f"client lag p99 {self.p99_ms:,.1f} ms{rate}: TTFT and ITL may read up to that late at p99 "
            f"(the client, not the server); {helps}"
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
    """``async with LagProbe() as probe: ...`` then ``probe.result(events, seconds)``.

    A thread sends the loop a stamped byte over a socket pair every few milliseconds, and the
    loop's reader notes how long after its send it ran: the wait of a socket that became readable
    while the loop was elsewhere, which is a token's. The sends come from outside the loop, as
    tokens do, so a loop that is busy for a long while is caught in full. A probe queued by the
    loop itself (the first design) only saw the rest of the loop's pass it was queued in, and a
    loop overloaded for hundreds of milliseconds a pass gave two probes of a few ms each; a timer
    cannot stand in either, as epoll's millisecond rounding makes an idle loop's timers up to
    1 ms late.
    """

    def __init__(self, every_s: float = PROBE_EVERY_S) -> None:
        self.every_s = every_s
        self._waits: list[float] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pair: tuple[socket.socket, socket.socket] | None = None

    async def __aenter__(self) -> LagProbe:
        loop = asyncio.get_running_loop()
        receiver, sender = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)  # a probe a datagram
        receiver.setblocking(False)
        sender.setblocking(False)
        self._pair = (receiver, sender)
        loop.add_reader(receiver.fileno(), self._arrived, receiver)
        self._stop.clear()
        self._thread = threading.Thread(target=self._send_every, args=(sender,), name="lag-probe", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._pair is not None:
            receiver, sender = self._pair
            asyncio.get_running_loop().remove_reader(receiver.fileno())
            self._arrived(receiver)  # probes still unread waited until now at least: the latest, often
            receiver.close()
            sender.close()
            self._pair = None

    def _send_every(self, sender: socket.socket) -> None:
        while not self._stop.wait(self.every_s):
            with contextlib.suppress(OSError):  # a full pair: the loop is far behind, and will say so
                sender.send(_STAMP.pack(time.perf_counter()))

    def _arrived(self, receiver: socket.socket) -> None:
        now = time.perf_counter()
        while True:  # several probes waiting at once each waited since its own send
            try:
                (sent,) = _STAMP.unpack(receiver.recv(_STAMP.size))
            except (BlockingIOError, InterruptedError):
                return
            self._waits.append(now - sent)

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
