"""The lean HTTP/1.1 lane: what it sends, how it reads, and each way a response can go wrong."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import select
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpcore
import pytest

from bench.errors import BodyDecodeError, BodyTooLarge
from bench.transport.bodies import Enough
from bench.transport.h1 import MAX_HEAD_BYTES, H1Lane
from bench.transport.stamped import AVAILABLE

pytestmark = pytest.mark.skipif(not AVAILABLE, reason="the lean lane is Linux's (kernel receive stamps)")

OK_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"


@dataclass
class Script:
    """A server on loopback that answers each request on a connection with the next of ``answers``."""

    answers: list[Callable[[socket.socket], None]]
    requests: list[bytes] = field(default_factory=list)
    reads: list[list[bytes]] = field(default_factory=list)  # each request as the recv calls returned it
    connections: int = 0
    open: list[socket.socket] = field(default_factory=list)
    answered_at: list[float] = field(default_factory=list)


def _serve(listener: socket.socket, script: Script) -> None:
    answers = iter(script.answers)
    while True:
        try:
            connection, _ = listener.accept()
        except OSError:
            return
        script.connections += 1
        script.open.append(connection)
        # a client that hangs up mid-answer (a reader that had enough) resets the connection: next one
        with connection, contextlib.suppress(OSError):
            while True:
                pieces: list[bytes] = []
                data = b""
                while b"\r\n\r\n" not in data or len(data) < _request_length(data):
                    piece = connection.recv(65536)
                    if not piece:
                        break
                    pieces.append(piece)
                    data += piece
                if not data:
                    break
                script.requests.append(data)
                script.reads.append(pieces)
                answer = next(answers, None)
                if answer is None:
                    break
                answer(connection)
                script.answered_at.append(time.time())
                if connection.fileno() < 0:
                    break


def _request_length(data: bytes) -> int:
    head, _, _ = data.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return len(head) + 4 + int(line.split(b":")[1])
    return len(head) + 4


@pytest.fixture
def server() -> Iterator[Callable[..., tuple[str, Script]]]:
    listeners: list[socket.socket] = []
    threads: list[threading.Thread] = []
    scripts: list[Script] = []

    def start(*answers: Callable[[socket.socket], None]) -> tuple[str, Script]:
        listener = socket.create_server(("127.0.0.1", 0))
        script = Script(list(answers))
        thread = threading.Thread(target=_serve, args=(listener, script), daemon=True)
        thread.start()
        listeners.append(listener)
        threads.append(thread)
        scripts.append(script)
        return f"http://127.0.0.1:{listener.getsockname()[1]}", script

    yield start
    for listener in listeners:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
    for script in scripts:
        for connection in script.open:
            with contextlib.suppress(OSError):  # wakes a thread that waits in recv
                connection.shutdown(socket.SHUT_RDWR)
    for thread in threads:
        thread.join(timeout=5)


def send(data: bytes, *, then_close: bool = False, delay_s: float = 0.0) -> Callable[[socket.socket], None]:
    def answer(connection: socket.socket) -> None:
        time.sleep(delay_s)
        connection.sendall(data)
        if then_close:
            connection.shutdown(socket.SHUT_RDWR)
            connection.close()

    return answer


def chunked(*parts: bytes) -> bytes:
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in parts) + b"0\r\n\r\n"


class Collect:
    def __init__(self, limit: int | None = None) -> None:
        self.parts: list[tuple[bytes, float | None]] = []
        self.fed_at: list[float] = []
        self.ended = False
        self.limit = limit

    def feed(self, data: bytes, arrived: float | None) -> None:
        self.parts.append((data, arrived))
        self.fed_at.append(time.time())
        if self.limit is not None and sum(len(p) for p, _ in self.parts) >= self.limit:
            raise Enough

    def end(self) -> None:
        self.ended = True

    @property
    def body(self) -> bytes:
        return b"".join(p for p, _ in self.parts)


def post(url: str, *readers: Collect, body: bytes = b'{"x":1}', hold_s: float | None = None) -> list[tuple[int, str]]:
    """One request per reader on one lane; each response's status and media type."""
    heads: list[tuple[int, str]] = []

    async def go() -> None:
        lane = H1Lane(url, {"Authorization": "Bearer k"}, connect_timeout_s=5)
        try:
            for reader in readers:

                def choose(status: int, media: str, reader: Collect = reader) -> Collect:
                    heads.append((status, media))
                    return reader

                hold = None if hold_s is None else (lambda: asyncio.sleep(hold_s))
                await asyncio.wait_for(lane.post("/v1/chat/completions", body, choose, lambda: None, hold), 10)
        finally:
            await lane.aclose()

    asyncio.run(go())
    return heads


