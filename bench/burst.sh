#!/usr/bin/env bash
# A short burst check (issue 15): 4 simulated pods, cold random prompts
# arriving faster than the pods' metrics are scraped (Poisson, RATE per
# simulated second at time scale SCALE, so several requests fall in every
# 50 ms scrape interval), through nginx with one EndpointPickerConfig, once
# per `llmd_inflight` setting given. Prints, per run, the requests each pod
# got, the largest share of one pod in each scrape-sized window of the run
# (herding), and llmd-loadgen's TTFT and throughput figures.
#
#   bench/burst.sh [on off ...]        (default: on off)
#   CONFIG=conf-examples/epp-default.yaml RATE=30 SECONDS_SIM=20 SCALE=10
#
# Talks only to 127.0.0.1 (ports 18601-18604 pods, 18610 nginx); a few
# CPU-seconds per run; run it under nice.
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD

RUNS=${*:-on off}
CONFIG=${CONFIG:-conf-examples/epp-default.yaml}
RATE=${RATE:-30}
SECONDS_SIM=${SECONDS_SIM:-20}
SCALE=${SCALE:-10}
IN=${IN:-1000}
OUT=${OUT:-100}

SIM=$TOP/build/bin/vllm-sim
LG=$TOP/build/bin/llmd-loadgen
SO=$TOP/build/ngx_http_llmd_module.so
NGINX=${NGINX:-/usr/sbin/nginx}
SIM_PORT=18601
NGX_PORT=18610

for f in "$SIM" "$LG" "$SO"; do
    [ -e "$f" ] || { echo "missing $f: run make" >&2; exit 1; }
done

W=$(mktemp -d /tmp/llmd-burst.XXXXXX)
chmod 755 "$W"
SIM_PID=""

stop_all() {
    if [ -f "$W/nginx.pid" ]; then
        kill -QUIT "$(cat "$W/nginx.pid")" 2>/dev/null || true
        for _ in $(seq 50); do
            [ -f "$W/nginx.pid" ] || break
            kill -0 "$(cat "$W/nginx.pid" 2>/dev/null)" 2>/dev/null || break
            sleep 0.1
        done
        rm -f "$W/nginx.pid"
    fi
    if [ -n "$SIM_PID" ]; then
        kill "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
        SIM_PID=""
    fi
}
trap 'stop_all; rm -rf "$W"' EXIT
trap 'exit 130' INT TERM

run_one() {
    local inflight=$1 dir=$W/run-$1 servers="" i
    mkdir -p "$dir/logs"
    for i in 0 1 2 3; do servers+="server 127.0.0.1:$((SIM_PORT + i)); "; done

    "$SIM" --pods 4 --port $SIM_PORT --time-scale "$SCALE" --quiet \
        2> "$dir/sim.log" &
    SIM_PID=$!
    for _ in $(seq 100); do
        curl -sf "127.0.0.1:$((SIM_PORT + 3))/health" >/dev/null && break
        sleep 0.1
    done

    cat > "$W/nginx.conf" <<CONF
load_module $SO;
worker_processes 1;
pid $W/nginx.pid;
error_log $dir/logs/error.log notice;
events { worker_connections 4096; }
http {
    log_format picks '\$msec \$request_time \$llmd_endpoint';
    access_log $dir/logs/access.log picks;
    client_body_temp_path $W/body;
    proxy_temp_path $W/proxy;
    upstream pods {
        llmd_balancer config=$TOP/$CONFIG;
        llmd_inflight $inflight;
        $servers
        keepalive 512;
    }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location /v1/ {
            proxy_pass http://pods;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }
        location = /llmd/status { llmd_status; }
    }
}
CONF
    "$NGINX" -p "$W/" -c "$W/nginx.conf" -e "$dir/logs/error.log"
    sleep 1                       # first scrapes

    "$LG" --url "http://127.0.0.1:$NGX_PORT" --data random \
        --input "$IN:$IN:$IN:0" --output "$OUT:$OUT:$OUT:0" \
        --num-prompts $((RATE * SECONDS_SIM * 2)) --load poisson \
        --stage "$RATE:$SECONDS_SIM" --time-scale "$SCALE" --seed 7 \
        --name "inflight-$inflight" --out "$dir/loadgen" --quiet \
        2> "$dir/loadgen.log" || true

    stop_all

    echo "== llmd_inflight $inflight ($CONFIG, $RATE req/s x $SECONDS_SIM s" \
         "simulated, time scale $SCALE, $IN in / $OUT out tokens)"
    # requests per pod, and per 50 ms window (of arrival at nginx) the
    # largest share of one pod
    awk '$3 != "-" && $3 != "" { n[$3]++; if (t0 == "") t0 = $1 - $2 - 1;
             w = int(($1 - $2 - t0) * 20);
             c[w] += 1; p[w, $3] += 1; if (p[w, $3] > m[w]) m[w] = p[w, $3] }
         END { for (e in n) printf "  %s %d requests\n", e, n[e];
               for (w in c) if (c[w] >= 4) { k++; s += m[w] / c[w];
                   if (m[w] / c[w] > 0.5) h++ }
               fmt = "  50 ms windows with >= 4 requests: %d; mean share of"
               fmt = fmt " the busiest pod %.2f (fair 0.25); windows where"
               printf fmt " one pod got more than half: %d\n", k,
                      k ? s / k : 0, h }' \
        "$dir/logs/access.log"
    cp "$dir/loadgen/report.yaml" "${KEEP:-$W}/report-$inflight.yaml" \
        2>/dev/null || true
    # the summary's TTFT and throughput (simulated seconds)
    awk '/^summary:/ { on = 1 } /^stages:/ { on = 0 } !on { next }
         /^      time_to_first_token:/ { t = 1; next }
         /^      [a-z_]+:$/ { t = 0 }
         t && /^        (p50|p90|p99|mean):/ { v[$1] = $2 }
         /^      (output_tokens_per_sec|requests_per_sec):/ { v[$1] = $2 }
         /^      total:/ { v["requests:"] = $2 }
         END { fmt = "  TTFT mean %.2f s, p50 %.2f s, p90 %.2f s,"
               fmt = fmt " p99 %.2f s; output %.0f tok/s; %.1f req/s\n"
               printf fmt, v["mean:"], v["p50:"], v["p90:"], v["p99:"],
                      v["output_tokens_per_sec:"], v["requests_per_sec:"] }' \
        "$dir/loadgen/report.yaml"
}

for r in $RUNS; do
    run_one "$r"
done
