"""bench bisect end to end over a synthetic git repository whose build makes a fake server of known speed.

Each commit holds ``tps`` (the generation speed its server reports); its "build" (``build.py``) writes a
llama-server stand-in that serves the fake server at that speed, off by a factor drawn per server
start from a seeded sequence (3 % between runs, about the embedded server's tg spread). Deterministic: every
run of the test draws the same factors, so nothing here passes or fails by luck.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.decide.bisection import Side
from bench.errors import ConfigError
from bench.flows.bisect import BisectPlan, answer_sentence, run_bisect
from bench.flows.run import RunOptions
from bench.inputs.scenarios import parse_scenario_set

BUILD = """\
import pathlib, sys
root = pathlib.Path(".")
if (root / "broken").exists():
    sys.exit("this commit does not compile")
(root / "build" / "bin").mkdir(parents=True, exist_ok=True)
server = root / "build" / "bin" / "llama-server"
server.write_text(
    "#!/bin/sh\\n"
    f"exec {sys.executable} {pathlib.Path('serve.py').resolve()} {(root / 'tps').read_text().strip()} \\"$@\\"\\n"
)
server.chmod(0o755)
"""

SERVE = """\
import os, random, sys
from bench.devtools.testing import fake_server
# one draw per server start, from a counter the test keeps: the same factors on every test run
counter = os.environ["BISECT_TEST_COUNTER"]
n = int(open(counter).read() or 0) if os.path.exists(counter) else 0
open(counter, "w").write(str(n + 1))
factor = random.Random(n).lognormvariate(0.0, 0.03)
fake_server.main(["--as-llama-server", "--tg-tps", str(float(sys.argv[1]) * factor), *sys.argv[2:]])
"""

SET = parse_scenario_set(
    {"scenario": [{"name": "tg", "prompt_tokens": 40, "output_tokens": 16, "repetitions": 2, "warmup": 0}]}, "bisect"
)


def _git(repo: Path, *args: str) -> None:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com"}  # fmt: skip
    subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True, env=env)


def _repository(tmp_path: Path, tps: list[float], broken: frozenset[int] = frozenset()) -> tuple[Path, list[str]]:
    repo = tmp_path / "llama.cpp"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "master")
    (repo / "build.py").write_text(BUILD)
    (repo / "serve.py").write_text(SERVE)
    for number, speed in enumerate(tps):
        (repo / "tps").write_text(f"{speed}\n")
        if number in broken:
            (repo / "broken").write_text("x\n")
        elif (repo / "broken").exists():
            (repo / "broken").unlink()
        _git(repo, "add", "-A")
        _git(repo, "commit", "-q", "--allow-empty", "-m", f"commit {number} (#{1000 + number})")
    log = subprocess.run(["git", "-C", str(repo), "log", "--reverse", "--format=%H"], capture_output=True, text=True)
    return repo, log.stdout.split()


def _plan(tmp_path: Path, repo: Path, good: str, bad: str) -> BisectPlan:
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    return BisectPlan(
        RunOptions(scenarios=SET, model_file=gguf, results_dir=tmp_path / "results"),
        repo,
        good,
        bad,
        build_commands=((sys.executable, "build.py"),),
        cache=tmp_path / "cache",
    )


@pytest.fixture(autouse=True)
def _counter(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BISECT_TEST_COUNTER", str(tmp_path / "starts"))
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).parent.parent))


@pytest.mark.parametrize("culprit", [1, 4, 6])
def test_the_commit_that_slowed_generation_is_found(tmp_path: Path, culprit: int) -> None:
    tps = [200.0 if n < culprit else 160.0 for n in range(8)]  # tg 20 % slower from the culprit on
    repo, shas = _repository(tmp_path, tps)
    said: list[str] = []
    result = run_bisect(_plan(tmp_path, repo, shas[0], shas[-1]), say=said.append)
    assert [c.sha for c in result.answer] == [shas[culprit]]
    assert result.answer[0].pr == 1000 + culprit and result.confidence >= 0.9
    assert result.steps <= 3  # six commits between: log2 of seven ranges
    # no commit is put on a side against what it is
    assert all(t.side is (Side.BAD if shas.index(t.commit.sha) >= culprit else Side.GOOD) for t in result.tested)
    assert answer_sentence(result).startswith(f"first bad commit: {shas[culprit][:9]} commit {culprit}")
    document = json.loads(result.path.read_text())
    assert document["found"] and document["answer"][0]["sha"] == shas[culprit]
    assert any(line.startswith("step 1: ") for line in said)
    # the user's checkout is untouched: the build ran in worktrees under the cache
    assert not (repo / "build").exists()


def test_a_commit_that_does_not_build_is_skipped_and_makes_the_answer_a_range(tmp_path: Path) -> None:
    repo, shas = _repository(tmp_path, [200.0, 200.0, 200.0, 160.0, 160.0], broken=frozenset({2}))
    result = run_bisect(_plan(tmp_path, repo, shas[0], shas[-1]))
    assert [c.sha for c in result.answer] == [shas[2], shas[3]]
    assert any(t.side is Side.SKIPPED and t.why.startswith("does not build") for t in result.tested)
    assert "one of 2" in answer_sentence(result)


def test_bench_bisect_prints_the_commit_writes_the_report_and_exits_0(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from bench.cli import main

    repo, shas = _repository(tmp_path, [200.0, 200.0, 160.0, 160.0])
    (tmp_path / "set.toml").write_text(
        '[[scenario]]\nname = "tg"\nprompt_tokens = 40\noutput_tokens = 16\nrepetitions = 2\nwarmup = 0\n'
    )
    (tmp_path / "model.gguf").write_bytes(b"GGUF")
    code = main([
        "bisect", "--repo", str(repo), "--good", shas[0], "--bad", shas[-1], "--scenarios", str(tmp_path / "set.toml"),
        "--model-file", str(tmp_path / "model.gguf"), "--build-cmd", f"{sys.executable} build.py",
        "--cache", str(tmp_path / "cache"), "--results-dir", str(tmp_path / "results"),
        "--reports-dir", str(tmp_path / "reports"),
    ])  # fmt: skip
    out = capsys.readouterr().out
    assert code == 0
    assert f"first bad commit: {shas[2][:9]} commit 2 (#1002), " in out
    report = next((tmp_path / "reports").glob("bisect-*.html")).read_text()
    assert "<svg" in report and shas[2][:9] in report


def test_release_builds_in_a_folder_are_bisected_by_build_number(tmp_path: Path) -> None:
    from dataclasses import replace

    serve = tmp_path / "serve.py"
    serve.write_text(SERVE)
    releases = tmp_path / "releases"
    for number in range(100, 108):
        entry = releases / f"llama-b{number}-bin-ubuntu-x64" / "build" / "bin"
        entry.mkdir(parents=True)
        if number == 104:
            continue  # an archive that unpacked without its server: skipped, as a commit that does not build
        tps = 200.0 if number < 104 else 160.0
        (entry / "llama-server").write_text(f'#!/bin/sh\nexec {sys.executable} {serve} {tps} "$@"\n')
        (entry / "llama-server").chmod(0o755)
    result = run_bisect(replace(_plan(tmp_path, tmp_path, "b100", "b107"), binaries=releases))
    # 104 is where it slowed, but 104 has no server: the answer is 104 or 105, and says so
    assert [c.sha for c in result.answer] == ["b104", "b105"]
    assert [t.commit.sha for t in result.tested if t.side is Side.SKIPPED] == ["b104"]
    assert result.answer[0].subject == "llama-b104-bin-ubuntu-x64"


DEPLOY = """\
import os, pathlib, random, signal, socket, subprocess, sys, time
commit, port, state, repo = sys.argv[1], int(sys.argv[2]), pathlib.Path(sys.argv[3]), sys.argv[4]
pid_file = state / "server.pid"
if pid_file.exists():  # the server of the last deploy goes, as a restarted service's does
    try:
        os.kill(int(pid_file.read_text()), signal.SIGTERM)
    except ProcessLookupError:
        pass
    for _ in range(500):  # until its port is free (a zombie it may leave still answers os.kill)
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        except OSError:
            break
        time.sleep(0.02)
