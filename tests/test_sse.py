from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bench.errors import BodyTooLarge
from bench.transport.sse import SSEParser


def feed_all(chunks: list[bytes]) -> list[str]:
    parser = SSEParser()
    events: list[str] = []
    for chunk in chunks:
        events += parser.feed(chunk)
    return events + parser.close()


def test_events_end_at_blank_lines() -> None:
    assert feed_all([b'data: {"a":1}\n\ndata: [DONE]\n\n']) == ['{"a":1}', "[DONE]"]


def test_crlf_and_cr_line_ends() -> None:
    assert feed_all([b"data: x\r\n\r\ndata: y\r\rdata: z\n\n"]) == ["x", "y", "z"]


def test_crlf_split_between_chunks_is_one_line_end() -> None:
    assert feed_all([b"data: x\r", b"\n\r", b"\ndata: y\n\n"]) == ["x", "y"]


def test_comments_and_other_fields_are_ignored() -> None:
    assert feed_all([b": keep-alive\nevent: message\nid: 7\ndata: x\n\n"]) == ["x"]


def test_multiline_data_is_joined_with_newlines() -> None:
    assert feed_all([b"data: one\ndata: two\n\n"]) == ["one\ntwo"]


def test_no_space_after_colon() -> None:
    assert feed_all([b"data:x\n\n"]) == ["x"]


def test_event_without_trailing_blank_line_is_flushed_on_close() -> None:
    assert feed_all([b"data: last"]) == ["last"]


def test_utf8_character_split_across_chunks() -> None:
    raw = 'data: {"c":"héllo ✓"}\n\n'.encode()
    cut = raw.index("✓".encode()) + 1
    assert feed_all([raw[:cut], raw[cut:]]) == ['{"c":"héllo ✓"}']


payloads = st.lists(
    st.text(alphabet=st.characters(blacklist_characters="\r\n", blacklist_categories=("Cs",)), max_size=30),
    min_size=1,
    max_size=8,
)


@given(payloads, st.lists(st.integers(min_value=0, max_value=400), max_size=10), st.sampled_from(["\n", "\r\n", "\r"]))
def test_any_split_of_the_stream_gives_the_same_events(items: list[str], cuts: list[int], eol: str) -> None:
    stream = "".join(f"data: {item}{eol}{eol}" for item in items).encode()
    points = sorted({min(c, len(stream)) for c in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)], strict=True)]
    assert feed_all(chunks) == items


def test_a_line_split_over_many_chunks_is_joined_once_and_bounded() -> None:
    parser = SSEParser(max_line_bytes=1000)
    payload = b'data: {"x": "' + b"y" * 500 + b'"}'
    events = [e for byte in range(len(payload)) for e in parser.feed(payload[byte : byte + 1])]
    assert events == [] and parser.feed(b"\r\n\r\n") == ['{"x": "' + "y" * 500 + '"}']
    with pytest.raises(BodyTooLarge, match="an SSE line longer than"):
        for _ in range(1001):
            parser.feed(b"z")