def test_a_request_leaves_in_one_write_with_every_header(server: Callable[..., tuple[str, Script]]) -> None:
    url, script = server(send(OK_HEAD + b"Content-Length: 2\r\n\r\nok"))
    reader = Collect()
    assert post(url, reader) == [(200, "text/event-stream")]
    assert reader.body == b"ok" and reader.ended
    (request,) = script.requests
    assert len(script.reads[0]) == 1  # head and body in one segment
    head, _, body = request.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"POST /v1/chat/completions HTTP/1.1"
    assert {b"Host: " + url.split("//")[1].encode(), b"Authorization: Bearer k", b"Content-Length: 7",
            b"Content-Type: application/json", b"Accept-Encoding: gzip, deflate"} <= set(lines[1:])  # fmt: skip
    assert body == b'{"x":1}'


def test_an_endpoint_behind_a_path_prefix_is_posted_to_under_it(server: Callable[..., tuple[str, Script]]) -> None:
    url, script = server(send(OK_HEAD + b"Content-Length: 2\r\n\r\nok"))
    post(url + "/my llm", Collect())
    assert script.requests[0].startswith(b"POST /my%20llm/v1/chat/completions HTTP/1.1\r\n")


def test_a_held_request_sends_its_head_first_and_its_body_when_let_go(
    server: Callable[..., tuple[str, Script]],
) -> None:
    url, script = server(send(OK_HEAD + b"Content-Length: 2\r\n\r\nok"))
    post(url, Collect(), hold_s=0.2)
    first, second = script.reads[0]
    assert first.endswith(b"\r\n\r\n") and second == b'{"x":1}'


def test_a_read_carries_the_time_its_bytes_arrived_not_the_time_the_loop_ran_it(
    server: Callable[..., tuple[str, Script]],
) -> None:
    # The loop is held busy from before the answer is sent until after it was sent, so the loop
    # reads it only after the block: a stamp from the loop's clock would come after the block's
    # end, the kernel's comes before it. Events order the three, not sleeps.
    blocked, answered = threading.Event(), threading.Event()
    block: dict[str, float | bool] = {}

    def answer_while_the_loop_is_busy(connection: socket.socket) -> None:
        if blocked.wait(5):
            connection.sendall(OK_HEAD + b"Content-Length: 5\r\n\r\ntoken")
            answered.set()

    url, script = server(send(OK_HEAD + b"Content-Length: 2\r\n\r\nok"), answer_while_the_loop_is_busy)
    first, reader = Collect(), Collect()

    def busy() -> None:
        deadline = time.monotonic() + 5
        while len(script.requests) < 2 and time.monotonic() < deadline:  # the request is on its way
            time.sleep(0.001)
        blocked.set()
        block["answered"] = answered.wait(5)
        block["end"] = time.time()

    async def keep_a_connection_then_post_while_busy() -> None:
        lane = H1Lane(url, {}, connect_timeout_s=5)
        await lane.post("/x", b"{}", lambda status, media: first, lambda: None)  # the connection is kept
        asyncio.get_running_loop().call_soon(busy)  # runs once the next request is written
        await lane.post("/x", b"{}", lambda status, media: reader, lambda: None)
        await lane.aclose()

    asyncio.run(keep_a_connection_then_post_while_busy())
    assert block["answered"] is True
    ((data, arrived),) = reader.parts
    assert data == b"token" and arrived is not None
    sent = script.answered_at[1]  # just after the server's sendall returned
    # loopback delivers in the sending call: the stamp is the send, before the loop could read it
    assert arrived <= sent + 0.001 and arrived < float(block["end"]) <= reader.fed_at[0]


def test_a_chunked_stream_arrives_piece_by_piece_and_the_connection_is_kept(
    server: Callable[..., tuple[str, Script]],
) -> None:
    response = OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"data: a\n\n", b"data: b\n\n")
    url, script = server(send(response), send(response))
    first, second = Collect(), Collect()
    post(url, first, second)
    assert first.body == second.body == b"data: a\n\ndata: b\n\n"
    assert script.connections == 1


def test_a_connection_the_server_closed_while_idle_is_opened_again(
    server: Callable[..., tuple[str, Script]],
) -> None:
    url, script = server(
        send(OK_HEAD + b"Content-Length: 2\r\n\r\nok", then_close=True), send(OK_HEAD + b"Content-Length: 2\r\n\r\nok")
    )
    first, second = Collect(), Collect()

    async def two() -> None:
        lane = H1Lane(url, {}, connect_timeout_s=5)
        await lane.post("/x", b"{}", lambda s, m: first, lambda: None)
        # wait (on the condition, not a nap) until the server's close has reached the idle connection
        readable, _, _ = await asyncio.to_thread(select.select, [lane._sock], [], [], 5)
        assert readable
        await lane.post("/x", b"{}", lambda s, m: second, lambda: None)
        await lane.aclose()

    asyncio.run(two())
    assert first.body == second.body == b"ok"
    assert script.connections == 2