tps = float(subprocess.run(["git", "-C", repo, "show", f"{commit}:tps"], capture_output=True, text=True,
                           check=True).stdout)
counter = os.environ["BISECT_TEST_COUNTER"]
n = int(open(counter).read() or 0) if os.path.exists(counter) else 0
open(counter, "w").write(str(n + 1))
factor = random.Random(n).lognormvariate(0.0, 0.03)
served = os.environ.get("DEPLOY_SERVES") or commit  # a deploy that does not take leaves another build serving
server = subprocess.Popen(
    [sys.executable, "-m", "bench.devtools.testing.fake_server", "--port", str(port), "--tg-tps", str(tps * factor),
     "--build-info", f"b1-{served[:9]}"],
    stdout=subprocess.PIPE, start_new_session=True,
)
server.stdout.readline()  # it serves
pid_file.write_text(str(server.pid))
"""


@pytest.fixture
def deployed(tmp_path: Path) -> Iterator[tuple[str, list[str]]]:
    """A port for the deployed server, and the deploy command's arguments (the server it leaves is stopped after)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = tmp_path / "deploy"
    state.mkdir()
    (state / "deploy.py").write_text(DEPLOY)
    yield (
        f"http://127.0.0.1:{port}",
        [sys.executable, str(state / "deploy.py"), "{commit}", str(port), str(state), str(tmp_path / "llama.cpp")],
    )
    if (state / "server.pid").exists():
        with contextlib.suppress(ProcessLookupError):
            os.kill(int((state / "server.pid").read_text()), signal.SIGTERM)


