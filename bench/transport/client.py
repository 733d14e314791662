"""HTTP client for OpenAI-compatible chat endpoints, aware of llama.cpp extras.

``ChatClient.chat`` sends one ``/v1/chat/completions`` request, streaming or
not, and returns an ``Exchange``: what the server answered and the client-side
times of each event. It never raises for a failed request (the failure is part
of the measurement); probes of optional endpoints (``/props``, ``/tokenize``,
``/apply-template``) return None when the server lacks them.

The API key travels only in the ``Authorization`` header and is never put in
an ``Exchange``, an error text or a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from bench.clock import RunClock, sleep_until
from bench.doors.redact import Redactor
from bench.errors import AuthError, BodyDecodeError, BodyTooLarge, ConfigError, EndpointError, ServerError
from bench.records import ServerTimings, StampSource, Usage
from bench.transport.bodies import BodyReader, Departure, Enough
from bench.transport.health import describe_transport_error
from bench.transport.lanes import TRANSPORT_ERRORS, Lane, open_lane
from bench.transport.sse import MAX_LINE_BYTES, SSEParser
from bench.transport.stamped import realtime_offset

# a kernel stamp older than this is not the bytes just read (a clock step): the loop's own time is kept
STAMP_WINDOW_S = 10.0
# a transmit stamp may read this much before the loop's send: the wall clock mapped onto the run clock
STAMP_SLACK_S = 0.0005

ERROR_CHARS = 320  # an error kept with a record: its status or kind, and 300 characters of what the server said
DEFAULT_MAX_BODY_BYTES = 64 * 2**20  # an answer of 2048 tokens is a few hundred KiB; streamed, a few MiB
# Transport errors that, before any response byte, mean a stale pooled connection.
STALE_CONNECTION_ERRORS = ("RemoteProtocolError", "ReadError", "WriteError")
CONNECTION_LOST_ERRORS = ("ConnectError", "RemoteProtocolError", "ReadError", "WriteError")
CHAT_ERRORS: tuple[type[Exception], ...] = (*TRANSPORT_ERRORS, httpx.HTTPError)


@dataclass(slots=True)
class Exchange:
    """One request's outcome, filled in while the response arrives."""

    t_sent: float
    t_end: float = 0.0
    t_written: float | None = None  # the request went out: its body began to be written, headers already sent
    t_first_byte: float | None = None
    t_first_token: float | None = None
    token_times: list[float] = field(default_factory=list)
    http_status: int | None = None
    error: str | None = None
    finish_reason: str | None = None
    content_chars: int = 0
    reasoning_chars: int = 0
    content_events: int = 0  # stream events that carried answer text
    reasoning_events: int = 0  # stream events that carried reasoning_content (gpt-oss with --jinja)
    t_first_content: float | None = None  # the first answer token, after any reasoning
    system_fingerprint: str | None = None
    model: str | None = None
    timings: ServerTimings | None = None
    usage: Usage | None = None
    saw_done: bool = False
    answer_parts: list[str] | None = None  # the answer's text, kept only when asked (a conversation resends it)
    connect_ms: float | None = None  # opening its connection, where this request is the connection's first
    send_clock: StampSource = StampSource.LOOP  # t_written from the kernel's transmit stamp, or the loop's clock
    receive_clock: StampSource = StampSource.LOOP  # every arrival from the kernel's receive stamps, or not

    @property
    def answer(self) -> str:
        return "".join(self.answer_parts or ())

    @property
    def ok(self) -> bool:
        return self.error is None and self.http_status == 200

    @property
    def lost_connection(self) -> bool:
        """The server went away: refused the connection or closed it mid-answer."""
        return self.error is not None and self.error.startswith(CONNECTION_LOST_ERRORS)


