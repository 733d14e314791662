"""Kernel receive stamps: a token's time is when its bytes arrived, not when the busy event loop read them."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest

from bench.clock import RunClock
from bench.devtools.testing.fake_server import fake_server_process
from bench.transport.client import ChatClient
from bench.transport.stamped import AVAILABLE

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="kernel receive stamps are Linux's")

LATE_S = 0.15  # how long the loop stays busy after the first token is already waiting in its socket


def _wait_for_bytes(sock: socket.socket, wanted: bytes, timeout_s: float) -> bool:
    """Whether ``wanted`` came into the socket's receive queue (peeked, so the client still reads it)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if wanted in sock.recv(65536, socket.MSG_PEEK | socket.MSG_DONTWAIT):
                return True
        except BlockingIOError:
            pass
        time.sleep(0.001)
    return False


def test_ttft_holds_while_the_event_loop_is_busy_when_the_first_token_arrives() -> None:
    # The server sends the first token 50 ms after the request; the loop is busy from the moment the
    # request is out until LATE_S after that token is waiting in its socket. Read by the loop's
    # clock, the token would come after the block; by the kernel's, it came when it arrived.
    seen: dict[str, float | bool] = {}

    async def one_request(url: str) -> tuple[float | None, float | None]:
        clock = RunClock()
        async with ChatClient(url, clock=clock) as client:
            body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True}
            await client.chat(body)  # the connection is open and kept: the next request goes out at once
            (sock,) = [s for lane in client._lanes if (s := getattr(lane, "_sock", None)) is not None]

            def busy() -> None:
                seen["token"] = _wait_for_bytes(sock, b" tok", 5)
                seen["at"] = clock.now()
                time.sleep(LATE_S)  # the loop is late by this much: what the stamp must not show

            asyncio.get_running_loop().call_soon(busy)  # runs once the request is written
            exchange = await client.chat(body)
            assert exchange.error is None and len(exchange.token_times) == 2
            return exchange.t_first_token, exchange.t_written

    with fake_server_process("--ttft", "0.05", "--itl", "0.4") as url:
        first_token, written = asyncio.run(one_request(url))
    assert seen["token"] is True and first_token is not None and written is not None
    assert first_token - written >= 0.045  # no sooner than the server sent it
    # no later than the moment it was seen waiting, while the loop was still busy (1 ms for the
    # conversion of the kernel's wall-clock stamp to the run clock)
    assert first_token <= float(seen["at"]) + 0.001
