#!/usr/bin/env bash
# Balancer overhead, measured in one run on this machine:
#  1. throughput of nginx + llmd_balancer (llm-d default profile) against the
#     same nginx with plain round robin, 32 KB completions prompts POSTed by
#     wrk to 4 fast static backends; with the front worker's CPU time per
#     request (its run time in ns from /proc/<pid>/schedstat, else utime +
#     stime from /proc/<pid>/stat, over each wrk run), steadier than req/s
#     on a shared machine. Method: first an unmeasured warm-up run of each
#     side (WARM seconds, default 3: the first seconds of a fresh nginx
#     cost more per request, which landed on round robin's first round);
#     then ROUNDS rounds (default 4), the order alternating (rr, llmd, then
#     llmd, rr, ...) so neither side always runs first; each side's CPU per
#     request is its total CPU over its total requests, and the per-round
#     ratios are printed with their median;
#  2. decision time ($llmd_decision_us: body parse + scoring + pick) at
#     32 KB prompts with 8 endpoints, p50/p90/p99 from the access log.
# Talks only to 127.0.0.1; stops by itself. Usage: bench/balancer.sh [secs]
# (PROMPTS=N: N distinct prompts in turn, default 64; 0: a new one each time;
# SHARED_HEAD=1: the prompts differ only in block 255 of the 256 that the
# default profile hashes, so they share the 255 before, as behind one long
# system prompt)
# (SO=/path/to/ngx_http_llmd_module.so measures another build of the module;
# PERF=DIR also records `perf record -g` (PERF_CG=dwarf: --call-graph dwarf)
# of the front worker during each round's wrk runs into
# DIR/perf-{rr,llmd}-ROUND.data, with DIR/perf-{rr,llmd}-ROUND.txt from
# `perf report --no-children`, so early and late rounds can be compared;
# DIR/perf-{rr,llmd}.{data,txt} are the last round's: the figures of such
# a run carry perf's overhead). After each llmd run the line shows the
# 4-server upstream's prefix index (from llmd_status): entries and
# evictions, so a cost that grows with the index shows beside its size.
# (PIN=1: the front's worker pinned to CPU 1, the backends' worker and wrk
# to CPU 0, so the front does not share its core with the load: on the
# twelfth session's VM the ratio of one build spread 1.06-1.26x unpinned.)
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
ROUNDS=${ROUNDS:-4}
WARM=${WARM:-3}
SO=${SO:-$PWD/build/ngx_http_llmd_module.so}
[ -f "$SO" ] || make module >/dev/null
command -v wrk >/dev/null || { echo "wrk missing: make deps"; exit 1; }
[ -z "${PERF:-}" ] || mkdir -p "$PERF"

W=$(mktemp -d /tmp/llmd-bench.XXXXXX)
trap 'for d in back front; do [ -f $W/$d/nginx.pid ] && kill -QUIT $(cat $W/$d/nginx.pid) 2>/dev/null; done; sleep 0.5; rm -rf $W' EXIT
trap 'exit 130' INT TERM   # so that the EXIT trap stops what it started
mkdir -p $W/back $W/front

. bench/lib/balancer-common.sh
static_backends $W/back 19950 8
servers4="${BACKEND_SERVERS[*]:0:4}"
servers8="${BACKEND_SERVERS[*]}"

