"""Lanes: one keep-alive connection each, for the chat requests whose timing is measured.

A lane sends one request at a time and pushes the response's body, as it arrives, into a
``BodyReader`` the caller chose once the status and media type were known. Pushing, not
pulling, is what keeps a token event cheap: the read, the HTTP framing and the SSE parse
happen in one call from the event loop, with no coroutine to resume per event.

Two kinds, one behaviour:

- ``bench.transport.h1.H1Lane``: plain ``http://`` on Linux, the measured path. Its own
  HTTP/1.1 connection, parsed by httptools (llhttp, the parser under Node.js and uvicorn),
  whose reads carry the kernel's receive time (``bench.transport.stamped``) and whose request
  leaves in one write.
- ``PoolLane``: TLS, and other systems, through ``httpcore`` (the transport under httpx),
  timed on the loop's clock.

Both open their connection ahead when asked (``connect``; the pool lane, which cannot, on first
use, before the request's clock starts), or for each request (``fresh``: cold connections, the
connect timed as part of the request), and say what opening it took (``Departure``). Both send
the same headers (gzip/deflate bodies asked for as httpx and the OpenAI SDK do, so a proxy that
compresses event streams, and so buffers them, is seen as users see it), decode bodies the same
way, and fail with httpcore's exception types, whose names a record's error carries (they match
httpx's).
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpcore

from bench.transport.bodies import Choose, Departure, Enough, content_coding, decoded, media_type, request_headers
from bench.transport.h1 import H1Lane
from bench.transport.stamped import AVAILABLE as STAMPS_AVAILABLE

# Every way a request can fail below HTTP, as httpcore names them (the names match httpx's).
TRANSPORT_ERRORS: tuple[type[Exception], ...] = (
    httpcore.ProtocolError,
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
    httpcore.ConnectionNotAvailable,
)


class Lane(Protocol):
    async def post(
        self,
        path: str,
        body: bytes,
        choose: Choose,
        sent: Callable[[], None],
        hold: Callable[[], Awaitable[None]] | None = None,
        *,
        fresh: bool = False,
    ) -> Departure:
        """POST a JSON body and read the answer into ``choose``'s reader.

        ``sent`` is called as the body starts out. With ``hold``, the head goes at once and the
        body once ``hold()`` returns (a request due at a set time); without, head and body go
        together. ``fresh``: on a connection of its own, opened after ``hold`` and ``sent``, so
        that the request's time includes the connect.
        """

    async def connect(self) -> None:
        """Open the connection ahead of the request that will use it, where the lane can."""

    async def aclose(self) -> None: ...


def open_lane(
    base_url: str,
    headers: dict[str, str],
    *,
    timeout_s: float,
    connect_timeout_s: float,
    ssl_context: ssl.SSLContext | None,
) -> Lane:
    if urlsplit(base_url).scheme == "http" and STAMPS_AVAILABLE:
        return H1Lane(base_url, headers, connect_timeout_s=connect_timeout_s)
    return PoolLane(
        base_url, headers, timeout_s=timeout_s, connect_timeout_s=connect_timeout_s, ssl_context=ssl_context
    )


class PoolLane:
    """A lane through httpcore: TLS endpoints, and systems without kernel receive stamps."""

    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        timeout_s: float,
        connect_timeout_s: float,
        ssl_context: ssl.SSLContext | None,
    ) -> None:
        self._url = base_url
        self._headers = request_headers(base_url, headers)
        self._timeouts = {"connect": connect_timeout_s, "read": timeout_s, "write": timeout_s, "pool": timeout_s}
        # One pool per lane keeps httpcore from scanning every connection for every queued request,
        # which at 64 streams had cost a fifth of the client's time.
        self._ssl_context = ssl_context
        self._pool = self._new_pool()

    def _new_pool(self) -> httpcore.AsyncConnectionPool:
        return httpcore.AsyncConnectionPool(
            ssl_context=self._ssl_context, max_connections=1, max_keepalive_connections=1
        )

    async def connect(self) -> None:
        """httpcore opens a connection only for a request: this one's first request opens it, before its clock."""

    async def post(
        self,
        path: str,
        body: bytes,
        choose: Choose,
        sent: Callable[[], None],
        hold: Callable[[], Awaitable[None]] | None = None,
        *,
        fresh: bool = False,
    ) -> Departure:
        if fresh:  # a pool of its own: a new connection, opened after the request's time began
            await self._pool.aclose()
            self._pool = self._new_pool()
            if hold is not None:
                await hold()
                hold = None
            sent()
        headers = list(self._headers)
        content: bytes | AsyncIterator[bytes] = body
        if hold is not None:
            headers.append((b"Content-Length", str(len(body)).encode()))
            content = _held(body, hold, sent)
        began: float | None = None
        connect_s: float | None = None

        async def trace(event: str, info: dict[str, Any]) -> None:
            nonlocal began, connect_s
            if event == "connection.connect_tcp.started":
                began = time.perf_counter()
            elif event in ("connection.connect_tcp.complete", "connection.start_tls.complete") and began is not None:
                connect_s = time.perf_counter() - began  # TLS's handshake, where there is one, included
            # "complete" comes a loop pass late when the loop is busy: the body's start is the closest
            elif hold is None and not fresh and event == "http11.send_request_body.started":
                sent()

        extensions = {"timeout": self._timeouts, "trace": trace}
        async with self._pool.stream(
            "POST", self._url + path, headers=headers, content=content, extensions=extensions
        ) as response:
            content_type = encoding = ""
            for name, value in response.headers:
                lowered = name.lower()
                if lowered == b"content-type":
                    content_type = media_type(value)
                elif lowered == b"content-encoding":
                    encoding = content_coding(value)
            reader = decoded(choose(response.status, content_type), encoding)
            try:
                async for chunk in response.aiter_stream():
                    reader.feed(chunk, None)
            except Enough:
                return Departure(connect_s)  # leaving the block unread closes the connection
            reader.end()
        if fresh:
            await self._pool.aclose()  # a cold connection serves one request
        return Departure(connect_s)

    async def aclose(self) -> None:
        await self._pool.aclose()


async def _held(body: bytes, hold: Callable[[], Awaitable[None]], sent: Callable[[], None]) -> AsyncIterator[bytes]:
    """The body, once ``hold`` lets it go (its headers are out by then)."""
    await hold()
    sent()
    yield body