def normalise_endpoint(endpoint: str) -> str:
    """Base URL of the server: scheme, host, port and path prefix, without ``/v1``.

    Credentials embedded in the URL are refused rather than silently stored.
    """
    parts = urlsplit(endpoint.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"--endpoint must be an http(s) URL such as http://127.0.0.1:8080; got {endpoint!r}")
    if parts.username or parts.password:
        raise ConfigError("--endpoint must not contain credentials; pass the key with --api-key or BENCH_API_KEY")
    path = parts.path.rstrip("/")
    for suffix in ("/chat/completions", "/v1"):
        if path.endswith(suffix):
            path = path[: -len(suffix)]
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def is_loopback(endpoint_or_host: str) -> bool:
    """Whether a URL's host (or a bare host) is this machine's loopback: localhost, 127.0.0.0/8, ::1."""
    host = urlsplit(endpoint_or_host).hostname if "://" in endpoint_or_host else endpoint_or_host.strip("[]")
    if host is None:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class _Page:
    """At most ``limit`` bytes of an error body: enough to quote, never a whole huge page in memory."""

    __slots__ = ("_limit", "_parts", "_size", "chosen")

    def __init__(self, limit: int = 65536) -> None:
        self.chosen = False  # the answer's body came here
        self._parts: list[bytes] = []
        self._size = 0
        self._limit = limit

    def feed(self, data: bytes, arrived: float | None) -> None:
        self._parts.append(data)
        self._size += len(data)
        if self._size >= self._limit:
            raise Enough

    def end(self) -> None:
        pass

    @property
    def text(self) -> bytes:
        return b"".join(self._parts)[: self._limit]

    @property
    def cut(self) -> bool:
        """Whether the body went on past what was kept (a key may be split at the end)."""
        return self._size >= self._limit


def _error_text(status: int, body: bytes) -> str:
    """The error as a person reads it: an OpenAI error's message, any other JSON decoded, else the text.

    Not cut here: the door (``Redactor.clip``) masks before it cuts.
    """
    text = body.decode("utf-8", errors="replace").strip()
    try:
        parsed = json.loads(text)
    except (ValueError, RecursionError):
        return f"HTTP {status}: {text}"
    if isinstance(parsed, dict) and isinstance(parsed.get("error"), dict) and "message" in parsed["error"]:
        return f"HTTP {status}: {parsed['error']['message']}"
    # escapes (\/, \u00xx) decoded, so what is shown and masked is the text itself
    return f"HTTP {status}: {json.dumps(parsed, ensure_ascii=False)}"


