"""Lanes: compressed bodies decoded as they arrive, and where TTFT starts."""

from __future__ import annotations

import asyncio
import gzip
import zlib
from collections.abc import AsyncIterator

import pytest

from bench.devtools.testing.records import record
from bench.errors import BodyDecodeError
from bench.records import RequestRecord
from bench.transport.lanes import LaneResponse


async def _pieces(data: bytes, size: int = 7) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


def _read(response: LaneResponse) -> bytes:
    async def collect() -> bytes:
        return b"".join([chunk async for chunk in response.chunks()])

    return asyncio.run(collect())


EVENTS = b'data: {"choices":[{"delta":{"content":" tok"}}]}\n\n' * 20


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        ("", EVENTS),
        ("gzip", gzip.compress(EVENTS)),
        ("deflate", zlib.compress(EVENTS)),
    ],
)
def test_bodies_arrive_decoded_whatever_their_encoding(encoding: str, body: bytes) -> None:
    assert _read(LaneResponse(200, "text/event-stream", _pieces(body), encoding)) == EVENTS


def test_a_body_that_does_not_decompress_is_a_named_error() -> None:
    with pytest.raises(BodyDecodeError, match="gzip body does not decompress"):
        _read(LaneResponse(200, "text/event-stream", _pieces(b"not gzip at all"), "gzip"))


def test_ttft_counts_from_when_the_request_went_out_not_from_its_wait_in_the_client() -> None:
    queued = record(t_sent=10.0, t_written=10.030, token_times=(10.080, 10.085), t_end=10.1)
    assert queued.ttft_ms == pytest.approx(50.0)
    assert queued.e2e_ms == pytest.approx(100.0)  # latency as the caller saw it, queueing included


def test_records_from_before_the_write_time_was_kept_still_count_from_the_send() -> None:
    old = record(t_sent=10.0, token_times=(10.080, 10.085), t_end=10.1).to_json()
    del old["t_written"]
    assert RequestRecord.from_json(old).ttft_ms == pytest.approx(80.0)
