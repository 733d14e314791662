"""How ``bench ab --until-decided`` decides, measured by simulation at the spreads measured here.

Each trial is one ``--until-decided`` comparison: runs of both variants drawn block by block, each
run's log figure off by the spread between server starts measured on the embedded server
(``bench.devtools.calibration``: tg 4.5 %, pp 2.7 %), variant B shifted by 0 % (A/A), 3 % or 6.5 %
(the seed's ``-fa`` effect). At every look of the design (after every second block) each figure is
tested as the comparison tests it: Welch on the logs, the two one-sided tests of "the same within
+-margin", both read through ``bench.decide.sequential`` and held together over the family by
Benjamini-Hochberg; the trial stops when every figure is changed or the same, or at the budget.

``python -m bench.devtools.sequential`` prints the table kept in docs/statistics.md; the tests
assert its targets over seeded trials.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.decide.compare import ALPHA, DEFAULT_EQUIVALENCE, MIN_EFFECT
from bench.decide.sequential import DEFAULT_MAX_BLOCKS, SequentialDesign
from bench.decide.stats import bh_adjust, welch_arrays
from bench.devtools.calibration import PP_RUN_CV, TG_RUN_CV
from bench.inputs.scenarios import load_scenario_set


def set_family(name: str) -> tuple[float, ...]:
    """The spreads of the figures ``--until-decided`` waits for in a set: each case's own (pp, tg or both)."""
    spread = {"pp_tps": PP_RUN_CV, "tg_tps": TG_RUN_CV}
    return tuple(spread[figure] for case in load_scenario_set(name).cases() for figure in case.headline_figures)


QUICK_FAMILY = set_family("quick")  # its two pp cases' pp and its tg case's tg


@dataclass(frozen=True, slots=True)
class Outcome:
    changed: float  # share of trials calling any figure changed
    same: float  # share calling any figure the same
    decided: float  # share in which every figure was decided within the budget
    mean_blocks: float  # blocks run, over all trials (a trial that never decides counts its whole budget)
    p95_blocks: float


def simulate(
    spreads: Sequence[float], shift: float, *, max_blocks: int = DEFAULT_MAX_BLOCKS,
    margin: float = DEFAULT_EQUIVALENCE, min_effect: float = MIN_EFFECT, alpha: float = ALPHA, trials: int = 2000,
    seed: int = 0,
) -> Outcome:  # fmt: skip
    """``trials`` seeded --until-decided comparisons of figures this far apart between runs, B moved by ``shift``."""
    from scipy.stats import t as student_t

    design = SequentialDesign.for_blocks(max_blocks)
    rng = np.random.default_rng(seed)
    figures = len(spreads)
    scale = np.asarray(spreads)[None, :, None]
    a = rng.normal(size=(trials, figures, max_blocks)) * scale
    b = rng.normal(size=(trials, figures, max_blocks)) * scale + math.log1p(shift)
    bound = math.log1p(margin)
    changed = np.zeros(trials, bool)
    same = np.zeros(trials, bool)
    stopped = np.full(trials, max_blocks)
    live = np.ones(trials, bool)
    for n in design.looks:
        diff, se, df = welch_arrays(a[:, :, :n], b[:, :, :n])
        p_change = 2 * student_t.sf(np.abs(diff) / se, df)
        p_same = np.maximum(student_t.sf((diff + bound) / se, df), student_t.cdf((diff - bound) / se, df))
        for trial in np.flatnonzero(live):
            seq_change = bh_adjust([design.p_change(float(p)) for p in p_change[trial]])
            seq_same = bh_adjust([design.p_same(float(p)) for p in p_same[trial]])
            called = [
                p < alpha and abs(math.expm1(d)) >= min_effect for p, d in zip(seq_change, diff[trial], strict=True)
            ]
            alike = [p < alpha and not c for p, c in zip(seq_same, called, strict=True)]
            done = all(c or s for c, s in zip(called, alike, strict=True))
            if done or n == design.looks[-1]:
                changed[trial], same[trial] = any(called), any(alike)
                stopped[trial] = n if done else max_blocks + 1  # past the budget: undecided
                live[trial] = False
    decided = stopped <= max_blocks
    blocks = np.minimum(stopped, max_blocks)
    return Outcome(
        changed=float(changed.mean()),
        same=float(same.mean()),
        decided=float(decided.mean()),
        mean_blocks=float(blocks.mean()),
        p95_blocks=float(np.percentile(blocks, 95)),
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.devtools.sequential", description=__doc__.split(".")[0])
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--max-blocks", type=int, default=DEFAULT_MAX_BLOCKS)
    args = parser.parse_args()
    print(
        f"--until-decided, at most {args.max_blocks} blocks, looks after every second block, margin "
        f"±{DEFAULT_EQUIVALENCE:.0%}, min effect {MIN_EFFECT:.0%}, alpha {ALPHA}, {args.trials} seeded trials a row:\n"
    )
    print("| figures (spread between runs) | true change | called changed | called the same | decided in budget "
          "| blocks, mean | blocks, 95th pct |")  # fmt: skip
    print("|---|---|---|---|---|---|---|")
    rows = (
        (f"tg alone ({TG_RUN_CV:.1%})", (TG_RUN_CV,)),
        (f"pp alone ({PP_RUN_CV:.1%})", (PP_RUN_CV,)),
        (
            f"quick set: {QUICK_FAMILY.count(TG_RUN_CV)} tg ({TG_RUN_CV:.1%}) + {QUICK_FAMILY.count(PP_RUN_CV)} pp "
            f"({PP_RUN_CV:.1%})",
            QUICK_FAMILY,
        ),
    )
    for name, spreads in rows:
        for shift in (0.0, 0.03, 0.065):
            o = simulate(spreads, shift, max_blocks=args.max_blocks, trials=args.trials, seed=7)
            print(
                f"| {name} | {shift:.1%} | {o.changed:.1%} | {o.same:.1%} | {o.decided:.1%} | "
                f"{o.mean_blocks:.1f} | {o.p95_blocks:.0f} |"
            )


if __name__ == "__main__":
    main()
