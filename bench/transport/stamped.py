"""Sockets that know when their bytes arrived: the kernel's receive time of each read.

A token's time is the moment its bytes reached this machine, not the moment the event loop got
round to them. With ``SO_TIMESTAMPNS`` on, Linux stamps every packet as it arrives, and
``recvmsg`` hands back the stamp of the last packet a read took. While the event loop keeps up
within one inter-token gap, every read holds one token event and its stamp is exact however late
the loop ran it; when the loop falls further behind, a read holds several events and all take
the last one's time, which is never later than the loop's own clock would have said.

The send side is stamped by the kernel too. With ``SO_TIMESTAMPING``'s software transmit stamps,
Linux notes when each ``send``'s last byte was handed to the device (the loopback device included)
and queues that time, keyed by the byte's offset in the stream, on the socket's error queue
(``transmit_stamps``). A request's clock then starts when its bytes left, not when the event loop
called ``send``, and TTFT is kernel to kernel.

The lean HTTP/1.1 lanes (``bench.transport.h1``) read through these sockets: plain ``http://``
endpoints on Linux. TLS, and systems without the socket options, keep httpcore and the loop's clock.
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

# SO_TIMESTAMPING and its flags (linux/net_tstamp.h); Python's socket module names none of them
SO_TIMESTAMPING = getattr(socket, "SO_TIMESTAMPING", 37)
_TX_SOFTWARE = 1 << 1  # stamp each send's last byte as it reaches the device
_SOFTWARE = 1 << 4  # report software stamps
_OPT_ID = 1 << 7  # key each stamp by its byte's offset in the stream
_OPT_TSONLY = 1 << 11  # the stamp alone, not a copy of the packet
_OPT_RX_FILTER = 1 << 17  # no second receive stamp on every read (SO_TIMESTAMPNS gives it); Linux 5.18+
TX_FLAGS = _TX_SOFTWARE | _SOFTWARE | _OPT_ID | _OPT_TSONLY
_SCM_TIMESTAMPING_BYTES = 3 * _TIMESPEC.size  # software, (legacy), hardware
# the error queue's record: struct sock_extended_err, then the offender's address
_EXTENDED_ERR = struct.Struct("=IBBBBII")  # errno, origin, type, code, pad, info, data
_ORIGIN_TIMESTAMPING = 4  # SO_EE_ORIGIN_TIMESTAMPING
_TSTAMP_SND = 0  # SCM_TSTAMP_SND: the device took the bytes
_RECVERR = {(socket.IPPROTO_IP, 11), (socket.IPPROTO_IPV6, 25)}  # IP_RECVERR, IPV6_RECVERR
ERRQUEUE_ANCILLARY_BYTES = 512
_MSG_ERRQUEUE = getattr(socket, "MSG_ERRQUEUE", 0x2000)


def arrival_of(ancillary: Iterable[tuple[int, int, bytes]]) -> float | None:
    """The wall-clock time (CLOCK_REALTIME) in a ``recvmsg``'s ancillary data, where it holds one."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return float(seconds + nanoseconds * 1e-9)
    return None


def transmit_stamps(sock: socket.socket, most: int | None = None) -> list[tuple[int, float]]:
    """Drain the socket's error queue (``most`` messages at most): (offset of the stamped byte, mod 2**32;
    wall-clock time) of each send.

    Never blocks. A socket with stamps off, or a system without them, gives nothing. A caller that
    knows one stamp is due reads one (``most=1``): a call saved per request, which at hundreds of
    streams ending together is what the loop spends between their tokens.
    """
    stamps: list[tuple[int, float]] = []
    while most is None or most > 0:
        if most is not None:
            most -= 1
        try:
            _, ancillary, _, _ = sock.recvmsg(0, ERRQUEUE_ANCILLARY_BYTES, _MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except OSError:  # empty (EAGAIN), or no error queue here
            return stamps
        wall: float | None = None
        key: int | None = None
        for level, kind, data in ancillary:
            if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING and len(data) >= _SCM_TIMESTAMPING_BYTES:
                seconds, nanoseconds = _TIMESPEC.unpack_from(data)
                wall = float(seconds + nanoseconds * 1e-9) if seconds or nanoseconds else None
            elif (level, kind) in _RECVERR and len(data) >= _EXTENDED_ERR.size:
                _, origin, _, _, _, info, offset = _EXTENDED_ERR.unpack_from(data)
                if origin == _ORIGIN_TIMESTAMPING and info == _TSTAMP_SND:
                    key = offset
        if wall is not None and key is not None:
            stamps.append((key, wall))
    return stamps


def enable_transmit_stamps(sock: socket.socket) -> bool:
    """Ask for software transmit stamps keyed by byte offset, counted from the next byte sent; False if refused."""
    for flags in (TX_FLAGS | _OPT_RX_FILTER, TX_FLAGS):  # an older kernel refuses the filter
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING, flags)
        except OSError:
            continue
        return True
    return False


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
