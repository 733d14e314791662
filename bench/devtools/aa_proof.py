"""The A/A and real-change proof on a real server: what docs/statistics.md reports, from stored runs.

Reads a results directory holding runs of one scenario set on one server, by label:

- ``profile``: the runs a noise profile is made of (``bench noise``'s passes);
- ``aa``: identical runs, paired in the order they ran (1-2, 3-4, ...): each pair an A/A;
- any other label (``t1``, ``ub256``, ``greedy``...): a real change, each run compared with the
  ``aa`` run that ran just before it, and all of them with as many ``aa`` neighbours run by run;
- ``rounds``: the set run with ``--case-order rounds``, for the spread between runs it gives.

For each A/A pair it applies the comparison as a user meets it (requests alone, the allowance,
the profile, the history of the runs before the pair) and counts the pairs in which anything
was called improved or regressed, with a 95 % Wilson interval. ``python -m bench.devtools.aa_proof
RESULTS --write docs/measured/embedded-aa.json`` prints the Markdown tables and keeps the figures.
"""

from __future__ import annotations

import argparse
import math
import statistics
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from bench.decide.compare import CompareSettings, Comparison, FigureComparison, Verdict, compare_runs
from bench.decide.noise import NoiseProfile, NoiseSource, measure_profile
from bench.doors import strict_json
from bench.report.text import FAMILIES
from bench.store.meta import RunStatus
from bench.store.run_dir import runs_with_meta

CHANGED = (Verdict.IMPROVED, Verdict.REGRESSED)
HISTORY_RUNS = 30


def wilson(hits: int, n: int, z: float = 1.959963984540054) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion (Wilson 1927): sound at 0 of 20, where Wald's is not."""
    if n == 0:
        return (0.0, 1.0)
    p = hits / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (max(0.0, centre - half), min(1.0, centre + half))


def _runs(results: Path) -> dict[str, list[Path]]:
    """Complete runs by label, oldest first."""
    found: dict[str, list[tuple[float, Path]]] = {}
    for path, meta in runs_with_meta(results):
        if meta.status == RunStatus.COMPLETE and meta.label:
            found.setdefault(str(meta.label), []).append((float(meta.started or 0), path))
    return {label: [p for _, p in sorted(items)] for label, items in found.items()}


def _called(comparison: Comparison) -> list[FigureComparison]:
    return [f for f in comparison.figures if f.verdict in CHANGED]


def _families(rows: Sequence[FigureComparison]) -> str:
    named = sorted({f"{FAMILIES.get(f.figure, f.figure)} {f.verdict}" for f in rows})
    return ", ".join(named) or "-"


def aa_pairs(results: Path) -> dict[str, Any]:
    runs = _runs(results)
    aa, profile_runs = runs.get("aa", []), runs.get("profile", [])
    if len(aa) < 2 or len(profile_runs) < 3:
        raise SystemExit(f"{results}: needs at least 2 runs labelled aa and 3 labelled profile")
    profile = measure_profile(profile_runs)
    pairs = [(aa[i], aa[i + 1]) for i in range(0, len(aa) - 1, 2)]
    rules: dict[str, dict[str, Any]] = {
        "requests alone (no allowance)": {"settings": CompareSettings(allowance=0.0)},
        "one run a side, allowance": {},
        f"one run a side + profile of {len(profile_runs)} runs": {"noise": profile},
        "one run a side + history of earlier runs": {},
    }
    out: dict[str, Any] = {"pairs": len(pairs), "rules": {}}
    for rule, options in rules.items():
        hits, details = 0, []
        for number, (a, b) in enumerate(pairs):
            if rule.endswith("history of earlier runs"):
                earlier = (profile_runs + aa[: 2 * number])[-HISTORY_RUNS:]
                options = {"noise": replace(measure_profile(earlier), source=NoiseSource.HISTORY, where="aa")}
            called = _called(compare_runs(a, b, **options))
            hits += bool(called)
            details.append(_families(called))
        low, high = wilson(hits, len(pairs))
        out["rules"][rule] = {"called": hits, "low": low, "high": high, "what": details}
    # several runs a side: disjoint groups of three in the order they ran
    groups = [aa[i : i + 6] for i in range(0, len(aa) - 5, 6)]
    hits, details = 0, []
    for group in groups:
        called = _called(compare_runs(group[:3], group[3:]))
        hits += bool(called)
        details.append(_families(called))
    low, high = wilson(hits, len(groups))
    out["rules"]["3 runs a side (Welch)"] = {
        "called": hits,
        "low": low,
        "high": high,
        "what": details,
        "n": len(groups),
    }
    out["profile"] = profile.to_json()
    return out


