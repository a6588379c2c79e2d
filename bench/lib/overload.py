#!/usr/bin/python3
"""The overload figures of one `bench/scheduling.sh overload` run.

    overload.py RESULTS_DIR TIME_SCALE TTFT_SLO FC_TTL [MAX_CONC] >> README.md

Per experiment directory (default: no flow control, flow: flow control):
loadgen/per_request_lifecycle_metrics.jsonl (one line per request),
pod_metrics.txt (epoch pod waiting running kv), nginx_queue.txt (epoch,
requests waiting in nginx, pool saturation), llmd_status.json.  Prints a
Markdown section and writes the chart data (overload_*.dat) that
bench/overload.gp draws.  Times are simulated seconds.

Definitions:
  admitted   a request answered 200 with its whole stream (ok);
  rejected   answered 429 (flow control: queue TTL or capacity);
  TTFT       as the client sees it: from the send to the first token,
             the wait in nginx's queue included;
  goodput    output tokens of the admitted requests per simulated second
             of the run (first send to last completion), and the same for
             the admitted requests whose TTFT met the objective
             (TTFT <= TTFT_SLO), with their rate in requests/s.
Python standard library only.
"""
import json
import os
import sys

THRESHOLD = 5          # utilization-detector's queueDepthThreshold default


def pct(v, p):
    if not v:
        return float("nan")
    v = sorted(v)
    pos = p / 100.0 * (len(v) - 1)
    i = int(pos)
    if i >= len(v) - 1:
        return v[-1]
    return v[i] + (v[i + 1] - v[i]) * (pos - i)


def f(x, fmt="%.2f"):
    return "-" if x is None or x != x else fmt % x


def load(res, e, scale):
    d = os.path.join(res, e)
    reqs = []
    path = os.path.join(d, "loadgen", "per_request_lifecycle_metrics.jsonl")
    with open(path) as fh:
        for line in fh:
            line = line.strip()
            if line:
                reqs.append(json.loads(line))
    with open(os.path.join(d, "loadgen", "report.json")) as fh:
        rep = json.load(fh)
    start = rep["loadgen"]["start_epoch"]
    pods = {}
    path = os.path.join(d, "pod_metrics.txt")
    if os.path.isfile(path):
        with open(path) as fh:
            for line in fh:
                p = line.split()
                if len(p) == 5:
                    t = round((float(p[0]) - start) * scale, 2)
                    pods.setdefault(t, {})[int(p[1])] = float(p[2])
    queue = []
    path = os.path.join(d, "nginx_queue.txt")
    if os.path.isfile(path):
        with open(path) as fh:
            for line in fh:
                p = line.split()
                if len(p) == 3:
                    queue.append(((float(p[0]) - start) * scale,
                                  float(p[1]), float(p[2])))
    status = [None, None]
    for i, name in enumerate(("llmd_status.json",
                              "llmd_status_before.json")):
        path = os.path.join(d, name)
        if os.path.isfile(path):
            try:
                with open(path) as fh:
                    status[i] = json.load(fh)
            except ValueError:
                pass
    return reqs, pods, queue, status, rep


def flow_of(status):
    if not status:
        return None
    for u in status.get("upstreams", []):
        if "flow_control" in u:
            return u["flow_control"]
    return None


