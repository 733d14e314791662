"""Plain-HTTP connections that know when their bytes arrived: the kernel's receive time of each read.

A token's time is the moment its bytes reached this machine, not the moment the event loop got
round to them. With ``SO_TIMESTAMPNS`` on, Linux stamps every packet as it arrives, and
``recvmsg`` hands back the stamp of the last packet a read took. While the event loop keeps up
within one inter-token gap, every read holds one token event and its stamp is exact however late
the loop ran it; when the loop falls further behind, a read holds several events and all take
the last one's time, which is never later than the loop's own clock would have said.

The same connections write without yielding to the loop while the socket takes the bytes, so a
request's head and body leave back to back rather than a loop's turn apart.

This is an ``httpcore`` network backend (the layer under httpx): the lanes use it for ``http://``
endpoints on Linux. TLS, and systems without the socket option, keep httpcore's own backend and
the loop's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import struct
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpcore

# Linux's value on the common architectures; Python's socket module does not name it.
SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35)
_TIMESPEC = struct.Struct("@ll")  # struct timespec: seconds, nanoseconds
_ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)

AVAILABLE = sys.platform == "linux"


def _arrival(ancillary: Iterable[tuple[int, int, bytes]]) -> float | None:
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return float(seconds + nanoseconds * 1e-9)
    return None


class StampedStream(httpcore.AsyncNetworkStream):
    """One TCP connection; ``arrival`` is the wall-clock time (CLOCK_REALTIME) its last read arrived."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.arrival: float | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        while True:
            try:
                data, ancillary, _, _ = self._sock.recvmsg(max_bytes, _ANCILLARY_BYTES)
            except (BlockingIOError, InterruptedError):
                await self._ready(self._sock.fileno(), timeout, reading=True)
                continue
            except OSError as exc:
                raise httpcore.ReadError(str(exc)) from exc
            self.arrival = _arrival(ancillary)
            return data

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        view = memoryview(buffer)
        while view:
            try:
                sent = self._sock.send(view)
            except (BlockingIOError, InterruptedError):
                await self._ready(self._sock.fileno(), timeout, reading=False)
                continue
            except OSError as exc:
                raise httpcore.WriteError(str(exc)) from exc
            view = view[sent:]

    async def _ready(self, fd: int, timeout: float | None, *, reading: bool) -> None:
        loop = asyncio.get_running_loop()
        ready = loop.create_future()

        def wake() -> None:
            if not ready.done():
                ready.set_result(None)

        (loop.add_reader if reading else loop.add_writer)(fd, wake)
        try:
            async with asyncio.timeout(timeout):
                await ready
        except TimeoutError:
            raise (httpcore.ReadTimeout if reading else httpcore.WriteTimeout)("timed out") from None
        finally:
            (loop.remove_reader if reading else loop.remove_writer)(fd)

    async def aclose(self) -> None:
        self._sock.close()

    def get_extra_info(self, info: str) -> Any:
        if info == "socket":
            return self._sock
        if info == "is_readable":  # an idle kept-alive connection that is readable was closed by the server
            if self._sock.fileno() < 0:
                return True
            poller = select.poll()  # not select(): descriptors past 1024 are common at hundreds of streams
            poller.register(self._sock, select.POLLIN)
            return bool(poller.poll(0))
        if info == "client_addr":
            return self._sock.getsockname()
        if info == "server_addr":
            return self._sock.getpeername()
        return None


class StampedBackend(httpcore.AsyncNetworkBackend):
    """Opens ``StampedStream`` connections (plain TCP only)."""

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        failure: OSError | None = None
        try:
            async with asyncio.timeout(timeout):
                for family, kind, proto, _, address in await _addresses(host, port):
                    sock = socket.socket(family, kind, proto)
                    try:
                        sock.setblocking(False)
                        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                        with contextlib.suppress(OSError):  # without it, reads carry no stamp: the loop's clock
                            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                        for option in socket_options or ():
                            sock.setsockopt(*option)
                        if local_address is not None:
                            sock.bind((local_address, 0))
                        await loop.sock_connect(sock, address)
                    except OSError as exc:
                        sock.close()
                        failure = exc
                        continue
                    except BaseException:
                        sock.close()
                        raise
                    return StampedStream(sock)
        except TimeoutError:
            raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
        except OSError as exc:  # the name did not resolve
            raise httpcore.ConnectError(str(exc)) from exc
        raise httpcore.ConnectError(str(failure or f"no address for {host}:{port}"))

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("unix sockets go through httpcore's own backend")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def _addresses(host: str, port: int) -> list[Any]:
    """An address as given resolves here at once; a name resolves in the loop's thread pool, as asyncio does."""
    try:
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST)
    except socket.gaierror:
        return await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)


def realtime_offset(run_now: Callable[[], float]) -> float:
    """The run clock minus the wall clock (kernel stamps are wall-clock), read between two run-clock reads."""
    before = run_now()
    wall = time.time()
    after = run_now()
    return (before + after) / 2 - wall
