"""Whether a server's capacity changed between two searches: one step is what one setup moves by.

Two searches of one setup can land one level apart (a level near the SLO's edge holds in one
and not the other), so a change of one level is reported as within that step, and only a fall
of more than one level is a regression.
"""

from __future__ import annotations

from bench.errors import ConfigError
from bench.store.capacity import CapacityResult

SAME_SETUP_STEP = 1  # levels two searches of one setup can differ by


def capacity_change(a: CapacityResult, b: CapacityResult) -> str:
    """One line: how the two searches' answers differ, and how far one search can be trusted."""
    if a.slo != b.slo or a.target != b.target:
        raise ConfigError(
            "the two searches asked different questions (SLO or target differ): their capacities do not compare"
        )
    more = "at least " if b.reached_max else ""
    less = "at least " if a.reached_max else ""
    step = b.capacity - a.capacity
    if step == 0:
        verdict = "the same"
    elif abs(step) <= SAME_SETUP_STEP:
        verdict = f"{step:+d} level: within the one step two searches of one setup can differ by"
    else:
        verdict = f"{step:+d} levels"
    return f"capacity A {less}{a.capacity} -> B {more}{b.capacity} concurrent users ({verdict})"


def capacity_regressed(a: CapacityResult, b: CapacityResult) -> bool:
    """B carries fewer users than A, by more than the step two searches of one setup differ by."""
    return b.capacity < a.capacity - SAME_SETUP_STEP
