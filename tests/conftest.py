from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from bench.devtools import own_costs
from bench.devtools.testing.fake_server import FakeConfig, FakeLlamaServer


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


SuiteFigure = Callable[[str, float], None]


@pytest.fixture
def suite_figure(request: pytest.FixtureRequest) -> SuiteFigure:
    """Record one of the own-cost figures (docs/own-costs.md) (bench.devtools.own_costs).

    With ``--benchmark-enable`` the figure is checked against its target, with slack,
    and kept in docs/measured/suite-costs.json for the own-cost table; in the normal
    run (benchmarks disabled, bodies run once at a small size) it is only named.
    """
    enabled = not request.getfixturevalue("benchmark").disabled

    def keep(key: str, value: float) -> None:
        if key not in own_costs.KEYS:
            raise KeyError(f"{key} is not a figure of the own-cost table")
        if enabled:
            own_costs.record(key, value)
            missed = own_costs.breaches({key: value})
            assert not missed, missed

    return keep
