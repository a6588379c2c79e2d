#!/usr/bin/env bash
# Two builds of the module against each other, in one run: the worker CPU
# time per request of nginx + llmd (default profile) with build A and with
# build B, 32 KB completions prompts (64 distinct, every lookup a full hit,
# as bench/balancer.sh) to 4 static backends. Two front nginx, one per
# build, their workers pinned to CPU 1, the backends' worker and wrk to
# CPU 0, so neither front competes with the load for a core; then SLICES
# wrk runs of SECS seconds to each front, the order alternating (A, B,
# then B, A, ...), each front's CPU time (ns, /proc/<pid>/schedstat) over
# its runs. Prints both fronts' CPU per request, B - A and B / A (total
# CPU / total requests) and the median of the slices' ratios. A machine
# that slows down for a while slows both fronts' slices alike; what stays
# is the builds' difference and a bias of the fronts' places (~0.1-1 us per
# request on this machine's VM), which a second run with A and B swapped
# cancels (take the mean of B - A and -(A - B)).
# Talks only to 127.0.0.1; stops by itself, stopping what it started.
# Usage: bench/balancer-ab.sh A.so B.so [slices (10)] [secs (3)]
# (SHARED_HEAD=1: the prompts share their first 255 blocks, as
# bench/balancer.sh's SHARED_HEAD=1)
set -euo pipefail
[ $# -ge 2 ] || { echo "usage: $0 A.so B.so [slices] [secs]" >&2; exit 2; }
[ -f "$1" ] && [ -f "$2" ] || { echo "$0: no such module: $1 or $2" >&2; exit 2; }
A=$(realpath "$1"); B=$(realpath "$2"); N=${3:-10}; S=${4:-3}
cd "$(dirname "$0")/.."
command -v wrk >/dev/null || { echo "wrk missing: make deps"; exit 1; }

W=$(mktemp -d /tmp/llmd-ab.XXXXXX)
trap 'for d in back fa fb; do [ -f $W/$d/nginx.pid ] && kill -QUIT $(cat $W/$d/nginx.pid) 2>/dev/null; done; sleep 0.5; rm -rf $W' EXIT
trap 'exit 130' INT TERM
mkdir -p $W/back $W/fa $W/fb

. bench/lib/balancer-common.sh
static_backends $W/back 19960 4
servers="${BACKEND_SERVERS[*]}"

front() {
  cat > $W/$1/nginx.conf <<CONF
load_module $2;
worker_processes 1; daemon on; pid $W/$1/nginx.pid; error_log $W/$1/error.log warn;
events { worker_connections 4096; }
http {
  access_log off; keepalive_requests 100000;
  client_body_buffer_size 64k; client_body_temp_path $W/$1/body;
  proxy_temp_path $W/$1/proxy;
  upstream llmd { llmd_balancer; $servers keepalive 32; }
  server { listen 127.0.0.1:$3;
    location / { proxy_pass http://llmd; proxy_http_version 1.1; proxy_set_header Connection ""; } }
}
CONF
  /usr/sbin/nginx -p $W/$1/ -c $W/$1/nginx.conf -e $W/$1/error.log
}

/usr/sbin/nginx -p $W/back/ -c $W/back/nginx.conf -e $W/back/error.log
front fa "$A" 19971
front fb "$B" 19972
for i in $(seq 50); do
  curl -s -o /dev/null -d '{"model":"m","prompt":"x"}' 127.0.0.1:19971/ \
    && curl -s -o /dev/null -d '{"model":"m","prompt":"x"}' 127.0.0.1:19972/ && break
  sleep 0.1
done

completions_lua $W/post.lua 64 "${SHARED_HEAD:-0}"

WA=$(pgrep -P "$(cat $W/fa/nginx.pid)" | head -1)
WB=$(pgrep -P "$(cat $W/fb/nginx.pid)" | head -1)
WBACK=$(pgrep -P "$(cat $W/back/nginx.pid)" | head -1)
taskset -p -c 1 "$WA" >/dev/null
taskset -p -c 1 "$WB" >/dev/null
taskset -p -c 0 "$WBACK" >/dev/null

cpu_ns() { awk '{print $1}' /proc/$1/schedstat; }
# run PORT WORKER: REQS requests and the worker's CPU ns (CPU) of one slice
run() {
  local t0 t1 out
  t0=$(cpu_ns $2)
  out=$(taskset -c 0 wrk -t1 -c16 -d${S}s -s $W/post.lua "http://127.0.0.1:$1")
  t1=$(cpu_ns $2)
  REQS=$(echo "$out" | awk '/requests in/ {print $1}')
  CPU=$((t1 - t0))
}

echo "two builds, 32 KB prompts (64 distinct$([ "${SHARED_HEAD:-0}" = 1 ] && echo ', the first 255 blocks shared')), 4 static backends, fronts pinned to CPU 1, wrk -t1 -c16 to CPU 0, $N slices of ${S}s each, order alternating"
echo "  A: $A"
echo "  B: $B"
run 19971 "$WA"; run 19972 "$WB"     # unmeasured: the indexes fill
na=0; nb=0; qa=0; qb=0; ratios=""
for i in $(seq $N); do
  if [ $((i % 2)) -eq 1 ]; then
    run 19971 "$WA"; ca=$CPU; ra=$REQS; run 19972 "$WB"; cb=$CPU; rb=$REQS
  else
    run 19972 "$WB"; cb=$CPU; rb=$REQS; run 19971 "$WA"; ca=$CPU; ra=$REQS
  fi
  na=$((na + ca)); nb=$((nb + cb)); qa=$((qa + ra)); qb=$((qb + rb))
  ratios+="$(echo "($cb / $rb) / ($ca / $ra)" | bc -l) "
done
printf "  worker CPU per request: A %.2f us (%d requests), B %.2f us (%d requests), B - A %.2f us, B / A %.4f; slices' median B / A %.4f\n" \
  "$(echo "$na / 1000 / $qa" | bc -l)" "$qa" "$(echo "$nb / 1000 / $qb" | bc -l)" "$qb" \
  "$(echo "$nb / 1000 / $qb - $na / 1000 / $qa" | bc -l)" \
  "$(echo "($nb / $qb) / ($na / $qa)" | bc -l)" \
  "$(echo $ratios | tr ' ' '\n' | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}')"
grep -hE "\[(alert|crit|emerg)\]" $W/fa/error.log $W/fb/error.log || true
