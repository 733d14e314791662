#!/usr/bin/env bash
# How many requests the embedded server needs before each case settles, and what --warmup auto
# does about it (docs/statistics.md, "Warm and steady"): RUNS server starts of the settle set with
# no warm-up (label cold), then RUNS with --warmup auto (label auto). Tabulate with
#   python -m bench.devtools.settle RESULTS
# Usage: docs/measured/settle/run.sh RESULTS [RUNS]
set -u
results=${1:?results directory}
runs=${2:-5}
here=$(cd "$(dirname "$0")" && pwd)
for i in $(seq 1 "$runs"); do
    bench run --scenarios "$here/settle.toml" --results-dir "$results" --label cold --no-report >/dev/null 2>&1
    echo "cold $i: exit $?"
done
for i in $(seq 1 "$runs"); do
    bench run --scenarios "$here/settle.toml" --warmup auto --results-dir "$results" --label auto --no-report \
        >/dev/null 2>&1
    echo "auto $i: exit $?"
done
