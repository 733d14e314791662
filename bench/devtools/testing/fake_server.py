"""A faithful fake of llama-server's HTTP API, for tests and client benchmarks.

It speaks the same JSON and SSE as llama-server (``/health``, ``/props``,
``/v1/models``, ``/tokenize``, ``/apply-template``, ``/v1/chat/completions``),
counts tokens with a whitespace tokenizer so prompt lengths are exact, keeps a
one-slot prompt cache so ``cache_prompt`` and ``cache_n`` behave as on the real
server, and reports ``timings`` derived from its configured speeds. Faults are
switched on through ``FakeConfig``.

A thread per connection keeps one slow stream from delaying another, so the
send times it logs are the truth a client's measurements can be checked against.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import math
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

BOS = "<bos>"
SLOT_SIMILARITY = 0.1  # llama-server's --slot-prompt-similarity: below it a slot is chosen by least recent use


@dataclass
class FakeConfig:
    model: str = "fake-model"
    n_ctx: int = 4096
    total_slots: int = 4
    fingerprint: str = "b0000-fake"
    pp_tps: float = 5000.0
    tg_tps: float = 200.0
    ttft_s: float = 0.0  # injected delay before the first token
    itl_s: float = 0.0  # injected delay between tokens
    api_key: str | None = None  # when set, requests need "Bearer <api_key>"
    send_timings: bool = True
    send_usage: bool = True
    send_done: bool = True
    reasoning_tokens: int = 0  # leading tokens sent as reasoning_content
    eos_after: int | None = None  # natural end after this many tokens unless ignore_eos
    status: int = 200  # answer every chat request with this status
    drop_after_tokens: int | None = None  # close the connection mid-stream
    malformed_event_at: int | None = None  # send invalid JSON as this event
    has_tokenize: bool = True
    tokens_as_text: bool = False  # /tokenize answers tokens in a shape llama-server does not use
    tokenize_extra: int = 0  # /tokenize counts this many tokens more than the chat then processes
    has_props: bool = True
    has_metrics: bool = True  # llama-server started with --metrics
    buffered: bool = False  # deliver a whole stream in one write (a buffering proxy)
    tokens_per_chunk: int = 1
    hang_s: float = 0.0  # wait this long before answering a chat request
    loading_until: float = 0.0  # time.time() before which /health and chat answer 503 "Loading model"
    html_page: bool = False  # answer chat with an HTML page (a non-OpenAI server or a proxy's error page)
    huge_chars: int = 0  # pad non-streamed content to this many characters
    jitter_cv: float = 0.0  # per-request spread of the reported speeds (log-normal), for statistics tests
    slow_after: int | None = None  # after this many chats, pp and tg divide by slow_factor (a server that degrades)
    slow_factor: float = 1.0
    cold_factors: tuple[float, ...] = ()  # the first chats' pp and tg divide by these, one each (a cold server)
    timings_override: dict[str, Any] = field(default_factory=dict)  # e.g. {"prompt_ms": float("nan")}
    gzip_bodies: bool = False  # JSON answers gzip-compressed (a long repetitive answer: a decompression bomb)
    props_padding_bytes: int = 0  # pad /props with a field this long (a 300 MB /props)
    echo_auth_in_errors: bool = False  # error bodies quote the request's Authorization header (a careless proxy)
    # the error body sent as it is: "{auth}" replaced by the Authorization header, "{auth_json}" by the
    # header JSON-escaped as some servers write it ("/" as "\\/")
    error_body: str | None = None
    trickle_paths: tuple[str, ...] = ()  # GET paths answered with headers, then one byte a second
    serve_slots: int = 0  # > 0: at most this many chats served at once, the rest wait (llama-server's -np)
    # prompt-cache slots: each keeps its last request's prompt and answer (all but the last token, as
    # llama.cpp); a chat takes the free slot sharing the longest prefix with it (over SLOT_SIMILARITY of its
    # prompt), else the least recently used
    cache_slots: int = 1
    draft_acceptance: float | None = None  # a draft model: draft every generated token, accept this share
    honour_cache: bool = True  # False: reuse nothing whatever cache_prompt says (a proxy or another server)
    seed: int = 0


@dataclass
class FakeLog:
    """What the server did, for tests to check against."""

    chat_bodies: list[dict[str, Any]] = field(default_factory=list)
    # per request: arrival time and the send time of every token event (time.time())
    arrivals: list[float] = field(default_factory=list)
    header_arrivals: list[float] = field(default_factory=list)  # per chat: when its headers had been read
    token_send_times: list[list[float]] = field(default_factory=list)
    authorization_headers: list[str] = field(default_factory=list)
    write_bounds: list[float] = field(default_factory=list)  # seconds each token event's write took
    connections: list[float] = field(default_factory=list)  # when each connection was accepted (time.time())
    prompt_tokens: int = 0
    predicted_tokens: int = 0


def count_tokens(text: str, *, add_special: bool = True) -> list[str]:
    pieces = text.split()
    return [BOS, *pieces] if add_special else pieces


def render_template(messages: list[dict[str, Any]]) -> str:
    parts = []
    for message in messages:
        parts.append(f"<|{message.get('role', 'user')}|> {message.get('content', '')} <|end|>")
    parts.append("<|assistant|>")
    return " ".join(parts)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else every small write waits ~40 ms for a delayed ACK

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def setup(self) -> None:
        super().setup()
        with self.server.lock:
            self.server.open_connections.add(self.connection)
            self.server.log.connections.append(time.time())

    def finish(self) -> None:
        with self.server.lock:
            self.server.open_connections.discard(self.connection)
        super().finish()

    # ----------------------------------------------------------- helpers
    def _send_json(self, status: int, payload: Any) -> None:
        body = json.dumps(payload).encode()
        gzipped = self.server.config.gzip_bodies
        if gzipped:
            body = gzip.compress(body)
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _read_body(self) -> dict[str, Any]:
        length = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(length) if length else b"{}"
        parsed = json.loads(raw)
        return parsed if isinstance(parsed, dict) else {}

    def _authorised(self) -> bool:
        config = self.server.config
        header = self.headers.get("Authorization", "")
        self.server.log.authorization_headers.append(header)
        if config.api_key is not None and header != f"Bearer {config.api_key}":
            self._send_json(401, {"error": {"code": 401, "message": "Invalid API Key", "type": "authentication_error"}})
            return False
        return True

    # ----------------------------------------------------------- routes
    def _trickle(self) -> None:
        """Headers at once, then a byte a second, for as long as the client stays."""
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", "100000")
        self.end_headers()
        try:
            for _ in range(100000):
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(1.0)
        except OSError:
            return

    def do_GET(self) -> None:
        config = self.server.config
        if self.path in config.trickle_paths:
            self._trickle()
        elif self.path == "/health":
            if time.time() < config.loading_until:
                self._send_json(503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})
            else:
                self._send_json(200, {"status": "ok"})
        elif self.path == "/fake/log":
            # the truth a client's measurements are checked against (not a llama-server route)
            with self.server.lock:
                log = self.server.log
                contents = [str((b.get("messages") or [{}])[-1].get("content", "")) for b in log.chat_bodies]
                payload = {
                    "arrivals": log.arrivals,
                    "token_send_times": log.token_send_times,
                    "write_bounds": log.write_bounds,
                    "contents": contents,
                }
                self._send_json(200, payload)
        elif not self._authorised():
            return
        elif self.path == "/props" and config.has_props:
            self._send_json(
                200,
                {
                    "default_generation_settings": {"n_ctx": config.n_ctx},
                    "total_slots": config.total_slots,
                    "model_path": f"/models/{config.model}.gguf",
                    "build_info": config.fingerprint,
                    "chat_template": "fake",
                    **({"padding": "x" * config.props_padding_bytes} if config.props_padding_bytes else {}),
                },
            )
        elif self.path == "/metrics" and config.has_metrics:
            log = self.server.log
            body = (
                "# HELP llamacpp:prompt_tokens_total Number of prompt tokens processed\n"
                "# TYPE llamacpp:prompt_tokens_total counter\n"
                f"llamacpp:prompt_tokens_total {log.prompt_tokens}\n"
                "# TYPE llamacpp:tokens_predicted_total counter\n"
                f"llamacpp:tokens_predicted_total {log.predicted_tokens}\n"
                "# TYPE llamacpp:requests_processing gauge\n"
                f"llamacpp:requests_processing {self.server.processing}\n"
                "# TYPE llamacpp:requests_deferred gauge\n"
                f"llamacpp:requests_deferred {self.server.deferred}\n"
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
        elif self.path == "/v1/models":
            self._send_json(200, {"object": "list", "data": [{"id": config.model, "object": "model"}]})
        else:
            self._send_json(404, {"error": {"code": 404, "message": "File Not Found"}})

    def do_POST(self) -> None:
        config = self.server.config
        headers_read = time.time()
        if not self._authorised():
            return
        body = self._read_body()
        # a request arrives when it is whole, as for llama-server, which can begin only then (a client
        # may send its headers ahead of its body)
        arrival = time.time()
        if self.path == "/v1/chat/completions":
            with self.server.lock:
                self.server.log.header_arrivals.append(headers_read)
        if self.path == "/tokenize" and config.has_tokenize:
            tokens = count_tokens(str(body.get("content", "")), add_special=bool(body.get("add_special", False)))
            ids: list[Any] = [hash(t) % 50000 for t in tokens] + [0] * config.tokenize_extra
            self._send_json(200, {"tokens": [str(i) for i in ids] if config.tokens_as_text else ids})
        elif self.path == "/apply-template" and config.has_tokenize:
            self._send_json(200, {"prompt": render_template(body.get("messages", []))})
        elif self.path == "/v1/chat/completions":
            self._chat(body, arrival)
        else:
            self._send_json(404, {"error": {"code": 404, "message": "File Not Found"}})

    def _chat(self, body: dict[str, Any], arrival: float) -> None:
        server = self.server
        if server.config.serve_slots > 0:
            # a known service model: with N slots busy, the next request queues until one frees
            # (deferred, as llama-server's /metrics counts it)
            with server.lock:
                server.deferred += 1
            slots = server.slots_for(server.config.serve_slots)
            slots.acquire()
            with server.lock:
                server.deferred -= 1
            try:
                self._served(body, arrival)
            finally:
                slots.release()
        else:
            self._served(body, arrival)

    def _served(self, body: dict[str, Any], arrival: float) -> None:
        with self.server.lock:
            self.server.processing += 1
        try:
            self._serve_chat(body, arrival)
        finally:
            with self.server.lock:
                self.server.processing -= 1

    def _serve_chat(self, body: dict[str, Any], arrival: float) -> None:
        config = self.server.config
        log = self.server.log
        with self.server.lock:
            log.chat_bodies.append(body)
            log.arrivals.append(arrival)
            send_times: list[float] = []
            log.token_send_times.append(send_times)
        if config.hang_s:
            time.sleep(config.hang_s)
        if time.time() < config.loading_until:
            self._send_json(503, {"error": {"code": 503, "message": "Loading model", "type": "unavailable_error"}})
            return
        if config.html_page:
            page = b"<html><body><h1>Welcome to nginx!</h1></body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if config.status != 200 and config.error_body is not None:
            auth = self.headers.get("Authorization", "")
            escaped = json.dumps(auth)[1:-1].replace("/", "\\/")
            page = config.error_body.replace("{auth_json}", escaped).replace("{auth}", auth).encode()
            self.send_response(config.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)
            return
        if config.status != 200:
            text = f"fake status {config.status}"
            if config.echo_auth_in_errors:
                text += f"; request headers: Authorization: {self.headers.get('Authorization', '')}"
            self._send_json(config.status, {"error": {"code": config.status, "message": text}})
            return
        prompt = count_tokens(render_template(body.get("messages", [])))
        with self.server.lock:
            slot, shared = self.server.take_slot(prompt)
        asked = body.get("cache_prompt", True) and self.server.config.honour_cache
        cache_n = min(shared, len(prompt) - 1) if asked else 0
        self._slot: int | None = slot
        try:
            self._answer_chat(body, arrival, prompt, cache_n, send_times)
        finally:
            self._release(prompt)  # an answer cut short: the slot keeps what it processed

    def _release(self, cached: list[str]) -> None:
        """Free the chat's cache slot, once, keeping ``cached``: before the answer's last bytes, as
        llama-server frees a slot before its final response, so the next turn finds it free."""
        slot, self._slot = self._slot, None
        self.server.free_slot(slot, cached)

    def _answer_chat(
        self, body: dict[str, Any], arrival: float, prompt: list[str], cache_n: int, send_times: list[float]
    ) -> None:
        config = self.server.config
        log = self.server.log
        prompt_n = len(prompt) - cache_n
        with self.server.lock:
            log.prompt_tokens += prompt_n
        max_tokens = int(body.get("max_tokens") or body.get("n_predict") or 16)
        n_tokens = max_tokens
        finish = "length"
        if config.eos_after is not None and not body.get("ignore_eos") and config.eos_after < max_tokens:
            n_tokens, finish = config.eos_after, "stop"
        pp_tps, tg_tps = config.pp_tps, config.tg_tps
        with self.server.lock:
            self.server.chats += 1
            slowed = config.slow_after is not None and self.server.chats > config.slow_after
        if slowed:
            pp_tps, tg_tps = pp_tps / config.slow_factor, tg_tps / config.slow_factor
        if self.server.chats <= len(config.cold_factors):
            cold = config.cold_factors[self.server.chats - 1]
            pp_tps, tg_tps = pp_tps / cold, tg_tps / cold
        if config.jitter_cv:
            with self.server.lock:
                pp_tps *= _lognormal(self.server.rng, config.jitter_cv)
                tg_tps *= _lognormal(self.server.rng, config.jitter_cv)
        reasoned = min(config.reasoning_tokens, n_tokens)
        generated = ["think"] * reasoned + ["tok"] * (n_tokens - reasoned)
        timings = {
            "cache_n": cache_n,
            "prompt_n": prompt_n,
            "prompt_ms": prompt_n / pp_tps * 1000,
            "prompt_per_token_ms": 1000 / pp_tps,
            "prompt_per_second": pp_tps,
            "predicted_n": n_tokens,
            "predicted_ms": n_tokens / tg_tps * 1000,
            "predicted_per_token_ms": 1000 / tg_tps,
            "predicted_per_second": tg_tps,
            **config.timings_override,
        }
        if config.draft_acceptance is not None:
            timings["draft_n"] = n_tokens
            timings["draft_n_accepted"] = round(n_tokens * config.draft_acceptance)
        usage = {"prompt_tokens": len(prompt), "completion_tokens": n_tokens, "total_tokens": len(prompt) + n_tokens}
        with self.server.lock:
            log.predicted_tokens += n_tokens
        common = {
            "id": "chatcmpl-fake",
            "created": int(arrival),
            "model": config.model,
            "system_fingerprint": config.fingerprint,
        }
        if not body.get("stream"):
            if config.ttft_s:
                time.sleep(config.ttft_s + config.itl_s * max(n_tokens - 1, 0))
            reasoning = " ".join(["think"] * min(config.reasoning_tokens, n_tokens))
            content = " ".join(["tok"] * max(n_tokens - config.reasoning_tokens, 0))
            content += "x" * max(config.huge_chars - len(content), 0)
            message: dict[str, Any] = {"role": "assistant", "content": content}
            if config.reasoning_tokens:
                message["reasoning_content"] = reasoning
            payload: dict[str, Any] = {
                **common,
                "object": "chat.completion",
                "choices": [{"index": 0, "finish_reason": finish, "message": message}],
            }
            if config.send_usage:
                payload["usage"] = usage
            if config.send_timings:
                payload["timings"] = timings
            self._release(prompt + generated[:-1])
            self._send_json(200, payload)
            return
        self._stream(common, n_tokens, finish, usage, timings, send_times, arrival, prompt + generated[:-1])

    def _stream(
        self,
        common: dict[str, Any],
        n_tokens: int,
        finish: str,
        usage: dict[str, Any],
        timings: dict[str, Any],
        send_times: list[float],
        arrival: float,
        cached: list[str],
    ) -> None:
        config = self.server.config
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        # chunked, so the connection stays open for the next request, as with llama-server
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        held: list[bytes] = []
        write_bounds = self.server.log.write_bounds

        def emit(payload: Any, raw: bytes | None = None) -> None:
            data = raw if raw is not None else json.dumps(payload).encode()
            line = b"data: " + data + b"\n\n"
            if config.buffered:
                held.append(line)
            else:
                self.wfile.write(_chunk(line))
                self.wfile.flush()

        emit(
            {
                **common,
                "object": "chat.completion.chunk",
                "choices": [{"index": 0, "finish_reason": None, "delta": {"role": "assistant", "content": None}}],
            }
        )
        event = 0
        sent = 0
        next_send = arrival + config.ttft_s
        while sent < n_tokens:
            if config.drop_after_tokens is not None and sent >= config.drop_after_tokens:
                self.wfile.flush()
                self.close_connection = True
                self.connection.shutdown(2)
                return
            delay = next_send - time.time()
            if delay > 0:
                time.sleep(delay)
            batch = min(config.tokens_per_chunk, n_tokens - sent)
            field_name = "reasoning_content" if sent < config.reasoning_tokens else "content"
            event += 1
            before = time.time()
            if config.malformed_event_at == event:
                emit(None, raw=b"{not json")
            else:
                emit(
                    {
                        **common,
                        "object": "chat.completion.chunk",
                        "choices": [{"index": 0, "finish_reason": None, "delta": {field_name: " tok" * batch}}],
                    }
                )
            after = time.time()
            # the bytes left between `before` and `after`: the truth's own error bound
            send_times.append(after)
            write_bounds.append(after - before)
            sent += batch
            next_send += config.itl_s
        final: dict[str, Any] = {
            **common,
            "object": "chat.completion.chunk",
            "choices": [{"index": 0, "finish_reason": finish, "delta": {}}],
        }
        # the slot keeps the prompt and what was generated but the last token (never decoded)
        self._release(cached)
        emit(final)
        tail: dict[str, Any] = {**common, "object": "chat.completion.chunk", "choices": []}
        if config.send_usage:
            tail["usage"] = usage
        if config.send_timings:
            tail["timings"] = timings
        emit(tail)
        if config.send_done:
            emit(None, raw=b"[DONE]")
        if held:
            self.wfile.write(_chunk(b"".join(held)))
        self.wfile.write(b"0\r\n\r\n")  # the last chunk: the response is complete
        self.wfile.flush()


def _common_prefix(a: list[str], b: list[str]) -> int:
    # its own, not bench.load.workload.common_prefix: the fake checks the suite, so it shares none of its logic
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


def _lognormal(rng: random.Random, cv: float) -> float:
    sigma = math.sqrt(math.log(1 + cv * cv))
    return rng.lognormvariate(-sigma * sigma / 2, sigma)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 refuses bursts of concurrent streams
    config: FakeConfig
    log: FakeLog
    lock: threading.Lock
    slot_caches: list[list[str]]
    slot_used: list[float]  # when each slot last served, for least-recently-used
    slot_busy: list[bool]
    rng: random.Random
    open_connections: set[Any]
    _slots: tuple[int, threading.BoundedSemaphore] | None = None
    processing: int = 0  # chats being served now
    deferred: int = 0  # chats waiting for a slot (serve_slots)
    chats: int = 0  # chats answered so far (slow_after)

    def take_slot(self, prompt: list[str]) -> tuple[int | None, int]:
        """A free cache slot for the prompt (the longest shared prefix, else the least recently used) and
        that prefix's length; (None, 0) when every slot is busy. Call with the lock held."""
        slots = max(self.config.cache_slots, 1)
        if len(self.slot_caches) != slots:  # a test changed the config after the start: empty slots
            self.slot_caches, self.slot_used, self.slot_busy = (
                [[] for _ in range(slots)],
                [0.0] * slots,
                [False] * slots,
            )
        free = [i for i, busy in enumerate(self.slot_busy) if not busy]
        if not free:
            return None, 0
        shared = {i: _common_prefix(self.slot_caches[i], prompt) for i in free}
        best = max(free, key=lambda i: (shared[i], -self.slot_used[i]))
        if shared[best] <= SLOT_SIMILARITY * len(prompt):  # sharing only the template's opening is no match
            best = min(free, key=lambda i: self.slot_used[i])
        self.slot_busy[best] = True
        return best, shared[best]

    def free_slot(self, slot: int | None, cached: list[str]) -> None:
        if slot is not None:
            with self.lock:
                self.slot_caches[slot] = cached
                self.slot_used[slot] = time.monotonic()
                self.slot_busy[slot] = False

    def slots_for(self, n: int) -> threading.BoundedSemaphore:
        with self.lock:
            if self._slots is None or self._slots[0] != n:
                self._slots = (n, threading.BoundedSemaphore(n))
            return self._slots[1]


