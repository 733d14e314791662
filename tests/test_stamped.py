"""Kernel receive stamps: a token's time is when its bytes arrived, not when the busy event loop read them."""

from __future__ import annotations

import asyncio
import time

import pytest

from bench.clock import RunClock
from bench.devtools.testing.fake_server import fake_server_process
from bench.transport.client import ChatClient
from bench.transport.stamped import AVAILABLE

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="kernel receive stamps are Linux's")


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