def real_changes(results: Path, profile: NoiseProfile) -> dict[str, Any]:
    runs = _runs(results)
    aa = runs.get("aa", [])
    out: dict[str, Any] = {}
    for label, changed in sorted(runs.items()):
        if label in ("aa", "profile", "rounds"):
            continue
        neighbours = []
        for path in changed:
            before = [p for p in aa if p.name < path.name]
            if before:
                neighbours.append((before[-1], path))
        if not neighbours:
            continue
        single: dict[str, list[str]] = {"allowance": [], "profile": []}
        tg_changes, pp_changes = [], []
        for a, b in neighbours:
            with_profile = compare_runs(a, b, CompareSettings(force=True), noise=profile)
            single["profile"].append(_families(_called(with_profile)))
            single["allowance"].append(_families(_called(compare_runs(a, b, CompareSettings(force=True)))))
            for f in with_profile.figures:
                if f.ratio is not None and f.figure == "tg_tps":
                    tg_changes.append(f.ratio - 1)
                if f.ratio is not None and f.figure == "pp_tps":
                    pp_changes.append(f.ratio - 1)
        grouped = compare_runs([a for a, _ in neighbours], [b for _, b in neighbours], CompareSettings(force=True))
        out[label] = {
            "runs": len(neighbours),
            "tg_change_median": statistics.median(tg_changes),
            "pp_change_median": statistics.median(pp_changes),
            "one_run_a_side": single,
            "all_runs": _families(_called(grouped)),
            "all_runs_rows": [
                {"case": f.case_id, "figure": f.figure, "change": f.change, "verdict": f.verdict}
                for f in grouped.figures
                if f.figure in ("pp_tps", "tg_tps")
            ],
        }
    return out


def order_spreads(results: Path) -> dict[str, Any]:
    runs = _runs(results)
    if len(runs.get("rounds", [])) < 3:
        return {}
    cases = measure_profile(runs["aa"])
    rounds = measure_profile(runs["rounds"])
    rows = []
    for spread in cases.spreads:
        other = rounds.spread(spread.case_id, spread.figure)
        if other is not None and spread.figure in ("pp_tps", "tg_tps"):
            rows.append(
                {"case": spread.case_id, "figure": spread.figure, "cases": spread.between, "rounds": other.between}
            )
    return {"runs_cases": len(runs["aa"]), "runs_rounds": len(runs["rounds"]), "rows": rows}


def typical_spreads(results: Path) -> dict[str, float]:
    """The median over cases of pp's and tg's spreads, from every run of the one setup (profile and aa)."""
    runs = _runs(results)
    everything = measure_profile(runs.get("profile", []) + runs.get("aa", []))
    out = {}
    for figure, name in (("pp_tps", "pp"), ("tg_tps", "tg")):
        rows = [s for s in everything.spreads if s.figure == figure]
        out[f"{name}_between"] = round(statistics.median(s.between for s in rows), 3)
        out[f"{name}_within"] = round(statistics.median(s.within or 0.0 for s in rows), 3)
    out["runs"] = len(everything.run_ids)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.devtools.aa_proof", description=__doc__.split("\n\n")[0])
    parser.add_argument("results", type=Path)
    parser.add_argument("--write", type=Path, help="keep the figures in this JSON file")
    args = parser.parse_args()
    proof = aa_pairs(args.results)
    profile = NoiseProfile.from_json(proof["profile"])
    proof["changes"] = real_changes(args.results, profile)
    proof["order"] = order_spreads(args.results)
    proof["typical"] = typical_spreads(args.results)
    print(f"A/A: {proof['pairs']} pairs of identical runs, each its own server start\n")
    print("| rule | comparisons calling anything changed | 95 % interval | what was called |")
    print("|---|---|---|---|")
    for rule, r in proof["rules"].items():
        n = r.get("n", proof["pairs"])
        what = "; ".join(w for w in r["what"] if w != "-") or "-"
        print(f"| {rule} | {r['called']} of {n} | {r['low']:.0%} - {r['high']:.0%} | {what} |")
    print("\nReal changes, each run against the A/A run just before it:\n")
    print("| change | runs | tg change (median) | pp change (median) | one run a side + profile: called | "
          "all runs a side (Welch): called |")  # fmt: skip
    print("|---|---|---|---|---|---|")
    for label, c in proof["changes"].items():
        found = "; ".join(c["one_run_a_side"]["profile"])
        print(f"| {label} | {c['runs']} | {c['tg_change_median']:+.1%} | {c['pp_change_median']:+.1%} | {found} | "
              f"{c['all_runs']} |")  # fmt: skip
    if proof["order"]:
        o = proof["order"]
        print(f"\nSpread between runs: {o['runs_cases']} runs case after case, {o['runs_rounds']} in rounds:\n")
        print("| case | figure | case after case | in rounds |")
        print("|---|---|---|---|")
        for row in o["rows"]:
            print(f"| {row['case']} | {row['figure']} | {row['cases']:.1%} | {row['rounds']:.1%} |")
    t = proof["typical"]
    print(f"\nTypical spreads over all {t['runs']} runs of the one setup (median over cases): pp {t['pp_within']:.1%} "
          f"within a run, {t['pp_between']:.1%} between runs; tg {t['tg_within']:.1%} within, {t['tg_between']:.1%} "
          "between")  # fmt: skip
    if args.write:
        args.write.parent.mkdir(parents=True, exist_ok=True)
        args.write.write_text(strict_json.dumps(proof, indent=2, default=str) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
