"""A llama-server for each commit ``bench bisect`` tests: its own git worktree, a build, a cache by commit.

The user's checkout is never touched. Each commit is checked out with ``git worktree add --detach``
under the cache (``~/.cache/llama-server-bench/bisect/<repository>/<full hash>``) and built there,
by the user's build command or the default: CMake and Ninja for ``llama-server`` alone, with CUDA
where ``nvcc`` is found, through ccache where it is installed. The binary stays where the build left
it, so a second bisect over the same range builds nothing again; a commit that failed to build is
remembered with its log (``build.log`` beside it), and bisect skips it as ``git bisect skip`` does.

A server the suite does not start (``--endpoint`` with ``--deploy-cmd``) gets each commit from the
user's deploy command instead (``Deployments``): the suite runs it before every run, and bisect
checks the build the endpoint then says it serves.

Every command runs as an argument list through the process door, bounded in time.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from bench.doors import files
from bench.doors.children import run_command
from bench.errors import ConfigError
from bench.records import Commit

GIT_TIMEOUT_S = 120.0
BUILD_TIMEOUT_S = 3 * 3600.0  # a CUDA build of llama-server for every architecture takes long; one is enough
DEPLOY_TIMEOUT_S = 3600.0  # a deploy that builds the commit on the server's host, then restarts it
COMMIT_FIELDS = ("{commit}", "{short}")  # what a deploy command's arguments name the commit by
DEFAULT_CACHE = Path.home() / ".cache" / "llama-server-bench" / "bisect"
SERVER_PATH = Path("build") / "bin" / "llama-server"  # where the default build leaves the binary
FAILED = "build.failed"  # beside a worktree whose build failed: the commit is skipped from then on
PR_NUMBER = re.compile(r"\(#(\d+)\)\s*$")  # GitHub's squash-merge subject: "server : fix ... (#12345)"


def _git(repo: Path, *args: str) -> str:
    try:
        done = run_command(["git", "-C", str(repo), *args], timeout_s=GIT_TIMEOUT_S)
    except OSError as exc:
        raise ConfigError(f"cannot run git: {exc.strerror or exc}; bisect needs git on the PATH") from None
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        raise ConfigError(f"git {' '.join(args)} in {repo} failed: {said[-1] if said else 'no output'}")
    return done.stdout


def commits_between(repo: Path, good: str, bad: str) -> list[Commit]:
    """``good`` first, then each commit on the ancestry path to ``bad``, which comes last."""
    fields = "%H%x1f%s%x1f%cI"
    good_line = _git(repo, "log", "-1", f"--format={fields}", f"{good}^{{commit}}").strip()
    path = _git(repo, "log", "--reverse", "--ancestry-path", f"--format={fields}", f"{good}..{bad}").splitlines()
    if not path:
        raise ConfigError(f"{bad} does not come after {good} in {repo}: nothing to bisect (is the order right?)")
    commits = [_commit(line) for line in (good_line, *path) if line.strip()]
    if commits[-1].sha != _git(repo, "rev-parse", f"{bad}^{{commit}}").strip():
        raise ConfigError(f"{bad} is not a descendant of {good} in {repo}")
    return commits


def _commit(line: str) -> Commit:
    sha, subject, date = [*line.split("\x1f"), "", ""][:3]
    match = PR_NUMBER.search(subject)
    return Commit(sha.strip(), subject.strip(), date.strip(), int(match.group(1)) if match else None)


def default_build() -> tuple[tuple[str, ...], ...]:
    """CMake commands for llama-server alone: CUDA where nvcc is found, ccache where installed."""
    configure = ["cmake", "-S", ".", "-B", "build", "-DCMAKE_BUILD_TYPE=Release", "-DLLAMA_BUILD_TESTS=OFF",
                 "-DLLAMA_BUILD_EXAMPLES=OFF", "-DLLAMA_CURL=OFF"]  # fmt: skip
    if shutil.which("ninja"):
        configure += ["-G", "Ninja"]
    if shutil.which("nvcc"):
        configure += ["-DGGML_CUDA=ON", "-DCMAKE_CUDA_ARCHITECTURES=native"]
    if shutil.which("ccache"):
        configure += [f"-DCMAKE_{lang}_COMPILER_LAUNCHER=ccache" for lang in ("C", "CXX", "CUDA")]
    jobs = str(len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    return (tuple(configure), ("cmake", "--build", "build", "--target", "llama-server", "-j", jobs))


class ServerSource(Protocol):
    """Where bisect gets each commit's llama-server: built from git (``Builds``), released (``ReleaseBinaries``),
    or deployed by the user's command to an endpoint (``Deployments``)."""

    def commits(self, good: str, bad: str) -> list[Commit]: ...
    def server(self, commit: Commit) -> Path | str | None:
        """The commit's binary (a path), the endpoint that will serve it (a URL), or None where it has none."""

    def failure(self, commit: Commit) -> str: ...