class FakeLlamaServer:
    """Run the fake on 127.0.0.1 in a background thread: ``with FakeLlamaServer() as url: ...``."""

    def __init__(self, config: FakeConfig | None = None, *, port: int = 0) -> None:
        self.config = config or FakeConfig()
        self.port = port
        self.log = FakeLog()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("fake server is not running")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> str:
        server = _Server(("127.0.0.1", self.port), _Handler)
        server.config = self.config
        server.log = self.log
        server.lock = threading.Lock()
        server.slot_caches, server.slot_used, server.slot_busy = [], [], []  # made on the first chat
        server.open_connections = set()
        server.rng = random.Random(self.config.seed)
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.02,), name="fake-llama-server", daemon=True
        )
        self._thread.start()
        return self.url

    def reset_chats(self) -> None:
        """Count chats from here on (cold_factors, slow_after): a test's case starts after the preflight's."""
        if self._server is not None:
            with self._server.lock:
                self._server.chats = 0

    def stop(self) -> None:
        """Stop serving and cut every open keep-alive connection, as a dying server would."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            with self._server.lock:
                connections = list(self._server.open_connections)
            for connection in connections:
                with contextlib.suppress(OSError):
                    connection.shutdown(socket.SHUT_RDWR)
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def fake_server_process(*args: str) -> Iterator[str]:
    """The fake in its own process (options as for ``main``), so this process's CPU time is the client's alone."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bench.devtools.testing.fake_server", *args], stdout=subprocess.PIPE, text=True
    )
    try:
        assert process.stdout is not None
        yield process.stdout.readline().strip()
    finally:
        process.terminate()
        process.communicate(timeout=10)


