#!/bin/bash
# Precise against default over several runs of the sweep (make
# bench-sweep-pairs): PAIRS runs of `bench/scheduling.sh sweep precise
# default`, the order swapped every other run, then bench/lib/pairs.py over
# them. One run's comparison of the two is decided by the draw of a few
# siblings (docs/benchmark.md, "Issue 15"); this says whether precise
# loses to default over the runs, with intervals.
#
#   bench/sweep-pairs.sh                 # 6 pairs, ~20 minutes
#   PAIRS=10 bench/sweep-pairs.sh
#   bench/sweep-pairs.sh RUN_DIR ...     # only the summary, of runs kept
#
# Every variable of bench/scheduling.sh passes through (BUILD_DIR,
# ACCESS_LOG, LLMD_UPSTREAM, LG_SEED, ...). Writes
# bench/results/sweep-pairs-<date>.md: the runs and pairs.py's summary.
set -euo pipefail
TOP=$(cd "$(dirname "$0")/.." && pwd)
PAIRS=${PAIRS:-6}
PY=/usr/bin/python3

case $PAIRS in
    ''|*[!0-9]*|0) echo "PAIRS=$PAIRS: a number of runs, 1 or more" >&2
                   exit 2 ;;
esac
[ -x "$PY" ] || { echo "$PY not found (scripts/deps.sh installs it)" >&2
                  exit 2; }

runs=("$@")
log=""
out=""
# an interrupted or failed run leaves no temporary log and no summary
trap 'rm -f "$log" "$out"' EXIT
if [ ${#runs[@]} = 0 ]; then
    for i in $(seq 1 "$PAIRS"); do
        if [ $((i % 2)) = 1 ]; then order="precise default"
        else order="default precise"; fi
        echo "== pair $i of $PAIRS: $order"
        log=$(mktemp)
        # shellcheck disable=SC2086  # two experiment names
        if ! "$TOP/bench/scheduling.sh" sweep $order 2>&1 | tee "$log"; then
            echo "pair $i: bench/scheduling.sh failed" >&2
            exit 1
        fi
        dir=$(sed -n 's/^results: //p' "$log" | head -1)
        rm -f "$log"
        [ -d "$dir" ] || { echo "pair $i: no results directory" >&2
                           exit 1; }
        runs+=("$dir")
    done
fi

out=$TOP/bench/results/sweep-pairs-$(date +%Y%m%d-%H%M%S).md
mkdir -p "$TOP/bench/results"
{
    echo "# precise against default over ${#runs[@]} sweep runs"
    echo
    for r in "${runs[@]}"; do echo "- $r"; done
    echo
    "$PY" "$TOP/bench/lib/pairs.py" "${runs[@]}"
} > "$out"
cat "$out"
echo "summary: $out"
out=""   # kept
