"""Lanes: one keep-alive connection each, for the chat requests whose timing is measured.

A lane drives ``httpcore`` (the transport layer under httpx, by the same
maintainers) directly. Measured against the perf truth server, a streamed
request through ``httpx.AsyncClient`` cost 0.80 ms of CPU and through httpcore
0.48 ms: at 64 streams the requests that end and start together stall every
other stream's tokens for that long, which is the client's own ITL error. One
pool per lane also keeps httpcore from scanning every connection for every
queued request, which at 64 streams had cost a fifth of the client's time.

What httpx did for us that a lane does itself: the Host header, the timeout
mapping, and gzip/deflate bodies (requested as httpx and the OpenAI SDK do, so a
proxy that compresses event streams, and so buffers them, is seen as users see it).
"""

from __future__ import annotations

import contextlib
import ssl
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore

from bench.errors import BodyDecodeError
from bench.transport.stamped import AVAILABLE as STAMPS_AVAILABLE
from bench.transport.stamped import StampedBackend, StampedStream

# Every way a request can fail below HTTP, as httpcore names them (the names match httpx's).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpcore.ProtocolError,
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
    httpcore.ConnectionNotAvailable,
)

Trace = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass
class LaneResponse:
    status: int
    content_type: str  # media type only, lower case
    _stream: AsyncIterator[bytes]
    _encoding: str
    # when the bytes of the latest chunk reached this machine (wall clock, the kernel's), where known
    arrival: Callable[[], float | None] = lambda: None

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body as it arrives, decompressed where the server compressed it."""
        if self._encoding in ("gzip", "x-gzip", "deflate"):
            wbits = 16 + zlib.MAX_WBITS if self._encoding != "deflate" else zlib.MAX_WBITS
            decoder = zlib.decompressobj(wbits)
            try:
                async for chunk in self._stream:
                    data = decoder.decompress(chunk)
                    if data:
                        yield data
                tail = decoder.flush()
            except zlib.error as exc:
                raise BodyDecodeError(f"{self._encoding} body does not decompress: {exc}") from None
            if tail:
                yield tail
        else:
            async for chunk in self._stream:
                yield chunk


class Lane:
    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout_s: float,
        connect_timeout_s: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        parts = urlsplit(base_url)
        self._url = base_url
        host = parts.netloc.rsplit("@", 1)[-1]
        self._headers = [(b"Host", host.encode()), (b"Accept-Encoding", b"gzip, deflate"), (b"Accept", b"*/*")]
        self._headers += [(k.encode(), v.encode()) for k, v in headers.items()]
        self._timeouts = {"connect": connect_timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        # plain HTTP on Linux: connections that know when each read arrived (bench.transport.stamped)
        backend = StampedBackend() if parts.scheme == "http" and STAMPS_AVAILABLE else None
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context, max_connections=1, max_keepalive_connections=1, network_backend=backend
        )

    @contextlib.asynccontextmanager
    async def post_json(
        self, path: str, body: bytes, trace: Trace, hold: Callable[[], Awaitable[None]] | None = None
    ) -> AsyncIterator[LaneResponse]:
        """POST a JSON body; with ``hold``, the headers go at once and the body once ``hold()`` returns."""
        headers = [*self._headers, (b"Content-Type", b"application/json")]
        extensions = {"timeout": self._timeouts, "trace": trace}
        content: bytes | AsyncIterator[bytes] = body
        if hold is not None:
            headers.append((b"Content-Length", str(len(body)).encode()))
            content = _held(body, hold)
        async with self._pool.stream(
            "POST", self._url + path, headers=headers, content=content, extensions=extensions
        ) as response:
            content_type = encoding = ""
            for name, value in response.headers:
                lowered = name.lower()
                if lowered == b"content-type":
                    content_type = value.decode("latin-1").split(";")[0].strip().lower()
                elif lowered == b"content-encoding":
                    encoding = value.decode("latin-1").strip().lower()
            stream = response.extensions.get("network_stream")
            arrival = (lambda: stream.arrival) if isinstance(stream, StampedStream) else (lambda: None)
            yield LaneResponse(response.status, content_type, response.aiter_stream(), encoding, arrival)

    async def aclose(self) -> None:
        await self._pool.aclose()


async def _held(body: bytes, hold: Callable[[], Awaitable[None]]) -> AsyncIterator[bytes]:
    """The body, once ``hold`` lets it go (its headers are out by then)."""
    await hold()
    yield body
