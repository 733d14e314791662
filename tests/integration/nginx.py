"""A real nginx (Debian's) on loopback in front of a server, with Bearer-token checking at the proxy."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench.load.server import free_port

CONFIG = """
user root;
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            if ($http_authorization != "Bearer {key}") {{
                return 401 '{{"error": {{"code": 401, "message": "Unauthorized"}}}}';
            }}
            proxy_pass http://127.0.0.1:{upstream};
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_read_timeout 600s;
            proxy_buffering {buffering};
            {ignore}
        }}
    }}
}}
"""


# What makes nginx hold SSE back. proxy_buffering alone does not: llama-server sends
# "X-Accel-Buffering: no", and even with that header ignored nginx 1.22 passed tokens on
# one by one here. gzip does: it releases compressed output a buffer at a time.
BUFFERING = "proxy_ignore_headers X-Accel-Buffering; gzip on; gzip_types text/event-stream; gzip_min_length 0;"


def nginx_binary() -> str:
    found = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(found).exists():
        raise AssertionError("these tests need Debian's nginx: apt-get install -y nginx (see README)")
    return found


@contextmanager
def nginx_proxy(upstream_url: str, key: str, workdir: Path, *, buffering: bool = False) -> Iterator[str]:
    """Start nginx proxying to ``upstream_url``; yields its URL; stops it on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    upstream = upstream_url.rsplit(":", 1)[1]
    conf = workdir / "nginx.conf"
    conf.write_text(
        CONFIG.format(
            dir=workdir,
            port=port,
            key=key,
            upstream=upstream,
            buffering="on" if buffering else "off",
            ignore=BUFFERING if buffering else "",
        )
    )
    process = subprocess.Popen(
        [nginx_binary(), "-c", str(conf), "-p", str(workdir), "-e", str(workdir / "error.log")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = (workdir / "error.log").read_text() if (workdir / "error.log").exists() else ""
                    raise AssertionError(f"nginx did not start: {log}") from None
                time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
