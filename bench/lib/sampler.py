#!/usr/bin/python3
"""Samples the pods' /metrics and nginx's flow-control queue in one process
(bench/scheduling.sh, every mode): a shell loop of curl and awk fell behind
by seconds on a loaded machine.

    sampler.py INTERVAL POD_PORT NPODS NGINX_PORT POD_OUT NGINX_OUT [LAG_OUT]

POD_OUT lines: epoch pod waiting running kv;
NGINX_OUT lines: epoch requests_waiting_in_nginx pool_saturation;
LAG_OUT lines (vllm-sim's /sim/state "lag", since its start): epoch pod
steps late_steps lag_s lost_s, so that a run's lag can be seen over time.
Runs until killed. Python standard library only.
"""
import json
import sys
import time
import urllib.request


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            return r.read().decode("utf-8", "replace")
    except Exception:
        return None


def value(line):
    try:
        return float(line.rsplit(None, 1)[1])
    except (IndexError, ValueError):
        return None


def main():
    interval = float(sys.argv[1])
    port, npods, nport = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    pout = open(sys.argv[5], "a", buffering=1)
    nout = open(sys.argv[6], "a", buffering=1)
    lout = open(sys.argv[7], "a", buffering=1) if len(sys.argv) > 7 else None
    while True:
        t0 = time.time()
        for i in range(npods):
            text = get("http://127.0.0.1:%d/metrics" % (port + i))
            if text is None:
                continue
            w = r = k = None
            for line in text.splitlines():
                if line.startswith(("vllm:num_requests_waiting{",
                                    "vllm:num_requests_waiting ")):
                    w = value(line)
                elif line.startswith(("vllm:num_requests_running{",
                                      "vllm:num_requests_running ")):
                    r = value(line)
                elif line.startswith(("vllm:kv_cache_usage_perc{",
                                      "vllm:kv_cache_usage_perc ")):
                    k = value(line)
            if w is not None:
                pout.write("%.6f %d %g %g %g\n" % (t0, i, w, r or 0, k or 0))
        for i in range(npods if lout else 0):
            text = get("http://127.0.0.1:%d/sim/state" % (port + i))
            try:
                st = json.loads(text)
                lag = st["lag"]
                lout.write("%.6f %d %d %d %.6f %.6f\n" % (
                    t0, i, st["steps"], lag["late_steps"], lag["lag_s"],
                    lag["lost_s"]))
            except (TypeError, ValueError, KeyError):
                pass
        text = get("http://127.0.0.1:%d/llmd/metrics" % nport)
        if text is not None:
            q, s = 0.0, 0.0
            for line in text.splitlines():
                if line.startswith("llmd_flow_control_queue_size{"):
                    q += value(line) or 0
                elif line.startswith("llmd_flow_control_pool_saturation{"):
                    s = value(line) or 0
            nout.write("%.6f %g %g\n" % (t0, q, s))
        time.sleep(max(0.0, interval - (time.time() - t0)))


if __name__ == "__main__":
    main()
