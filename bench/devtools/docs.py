"""The parts of the docs that commands produce: README's table of commands and CONTRIBUTING's map.

``python -m bench.devtools.docs`` writes them between their markers, from ``bench.cli.parser.COMMANDS``
(each command's ``--help`` line) and from the first line of each package's docstring, so neither is
typed by hand; ``--check`` exits 1 when a file differs from what it would write (a test runs it).
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

from bench.cli.parser import COMMANDS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "bench"
# the packages from the floor up: each imports only the packages before it (tests/test_layout.py);
# devtools stands beside them, and nothing in them imports it
PIPELINE = (
    "doors", "inputs", "transport", "telemetry", "store", "figures", "load", "decide", "report", "flows", "cli",
    "devtools",
)  # fmt: skip


def _markers(name: str) -> tuple[str, str]:
    return (f"<!-- {name}: begin (python -m bench.devtools.docs writes this) -->", f"<!-- {name}: end -->")


def commands_table() -> str:
    rows = ["| command | what it does |", "| --- | --- |"]
    rows += [f"| `bench {c.name}` | {c.summary.replace('%%', '%')} |" for c in COMMANDS]
    return "\n".join(rows)


def _first_line(path: Path) -> str:
    doc = ast.get_docstring(ast.parse(path.read_text(encoding="utf-8"))) or ""
    return doc.strip().split("\n", 1)[0]


def package_map() -> str:
    found = sorted(p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file())
    if sorted(PIPELINE) != found:
        raise ValueError(f"bench/ holds packages {found}; PIPELINE names {sorted(PIPELINE)}")
    width = max(len(name) for name in PIPELINE) + 2
    lines = ["```", "bench/"]
    lines += [f"  {name + '/':<{width}}{_first_line(PACKAGE / name / '__init__.py')}" for name in PIPELINE]
    modules = sorted(p for p in PACKAGE.glob("*.py") if p.name not in ("__init__.py", "__main__.py"))
    lines += [f"  {p.name:<{width}}{_first_line(p)}" for p in modules]
    lines.append("```")
    return "\n".join(lines)


def _fill(text: str, name: str, body: str) -> str:
    begin, end = _markers(name)
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < start:
        raise ValueError(f"no {begin} ... {end} markers")
    return text[: start + len(begin)] + "\n" + body + "\n" + text[stop:]


PARTS = {ROOT / "README.md": ("commands", commands_table), ROOT / "CONTRIBUTING.md": ("packages", package_map)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.devtools.docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file differs from what would be written")
    args = parser.parse_args(argv)
    stale = []
    for path, (name, make) in PARTS.items():
        current = path.read_text(encoding="utf-8")
        wanted = _fill(current, name, make())
        if wanted == current:
            continue
        if args.check:
            stale.append(path.name)
        else:
            path.write_text(wanted, encoding="utf-8")
            print(f"wrote {name} into {path.name}")
    if stale:
        print(f"out of date: {', '.join(stale)}; run python -m bench.devtools.docs", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
