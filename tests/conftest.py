from __future__ import annotations

from collections.abc import Iterator

import pytest

from bench.testing.fake_server import FakeConfig, FakeLlamaServer


@pytest.fixture
def fake() -> Iterator[FakeLlamaServer]:
    """A fresh fake llama-server on 127.0.0.1; tweak ``fake.config`` in the test."""
    server = FakeLlamaServer(FakeConfig())
    server.start()
    try:
        yield server
    finally:
        server.stop()
