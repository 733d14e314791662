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


@pytest.fixture(autouse=True)
def _work_in_a_temporary_directory(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Commands default to ./results and ./reports: keep tests from writing into the checkout."""
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))