cat > $W/front/nginx.conf <<CONF
load_module $SO;
worker_processes 1; daemon on; pid $W/front/nginx.pid; error_log $W/front/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 100000;
  client_body_buffer_size 64k; client_body_temp_path $W/front/body;
  proxy_temp_path $W/front/proxy;
  log_format decision '\$llmd_decision_us';
  upstream rr   { $servers4 keepalive 32; }
  upstream llmd { llmd_balancer; $servers4 keepalive 32; }
  upstream llmd8 { llmd_balancer; $servers8 keepalive 32; }
  server { listen 127.0.0.1:19941;
    location / { proxy_pass http://rr; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:19942;
    location = /llmd-status { llmd_status; }
    location / { proxy_pass http://llmd; proxy_http_version 1.1; proxy_set_header Connection ""; } }
  server { listen 127.0.0.1:19943;
    access_log $W/front/decisions.log decision;
    location / { proxy_pass http://llmd8; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF

/usr/sbin/nginx -p $W/back/ -c $W/back/nginx.conf -e $W/back/error.log
/usr/sbin/nginx -p $W/front/ -c $W/front/nginx.conf -e $W/front/error.log
for i in $(seq 50); do curl -s -o /dev/null 127.0.0.1:19943/ && break; sleep 0.1; done

# 32 KB prompts (the index hashes their first 256 blocks of 64 bytes),
# PROMPTS distinct ones in turn (default 64), told apart by their first
# bytes: with 64, every lookup after the first 64 requests finds all 256
# blocks and the index stays at 64 x 256 entries (no eviction); PROMPTS=0
# sends a new prompt every time: lookups miss at block 0 and, once each
# server's LRU (lruCapacityPerServer 31250) is full, every insert evicts
# as many entries as it adds
PROMPTS=${PROMPTS:-64}
completions_lua $W/post.lua "$PROMPTS" "${SHARED_HEAD:-0}"

# the front's worker: its CPU time per request is steadier than req/s on
# a shared machine; in ns from schedstat (utime + stime: 10 ms ticks)
WORKER=$(pgrep -P "$(cat $W/front/nginx.pid)" | head -1)
WRK=wrk
if [ "${PIN:-0}" = 1 ]; then
  taskset -p -c 1 "$WORKER" >/dev/null
  taskset -p -c 0 "$(pgrep -P "$(cat $W/back/nginx.pid)" | head -1)" >/dev/null
  WRK="taskset -c 0 wrk"
fi
TICK=$(getconf CLK_TCK)
if [ -r /proc/$WORKER/schedstat ]; then
  cpu_ns() { awk '{print $1}' /proc/$WORKER/schedstat; }
else
  cpu_ns() { awk -v t=$TICK '{printf "%.0f\n", ($14 + $15) * 1e9 / t}' /proc/$WORKER/stat; }
fi

# rate PORT NAME [SECS]: req/s of one wrk run (RATE), its requests (REQS),
# the worker's CPU ns over it (CPU) and per request in us (RATE_CPU)
rate() {
  local t0 t1 out reqs
  local pp=""
  if [ -n "${PERF:-}" ]; then
    perf record -q --call-graph "${PERF_CG:-fp}" -p "$WORKER" -o "$PERF/perf-$2-$ROUND.data" -- sleep "$SECS" \
      >/dev/null 2>&1 & pp=$!
  fi
  t0=$(cpu_ns)
  out=$($WRK -t1 -c16 -d${3:-$SECS}s -s $W/post.lua "http://127.0.0.1:$1")
  t1=$(cpu_ns)
  [ -z "$pp" ] || wait "$pp" || true
  REQS=$(echo "$out" | awk '/requests in/ {print $1}')
  CPU=$((t1 - t0))
  RATE_CPU=$(echo "$CPU / 1000 / $REQS" | bc -l)
  RATE=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
}

# index: the llmd upstream's prefix index entries and evictions (INDEX)
index() {
  INDEX=$(curl -s 127.0.0.1:19942/llmd-status | grep -o '"prefix_index":{[^}]*}' \
    | head -1 | sed 's/.*"entries":\([0-9]*\).*"evictions":\([0-9]*\).*/\1 entries, \2 evictions/')
}

echo "balancer throughput, 32 KB prompts ($PROMPTS distinct; 0: all$([ "${SHARED_HEAD:-0}" = 1 ] && echo '; the first 255 blocks shared')), 4 static backends, wrk -t1 -c16 ${SECS}s x $ROUNDS rounds (after ${WARM}s of each unmeasured, order alternating)$([ "${PIN:-0}" = 1 ] && echo ', front worker pinned to CPU 1, backends and wrk to CPU 0')"
if [ "$WARM" -gt 0 ]; then
  ( PERF= ; rate 19941 warm-rr "$WARM"; rate 19942 warm-llmd "$WARM" )
fi
index; echo "  llmd prefix index after the warm-up: $INDEX"
ROUND=0
tot_rr=0; tot_llmd=0; req_rr=0; req_llmd=0; ns_rr=0; ns_llmd=0; ratios=""
for r in $(seq $ROUNDS); do
  ROUND=$r
  if [ $((r % 2)) -eq 1 ]; then
    rate 19941 rr; a=$RATE; ca=$RATE_CPU; na=$CPU; qa=$REQS
    rate 19942 llmd; b=$RATE; cb=$RATE_CPU; nb=$CPU; qb=$REQS; first=rr
  else
    rate 19942 llmd; b=$RATE; cb=$RATE_CPU; nb=$CPU; qb=$REQS
    rate 19941 rr; a=$RATE; ca=$RATE_CPU; na=$CPU; qa=$REQS; first=llmd
  fi
  index
  printf "  round %d (%s first): round-robin %s req/s (worker CPU %.1f us/req), llmd default %s req/s (%.1f us/req), CPU ratio %.2fx; index %s\n" \
    $r $first $a $ca $b $cb "$(echo "$cb / $ca" | bc -l)" "$INDEX"
  tot_rr=$(echo "$tot_rr + $a" | bc -l); tot_llmd=$(echo "$tot_llmd + $b" | bc -l)
  req_rr=$((req_rr + qa)); req_llmd=$((req_llmd + qb))
  ns_rr=$((ns_rr + na)); ns_llmd=$((ns_llmd + nb))
  ratios+="$(echo "$cb / $ca" | bc -l) "
done
printf "  mean: round-robin %.0f req/s, llmd %.0f req/s, llmd/rr = %.1f%%\n" \
  "$(echo "$tot_rr/$ROUNDS" | bc -l)" "$(echo "$tot_llmd/$ROUNDS" | bc -l)" \
  "$(echo "100*$tot_llmd/$tot_rr" | bc -l)"
printf "  worker CPU per request (total CPU / total requests): round-robin %.1f us, llmd %.1f us, llmd/rr = %.2fx; per-round ratios' median %.2fx\n" \
  "$(echo "$ns_rr / 1000 / $req_rr" | bc -l)" "$(echo "$ns_llmd / 1000 / $req_llmd" | bc -l)" \
  "$(echo "($ns_llmd / $req_llmd) / ($ns_rr / $req_rr)" | bc -l)" \
  "$(echo $ratios | tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')"

$WRK -t1 -c8 -d${SECS}s -s $W/post.lua "http://127.0.0.1:19943" >/dev/null
sort -n $W/front/decisions.log | awk '{a[NR]=$1} END {
  printf "decision time, 32 KB prompts, 8 endpoints, %d requests: p50 %.1f us, p90 %.1f us, p99 %.1f us, max %.1f us\n",
    NR, a[int(NR*0.5)], a[int(NR*0.9)], a[int(NR*0.99)], a[NR] }'
grep -E "\[(alert|crit|emerg)\]" $W/front/error.log || true
if [ -n "${PERF:-}" ]; then
  for k in rr llmd; do
    for r in $(seq $ROUNDS); do
      perf report -i "$PERF/perf-$k-$r.data" --no-children --stdio 2>/dev/null \
        | grep -v '^$' | head -200 > "$PERF/perf-$k-$r.txt" || true
    done
    cp "$PERF/perf-$k-$ROUNDS.data" "$PERF/perf-$k.data"
    cp "$PERF/perf-$k-$ROUNDS.txt" "$PERF/perf-$k.txt"
  done
  echo "perf profiles: $PERF/perf-{rr,llmd}-{1..$ROUNDS}.txt (the last round's also as perf-rr.txt perf-llmd.txt)"
fi
