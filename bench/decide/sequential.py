"""Looking after every block without inflating the error: a group-sequential design for ``bench ab``.

``bench ab --until-decided`` compares the variants after every second block (A B, B A: the order
stays balanced) and stops when every figure it was asked about is *changed* or *the same*. Testing
at alpha at each look would call an A/A changed far more often than alpha: with ten looks, the
chance that one of them dips under 0.05 is several times 0.05. So each look's p-values are read
against how low the smallest p over *all* looks of the design falls when nothing changed (a Pocock
boundary, Pocock 1977, found by simulation rather than from the normal approximation, because a
run-level Welch test with 2 to 30 runs a side is far from normal):

- ``p_change``: the chance, when nothing changed, that any look's two-sided Welch p is at or
  under this look's. Below alpha: changed, with the error held over every look.
- ``p_same``: the same for the larger of the two one-sided tests of "the same within +-margin",
  whose worst case is a true change exactly at the margin (then one of its two tests is a central
  t). Below alpha: the same, held over every look.

Both are valid whenever the comparison stops, for any spread between runs: the Welch statistic's
null distribution does not depend on the spread (the variants' spreads taken as equal), so one
seeded simulation per design serves every figure. ``bench.devtools.sequential`` measures the
shares decided, and the blocks it takes, at the spreads measured on this machine.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from bench.decide.stats import welch_arrays
from bench.errors import ConfigError

TRIALS = 20_000  # resolution 5e-5: fine enough for alpha 0.05 shared over a few dozen figures
SEED = 20261207
FIRST_LOOK = 2  # runs a side: Welch needs two
STEP = 2  # looks after every second block, so each look has as many A-first as B-first blocks
# bench ab's budget: at the spreads measured here (tg 4.5 %, pp 2.7 % between server starts) a 6.5 %
# change in every pp and tg figure of the quick set is decided within it in at least 95 % of
# simulated comparisons, where 20 blocks decided 90 % (bench.devtools.sequential, docs/statistics.md)
DEFAULT_MAX_BLOCKS = 26


@dataclass(frozen=True, slots=True)
class SequentialDesign:
    """Looks at these runs a side; p-values turned into ones that hold over all of them."""

    looks: tuple[int, ...]

    @classmethod
    def for_blocks(cls, max_blocks: int) -> SequentialDesign:
        if max_blocks < FIRST_LOOK:
            raise ConfigError(f"--max-blocks must be at least {FIRST_LOOK} to decide anything; got {max_blocks}")
        looks = list(range(FIRST_LOOK, max_blocks + 1, STEP))
        if looks[-1] != max_blocks:
            looks.append(max_blocks)  # the last block is a look too, even when the budget is odd
        return cls(tuple(looks))

    def looks_at(self, runs: int) -> bool:
        return runs in self.looks

    def p_change(self, nominal: float) -> float:
        """The sequential p of a change from this look's two-sided Welch p."""
        return _tail(_null_minima(self.looks)[0], nominal)

    def p_same(self, nominal: float) -> float:
        """The sequential p of "the same" from this look's two-one-sided-tests p."""
        return _tail(_null_minima(self.looks)[1], nominal)

    def change_level(self, alpha: float) -> float:
        """The per-look two-sided level that holds ``alpha`` over all looks: the repeated interval's."""
        return float(np.quantile(_null_minima(self.looks)[0], alpha))

    def same_level(self, alpha: float) -> float:
        """The per-look one-sided level of the tests of "the same" that holds ``alpha`` over all looks."""
        return float(np.quantile(_null_minima(self.looks)[1], alpha))


def _tail(minima: np.ndarray, nominal: float) -> float:
    """P(min over looks <= nominal) when nothing changed, counted conservatively ((k + 1) / (n + 1))."""
    if math.isnan(nominal):
        return 1.0
    count = int(np.searchsorted(minima, nominal, side="right"))
    return min(1.0, (count + 1) / (len(minima) + 1))


@functools.lru_cache(maxsize=16)
def _null_minima(looks: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """Sorted minima over the looks of the two-sided change p and the one-sided p, when nothing changed."""
    from scipy.stats import t as student_t

    rng = np.random.default_rng(SEED)
    most = max(looks)
    a = rng.normal(size=(TRIALS, most))
    b = rng.normal(size=(TRIALS, most))
    two_sided = np.ones(TRIALS)
    one_sided = np.ones(TRIALS)
    for n in looks:
        diff, se, df = welch_arrays(a[:, :n], b[:, :n])
        t = diff / se
        two_sided = np.minimum(two_sided, 2 * student_t.sf(np.abs(t), df))
        # the test of "the same" at a true change on the margin: one of its two tests is this central t
        one_sided = np.minimum(one_sided, student_t.sf(t, df))
    return np.sort(two_sided), np.sort(one_sided)