class Builds:
    """The server binary of each commit, built once in its own worktree."""

    def __init__(
        self,
        repo: Path,
        commands: Sequence[Sequence[str]] | None = None,
        *,
        cache: Path = DEFAULT_CACHE,
        binary: Path = SERVER_PATH,
        timeout_s: float = BUILD_TIMEOUT_S,
    ) -> None:
        self.repo = repo.resolve()
        self.commands = tuple(tuple(c) for c in (commands or default_build()))
        self.cache = cache / self.repo.name
        self.binary, self.timeout_s = binary, timeout_s

    def commits(self, good: str, bad: str) -> list[Commit]:
        return commits_between(self.repo, good, bad)

    def server(self, commit: Commit) -> Path | None:
        """The commit's built llama-server; None when it does not build (its log says why)."""
        tree = self.cache / commit.sha
        built = tree / self.binary
        if built.is_file() and os.access(built, os.X_OK):
            return built
        if (tree / FAILED).exists():
            return None
        if not tree.exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            _git(self.repo, "worktree", "add", "--detach", "--force", str(tree), commit.sha)
        log = []
        for command in self.commands:
            try:
                done = run_command(command, timeout_s=self.timeout_s, cwd=tree)
            except OSError as exc:
                raise ConfigError(f"cannot run the build command {command[0]}: {exc.strerror or exc}") from None
            log.append(f"$ {' '.join(command)}\n{done.stdout}{done.stderr}")
            if done.returncode != 0:
                why = "stopped at its time limit" if done.returncode is None else f"exited {done.returncode}"
                (tree / "build.log").write_text("\n".join(log) + f"\n{why}\n", encoding="utf-8")
                (tree / FAILED).write_text(why + "\n", encoding="utf-8")
                return None
        (tree / "build.log").write_text("\n".join(log), encoding="utf-8")
        if not (built.is_file() and os.access(built, os.X_OK)):
            (tree / FAILED).write_text(f"the build left no {self.binary}\n", encoding="utf-8")
            return None
        return built

    def failure(self, commit: Commit) -> str:
        """Why a commit did not build: the last lines of its log."""
        tree = self.cache / commit.sha
        try:
            text = files.read_text(tree / "build.log", what="build log", max_bytes=64 * 2**20)
        except ConfigError:
            return "no build log"
        return " / ".join(text.strip().splitlines()[-3:])


RELEASE = re.compile(r"(?<![A-Za-z0-9])b(\d{2,7})(?![0-9])")  # llama.cpp's build numbers: b6458, llama-b6458-bin-...
BINARY_PLACES = (Path("llama-server"), Path("bin") / "llama-server", Path("build") / "bin" / "llama-server")


