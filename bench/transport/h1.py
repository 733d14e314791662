"""A lean HTTP/1.1 lane for plain-HTTP endpoints: the measured path's client side, kept cheap.

At 64 streams of 220 tokens a second one process handles 14,000 token events a second, and a
closed loop's requests end and start in bursts. Whatever the client spends on an event or a
turnover, every other stream waits for, and once the wait passes an inter-token gap two events
share one read and one time. Through httpcore (anyio, h11, its pool, a coroutine resumed per
read) a streamed request costs about three times the CPU to turn over that it costs here
(``test_client_cpu_per_streamed_request``); this lane keeps only what a keep-alive POST needs:

- one non-blocking socket, with Nagle off and kernel receive stamps (``bench.transport.stamped``);
- the request's head and body in one ``send`` (a timed request's head goes ahead, its body at
  its time);
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
from collections.abc import Awaitable, Callable
from urllib.parse import quote, urlsplit

import httpcore
import httptools

from bench.transport.bodies import BodyReader, Choose, Enough, content_coding, decoded, media_type, request_headers
from bench.transport.stamped import ANCILLARY_BYTES, arrival_of, open_stamped

MAX_HEAD_BYTES = 64 * 1024  # a status line and headers; llama-server's are a few hundred bytes
READ_BYTES = 256 * 1024


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

    async def post(
        self,
        path: str,
        body: bytes,
        choose: Choose,
        sent: Callable[[], None],
        hold: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        sock = await self._connection()
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
                    sent()
                    await _send(sock, head + body)
                else:
                    await _send(sock, head)
                    await hold()
                    sent()
                    if not response.done.done():  # not answered already (a 503 to the head alone)
                        await _send(sock, body)
            except httpcore.WriteError as failure:
                # a server that answers before it has the whole request (a 413, a 503) and closes:
                # its answer is the outcome, as httpcore has it; with no answer, the write failed
                try:
                    await response.done
                except Exception:
                    raise failure from None
            await response.done
            kept = response.keep_alive
        finally:
            loop.remove_reader(fd)
            if not kept:
                self._drop()

    async def _connection(self) -> socket.socket:
        if self._sock is not None and _readable(self._sock):
            # an idle keep-alive connection has nothing to say: readable means the server closed it
            self._drop()
        if self._sock is None:
            self._sock = await open_stamped(self._host, self._port, self._connect_timeout_s)
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
        "keep_alive",
    )

    def __init__(self, choose: Choose, done: asyncio.Future[None]) -> None:
        self._choose = choose
        self.done = done
        self.keep_alive = False
        self._parser = httptools.HttpResponseParser(self)
        self._reader: BodyReader | None = None
        self._arrived: float | None = None
        self._received = False
        self._informational = False
        self._head_bytes = 0
        self._media = self._encoding = ""
        self._framed = False  # Content-Length or chunked: the body's end is known without a close

    # ------------------------------------------------------------ the loop's reader callback
    def readable(self, sock: socket.socket) -> None:
        if self.done.done():
            return  # the awaiting task has not yet taken the reader off the loop
        try:
            data, ancillary, _, _ = sock.recvmsg(READ_BYTES, ANCILLARY_BYTES)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self._fail(httpcore.ReadError(str(exc) or type(exc).__name__))
            return
        if not data:
            self._closed()
            return
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
        return bool(poller.poll(0))
    return True