def main():
    res, scale = sys.argv[1], float(sys.argv[2])
    slo, fc_ttl = float(sys.argv[3]), float(sys.argv[4])
    max_conc = sys.argv[5] if len(sys.argv) > 5 else "?"
    exps = [e for e in ("default", "flow", "flow-filter", "flow-concurrency")
            if os.path.isfile(
        os.path.join(res, e, "loadgen", "report.json"))]
    out = []
    w = out.append
    w("## Overload: with and without flow control\n")
    w("Admitted: answered 200 with the whole stream. TTFT: from the send to "
      "the first token as the client sees it (the wait in nginx's queue "
      "included). Goodput: output tokens/s of the admitted requests over "
      "the run (first send to last completion); SLO goodput: the same "
      "for admitted requests with TTFT <= %g s, and their rate. Flow "
      "control: defaultRequestTTL %g s (simulated); flow: "
      "utilization-detector (queueDepthThreshold %d, kvCacheUtilThreshold "
      "0.8; flow-filter: also a filter in the profile), flow-concurrency: "
      "concurrency-detector (maxConcurrency %s per "
      "pod). Pods' waiting queue: vllm:num_requests_waiting of each pod, "
      "sampled.\n" % (slo, fc_ttl, THRESHOLD, max_conc))
    w("| Run | Sent | Admitted | 429 | Goodput (out tok/s) | SLO goodput "
      "(out tok/s, req/s) | Pod queue mean/p90/max | Samples with a pod "
      "over %d |" % THRESHOLD)
    w("|---|---:|---:|---:|---:|---:|---:|---:|")
    lat = []
    extra = []
    for e in exps:
        reqs, pods, queue, status, rep = load(res, e, scale)
        rates = [s.get("rate") for s in rep.get("stages", [])]
        peak = max(r for r in rates if r is not None) if rates else None
        ok = [r for r in reqs if r.get("ok")]
        n429 = sum(1 for r in reqs if r.get("status") == 429)
        other = len(reqs) - len(ok) - n429
        ttft = [r["time_to_first_token"] for r in ok
                if r.get("time_to_first_token") is not None]
        burst = [r["time_to_first_token"] for r in ok
                 if r.get("time_to_first_token") is not None
                 and rates and r.get("stage") is not None
                 and rates[r["stage"]] is not None
                 and rates[r["stage"]] >= 10]
        t0 = min((r["sent"] for r in reqs), default=0.0)
        t1 = max((r["sent"] + (r.get("request_latency") or 0)
                  for r in reqs), default=0.0)
        dur = max(t1 - t0, 1e-9)
        out_tok = sum(r.get("output_tokens") or 0 for r in ok)
        good = [r for r in ok if r.get("time_to_first_token") is not None
                and r["time_to_first_token"] <= slo]
        good_tok = sum(r.get("output_tokens") or 0 for r in good)
        wq = [v for s in pods.values() for v in s.values()]
        over = sum(1 for s in pods.values() if max(s.values()) > THRESHOLD)
        w("| %s | %d | %d | %d%s | %.0f | %.0f, %.2f | %s/%s/%s | %d of %d |"
          % (e, len(reqs), len(ok), n429,
             " (+%d other)" % other if other else "", out_tok / dur,
             good_tok / dur, len(good) / dur,
             f(sum(wq) / len(wq) if wq else None, "%.1f"),
             f(pct(wq, 90), "%.0f"), f(max(wq) if wq else None, "%.0f"),
             over, len(pods)))
        have = e == "default" or any("gateway_queue" in r for r in ok)
        gq = [r.get("gateway_queue", 0.0) for r in ok
              if r.get("time_to_first_token") is not None]
        pool = [t - q for t, q in zip(ttft, gq)]
        if not have:
            # not recorded (an older llmd-loadgen): unknown, not 0
            gq = pool = []
        lat.append("| %s | %s/%s/%s | %s | %s | %s/%s | %s/%s/%s | %s |" % (
            e, f(pct(ttft, 50)), f(pct(ttft, 90)), f(pct(ttft, 99)),
            f(sum(ttft) / len(ttft) if ttft else None), f(pct(burst, 90)),
            f(pct(gq, 50)), f(pct(gq, 90)), f(pct(pool, 50)),
            f(pct(pool, 90)), f(pct(pool, 99)),
            f(sum(pool) / len(pool) if pool else None)))
        # a healthy pool: the first stage, before any burst
        first = sorted(r["time_to_first_token"] for r in ok
                       if r.get("stage") == 0
                       and r.get("time_to_first_token") is not None)
        if first:
            extra.append("- %s: TTFT p50/p90 of the first stage (%g/s, "
                         "before any burst, the pool healthy): %s/%s s."
                         % (e, rates[0] if rates else float("nan"),
                            f(pct(first, 50)), f(pct(first, 90))))
        fc = flow_of(status[0])
        if fc and fc.get("enabled"):
            # the measured run only: the counters after the warm-up
            # subtracted
            q = dict(fc.get("queue", {}))
            b = (flow_of(status[1]) or {}).get("queue", {})
            for k in ("dispatched", "evicted_ttl", "rejected_capacity",
                      "evicted_cancelled", "wait_ms_sum"):
                q[k] = q.get(k, 0) - b.get(k, 0)
            disp = q.get("dispatched", 0)
            extra.append(
                "- %s: nginx's queue dispatched %d, evicted on TTL %d, "
                "rejected at capacity %d, client gone %d; mean wait of "
                "those that left the queue %.2f s (simulated); at most %d "
                "waiting in nginx at a sample." % (
                    e, disp, q.get("evicted_ttl", 0),
                    q.get("rejected_capacity", 0),
                    q.get("evicted_cancelled", 0),
                    q.get("wait_ms_sum", 0) * scale / 1000.0
                    / max(1, disp + q.get("evicted_ttl", 0)),
                    max((x[1] for x in queue), default=0)))
        # chart data
        with open(os.path.join(res, "overload_%s_pods.dat" % e), "w") as fh:
            fh.write("# t_sim waiting_pod0..3 nginx_queue\n")
            qi = 0
            for t in sorted(pods):
                while qi + 1 < len(queue) and queue[qi + 1][0] <= t:
                    qi += 1
                nq = queue[qi][1] if queue and queue[qi][0] <= t + 1 else 0
                fh.write("%.2f %s %g\n" % (t, " ".join(
                    "%g" % pods[t].get(p, float("nan")) for p in range(4)),
                    nq))
        with open(os.path.join(res, "overload_%s_ttft.dat" % e), "w") as fh:
            fh.write("# t_sent_sim ttft status(1 ok, 0 429, -1 other) "
                     "wait_in_nginx\n")
            for r in sorted(reqs, key=lambda r: r["sent"]):
                st = 1 if r.get("ok") else (0 if r.get("status") == 429
                                            else -1)
                fh.write("%.3f %s %d %.4f\n" % (
                    r["sent"] - t0, f(r.get("time_to_first_token"), "%.4f")
                    if st == 1 else "NaN", st,
                    r.get("gateway_queue", 0.0)))
        if peak is not None and e == exps[0]:
            extra.insert(0, "- stages (rate/s : simulated s): %s; peak "
                         "%g/s." % (", ".join(
                             "%g:%g" % (s.get("rate"), s.get("duration"))
                             for s in rep["stages"]), peak))
    w("")
    w("Latency of the admitted requests (simulated s): TTFT as the client "
      "sees it, the part of it spent waiting in nginx's queue "
      "(`$llmd_queue_us`, from an `X-Llmd-Queue-Us` response header), and "
      "the rest, the TTFT of the pool.\n")
    w("| Run | TTFT p50/p90/p99 | TTFT mean | TTFT p90 in the bursts (>= 10/s) "
      "| wait in nginx p50/p90 | TTFT of the pool p50/p90/p99 | TTFT of the "
      "pool mean |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for x in lat:
        w(x)
    w("")
    for x in extra:
        w(x)
    w("")
    w("### Charts\n")
    w("<img src=\"overload_queues.png\" alt=\"Pods' waiting queues\" "
      "width=\"720\"/>\n")
    w("<img src=\"overload_ttft.png\" alt=\"TTFT of each request\" "
      "width=\"720\"/>\n")
    with open(os.path.join(res, "overload.gp.vars"), "w") as fh:
        fh.write('EXPS = "%s"\nTHRESHOLD = %d\nSLO = %g\n'
                 % (" ".join(exps), THRESHOLD, slo))
    print("\n".join(out))


if __name__ == "__main__":
    main()