class ReleaseBinaries:
    """A llama-server per release build, from a folder of unpacked release archives, ordered by build number.

    Each entry of the folder whose name holds a build number (``b6458``, ``llama-b6458-bin-ubuntu-x64``)
    is one build; its server is ``llama-server``, ``bin/llama-server`` or ``build/bin/llama-server``
    in it, as the archives unpack. Nothing is built; a build without a server is skipped.
    """

    def __init__(self, folder: Path) -> None:
        if not folder.is_dir():
            raise ConfigError(f"--binaries {folder}: not a folder")
        self.entries: dict[int, Path] = {}
        for entry in sorted(folder.iterdir()):
            match = RELEASE.search(entry.name)
            if match and entry.is_dir():
                self.entries.setdefault(int(match.group(1)), entry)
        if not self.entries:
            raise ConfigError(f"--binaries {folder}: no entry named by a build number (b6458, llama-b6458-...)")

    @staticmethod
    def number(ref: str) -> int:
        match = RELEASE.search(ref) or re.fullmatch(r"(\d+)", ref)
        if match is None:
            raise ConfigError(f"{ref!r} names no build number: give --good and --bad as b6458 or 6458")
        return int(match.group(1))

    def commits(self, good: str, bad: str) -> list[Commit]:
        low, high = self.number(good), self.number(bad)
        if low >= high:
            raise ConfigError(f"--good {good} must be an earlier build than --bad {bad}")
        for end in (low, high):
            if end not in self.entries:
                raise ConfigError(
                    f"no build b{end} among --binaries (builds b{min(self.entries)} to b{max(self.entries)})"
                )
        return [Commit(f"b{n}", self.entries[n].name, "", None) for n in sorted(self.entries) if low <= n <= high]

    def server(self, commit: Commit) -> Path | None:
        entry = self.entries[self.number(commit.sha)]
        for place in BINARY_PLACES:
            if (entry / place).is_file() and os.access(entry / place, os.X_OK):
                return entry / place
        return None

    def failure(self, commit: Commit) -> str:
        return f"no llama-server in {self.entries[self.number(commit.sha)]}"


class Deployments:
    """Each commit put on a server the suite does not start, by the user's command (``bench bisect --deploy-cmd``).

    The command names the commit by ``{commit}`` (its full hash) or ``{short}`` in its arguments and, once
    it exits 0, has the endpoint serving that commit's build: building it, copying it and restarting the
    service are its business. It runs before every run (``deploy``), so that each run is a server start of
    its own, as the suite's own servers are; a deploy that keeps its builds makes the later ones cheap.
    """

    def __init__(
        self, repo: Path, command: Sequence[str], endpoint: str, *, timeout_s: float = DEPLOY_TIMEOUT_S
    ) -> None:
        if not command or not any(field in part for part in command for field in COMMIT_FIELDS):
            raise ConfigError(
                "--deploy-cmd must name the commit it deploys, as {commit} (its full hash) or {short}: "
                "e.g. --deploy-cmd 'ssh gpu-host.example deploy-llama {commit}'"
            )
        self.repo = repo.resolve()
        self.command = tuple(command)
        self.endpoint = endpoint
        self.timeout_s = timeout_s
        self._failures: dict[str, str] = {}

    def commits(self, good: str, bad: str) -> list[Commit]:
        return commits_between(self.repo, good, bad)

    def server(self, commit: Commit) -> str:
        """The endpoint: the commit is put on it by ``deploy``, before each run."""
        return self.endpoint

    def deploy(self, commit: Commit) -> bool:
        """Run the deploy command for the commit; False when it failed (``failure`` says how)."""
        argv = [part.replace("{commit}", commit.sha).replace("{short}", commit.short) for part in self.command]
        try:
            done = run_command(argv, timeout_s=self.timeout_s)
        except OSError as exc:
            raise ConfigError(f"cannot run the deploy command {argv[0]}: {exc.strerror or exc}") from None
        if done.returncode == 0:
            return True
        why = "stopped at its time limit" if done.returncode is None else f"exited {done.returncode}"
        said = (done.stderr or done.stdout).strip().splitlines()[-3:]
        self._failures[commit.sha] = f"the deploy command {why}" + (f": {' / '.join(said)}" if said else "")
        return False

    def failure(self, commit: Commit) -> str:
        return self._failures.get(commit.sha, "the deploy command failed")