class ChatClient:
    """An async client for one endpoint; use as ``async with ChatClient(...)``."""

    def __init__(
        self,
        endpoint: str,
        *,
        api_key: str = "EMPTY",
        model: str | None = None,
        max_connections: int = 8,
        timeout_s: float = 600.0,
        connect_timeout_s: float = 10.0,
        clock: RunClock | None = None,
        redactor: Redactor | None = None,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        self.base_url = normalise_endpoint(endpoint)
        # server text (error bodies) can quote the request's headers: the key is masked in it
        self.redactor = redactor or Redactor([api_key])
        self.api_key = api_key  # sent in headers only; never written anywhere
        # every body is read whole or streamed: bounded, so a 300 MB answer or a
        # decompression bomb is a failed request, not the suite's memory
        self.max_body_bytes = max_body_bytes
        self.model = model
        # httpx's timeout bounds each read; a response that trickles a byte at a time
        # needs a bound on the whole request too
        self.request_timeout_s = timeout_s
        self.clock = clock or RunClock()
        self._ssl_context = httpx.create_ssl_context() if self.base_url.startswith("https:") else None
        headers = {"Authorization": f"Bearer {api_key}"}
        limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers=headers,
            limits=limits,
            timeout=httpx.Timeout(timeout_s, connect=connect_timeout_s),
            verify=self._ssl_context or True,
            # The benchmark measures the server, so nothing between us and it
            # should come from the environment (proxies, netrc credentials).
            trust_env=False,
        )
        self._lane_options: dict[str, Any] = {
            "headers": headers,
            "timeout_s": timeout_s,
            "connect_timeout_s": connect_timeout_s,
            "ssl_context": self._ssl_context,
        }
        # Chat requests each take a lane: one keep-alive connection of its own (bench/transport/lanes.py).
        self._max_lanes = max_connections
        self._lane_slots = asyncio.Semaphore(max_connections)
        self._idle_lanes: list[Lane] = []
        self._lanes: list[Lane] = []

    async def __aenter__(self) -> ChatClient:
        # Built up front so that the first wave of a many-stream case does not pay
        # for them while its tokens arrive.
        for _ in range(self._max_lanes):
            self._idle_lanes.append(self._new_lane())
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        for lane in self._lanes:
            await lane.aclose()
        await self._http.aclose()

    async def open_connections(self, count: int) -> int:
        """Open up to ``count`` idle lanes' connections now, together, ahead of the requests that will use them.

        A closed loop's first wave then goes out on open connections, as every later wave does: the
        connect, and the server's accepting it, fall before the case's clock, not inside its first
        requests' TTFT. Each connect is still reported, by its connection's first request. A connect that
        fails here is left to that request, which fails or succeeds as it would have. Returns the lanes tried.
        """
        lanes = self._idle_lanes[-count:] if count > 0 else []
        await asyncio.gather(*(lane.connect() for lane in lanes), return_exceptions=True)
        return len(lanes)

    def _new_lane(self) -> Lane:
        lane = open_lane(self.base_url, **self._lane_options)
        self._lanes.append(lane)
        return lane

    @contextlib.asynccontextmanager
    async def _lane(self) -> AsyncIterator[Lane]:
        async with self._lane_slots:
            lane = self._idle_lanes.pop() if self._idle_lanes else self._new_lane()
            try:
                yield lane
            finally:
                self._idle_lanes.append(lane)

    # ---------------------------------------------------------------- probes
    def _limit_text(self) -> str:
        return f"{self.max_body_bytes / 2**20:g} MiB (--max-body-mib)"

    async def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> tuple[int, bytes]:
        """One small request, sent again once on a fresh connection if a pooled one had gone stale.

        Bounded as a whole by the request timeout: httpx's own bounds each read, and a
        server that sends a byte a second never trips that.
        """
        for attempt in (1, 2):
            try:
                async with asyncio.timeout(self.request_timeout_s):
                    async with self._http.stream(method, path, json=body) as response:
                        parts, size = [], 0
                        async for chunk in response.aiter_bytes():
                            size += len(chunk)
                            if size > self.max_body_bytes:
                                raise BodyTooLarge(f"{self.base_url}{path} answered more than {self._limit_text()}")
                            parts.append(chunk)
                        return response.status_code, b"".join(parts)
            except TimeoutError:
                raise EndpointError(
                    f"{self.base_url}{path} took longer than {self.request_timeout_s:g} s (--timeout)"
                ) from None
            except httpx.HTTPError as exc:
                stale = type(exc).__name__.startswith(STALE_CONNECTION_ERRORS)
                if not (attempt == 1 and stale):
                    raise EndpointError(f"cannot reach {self.base_url}: {describe_transport_error(exc)}") from None
        raise AssertionError("unreachable")

    async def _probe(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any | None:
        """Call an optional JSON endpoint; None when absent (404 or other non-200) or not JSON.

        Raises AuthError on 401/403 and EndpointError when the server cannot be reached.
        """
        status, content = await self._request(method, path, body)
        if status in (401, 403):
            raise AuthError(
                f"authentication failed at {self.base_url}{path} (HTTP {status}): check --api-key / BENCH_API_KEY"
            )
        if status != 200:
            return None
        try:
            return json.loads(content)
        except ValueError:
            return None

    async def status_of(self, path: str) -> int:
        """The HTTP status of a GET; EndpointError when the server cannot be reached."""
        return (await self._request("GET", path))[0]

    async def get_json(self, path: str) -> Any | None:
        return await self._probe("GET", path)

    async def post_json(self, path: str, body: dict[str, Any]) -> Any | None:
        return await self._probe("POST", path, body)

    async def tokenize(self, text: str) -> list[int] | None:
        """Token ids of a fully templated prompt, as the server will count them."""
        answer = await self.post_json("/tokenize", {"content": text, "add_special": True, "parse_special": True})
        if not isinstance(answer, dict) or not isinstance(answer.get("tokens"), list):
            return None
        ids = []
        for token in answer["tokens"]:
            # llama-server answers ids, or {"id": ..., "piece": ...} with with_pieces; anything else
            # is not a tokenizer the suite can count with: treated as absent (estimated lengths)
            value = token.get("id") if isinstance(token, dict) else token
            if isinstance(value, bool) or not isinstance(value, int):
                return None
            ids.append(value)
        return ids

    async def apply_template(self, messages: list[dict[str, str]]) -> str | None:
        answer = await self.post_json("/apply-template", {"messages": messages})
        if not isinstance(answer, dict) or not isinstance(answer.get("prompt"), str):
            return None
        prompt: str = answer["prompt"]
        return prompt

    async def list_models(self) -> list[str] | None:
        answer = await self.get_json("/v1/models")
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), list):
            return None
        return [str(m.get("id")) for m in answer["data"] if isinstance(m, dict)]

    # ------------------------------------------------------------------ chat
    def chat_body(
        self,
        messages: list[dict[str, str]],
        *,
        max_tokens: int,
        stream: bool,
        temperature: float = 1.0,
        top_p: float = 1.0,
        force_length: bool = True,
        cache_prompt: bool | None = False,
        seed: int | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "messages": messages,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "top_p": top_p,
            "stream": stream,
        }
        if self.model:
            body["model"] = self.model
        if stream:
            body["stream_options"] = {"include_usage": True}
        if force_length:
            # llama.cpp extensions: generate exactly max_tokens, EOS or not.
            body["ignore_eos"] = True
            body["n_predict"] = max_tokens
        if cache_prompt is not None:
            body["cache_prompt"] = cache_prompt
        if seed is not None:
            body["seed"] = seed
        return body

    async def chat(
        self, body: dict[str, Any], *, keep_answer: bool = False, at: float | None = None, cold: bool = False
    ) -> Exchange:
        """Send one chat request; ``keep_answer`` keeps the answer's text (``Exchange.answer``).

        ``cold``: on a connection opened for it, after its time began (and closed after it): its TTFT
        then includes the connect, as a client that opens a connection per request sees it.

        ``at`` (the event loop's clock): a request due at a set time (an open loop's arrival, a trace's
        line). Its connection and headers go out as soon as it is called, and its body, which the
        server waits for before it can begin, at ``at``: the time a client spends on its way out
        (taking a connection, opening it again if the server closed it, the headers) is spent
        before the request's time, not after. The request counts as sent when its body goes.
        """
        async with self._lane() as lane:
            exchange = await self._chat_once(lane, body, keep_answer, at, cold)
            stale = exchange.error and exchange.error.startswith(STALE_CONNECTION_ERRORS)
            if exchange.http_status is None and stale and not cold:
                # A pooled keep-alive connection the server had already closed: nothing
                # reached the server, so the request is sent again on a fresh connection.
                exchange = await self._chat_once(lane, body, keep_answer, at)
        return exchange

    async def _chat_once(
        self, lane: Lane, body: dict[str, Any], keep_answer: bool = False, at: float | None = None, cold: bool = False
    ) -> Exchange:
        clock = self.clock
        exchange = Exchange(t_sent=clock.now(), answer_parts=[] if keep_answer else None)
        streamed = bool(body.get("stream"))
        page = _Page()

        def sent() -> None:
            # When many streams start at once this event loop sends them one after another, so TTFT
            # counts from when this request went out, not from when it began waiting for its turn.
            exchange.t_written = clock.now()
            if at is not None:
                exchange.t_sent = exchange.t_written

        def choose(status: int, media: str) -> BodyReader:
            exchange.http_status = status
            if status != 200 or media == "text/html":
                page.chosen = True
                return page
            limit = self._limit_text()
            if streamed:
                return _StreamReader(exchange, clock.now, self.max_body_bytes, limit)
            return _WholeReader(exchange, clock.now, self.max_body_bytes, limit)

        async def when_due() -> None:
            await sleep_until(at or 0.0)

        payload = json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        try:
            async with asyncio.timeout(self.request_timeout_s):
                hold = None if at is None else when_due
                departure = await lane.post("/v1/chat/completions", payload, choose, sent, hold, fresh=cold)
            _departed(exchange, departure, clock.now, moved=at is not None)
            if exchange.http_status is not None and exchange.http_status != 200:
                exchange.t_first_byte = clock.now()
                exchange.error = _error_text(exchange.http_status, page.text)
            elif page.chosen:
                exchange.error = "not an OpenAI-compatible answer: the server sent an HTML page"
        except TimeoutError:
            exchange.error = f"request took longer than {self.request_timeout_s:g} s (--timeout)"
        except CHAT_ERRORS as exc:
            exchange.error = describe_transport_error(exc)
        except BodyDecodeError as exc:
            exchange.error = f"malformed response: {exc}"
        except BodyTooLarge as exc:
            exchange.error = f"response too large: {exc}"
        exchange.t_end = clock.now()
        # every string the server sent that a record keeps passes the door here, where it enters
        if exchange.error is not None:
            exchange.error = self.redactor.clip(exchange.error, ERROR_CHARS, cut=page.chosen and page.cut)
        exchange.model = self.redactor.optional(exchange.model)
        exchange.system_fingerprint = self.redactor.optional(exchange.system_fingerprint)
        exchange.finish_reason = self.redactor.optional(exchange.finish_reason)
        return exchange


