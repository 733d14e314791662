"""bench/ is a tower: each package imports only the packages below it, so ls bench/ reads as the pipeline."""

from __future__ import annotations

import ast
from pathlib import Path

from bench.devtools.docs import PIPELINE

BENCH = Path(__file__).parent.parent / "bench"
FLOOR = {"errors", "version", "records", "clock"}  # modules of bench/ itself, below every package


def _imports(path: Path) -> set[str]:
    """Every bench module or package this file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bench":
            parts = node.module.split(".")
            if len(parts) == 1:  # from bench import x: x is the module
                found |= {f"bench.{alias.name}" for alias in node.names}
            else:
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.split(".")[0] == "bench"}
    return found


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else None


def upward_imports(bench: Path) -> list[str]:
    rank = {name: i for i, name in enumerate(PIPELINE)}
    wrong = []
    for path in sorted(bench.rglob("*.py")):
        relative = path.relative_to(bench)
        if relative.parts[0] == "devtools" or relative.name == "__main__.py" or relative == Path("__init__.py"):
            continue  # devtools stands aside; bench/__init__ and __main__ are the top, over everything
        own = relative.parts[0] if len(relative.parts) > 1 else relative.stem
        for target in _imports(path):
            stage = _stage(target)
            if stage is None or stage == own or stage in FLOOR:
                continue
            if own in FLOOR or stage == "devtools" or rank[stage] > rank[own]:
                wrong.append(f"{relative} -> {target}")
    return wrong


def test_every_package_of_bench_is_a_stage_of_the_pipeline() -> None:
    packages = {p.name for p in BENCH.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.stem for p in BENCH.glob("*.py")} - {"__init__", "__main__"}
    assert packages == set(PIPELINE) and modules == FLOOR


def test_no_import_points_up_the_pipeline() -> None:
    assert upward_imports(BENCH) == []


def test_an_import_up_the_pipeline_is_caught(tmp_path: Path) -> None:
    for package in PIPELINE:
        (tmp_path / package).mkdir()
        (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / "report" / "plots.py").write_text("from bench.flows.capacity import search\n")
    (tmp_path / "flows" / "run.py").write_text("from bench.report.render import render\nfrom bench.errors import X\n")
    (tmp_path / "records.py").write_text("def f():\n    from bench.store.run_dir import read\n")
    assert upward_imports(tmp_path) == ["records.py -> bench.store.run_dir", "report/plots.py -> bench.flows.capacity"]


def test_importing_the_renderer_does_not_import_the_runner_and_the_package_still_exports_its_api() -> None:
    import subprocess
    import sys

    probe = (
        "import sys, bench.report.render\n"
        "above = ('bench.flows', 'bench.load', 'bench.transport.client')\n"
        "print(sorted(m for m in sys.modules if m.startswith(above)))\n"
        "from bench import *\n"
        "import bench\n"
        "print(all(callable(getattr(bench, n)) or isinstance(getattr(bench, n), (str, type)) for n in bench.__all__))\n"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "[]" and out[1] == "True"