def test_a_body_that_ends_with_the_connection_is_whole_at_the_close(
    server: Callable[..., tuple[str, Script]],
) -> None:
    url, _ = server(send(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it", then_close=True))
    reader = Collect()
    post(url, reader)
    assert reader.body == b"all of it" and reader.ended


def test_a_continue_before_the_answer_is_passed_over(server: Callable[..., tuple[str, Script]]) -> None:
    url, _ = server(send(b"HTTP/1.1 100 Continue\r\n\r\n" + OK_HEAD + b"Content-Length: 2\r\n\r\nok"))
    reader = Collect()
    assert post(url, reader) == [(200, "text/event-stream")]
    assert reader.body == b"ok"


def test_gzip_bodies_arrive_decoded(server: Callable[..., tuple[str, Script]]) -> None:
    packed = gzip.compress(b"data: a\n\n" * 50)
    url, _ = server(
        send(OK_HEAD + b"Content-Encoding: gzip\r\n" + b"Content-Length: %d\r\n\r\n" % len(packed) + packed)
    )
    reader = Collect()
    post(url, reader)
    assert reader.body == b"data: a\n\n" * 50


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (send(b"", then_close=True), httpcore.RemoteProtocolError, "without sending a response"),
        (
            send(OK_HEAD + b"Content-Length: 10\r\n\r\nshort", then_close=True),
            httpcore.RemoteProtocolError,
            "without sending complete message body",
        ),
        (
            send(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nabc", then_close=True),
            httpcore.RemoteProtocolError,
            "without sending complete message body",
        ),
        (send(b"HTTP/1.1 abc\r\n\r\n"), httpcore.RemoteProtocolError, "malformed HTTP response"),
        (
            send(OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n"),
            httpcore.RemoteProtocolError,
            "malformed HTTP response",
        ),
        (
            send(OK_HEAD + b"X-Big: " + b"a" * MAX_HEAD_BYTES + b"\r\n\r\n"),
            httpcore.RemoteProtocolError,
            "head larger than 64 KiB",
        ),
        (
            send(OK_HEAD + b"Content-Encoding: gzip\r\nContent-Length: 4\r\n\r\nnope"),
            BodyDecodeError,
            "gzip body does not decompress",
        ),
    ],
    ids=["nothing", "short-length", "cut-chunk", "bad-status", "bad-chunk-size", "huge-head", "bad-gzip"],
)
def test_each_broken_answer_fails_with_a_named_error(
    server: Callable[..., tuple[str, Script]], answer: Callable[[socket.socket], None], error: type, message: str
) -> None:
    url, _ = server(answer)
    with pytest.raises(error, match=message):
        post(url, Collect())


def test_a_reader_that_has_enough_ends_the_request_and_drops_the_connection(
    server: Callable[..., tuple[str, Script]],
) -> None:
    endless = OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + (b"400\r\n" + b"x" * 1024 + b"\r\n") * 64
    url, script = server(send(endless), send(OK_HEAD + b"Content-Length: 2\r\n\r\nok"))
    capped, after = Collect(limit=4096), Collect()
    post(url, capped, after)
    assert len(capped.body) >= 4096 and not capped.ended
    assert after.body == b"ok" and script.connections == 2


def test_a_reader_error_fails_the_request(server: Callable[..., tuple[str, Script]]) -> None:
    class TooMuch(Collect):
        def feed(self, data: bytes, arrived: float | None) -> None:
            raise BodyTooLarge("a stream larger than 0 MiB")

    url, _ = server(send(OK_HEAD + b"Content-Length: 2\r\n\r\nok"))
    with pytest.raises(BodyTooLarge):
        post(url, TooMuch())


def test_an_answer_before_the_whole_body_is_the_outcome_not_a_write_error() -> None:
    # A server that refuses a request from its head (a 413 for a body too large) and closes with the
    # body unread, which resets the connection: the body's write fails, and the answer is still what
    # the request got, as httpcore has it.
    listener = socket.create_server(("127.0.0.1", 0))

    def refuse() -> None:
        connection, _ = listener.accept()
        with connection:
            data = b""
            while b"\r\n\r\n" not in data:
                data += connection.recv(65536)
            answer = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 7\r\nConnection: close\r\n\r\n"
            connection.sendall(answer + b"too big")

    thread = threading.Thread(target=refuse)
    thread.start()
    with listener:
        reader = Collect()
        heads = post(f"http://127.0.0.1:{listener.getsockname()[1]}", reader, body=b"x" * (64 * 2**20))
    thread.join()
    assert heads == [(413, "")] and reader.body == b"too big"


def test_a_refused_connection_is_a_connect_error() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    listener.close()
    with pytest.raises(httpcore.ConnectError):
        post(f"http://127.0.0.1:{port}", Collect())