def _departed(exchange: Exchange, departure: Departure, now: Callable[[], float], *, moved: bool) -> None:
    """What the lane said of the request's way out: its connect, and the kernel's time for its last byte.

    The kernel's time replaces the loop's ``t_written`` (and ``t_sent``, where ``moved``: a timed
    request's send is its start) when it lies where it must: not before the loop called ``send``
    (a little slack for the two clocks' mapping), not after the answer began.
    """
    if departure.connect_s is not None:
        exchange.connect_ms = departure.connect_s * 1000.0
    if departure.wire_time is None or exchange.t_written is None:
        return
    left = departure.wire_time + realtime_offset(now)
    latest = exchange.t_first_byte if exchange.t_first_byte is not None else now()
    if exchange.t_written - STAMP_SLACK_S <= left <= latest:
        exchange.t_written = left
        if moved:
            exchange.t_sent = left
        exchange.send_clock = StampSource.KERNEL


class _WholeReader:
    """A JSON answer, kept whole up to the limit and parsed at its end."""

    __slots__ = ("_exchange", "_limit", "_limit_text", "_now", "_parts", "_size")

    def __init__(self, exchange: Exchange, now: Callable[[], float], limit: int, limit_text: str) -> None:
        self._exchange = exchange
        self._now = now
        self._limit = limit
        self._limit_text = limit_text
        self._parts: list[bytes] = []
        self._size = 0

    def feed(self, data: bytes, arrived: float | None) -> None:
        if self._exchange.t_first_byte is None:
            self._exchange.t_first_byte = self._now()
        self._size += len(data)
        if self._size > self._limit:
            raise BodyTooLarge(f"a body larger than {self._limit_text}")
        self._parts.append(data)

    def end(self) -> None:
        exchange = self._exchange
        try:
            payload = json.loads(b"".join(self._parts))
        except ValueError:
            exchange.error = "malformed response: body is not JSON"
            return
        if not isinstance(payload, dict):
            exchange.error = "malformed response: JSON body is not an object"
            return
        _absorb(payload, exchange, streamed=False)
        if exchange.error is None and exchange.finish_reason is None:
            exchange.error = "malformed response: no choices[0].finish_reason"


