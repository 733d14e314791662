#!/usr/bin/env bash
# The embedded-server proof of decisions that measure until they know (docs/statistics.md):
# -t 1 vs -t 2 and -ub 128 vs the default until decided, nightlies with confirmation (identical
# nights, then nights slowed by -ub 64), then sequential A/A pairs until 20 are done or DEADLINE
# (epoch seconds) passes. Every run is its own embedded server start. Tabulate with
#   python -m bench.devtools.decide_proof RESULTS
# Usage: docs/measured/decide/run.sh RESULTS [DEADLINE [FIRST_AA_PAIR]]
# With FIRST_AA_PAIR (1-20) only the A/A pairs from that one on are run, to add pairs to RESULTS.
set -u
results=${1:?results directory}
deadline=${2:-0}
first_aa=${3:-0}
here=$(cd "$(dirname "$0")" && pwd)
set_file="$here/decide.toml"
mkdir -p "$results/logs"
ab() {  # name, then bench ab arguments
    local name=$1; shift
    bench ab --until-decided --scenarios "$set_file" --results-dir "$results/ab" --no-report "$@" \
        >"$results/logs/$name.txt" 2>&1
    echo "$name: exit $?"
}
night() {  # name, then bench nightly arguments
    local name=$1; shift
    bench nightly --scenarios "$set_file" --results-dir "$results/nightly" --label gate --no-report "$@" \
        >"$results/logs/$name.txt" 2>&1
    echo "$name: exit $?"
}
if [ "$first_aa" -eq 0 ]; then
ab t1-t2 --variant t1="-t 1" --variant t2="-t 2"
ab ub512-ub128 --variant ub512= --variant ub128="-ub 128"
for i in 01 02 03 04 05 06 07 08; do night "night-$i-same"; done
for i in 09 10; do night "night-$i-slowed" --server-args "-ub 64"; done
for i in 11 12; do night "night-$i-same"; done
fi
for i in $(seq -w "$(( first_aa > 0 ? first_aa : 1 ))" 20); do
    if [ "$deadline" -gt 0 ] && [ "$(date +%s)" -gt "$deadline" ]; then echo "deadline: stopped before A/A pair $i"; break; fi
    ab "aa-$i" --variant a= --variant b= --seed "$((10#$i))"
done
