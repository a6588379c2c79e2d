#!/bin/bash
# Streamed tokens/s of one vllm-sim process playing 8 pods, pinned to one
# core, driven by sim-loadgen (a closed-loop epoll client) on another core.
#   bench/sim.sh [SECONDS] [CONNECTIONS] [MAX_TOKENS] [TIME_SCALE]
# Prints the simulator's CPU use and the streamed tokens/s.
set -euo pipefail
cd "$(dirname "$0")/.."

SECS=${1:-10}
CONNS=${2:-256}
MAX_TOKENS=${3:-200}
SCALE=${4:-100}
PORT=18090
PODS=8

make -s -j1 build/bin/vllm-sim build/bin/sim-loadgen >/dev/null

SIM_CPU=0; GEN_CPU=1
if [ "$(nproc)" -lt 2 ]; then GEN_CPU=0; fi

taskset -c $SIM_CPU build/bin/vllm-sim --pods $PODS --port $PORT \
    --time-scale "$SCALE" --quiet &
SIM=$!
trap 'kill $SIM 2>/dev/null; wait $SIM 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM   # so that the EXIT trap stops what it started

deadline=$((SECONDS + 10))
until curl -sf "http://127.0.0.1:$((PORT + PODS - 1))/health" >/dev/null; do
    if [ $SECONDS -ge $deadline ]; then echo "vllm-sim did not start" >&2; exit 1; fi
    sleep 0.05
done

t0=$(awk '{print $14 + $15}' /proc/$SIM/stat)
out=$(taskset -c $GEN_CPU build/bin/sim-loadgen $PORT $PODS "$CONNS" "$SECS" "$MAX_TOKENS")
t1=$(awk '{print $14 + $15}' /proc/$SIM/stat)
hz=$(getconf CLK_TCK)

echo "vllm-sim: $PODS pods, time scale $SCALE, $CONNS streams of $MAX_TOKENS tokens"
echo "$out"
awk -v a="$t0" -v b="$t1" -v hz="$hz" -v s="$SECS" \
    'BEGIN { printf "vllm-sim CPU: %.0f%% of one core\n", (b - a) / hz / s * 100 }'