def main(argv: list[str] | None = None) -> None:
    """Serve the fake on 127.0.0.1 until killed; prints its URL on the first line."""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m bench.devtools.testing.fake_server", description=main.__doc__, allow_abbrev=False
    )
    parser.add_argument("--ttft", type=float, default=0.0, help="seconds before the first token")
    parser.add_argument("--itl", type=float, default=0.0, help="seconds between tokens")
    parser.add_argument("--tokens-per-chunk", type=int, default=1)
    parser.add_argument("--pp-tps", type=float, default=FakeConfig.pp_tps, help="the prompt speed its timings report")
    parser.add_argument("--tg-tps", type=float, default=FakeConfig.tg_tps, help="the generation speed they report")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: any free one)")
    parser.add_argument("--build-info", default=FakeConfig.fingerprint, help="the build /props names (b6458-abc1234)")
    parser.add_argument(
        "--as-llama-server",
        action="store_true",
        help="stand in for a llama-server binary: take its command line, use its --port, ignore the rest",
    )
    args, unknown = parser.parse_known_args(argv)
    if unknown and not args.as_llama_server:
        parser.error(f"unrecognized arguments: {' '.join(unknown)}")
    config = FakeConfig(
        ttft_s=args.ttft, itl_s=args.itl, tokens_per_chunk=args.tokens_per_chunk, pp_tps=args.pp_tps,
        tg_tps=args.tg_tps, fingerprint=args.build_info,
    )  # fmt: skip
    server = FakeLlamaServer(config, port=args.port)
    print(server.start(), flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()
