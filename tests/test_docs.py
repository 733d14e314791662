"""The docs hold: every link lands, generated parts are what their commands write, output is real."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bench.devtools import docs

ROOT = Path(__file__).parent.parent
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return {_slug(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, re.M)}


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
    return LINK.findall(text)


def _broken(page: Path) -> list[str]:
    broken = []
    for target in _links(page):
        if re.match(r"[a-z]+:", target):  # http(s): and mailto: are not followed by a test
            continue
        path_part, _, anchor = target.partition("#")
        landing = (page.parent / path_part).resolve() if path_part else page
        if not landing.exists() or (anchor and landing.suffix == ".md" and anchor not in _anchors(landing)):
            broken.append(target)
    return broken


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_of_a_page_lands_on_a_file_and_heading_that_exist(page: Path) -> None:
    assert _broken(page) == []


def test_the_link_check_catches_a_missing_file_and_a_missing_heading(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Here\n\n[ok](b.md#there) [gone](c.md) [no heading](b.md#nowhere) [up](#here)\n")
    (tmp_path / "b.md").write_text("# There\n")
    assert _broken(tmp_path / "a.md") == ["c.md", "b.md#nowhere"]


def test_the_readme_fits_a_screen_and_links_every_docs_page() -> None:
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 80
    linked = {Path(t.partition("#")[0]).name for t in _links(ROOT / "README.md")}
    assert {p.name for p in (ROOT / "docs").glob("*.md")} <= linked


def test_the_generated_tables_are_what_the_command_writes() -> None:
    assert docs.main(["--check"]) == 0


def test_the_readme_output_is_lines_a_real_run_printed() -> None:
    readme = (ROOT / "README.md").read_text()
    shown = readme.split("## What it prints", 1)[1].split("```text\n", 1)[1].split("```", 1)[0].splitlines()
    printed = (ROOT / "docs" / "measured" / "baseline-run.txt").read_text().splitlines()
    assert len(shown) == 5 and all(line in printed for line in shown)
