"""README's two commands, .ci/run and nox install the embedded server the same lean way."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).parent.parent
LEAN = 'CMAKE_ARGS="-DCMAKE_PROJECT_INCLUDE=$PWD/packaging/llama-cpp-lean.cmake" LLAMA_CPP_BUILD_JOBS=$(nproc)'


def readme_commands() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("## Install and run", 1)[1].split("```sh\n", 1)[1].split("```", 1)[0]
    return block.strip().splitlines()


def test_both_readme_commands_build_the_embedded_server_the_lean_way() -> None:
    main_job, tests = readme_commands()
    assert main_job.startswith(f"{LEAN} python -m pip install -e '.[embedded]'") and main_job.endswith("bench run")
    assert f"{LEAN} python -m pip install -e '.[test]'" in tests


def test_ci_runs_exactly_the_readme_test_command() -> None:
    _, tests = readme_commands()
    ci = (ROOT / ".ci" / "run").read_text()
    assert tests in ci.splitlines()


def test_the_lean_build_keeps_what_the_suite_runs_and_everything_docs_tell_a_user_to_install_is_lean() -> None:
    cmake = (ROOT / "packaging" / "llama-cpp-lean.cmake").read_text()
    keep = re.search(r"set\(BENCH_LLAMA_KEEP ([^\n]*?) CACHE", cmake)
    assert keep is not None and set(keep.group(1).split()) == {"llama-server", "llama-bench"}
    for option in ("LLAMA_BUILD_TESTS", "LLAMA_BUILD_EXAMPLES", "LLAMA_BUILD_APP", "LLAMA_USE_PREBUILT_UI"):
        assert re.search(rf"set\({option} OFF CACHE BOOL", cmake), option
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for line in doc.read_text().replace("\\\n", " ").splitlines():  # a command continued with \ is one
            if "pip install" in line and any(extra in line for extra in ("[embedded]", "[test]", "[dev]")):
                assert "llama-cpp-lean.cmake" in line, f"{doc.name}: {line.strip()}"
