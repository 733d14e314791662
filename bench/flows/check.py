"""``bench check``: the preflight as a command, against an endpoint or the embedded server."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path

from bench.doors.redact import Redactor, flag_secrets
from bench.load.preflight import EndpointInfo, probe
from bench.load.server import cache_dir, local_server
from bench.transport.client import DEFAULT_MAX_BODY_BYTES, ChatClient


def run_check(
    *,
    endpoint: str | None,
    api_key: str = "EMPTY",
    model: str | None = None,
    timeout_s: float = 60.0,
    server_binary: Path | None = None,
    model_file: Path | None = None,
    server_args: tuple[str, ...] | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> EndpointInfo:
    server = None
    if endpoint is None:
        server = local_server(
            binary=server_binary, model_file=model_file, args=server_args, log_path=cache_dir() / "check-server.log"
        )
        endpoint = server.start()
    try:
        redactor = Redactor([api_key, *flag_secrets(server_args)])
        info = asyncio.run(_check(endpoint, api_key, model, timeout_s, redactor, max_body_bytes))
        if server is not None and server.fallback is not None:
            info = replace(info, notes=(server.fallback, *info.notes))
        return info
    finally:
        if server is not None:
            server.stop()


async def _check(
    endpoint: str, api_key: str, model: str | None, timeout_s: float, redactor: Redactor, max_body_bytes: int
) -> EndpointInfo:
    async with ChatClient(
        endpoint, api_key=api_key, model=model, timeout_s=timeout_s, redactor=redactor, max_body_bytes=max_body_bytes
    ) as client:
        return await probe(client, check_cache=True)
