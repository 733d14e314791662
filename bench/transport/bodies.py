"""What lanes share: the reader a response's body is pushed into, its decoding, the request's headers, and
what a lane says of how a request left (``Departure``)."""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from bench.errors import BodyDecodeError, ConfigError


class BodyReader(Protocol):
    """Where a response's body goes as it arrives; called from the event loop, so it must not block."""

    def feed(self, data: bytes, arrived: float | None) -> None:
        """Bytes of the body, decoded; ``arrived``: when they reached this machine (wall clock), where known."""

    def end(self) -> None:
        """The body is whole."""


class Enough(Exception):  # a signal, not an error: hence no Error suffix
    """Raised by a ``BodyReader`` that has all it wants: the lane stops reading and drops the connection."""


# a response's status and media type (lower case, no parameters) -> the reader of its body
Choose = Callable[[int, str], BodyReader]


@dataclass(frozen=True, slots=True)
class Departure:
    """How a request left: what opening its connection took, and when the kernel sent its last byte."""

    # seconds spent opening the connection it went out on, said once per connection (its first request;
    # opened ahead with ``connect()``, before that request's clock); None on a connection used before
    connect_s: float | None = None
    # the kernel's transmit stamp of the request's last byte (wall clock); None where it is not stamped
    wire_time: float | None = None


def request_headers(base_url: str, headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    """Every header of a chat request; a value that would break the request's framing is refused."""
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n\0"):
            # the value is not quoted: it may be the API key
            raise ConfigError(f"the {name} header holds a line break or NUL; check the value given for it")
    host = urlsplit(base_url).netloc.rsplit("@", 1)[-1]
    fields = [(b"Host", host.encode()), (b"Accept-Encoding", b"gzip, deflate"), (b"Accept", b"*/*")]
    fields += [(k.encode(), v.encode()) for k, v in headers.items()]
    fields.append((b"Content-Type", b"application/json"))
    return fields


class _Decoded:
    """A gzip or deflate body, decompressed on its way to the reader."""

    __slots__ = ("_arrived", "_decoder", "_encoding", "_reader")

    def __init__(self, reader: BodyReader, encoding: str) -> None:
        self._reader = reader
        self._encoding = encoding
        self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS if encoding != "deflate" else zlib.MAX_WBITS)
        self._arrived: float | None = None

    def feed(self, data: bytes, arrived: float | None) -> None:
        self._arrived = arrived
        try:
            plain = self._decoder.decompress(data)
        except zlib.error as exc:
            raise BodyDecodeError(f"{self._encoding} body does not decompress: {exc}") from None
        if plain:
            self._reader.feed(plain, arrived)

    def end(self) -> None:
        try:
            tail = self._decoder.flush()
        except zlib.error as exc:
            raise BodyDecodeError(f"{self._encoding} body does not decompress: {exc}") from None
        if tail:
            self._reader.feed(tail, self._arrived)
        self._reader.end()


def decoded(reader: BodyReader, encoding: str) -> BodyReader:
    """``reader`` behind a decoder for the response's Content-Encoding (lower case), where one is needed."""
    return _Decoded(reader, encoding) if encoding in ("gzip", "x-gzip", "deflate") else reader


def content_coding(content_encoding: bytes) -> str:
    """``gzip`` of ``GZip `` (what ``decoded`` is given)."""
    return content_encoding.decode("latin-1").strip().lower()


def media_type(content_type: bytes) -> str:
    """``text/event-stream`` of ``Text/Event-Stream; charset=utf-8``."""
    return content_type.decode("latin-1").split(";")[0].strip().lower()
