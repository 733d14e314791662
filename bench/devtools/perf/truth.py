"""The timing truth: a compiled streaming server that logs when each token left.

``truth_server.c`` is compiled once into the cache directory with the system C
compiler. Each benchmark tool gets a fresh server and log, so a log holds that
tool's requests only.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from bench.devtools.perf.process import pinned
from bench.errors import PerfSetupError
from bench.load.server import cache_dir


@dataclass(frozen=True)
class Schedule:
    """What the truth server injects: TTFT, then inter-token gaps, each with uniform +/- jitter."""

    ttft_ms: float = 50.0
    itl_ms: float = 4.55  # 219.71 t/s, the published generation figure
    jitter: float = 0.2
    seed: int = 1


@dataclass(frozen=True)
class TruthRequest:
    arrival: float
    max_tokens: int
    stream: bool
    sends: tuple[float, ...]
    write_max_s: float

    @property
    def ttft_ms(self) -> float:
        return (self.sends[0] - self.arrival) * 1000.0


def build(compiler: str | None = None) -> Path:
    """Compile the server (once per source version) and return the binary's path."""
    source = resources.files("bench.devtools.perf").joinpath("truth_server.c").read_bytes()
    digest = hashlib.sha256(source).hexdigest()[:12]
    binary = cache_dir() / "perf" / f"truth_server-{digest}"
    if binary.is_file():
        return binary
    cc = compiler or os.environ.get("CC") or shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise PerfSetupError("no C compiler found (install gcc, or set CC): the truth server is compiled C")
    binary.parent.mkdir(parents=True, exist_ok=True)
    src = binary.with_suffix(".c")
    src.write_bytes(source)
    result = subprocess.run(
        [cc, "-O2", "-pthread", "-o", str(binary), str(src)], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise PerfSetupError(f"compiling the truth server failed:\n{result.stderr}")
    return binary


@contextlib.contextmanager
def truth_server(log_path: Path, schedule: Schedule, *, core: int | None = None) -> Iterator[str]:
    """Serve on 127.0.0.1 while the block runs; yields the base URL."""
    binary = build()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_path.unlink(missing_ok=True)
    argv = [str(binary), str(log_path), str(schedule.ttft_ms), str(schedule.itl_ms), str(schedule.jitter)]
    process = subprocess.Popen(pinned([*argv, str(schedule.seed)], core), stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        url = process.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            raise PerfSetupError(f"the truth server did not start (printed {url!r})")
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def read_log(log_path: Path) -> list[TruthRequest]:
    requests = []
    with log_path.open() as lines:
        for line in lines:
            row = json.loads(line)
            if not row["sends"]:
                continue
            requests.append(
                TruthRequest(
                    arrival=row["arrival"],
                    max_tokens=row["max_tokens"],
                    stream=bool(row["stream"]),
                    sends=tuple(row["sends"]),
                    write_max_s=row["write_max_s"],
                )
            )
    return requests