class _StreamReader:
    """An event stream, folded into the exchange event by event as its bytes arrive."""

    __slots__ = ("_exchange", "_limit", "_limit_text", "_now", "_offset", "_parser", "_size", "_unstamped")

    def __init__(self, exchange: Exchange, now: Callable[[], float], limit: int, limit_text: str) -> None:
        self._exchange = exchange
        self._now = now
        self._offset = realtime_offset(now)  # kernel stamps are wall-clock: onto the run clock, per request
        self._unstamped = 0  # reads timed by the loop's clock: no stamp, or one out of its window
        self._parser = SSEParser(max_line_bytes=min(MAX_LINE_BYTES, limit))
        self._limit = limit
        self._limit_text = limit_text
        self._size = 0

    def feed(self, data: bytes, arrived: float | None) -> None:
        t = self._now()
        # when its bytes arrived, not when the loop got to them (never later than now, nor long before)
        if arrived is not None and t - STAMP_WINDOW_S < arrived + self._offset < t:
            t = arrived + self._offset
        else:
            self._unstamped += 1
        self._size += len(data)
        if self._size > self._limit:
            raise BodyTooLarge(f"a stream larger than {self._limit_text}")
        exchange = self._exchange
        if exchange.t_first_byte is None:
            exchange.t_first_byte = t
        for event in self._parser.feed(data):
            if _absorb_event(event, exchange):
                exchange.token_times.append(t)
                if exchange.t_first_content is None and exchange.content_events:
                    exchange.t_first_content = t

    def end(self) -> None:
        exchange = self._exchange
        token_times = exchange.token_times
        for event in self._parser.close():
            if _absorb_event(event, exchange):
                token_times.append(self._now())
                self._unstamped += 1
                if exchange.t_first_content is None and exchange.content_events:
                    exchange.t_first_content = token_times[-1]
        if token_times:
            exchange.t_first_token = token_times[0]
        if exchange.t_first_byte is not None and not self._unstamped:
            exchange.receive_clock = StampSource.KERNEL
        if exchange.error is None and not exchange.saw_done:
            exchange.error = "stream ended without data: [DONE]"
        elif exchange.error is None and exchange.finish_reason is None:
            exchange.error = "stream finished without a finish_reason"