def _deploy_plan(tmp_path: Path, repo: Path, shas: list[str], endpoint: str, command: list[str]) -> BisectPlan:
    return BisectPlan(
        RunOptions(scenarios=SET, endpoint=endpoint, results_dir=tmp_path / "results"),
        repo, shas[0], shas[-1], deploy_command=tuple(command), reference_runs=3,
    )  # fmt: skip


def test_a_server_the_suite_does_not_start_is_bisected_through_the_deploy_command(
    tmp_path: Path, deployed: tuple[str, list[str]]
) -> None:
    repo, shas = _repository(tmp_path, [200.0, 200.0, 160.0, 160.0, 160.0])
    endpoint, command = deployed
    result = run_bisect(_deploy_plan(tmp_path, repo, shas, endpoint, command))
    assert [c.sha for c in result.answer] == [shas[2]]
    # every run was preceded by a deploy (each its own server start): one per run, counted by the deploy script
    runs = sum(len(t.runs) for t in result.tested)
    assert int((tmp_path / "starts").read_text()) == runs
    assert not (tmp_path / "cache").exists()  # nothing was built here


def test_a_deploy_that_did_not_take_stops_the_bisect_before_it_measures_the_wrong_build(
    tmp_path: Path, deployed: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, shas = _repository(tmp_path, [200.0, 200.0, 160.0])
    endpoint, command = deployed
    monkeypatch.setenv("DEPLOY_SERVES", shas[0])  # the deploy exits 0, and the good build keeps serving
    with pytest.raises(ConfigError, match=rf"serves build b1-{shas[0][:9]}, not {shas[-1][:9]}"):
        run_bisect(_deploy_plan(tmp_path, repo, shas, endpoint, command))
    labels = {json.loads(p.read_text())["label"] for p in (tmp_path / "results").glob("*/run.json")}
    assert labels == {f"bisect-{shas[0][:9]}"}  # the bad commit was never measured


def test_a_deploy_command_must_name_the_commit_and_comes_with_an_endpoint(tmp_path: Path) -> None:
    repo, shas = _repository(tmp_path, [200.0, 160.0])
    with pytest.raises(ConfigError, match=r"\{commit\}"):
        run_bisect(_deploy_plan(tmp_path, repo, shas, "http://127.0.0.1:9", ["deploy-llama"]))
    with pytest.raises(ConfigError, match="needs both --endpoint and --deploy-cmd"):
        BisectPlan(RunOptions(scenarios=SET), repo, shas[0], shas[-1], deploy_command=("deploy", "{commit}"))
