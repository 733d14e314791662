"""Sockets that know when their bytes arrived: the kernel's receive time of each read.

A token's time is the moment its bytes reached this machine, not the moment the event loop got
round to them. With ``SO_TIMESTAMPNS`` on, Linux stamps every packet as it arrives, and
``recvmsg`` hands back the stamp of the last packet a read took. While the event loop keeps up
within one inter-token gap, every read holds one token event and its stamp is exact however late
the loop ran it; when the loop falls further behind, a read holds several events and all take
the last one's time, which is never later than the loop's own clock would have said.

The lean HTTP/1.1 lanes (``bench.transport.h1``) read through these sockets: plain ``http://``
endpoints on Linux. TLS, and systems without the socket option, keep httpcore and the loop's clock.
"""

from __future__ import annotations

import asyncio
import contextlib
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
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)

AVAILABLE = sys.platform == "linux"


def arrival_of(ancillary: Iterable[tuple[int, int, bytes]]) -> float | None:
    """The wall-clock time (CLOCK_REALTIME) in a ``recvmsg``'s ancillary data, where it holds one."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return float(seconds + nanoseconds * 1e-9)
    return None


async def open_stamped(host: str, port: int, timeout: float | None) -> socket.socket:
    """A connected, non-blocking TCP socket with Nagle off and receive stamps on.

    Failures are httpcore's ``ConnectError`` and ``ConnectTimeout``: the names a record's error
    carries whichever lane the request took.
    """
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
                    await loop.sock_connect(sock, address)
                except OSError as exc:
                    sock.close()
                    failure = exc
                    continue
                except BaseException:
                    sock.close()
                    raise
                return sock
    except TimeoutError:
        raise httpcore.ConnectTimeout(f"connecting to {host}:{port} timed out") from None
    except OSError as exc:  # the name did not resolve
        raise httpcore.ConnectError(str(exc)) from exc
    raise httpcore.ConnectError(str(failure or f"no address for {host}:{port}"))


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
