"""Kernel receive stamps: a token's time is when its bytes arrived, not when the busy event loop read them."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from bench.clock import RunClock
from bench.devtools.testing.fake_server import fake_server_process
from bench.transport.client import ChatClient
from bench.transport.stamped import AVAILABLE, StampedBackend

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="kernel receive stamps are Linux's")


def test_a_read_carries_the_time_its_bytes_arrived_not_the_time_it_ran() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    sent: list[float] = []

    def serve() -> None:
        connection, _ = listener.accept()
        with connection:
            sent.append(time.time())
            connection.sendall(b"token")
            connection.recv(1)  # held open until the client has read

    async def read_late() -> tuple[bytes, float | None, float]:
        stream = await StampedBackend().connect_tcp("127.0.0.1", listener.getsockname()[1], timeout=5)
        await asyncio.sleep(0.2)  # the loop is elsewhere while the bytes wait in the socket
        data = await stream.read(1024, timeout=5)
        read_at = time.time()
        await stream.write(b"x")
        await stream.aclose()
        return data, stream.arrival, read_at  # type: ignore[attr-defined]

    server = threading.Thread(target=serve)
    server.start()
    with listener:
        data, arrival, read_at = asyncio.run(read_late())
    server.join()
    assert data == b"token" and arrival is not None
    # the stamp is the send (loopback delivers in the sending call), a fifth of a second before the read
    assert sent[0] <= arrival + 0.001 and arrival - sent[0] < 0.01
    assert read_at - arrival > 0.15


def test_ttft_holds_while_the_event_loop_is_busy_when_the_first_token_arrives(tmp_path: object) -> None:
    # The first token comes 50 ms after the request and the second 400 ms after that. The loop is
    # blocked from 20 ms to 200 ms, over the first token's arrival: read by the loop's clock, TTFT
    # would be at least 200 ms; by the kernel's it is what the server took.
    async def one_request(url: str) -> float | None:
        async with ChatClient(url, clock=RunClock()) as client:
            body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True}
            await client.chat(body)  # the connection is open and kept: the next request goes out at once
            asyncio.get_running_loop().call_later(0.02, time.sleep, 0.18)
            exchange = await client.chat(body)
            assert exchange.error is None and len(exchange.token_times) == 2
            return None if exchange.t_first_token is None else exchange.t_first_token - exchange.t_written

    with fake_server_process("--ttft", "0.05", "--itl", "0.4") as url:
        ttft = asyncio.run(one_request(url))
    assert ttft is not None and 0.045 < ttft < 0.15
