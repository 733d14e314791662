from __future__ import annotations

import asyncio

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import AuthError, ConfigError, EndpointError, ServerError
from bench.transport import lanes
from bench.transport.client import ChatClient, Exchange, normalise_endpoint, raise_for_chat_failure

MESSAGES = [{"role": "user", "content": "hello there"}]


@pytest.fixture(autouse=True, params=["lean", "httpcore"])
def lane(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each behaviour holds on both lanes: the lean one (plain HTTP on Linux) and httpcore's (TLS, elsewhere)."""
    if request.param == "httpcore":
        monkeypatch.setattr(lanes, "STAMPS_AVAILABLE", False)
    elif not lanes.STAMPS_AVAILABLE:
        pytest.skip("the lean lane is Linux's")
    taken = lanes.open_lane("http://127.0.0.1:9", {}, timeout_s=1, connect_timeout_s=1, ssl_context=None)
    assert type(taken).__name__ == {"lean": "H1Lane", "httpcore": "PoolLane"}[request.param]
    return str(request.param)


def chat(url: str, *, stream: bool, max_tokens: int = 8, api_key: str = "EMPTY") -> Exchange:
    async def go() -> Exchange:
        async with ChatClient(url, api_key=api_key, timeout_s=10) as client:
            return await client.chat(client.chat_body(MESSAGES, max_tokens=max_tokens, stream=stream))

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("given", "base"),
    [
        ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080"),
        ("http://127.0.0.1:8080/v1/chat/completions", "http://127.0.0.1:8080"),
        ("https://gpu-host.example/llm/v1", "https://gpu-host.example/llm"),
    ],
)
def test_endpoint_is_normalised_to_the_server_base(given: str, base: str) -> None:
    assert normalise_endpoint(given) == base


def test_endpoint_with_credentials_or_no_scheme_is_refused() -> None:
    with pytest.raises(ConfigError, match="must not contain credentials"):
        normalise_endpoint("http://user:secret@127.0.0.1:8080")
    with pytest.raises(ConfigError, match="http"):
        normalise_endpoint("127.0.0.1:8080")


def test_streamed_request_records_tokens_timings_and_times(fake: FakeLlamaServer) -> None:
    fake.config.reasoning_tokens = 3
    ex = chat(fake.url, stream=True, max_tokens=8)
    assert ex.ok and ex.http_status == 200 and ex.saw_done
    assert ex.finish_reason == "length"
    assert len(ex.token_times) == 8
    assert ex.reasoning_chars == len(" tok") * 3 and ex.content_chars == len(" tok") * 5
    assert ex.timings is not None and ex.timings.predicted_n == 8 and ex.timings.cache_n == 0
    assert ex.usage is not None and ex.usage.completion_tokens == 8
    assert ex.system_fingerprint == "b0000-fake" and ex.model == "fake-model"
    assert ex.t_first_byte is not None and ex.t_first_token is not None
    assert ex.t_sent <= ex.t_first_byte <= ex.t_first_token <= ex.token_times[-1] <= ex.t_end


def test_role_only_first_chunk_is_not_the_first_token(fake: FakeLlamaServer) -> None:
    fake.config.ttft_s = 0.3
    ex = chat(fake.url, stream=True, max_tokens=2)
    assert ex.t_first_byte is not None and ex.t_first_token is not None
    # the role chunk arrives at once and is not a token: the first token comes after the injected
    # 300 ms, and after the first byte (were the role chunk counted, the two would be one time)
    assert ex.t_first_token - ex.t_sent >= 0.295
    assert ex.t_first_byte < ex.t_first_token


def test_request_forces_output_length_and_disables_the_prompt_cache(fake: FakeLlamaServer) -> None:
    chat(fake.url, stream=True, max_tokens=8)
    body = fake.log.chat_bodies[-1]
    assert body["max_tokens"] == 8 and body["n_predict"] == 8 and body["ignore_eos"] is True
    assert body["cache_prompt"] is False
    assert body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_p"]) == (1.0, 1.0)


