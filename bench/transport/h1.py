"""A lean HTTP/1.1 lane for plain-HTTP endpoints: the measured path's client side, kept cheap.

At 64 streams of 220 tokens a second one process handles 14,000 token events a second, and a
closed loop's requests end and start in bursts. Whatever the client spends on an event or a
turnover, every other stream waits for, and once the wait passes an inter-token gap two events
share one read and one time. Through httpcore (anyio, h11, its pool, a coroutine resumed per
read) a streamed request costs about three times the CPU to turn over that it costs here
(``test_client_cpu_per_streamed_request``); this lane keeps only what a keep-alive POST needs:

- one non-blocking socket, with Nagle off, kernel receive stamps and kernel transmit stamps
  (``bench.transport.stamped``): the request's last byte is timed as it left, read off the
  socket's error queue when a read finds no data (the queue wakes the loop) or the answer begins;
- the request's head and body in one ``send`` (a timed request's head goes ahead, its body at
  its time);
- the connection opened ahead when asked (``connect``, before a case's clock starts), or for each
  request (``fresh``: a case that measures cold connections, the connect inside its time);
- the response parsed by httptools (llhttp, in C) inside the loop's reader callback, the body
  pushed straight into the caller's ``BodyReader`` with the read's arrival time: no coroutine is
  resumed until the response is whole.

What it checks: a response head over ``MAX_HEAD_BYTES``, malformed framing, a connection that
closes before the body's end (``RemoteProtocolError``, as httpcore names it); a kept-alive
connection that the server closed while idle is opened again before use.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

import httpcore
import httptools

from bench.transport.bodies import (
    BodyReader,
    Choose,
    Departure,
    Enough,
    content_coding,
    decoded,
    media_type,
    request_headers,
)
from bench.transport.stamped import (
    ANCILLARY_BYTES,
    arrival_of,
    enable_transmit_stamps,
    open_stamped,
    transmit_stamps,
)

MAX_HEAD_BYTES = 64 * 1024  # a status line and headers; llama-server's are a few hundred bytes
READ_BYTES = 256 * 1024
_OFFSETS = 2**32  # transmit stamps key a byte by its offset, modulo this


class H1Lane:
    """One keep-alive HTTP/1.1 connection to a plain-HTTP endpoint, one request at a time."""

    def __init__(self, base_url: str, headers: dict[str, str], *, connect_timeout_s: float) -> None:
        parts = urlsplit(base_url)
        self._host = parts.hostname or ""
        self._port = parts.port or 80
        self._prefix = quote(parts.path, safe="/%:@!$&'()*+,;=~").encode()  # as httpx sends a path
        self._fields = b"".join(name + b": " + value + b"\r\n" for name, value in request_headers(base_url, headers))
        self._connect_timeout_s = connect_timeout_s
        self._sock: socket.socket | None = None
        self._stamped = False  # the kernel stamps what this connection sends
        self._sent = 0  # bytes sent on it since then: the offset its transmit stamps are keyed by
        self._connect_s: float | None = None  # how long it took to open, until a request reports it

    async def connect(self) -> None:
        """Open the connection now, ahead of the request that will use it (its cost is reported by that request)."""
        await self._connection()

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
        if fresh:
            # a cold connection's request: its time starts before the connect, at its time if it has one
            self._drop()
            if hold is not None:
                await hold()
                hold = None
            sent()
        sock = await self._connection()
        connect_s, self._connect_s = self._connect_s, None
        target = self._prefix + path.encode()
        head = b"POST %s HTTP/1.1\r\n%sContent-Length: %d\r\n\r\n" % (target, self._fields, len(body))
        loop = asyncio.get_running_loop()
        response = _Response(choose, loop.create_future())
        fd = sock.fileno()
        loop.add_reader(fd, response.readable, sock)
        kept = False
        try:
            try:
                if hold is None:
                    if not fresh:
                        sent()
                    await self._send_last(sock, head + body, response)
                else:
                    await self._send(sock, head)
                    await hold()
                    sent()
                    if not response.done.done():  # not answered already (a 503 to the head alone)
                        await self._send_last(sock, body, response)
            except httpcore.WriteError as failure:
                # a server that answers before it has the whole request (a 413, a 503) and closes:
                # its answer is the outcome, as httpcore has it; with no answer, the write failed
                try:
                    await response.done
                except Exception:
                    raise failure from None
            await response.done
            kept = response.keep_alive and not fresh
            if response.wire_time is None and response.expected is not None:
                response.take(transmit_stamps(sock))  # not read while the answer came: it is queued by now
        finally:
            loop.remove_reader(fd)
            if not kept:
                self._drop()
        # a cold request's clock started before its connect: the kernel's stamp of its last byte is not its start
        return Departure(connect_s, None if fresh else response.wire_time)

    async def _send(self, sock: socket.socket, data: bytes) -> None:
        await _send(sock, data)
        self._sent += len(data)

    async def _send_last(self, sock: socket.socket, data: bytes, response: _Response) -> None:
        """The request's last bytes, their transmit stamp awaited by ``response`` (the key set before they go,
        so a stamp read while a long send waits for the socket is not missed)."""
        if self._stamped:
            response.expected = (self._sent + len(data) - 1) % _OFFSETS
        await self._send(sock, data)
        if self._stamped:
            response.take(transmit_stamps(sock, most=1))  # on loopback it is queued before send returns

    async def _connection(self) -> socket.socket:
        if self._sock is not None and _readable(self._sock):
            # an idle keep-alive connection has nothing to say: readable means the server closed it
            self._drop()
        if self._sock is None:
            began = time.perf_counter()
            self._sock = await open_stamped(self._host, self._port, self._connect_timeout_s)
            self._connect_s = time.perf_counter() - began
            self._stamped = enable_transmit_stamps(self._sock)
            self._sent = 0
        return self._sock

    def _drop(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def aclose(self) -> None:
        self._drop()


class _Response:
    """One response as httptools parses it, fed from the event loop's reader callback."""

    __slots__ = (
        "_arrived",
        "_choose",
        "_encoding",
        "_framed",
        "_head_bytes",
        "_informational",
        "_media",
        "_parser",
        "_reader",
        "_received",
        "done",
        "expected",
        "keep_alive",
        "wire_time",
    )

    def __init__(self, choose: Choose, done: asyncio.Future[None]) -> None:
        self._choose = choose
        self.done = done
        self.keep_alive = False
        self.expected: int | None = None  # the offset of the request's last byte, whose transmit stamp is wanted
        self.wire_time: float | None = None  # its stamp (wall clock), once read
        self._parser = httptools.HttpResponseParser(self)
        self._reader: BodyReader | None = None
        self._arrived: float | None = None
        self._received = False
        self._informational = False
        self._head_bytes = 0
        self._media = self._encoding = ""
        self._framed = False  # Content-Length or chunked: the body's end is known without a close

    def take(self, stamps: list[tuple[int, float]]) -> None:
        """Keep the transmit stamp of the request's last byte, among those drained (the head's, sent ahead, too)."""
        for offset, wall in stamps:
            if offset == self.expected:
                self.wire_time = wall

    # ------------------------------------------------------------ the loop's reader callback
    def readable(self, sock: socket.socket) -> None:
        if self.done.done():
            return  # the awaiting task has not yet taken the reader off the loop
        try:
            data, ancillary, _, _ = sock.recvmsg(READ_BYTES, ANCILLARY_BYTES)
        except (BlockingIOError, InterruptedError):
            # woken with nothing to read: a transmit stamp on the error queue, which wakes the loop until drained
            self.take(transmit_stamps(sock))
            return
        except OSError as exc:
            self._fail(httpcore.ReadError(str(exc) or type(exc).__name__))
            return
        if not data:
            self._closed()
            return
        if not self._received and self.wire_time is None and self.expected is not None:
            # the answer's first bytes: the request's stamp is queued by now, if the loop was not woken for it
            # yet (once, not every read: a device that stamps nothing would cost a call per token event)
            self.take(transmit_stamps(sock))
        self._received = True
        self._arrived = arrival_of(ancillary)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, Enough):
                self._finish(keep_alive=False)
            else:
                self._fail(cause if isinstance(cause, Exception) else exc)
        except httptools.HttpParserError as exc:
            self._fail(httpcore.RemoteProtocolError(f"malformed HTTP response: {exc}"))

    def _closed(self) -> None:
        if self._reader is not None and not self._framed:
            # no length and not chunked: the body ends where the connection does
            try:
                self._reader.end()
            except Exception as exc:
                self._fail(exc)
                return
            self._finish(keep_alive=False)
        elif not self._received:
            self._fail(httpcore.RemoteProtocolError("Server disconnected without sending a response."))
        else:
            self._fail(httpcore.RemoteProtocolError("peer closed connection without sending complete message body"))

    def _finish(self, *, keep_alive: bool) -> None:
        if not self.done.done():
            self.keep_alive = keep_alive
            self.done.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        if not self.done.done():
            self.done.set_exception(exc)

    # ------------------------------------------------------------ httptools' callbacks
    def _grow(self, size: int) -> None:
        self._head_bytes += size
        if self._head_bytes > MAX_HEAD_BYTES:
            raise httpcore.RemoteProtocolError(f"a response head larger than {MAX_HEAD_BYTES // 1024} KiB")

    def on_status(self, status: bytes) -> None:
        self._grow(len(status))

    def on_header(self, name: bytes, value: bytes) -> None:
        self._grow(len(name) + len(value))
        lowered = name.lower()
        if lowered == b"content-type":
            self._media = media_type(value)
        elif lowered == b"content-encoding":
            self._encoding = content_coding(value)
        elif lowered in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        status = self._parser.get_status_code()
        if status < 200:  # 100 Continue and the like: the answer's own head follows
            self._informational = True
            self._head_bytes = 0
            self._media = self._encoding = ""
            self._framed = False
            return
        self._reader = decoded(self._choose(status, self._media), self._encoding)

    def on_body(self, body: bytes) -> None:
        if self._reader is not None:
            self._reader.feed(body, self._arrived)

    def on_message_complete(self) -> None:
        if self._informational:
            self._informational = False
            return
        if self._reader is not None:
            self._reader.end()
            self._finish(keep_alive=self._parser.should_keep_alive())


async def _send(sock: socket.socket, data: bytes) -> None:
    """All of ``data``; asyncio's ``sock_sendall`` yields to the loop only when the socket cannot take it at once."""
    try:
        await asyncio.get_running_loop().sock_sendall(sock, data)
    except OSError as exc:
        raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc


def _readable(sock: socket.socket) -> bool:
    if sock.fileno() < 0:
        return True
    poller = select.poll()  # not select(): descriptors past 1024 are common at hundreds of streams
    poller.register(sock, select.POLLIN)
    with contextlib.suppress(OSError):
        events = poller.poll(0)
        if events and events[0][1] == select.POLLERR:
            # only transmit stamps left on the error queue, which read as an event: drained, and asked again
            transmit_stamps(sock)
            events = poller.poll(0)
        return bool(events)
    return True
