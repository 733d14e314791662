"""In what order a run sends its cases: case after case, or in rounds.

**Cases** (the default): each case's requests back to back, then the next case. A slow
drift over the run (a warming machine, a neighbour starting, a throttling clock) then lands
on the cases that ran late, and a comparison reads it as a difference between cases.

**Rounds**: every case once a round, the cases' order shuffled each round with the run's
seed, each case's measured requests shared out over the rounds (a round keeps at least a
case's concurrency of them, so a concurrent case stays concurrent). A drift then falls on
every case alike, and the rounds are a time series within the run. What it costs: a case
with a depth prefix primes it again each round, and the prompt cache of a case is cold at
the start of each of its shares. The schedule is recorded in ``run.json``.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from bench.inputs.scenarios import Case


class CaseOrder(StrEnum):
    CASES = "cases"
    ROUNDS = "rounds"


@dataclass(frozen=True, slots=True)
class Share:
    """One case's part of one round: the indices of its measured prompts to send."""

    round: int
    case: int  # position in the run's list of cases
    indices: tuple[int, ...]
    first: bool  # the case's first share: its warm-ups go before it
    last: bool  # the case's last share: its summary follows it


def schedule(cases: Sequence[Case], measured: Sequence[int], order: CaseOrder, seed: int) -> list[Share]:
    """The run's shares in sending order; ``measured[i]`` is how many measured prompts case i has."""
    if order is CaseOrder.CASES:
        return [Share(0, i, tuple(range(n)), True, True) for i, n in enumerate(measured)]
    # as many rounds as the case with the fewest shares allows: each share holds at least
    # the case's concurrency (one request for a sequential case)
    rounds = max(1, min((n // max(1, c.concurrency) for c, n in zip(cases, measured, strict=True)), default=1))
    splits = [_split(n, rounds) for n in measured]
    rng = random.Random(seed)
    out = []
    for number in range(rounds):
        positions = list(range(len(cases)))
        rng.shuffle(positions)
        for i in positions:
            out.append(Share(number, i, splits[i][number], number == 0, number == rounds - 1))
    return out


def _split(n: int, parts: int) -> list[tuple[int, ...]]:
    """0..n-1 in ``parts`` contiguous runs whose sizes differ by at most one."""
    size, extra = divmod(n, parts)
    out, start = [], 0
    for k in range(parts):
        end = start + size + (1 if k < extra else 0)
        out.append(tuple(range(start, end)))
        start = end
    return out
