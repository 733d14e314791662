#!/usr/bin/env bash
# The A/A proof over every kind of case (docs/statistics.md): identical runs of kinds.toml on the
# embedded server, each its own server start, labelled as bench.devtools.aa_proof reads them:
# 6 for a profile, then 2 x PAIRS for A/A pairs. Tabulate with
#   python -m bench.devtools.aa_proof RESULTS --write docs/measured/kinds-aa.json
# Usage: docs/measured/decide/kinds.sh RESULTS [PAIRS] [DEADLINE]
set -u
results=${1:?results directory}
pairs=${2:-20}
deadline=${3:-0}
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$results/logs"
run() {  # label, number
    bench run --scenarios "$here/kinds.toml" --results-dir "$results" --label "$1" --no-report \
        >"$results/logs/$1-$2.txt" 2>&1
    echo "$1 $2: exit $?"
}
for i in $(seq 1 6); do run profile "$i"; done
for i in $(seq 1 $((2 * pairs))); do
    if [ "$deadline" -gt 0 ] && [ "$(date +%s)" -gt "$deadline" ]; then echo "deadline: stopped before run $i"; break; fi
    run aa "$i"
done