def test_non_streaming_request_has_no_ttft_but_full_record(fake: FakeLlamaServer) -> None:
    ex = chat(fake.url, stream=False, max_tokens=5)
    assert ex.ok and ex.t_first_token is None and ex.token_times == []
    assert ex.timings is not None and ex.timings.predicted_n == 5
    assert ex.content_chars > 0 and ex.finish_reason == "length"


def test_bearer_key_is_sent_and_a_wrong_key_is_an_auth_failure(fake: FakeLlamaServer) -> None:
    fake.config.api_key = "right-key"
    assert chat(fake.url, stream=True, api_key="right-key").ok
    assert fake.log.authorization_headers[-1] == "Bearer right-key"
    wrong = chat(fake.url, stream=True, api_key="wrong-key")
    assert wrong.http_status == 401 and not wrong.ok
    with pytest.raises(AuthError, match="authentication failed"):
        raise_for_chat_failure(wrong, fake.url)


def test_server_error_status_is_recorded_with_its_message(fake: FakeLlamaServer) -> None:
    fake.config.status = 503
    ex = chat(fake.url, stream=True)
    assert not ex.ok and ex.http_status == 503
    assert ex.error == "HTTP 503: fake status 503"
    with pytest.raises(ServerError):
        raise_for_chat_failure(ex, fake.url)


def test_connection_dropped_mid_stream_keeps_the_tokens_seen(fake: FakeLlamaServer) -> None:
    fake.config.drop_after_tokens = 3
    ex = chat(fake.url, stream=True, max_tokens=8)
    assert not ex.ok
    assert len(ex.token_times) == 3
    assert ex.error is not None


def test_stream_without_done_is_an_error(fake: FakeLlamaServer) -> None:
    fake.config.send_done = False
    ex = chat(fake.url, stream=True)
    assert not ex.ok and ex.error == "stream ended without data: [DONE]"
    assert len(ex.token_times) == 8  # what arrived is still measured


def test_malformed_event_is_an_error_not_a_crash(fake: FakeLlamaServer) -> None:
    fake.config.malformed_event_at = 2
    ex = chat(fake.url, stream=True)
    assert not ex.ok and ex.error is not None and ex.error.startswith("malformed SSE event")


def test_server_without_timings_still_gives_client_times(fake: FakeLlamaServer) -> None:
    fake.config.send_timings = False
    ex = chat(fake.url, stream=True)
    assert ex.ok and ex.timings is None and len(ex.token_times) == 8


def test_unreachable_endpoint_is_recorded_then_raised_as_endpoint_error() -> None:
    from bench.load.server import free_port

    url = f"http://127.0.0.1:{free_port()}"
    ex = chat(url, stream=True)
    assert ex.http_status is None and ex.error is not None and "ConnectError" in ex.error
    with pytest.raises(EndpointError, match="cannot reach"):
        raise_for_chat_failure(ex, url)


def test_probes_of_missing_endpoints_return_none(fake: FakeLlamaServer) -> None:
    fake.config.has_tokenize = False
    fake.config.has_props = False

    async def go() -> tuple[object, object, object]:
        async with ChatClient(fake.url) as client:
            return await client.get_json("/props"), await client.tokenize("x"), await client.apply_template(MESSAGES)

    assert asyncio.run(go()) == (None, None, None)


def test_a_timed_request_sends_its_headers_at_once_and_its_body_at_its_time(fake: FakeLlamaServer) -> None:
    """The way out (a connection, the headers) is spent before the request's time; the server waits for the body."""

    async def go() -> tuple[float, Exchange]:
        async with ChatClient(fake.url, timeout_s=10) as client:
            called = client.clock.now()
            due = asyncio.get_running_loop().time() + 0.3
            exchange = await client.chat(client.chat_body(MESSAGES, max_tokens=2, stream=True), at=due)
            return called, exchange

    called, exchange = asyncio.run(go())
    assert exchange.ok and exchange.t_written is not None
    assert exchange.t_sent == exchange.t_written >= called + 0.299  # counted as sent when its body went, on time
    (headers,) = fake.log.header_arrivals
    (arrival,) = fake.log.arrivals  # whole: its body read
    assert headers < exchange.t_written - 0.2 < arrival - 0.2
    assert fake.log.chat_bodies[0]["max_tokens"] == 2  # and the body arrived whole