def _absorb_event(data: str, exchange: Exchange) -> bool:
    """Fold one SSE data payload into the exchange; True if it carried a token."""
    if data == "[DONE]":
        exchange.saw_done = True
        return False
    try:
        payload = json.loads(data)
    except ValueError:
        exchange.error = exchange.error or f"malformed SSE event: {data[:80]!r}"
        return False
    if not isinstance(payload, dict):
        exchange.error = exchange.error or f"malformed SSE event: {data[:80]!r}"
        return False
    return _absorb(payload, exchange, streamed=True)


def _absorb(payload: dict[str, Any], exchange: Exchange, *, streamed: bool) -> bool:
    error = payload.get("error")
    if error is not None:
        message = error.get("message") if isinstance(error, dict) else error
        exchange.error = f"server error: {message}"  # cut at the door, after masking
        return False
    if "timings" in payload:
        if (doubt := ServerTimings.doubt(payload["timings"])) is not None:
            exchange.error = f"unbelievable response: {doubt}"
            return False
        exchange.timings = ServerTimings.from_json(payload["timings"]) or exchange.timings
    if payload.get("usage") is not None:
        exchange.usage = Usage.from_json(payload["usage"]) or exchange.usage
    fingerprint = payload.get("system_fingerprint")
    if isinstance(fingerprint, str):
        exchange.system_fingerprint = fingerprint
    model = payload.get("model")
    if isinstance(model, str):
        exchange.model = model
    carried_token = False
    choices = payload.get("choices")
    if isinstance(choices, list) and choices and isinstance(choices[0], dict):
        choice = choices[0]
        part = choice.get("delta" if streamed else "message")
        if isinstance(part, dict):
            content = part.get("content")
            reasoning = part.get("reasoning_content")
            if isinstance(content, str) and content:
                exchange.content_chars += len(content)
                exchange.content_events += 1
                if exchange.answer_parts is not None:
                    exchange.answer_parts.append(content)
                carried_token = True
            if isinstance(reasoning, str) and reasoning:
                exchange.reasoning_chars += len(reasoning)
                exchange.reasoning_events += 1
                carried_token = True
        reason = choice.get("finish_reason")
        if isinstance(reason, str):
            exchange.finish_reason = reason
    return carried_token


def raise_for_chat_failure(exchange: Exchange, base_url: str) -> None:
    """Turn a failed preflight chat into the error a user should see."""
    if exchange.ok:
        return
    status = exchange.http_status
    if status in (401, 403):
        raise AuthError(f"authentication failed at {base_url} (HTTP {status}): check --api-key / BENCH_API_KEY")
    if status is None:
        raise EndpointError(f"cannot reach {base_url}: {exchange.error}")
    if status == 404:
        raise ServerError(
            f"{base_url}/v1/chat/completions answered 404: is this an OpenAI-compatible server, "
            f"and is the model name right? ({exchange.error})"
        )
    raise ServerError(f"chat request to {base_url} failed: {exchange.error}")
