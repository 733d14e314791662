"""Integration fixtures: one real llama-server (the embedded default) per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.load.server import LocalServer, local_server


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalServer]:
    log = Path(tmp_path_factory.mktemp("llama")) / "server.log"
    server = local_server(binary=None, model_file=None, args=None, log_path=log, max_concurrency=2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


def running_commands() -> list[str]:
    """Command lines of every process, for checks that nothing was left running."""
    commands = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            commands.append(cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except OSError:
            continue
    return commands
