"""One /health wait for every caller, each with its policy: what is ready, and what ends the wait."""

from __future__ import annotations

import time

import pytest

from bench.devtools.testing.fake_server import FakeLlamaServer
from bench.errors import EndpointError, ServerStartError
from bench.transport.health import HealthPolicy, HealthTimeout, not_loading, wait_for_health

LOADING = HealthPolicy(ready_when=not_loading, fail_when_unreachable=True, first_delay_s=0.05, max_delay_s=0.2)


def test_a_loading_server_is_waited_for_and_said_once(fake: FakeLlamaServer) -> None:
    fake.config.loading_until = time.time() + 0.5
    said: list[str] = []
    wait_for_health(fake.url, 10, LOADING, say=said.append)
    assert time.time() >= fake.config.loading_until
    assert said == [f"{fake.url} is loading its model (HTTP 503); waiting up to 10 s"]


def test_the_bound_ends_the_wait_with_what_the_server_last_said(fake: FakeLlamaServer) -> None:
    fake.config.loading_until = time.time() + 60
    with pytest.raises(HealthTimeout, match=r"still answers 503 \(loading\) after 0.3 s") as caught:
        wait_for_health(fake.url, 0.3, LOADING)
    assert caught.value.last == "still answers 503 (loading)"


def test_unreachable_fails_at_once_or_is_waited_for_as_the_policy_says() -> None:
    started = time.monotonic()
    with pytest.raises(EndpointError, match=r"cannot reach http://127.0.0.1:9: ConnectError"):
        wait_for_health("http://127.0.0.1:9", 30, LOADING)
    assert time.monotonic() - started < 5  # at once, not after the 30 s bound
    with pytest.raises(HealthTimeout, match=r"still cannot be reached after 0\.3 s"):
        wait_for_health("http://127.0.0.1:9", 0.3, HealthPolicy(first_delay_s=0.05))


def test_what_is_waited_for_dying_ends_the_wait(fake: FakeLlamaServer) -> None:
    fake.config.loading_until = time.time() + 60

    def died() -> None:
        raise ServerStartError("llama-server exited with code 1 while starting")

    with pytest.raises(ServerStartError, match="exited with code 1"):
        wait_for_health(fake.url, 30, HealthPolicy(), alive=died)


def test_a_server_without_health_is_ready_for_a_run_but_not_for_a_switch(fake: FakeLlamaServer) -> None:
    # /health answering 404 means "no such endpoint": a run goes on; a switched server must say 200
    wait_for_health(f"{fake.url}/nothing-here", 5, LOADING)
    with pytest.raises(HealthTimeout, match="still answers /health with HTTP 404"):
        wait_for_health(f"{fake.url}/nothing-here", 0.3, HealthPolicy(first_delay_s=0.05))
