"""The GPU validation script's CPU dry run wrote every file the GPU run will bring back."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).parent.parent
SCRIPT = ROOT / "bench" / "devtools" / "perf" / "gpu_validation.sh"
DRY_RUN = ROOT / "docs" / "measured" / "gpu-dry-run.txt"
LEASE_FILES = 8  # the device lease brings back at most 8 files a call


def _outputs() -> dict[str, list[str]]:
    """Each step's files, as the script declares them (its OUTPUTS table)."""
    table = re.search(r"declare -A OUTPUTS=\((.*?)\n\)", SCRIPT.read_text(), re.S)
    assert table is not None
    return {step: names.split() for step, names in re.findall(r'\[([\w-]+)\]="([^"]*)"', table.group(1))}


def test_each_step_declares_what_it_writes_within_what_a_lease_brings_back() -> None:
    outputs = _outputs()
    assert set(outputs) == {"build-run", "ab"}
    assert all(0 < len(names) <= LEASE_FILES for names in outputs.values())
    assert all(re.fullmatch(r"[A-Za-z0-9._-]+", name) for names in outputs.values() for name in names)


def test_the_dry_run_wrote_every_declared_file_and_nothing_empty() -> None:
    # lines "<step> <file> <bytes>", as the dry run's listing was kept (docs/measured/gpu-dry-run.txt)
    listed = {}
    for line in DRY_RUN.read_text().splitlines():
        if m := re.fullmatch(r"(build-run|ab) (\S+) (\d+)", line.strip()):
            listed[(m.group(1), m.group(2))] = int(m.group(3))
    for step, names in _outputs().items():
        for name in names:
            assert listed.get((step, name), 0) > 0, f"the dry run's {step} step wrote no {name}"


def test_the_script_parses() -> None:
    assert subprocess.run(["bash", "-n", str(SCRIPT)], check=False).returncode == 0
