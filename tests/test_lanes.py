"""Lanes: compressed bodies decoded as they arrive, and where TTFT starts."""

from __future__ import annotations

import gzip
import zlib

import pytest

from bench.devtools.testing.records import record
from bench.errors import BodyDecodeError
from bench.records import RequestRecord
from bench.transport.bodies import decoded


class _Collect:
    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.ended = False

    def feed(self, data: bytes, arrived: float | None) -> None:
        self.parts.append(data)

    def end(self) -> None:
        self.ended = True


def _read(body: bytes, encoding: str, size: int = 7) -> bytes:
    """``body`` fed in pieces of ``size`` bytes through the decoder for ``encoding``."""
    collect = _Collect()
    reader = decoded(collect, encoding)
    for start in range(0, len(body), size):
        reader.feed(body[start : start + size], None)
    reader.end()
    assert collect.ended
    return b"".join(collect.parts)


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
    assert _read(body, encoding) == EVENTS


def test_a_body_that_does_not_decompress_is_a_named_error() -> None:
    with pytest.raises(BodyDecodeError, match="gzip body does not decompress"):
        _read(b"not gzip at all", "gzip")


def test_ttft_counts_from_when_the_request_went_out_not_from_its_wait_in_the_client() -> None:
    queued = record(t_sent=10.0, t_written=10.030, token_times=(10.080, 10.085), t_end=10.1)
    assert queued.ttft_ms == pytest.approx(50.0)
    assert queued.e2e_ms == pytest.approx(100.0)  # latency as the caller saw it, queueing included


def test_records_from_before_the_write_time_was_kept_still_count_from_the_send() -> None:
    old = record(t_sent=10.0, token_times=(10.080, 10.085), t_end=10.1).to_json()
    del old["t_written"]
    assert RequestRecord.from_json(old).ttft_ms == pytest.approx(80.0)
