#!/usr/bin/python3
"""Turns the raw data of one bench/scheduling.sh run into its report.

    report.py RESULTS_DIR MODE TIME_SCALE

Reads, per experiment directory: loadgen/report.json (llmd-loadgen),
resources.json (nginx and simulator CPU/memory), pod_metrics.txt (the pods'
/metrics sampled during the run).  Writes README.md in the shape of the llm-d
report (summary table, queue/KV table, per-QPS tables), the data files the
charts are drawn from (*.dat) and plots.gp (variables for bench/plot.gp).

When the runs were measured in llmd-loadgen's inference-perf-v0.2 mode, the
summary and per-QPS tables are computed as llm-d's report computes them
(seedway.py: per-stage figures of inference-perf, the warm-up stage left
out, means of the stages), and the whole run pooled, with the real
interval between tokens, is a separate table.
Python standard library only.
"""
import json
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.dont_write_bytecode = True   # no __pycache__ in the tree
import seedway  # noqa: E402

ORDER = ["precise", "precise-current", "precise-tokens", "precise-nospec",
         "default",
         "default-current",
         "sticky", "sticky-precise", "flow", "flow-filter",
         "flow-concurrency",
         "load", "random", "round-robin", "least-conn",
         "aggregated", "pd-2p2d", "pd-1p3d"]
LABEL = {
    "precise": "llmd precise-scheduling",
    "default": "llmd default-scheduling (approximate)",
    "flow": "llmd approximate + flow control",
    "flow-concurrency": "llmd approximate + flow control (concurrency)",
    "flow-filter": "llmd approximate + flow control, detector as filter",
    "precise-current": "llmd precise, llm-d's perf-test profile (epp-precise-current)",
    "precise-tokens":
        "llmd precise + token-load-scorer (epp-precise-tokens)",
    "precise-nospec":
        "llmd precise without speculative entries (epp-precise, "
        "speculativeIndexing false)",
    "default-current": "llmd llm-d's current default (epp-default-current)",
    "sticky": "llmd sticky until saturated (epp-sticky)",
    "sticky-precise":
        "llmd sticky until saturated, precise (epp-sticky-precise)",
    "load": "llmd load-scheduling",
    "random": "llmd random-scheduling",
    "round-robin": "nginx round-robin",
    "least-conn": "nginx least_conn",
    "aggregated": "aggregated (4 unlabelled pods)",
    "pd-2p2d": "P/D 2 prefill + 2 decode",
    "pd-1p3d": "P/D 1 prefill + 3 decode",
}


def pct(values, p):
    if not values:
        return float("nan")
    v = sorted(values)
    pos = p / 100.0 * (len(v) - 1)
    i = int(pos)
    if i >= len(v) - 1:
        return v[-1]
    return v[i] + (v[i + 1] - v[i]) * (pos - i)


def num(x, fmt):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return fmt % x


def row(name, m):
    lat = m["latency"]
    tp = m["throughput"]
    itl = lat["inter_token_latency"]
    ttft = lat["time_to_first_token"]
    return "| %s | %s | %s | %s | %s | %s | %s | %s/%s |" % (
        name,
        num(tp.get("output_tokens_per_sec"), "%.1f"),
        num(tp.get("requests_per_sec"), "%.3f"),
        num(100.0 * m.get("success_rate", 0), "%.2f%%"),
        num(ttft.get("p90"), "%.3f"),
        num(ttft.get("mean"), "%.3f"),
        num(itl.get("mean"), "%.3f"),
        num(itl.get("p50"), "%.4f"),
        num(itl.get("p90"), "%.3f"))


HEAD = ("| Experiment | Output toks/s | Requests/s | Success Rate | "
        "TTFT p90 (s) | TTFT mean (s) | ITL mean (s) | ITL p50/ p90 (s) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|")

# the seed's columns and a last one it does not have
SEED_HEAD = ("| Experiment | Output toks/s | Requests/s | Success Rate | "
             "TTFT p90 (s) | TTFT mean (s) | ITL mean (s) | ITL p50/ p90 (s) "
             "| ITL per token (s) |\n"
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|")


def seed_row(name, r):
    """A row of a seed-way table (seedway.per_qps or seedway.summary)."""
    return "| %s | %s | %s | %s | %s | %s | %s | %s/%s | %s |" % (
        name, num(r["out_tok_s"], "%.1f"), num(r["requests_per_s"], "%.3f"),
        num(100.0 * r["success_rate"], "%.2f%%"), num(r["ttft_p90"], "%.3f"),
        num(r["ttft_mean"], "%.3f"), num(r["itl_mean"], "%.3f"),
        num(r["itl_p50"], "%.4f"), num(r["itl_p90"], "%.3f"),
        num(r["itl_token_mean"], "%.3f"))


def pd_table(w, res, exps):
    """P/D work per run, from each pod's /sim/state at the end (simstate*.json):
    requests the pods served, prefill legs answered by prefill pods, requests
    a decode pod prefilled remotely, the KV pulls and their simulated time."""
    rows = []
    for e in exps:
        states = []
        for i in range(64):
            path = os.path.join(res, e, "simstate%d.json" % i)
            if not os.path.isfile(path):
                break
            with open(path) as f:
                try:
                    states.append(json.load(f))
                except ValueError:
                    pass
        if not states:
            continue
        pd = [s.get("pd", {}) for s in states]
        roles = ",".join(s.get("role", "?") for s in states)
        pulls = sum(p.get("kv_pulls", 0) for p in pd)
        secs = sum(p.get("kv_pull_seconds", 0.0) for p in pd)
        rows.append("| %s | %s | %d | %d | %d | %d | %.1f | %s | %d |" % (
            LABEL[e], roles, sum(s.get("requests", 0) for s in states),
            sum(p.get("prefill_legs", 0) for p in pd),
            sum(p.get("remote_prefills", 0) for p in pd), pulls,
            sum(p.get("kv_pull_bytes", 0) for p in pd) / 1e9,
            num(secs / pulls if pulls else None, "%.4f"),
            sum(p.get("sidecar_failures", 0) for p in pd)))
    if not rows:
        return
    w("## Prefill/decode work (each pod's /sim/state at the end)\n")
    w("| Experiment | Roles | Requests served | Prefill legs | Remote "
      "prefills | KV pulls | KV pulled (GB) | Pull time mean (s) | "
      "Sidecar failures |")
    w("|---|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        w(r)
    w("")


def main():
    res, mode, scale = sys.argv[1], sys.argv[2], float(sys.argv[3])
    exps = [e for e in ORDER if os.path.isfile(
        os.path.join(res, e, "loadgen", "report.json"))]
    data = {}
    for e in exps:
        d = os.path.join(res, e)
        with open(os.path.join(d, "loadgen", "report.json")) as f:
            rep = json.load(f)
        resources = {}
        if os.path.isfile(os.path.join(d, "resources.json")):
            with open(os.path.join(d, "resources.json")) as f:
                resources = json.load(f)
        start = rep["loadgen"]["start_epoch"]
        pods = {}
        path = os.path.join(d, "pod_metrics.txt")
        if os.path.isfile(path):
            with open(path) as f:
                for line in f:
                    p = line.split()
                    if len(p) != 5:
                        continue
                    t = (float(p[0]) - start) * scale
                    pods.setdefault(int(p[1]), []).append(
                        (t, float(p[2]), float(p[3]), float(p[4])))
        data[e] = (rep, resources, pods)

    out = []
    w = out.append
    w("# Scheduling benchmark: %s\n" % mode)
    w("4 simulated vLLM pods (build/bin/vllm-sim: Llama-3.1-70B-Instruct on "
      "4xH100, 461,376 KV tokens per pod, block size 64) behind Debian's "
      "nginx; workload and stages in [workload.yaml](workload.yaml). "
      "Time scale %g: the pods run %g times faster than real time and every "
      "figure below is in simulated (real) seconds.\n" % (scale, scale))
    if not exps:
        w("No experiment produced a report.\n")
    concurrent = False
    if exps:
        st0 = data[exps[0]][0]["stages"]
        concurrent = any("concurrency_level" in s for s in st0)

    # the seed's way, when the runs were measured in the mode
    seed = {}
    for e in exps:
        rows = seedway.stage_rows(data[e][0])
        if rows:
            groups = seedway.per_qps(rows, skip_stage0=mode in ("full",
                                                                 "quick"))
            seed[e] = (rows, groups, seedway.summary(groups))

    ranked = sorted(exps, key=lambda e: -(data[e][0]["summary"]["metrics"]
                    ["throughput"].get("output_tokens_per_sec") or 0))
    if seed:
        w("## Summary across QPS (as llm-d's report computes it)\n")
        w("Measured as inference-perf v0.2 measures (llmd-loadgen --mode "
          "inference-perf-v0.2: drained stages, line-stamped streams) and "
          "aggregated as llm-d's report aggregates: per-stage figures, the "
          "warm-up stage left out, Output toks/s the mean of the stages', "
          "TTFT and ITL the stages' values weighted by their successes, "
          "ITL p50 the median line gap of the whole run. The last column is "
          "not in the seed: the mean interval between streamed tokens. "
          "docs/benchmark.md explains every column.\n")
        w(SEED_HEAD)
        for e in sorted(seed, key=lambda e: seedway.sort_key(seed[e][2])):
            if seed[e][2] is not None:
                w(seed_row(LABEL[e], seed[e][2]))
        w("")
        w("## Whole run, pooled (llmd-loadgen's own figures)\n")
        w("All requests of the run, the warm-up included, in one "
          "distribution; tokens/s over the first send to the last "
          "completion of the run; ITL between streamed tokens.\n")
    else:
        w("## Summary across QPS\n")
    w(HEAD)
    for e in ranked:
        w(row(LABEL[e], data[e][0]["summary"]["metrics"]))
    w("")

    w("## Pod queue and KV cache (sampled /metrics)\n")
    w("| Experiment | Wait Queue (mean/p90/max) | KV Cache % (mean/p90/max) "
      "| Pods | Data Points |")
    w("|---|---:|---:|---:|---:|")
    for e in exps:
        pods = data[e][2]
        wq = [s[1] for v in pods.values() for s in v]
        kv = [100 * s[3] for v in pods.values() for s in v]
        if wq:
            w("| %s | %.1f/%.0f/%.0f | %.1f/%.1f/%.1f | %d | %d |" % (
                LABEL[e], sum(wq) / len(wq), pct(wq, 90), max(wq),
                sum(kv) / len(kv), pct(kv, 90), max(kv), len(pods), len(wq)))
    w("")

    pd_table(w, res, exps)

    w("## Resources per run\n")
    w("nginx: master + 1 worker (+ the llmd helper process for llmd "
      "upstreams); CPU over the whole run in % of one core; memory: PSS "
      "summed over those processes at the end of the run (shared pages "
      "counted once) and the largest peak RSS of one of them during the "
      "run (after the connection warm-up). Load generator: its own "
      "CPU and the lag between scheduled and actual send times (wall ms). "
      "Simulator's CPU wait: wall seconds its threads were runnable and "
      "waited for a CPU; machine CPU: every process's, this run's and "
      "others', in % of all CPUs.\n")
    w("| Experiment | nginx CPU % | nginx CPU s | nginx PSS MB (peak RSS) | "
      "simulator CPU % | simulator's CPU wait s | machine CPU % | "
      "loadgen CPU % | send lag p50/p99/max (ms) | wall s |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for e in exps:
        rep, r, _ = data[e]
        lg = rep["loadgen"]
        lag = lg.get("send_lag_ms", {})
        w("| %s | %s | %s | %s (%s) | %s | %s | %s | %s | %s/%s/%s | %s |"
          % (LABEL[e], num(r.get("nginx_cpu_percent"), "%.1f"),
             num(r.get("nginx_cpu_seconds"), "%.1f"),
             num(r.get("nginx_pss_kb", 0) / 1024.0, "%.1f"),
             num(r.get("nginx_peak_rss_kb", 0) / 1024.0, "%.1f"),
             num(r.get("sim_cpu_percent"), "%.1f"),
             num(r.get("sim_runq_wait_seconds"), "%.1f"),
             num(r.get("machine_cpu_percent"), "%.1f"),
             num(lg.get("cpu_percent_of_one_core"), "%.1f"),
             num(lag.get("p50"), "%.2f"), num(lag.get("p99"), "%.2f"),
             num(lag.get("max"), "%.1f"), num(r.get("wall_seconds"), "%.0f")))
    w("")

    # goals of issue 6, from this run (the seed's way when measured so)
    s = {e: data[e][0]["summary"]["metrics"] for e in exps}

    def tok(e):
        if e in seed and seed[e][2] is not None:
            return seed[e][2]["out_tok_s"]
        return s[e]["throughput"].get("output_tokens_per_sec") or float("nan")

    def t90(e):
        if e in seed and seed[e][2] is not None:
            return seed[e][2]["ttft_p90"]
        return (s[e]["latency"]["time_to_first_token"].get("p90")
                or float("nan"))
    goals = []
    if "precise" in s and "random" in s:
        goals.append("precise / random output tok/s: %.2fx (goal >= 2x)"
                     % (tok("precise") / tok("random")))
        goals.append("precise / random TTFT p90: 1/%.0f (goal <= 1/100)"
                     % (t90("random") / t90("precise")))
    if "precise" in s and "default" in s:
        goals.append("approximate / precise TTFT p90: %.2fx (goal <= 2x)"
                     % (t90("default") / t90("precise")))
    for b in ("round-robin", "least-conn"):
        if "default" in s and b in s:
            goals.append("default / %s output tok/s: %.2fx (goal >= 1.3x)"
                         % (b, tok("default") / tok(b)))
    if goals:
        w("## Against the goals of issue 6\n")
        for g in goals:
            w("- " + g)
        w("")

    if mode in ("steady", "throughput", "sweep"):
        # the routing SLIs of seed 001: throughput and P95 TTFT, with the
        # gateway's resource use, in total and per stage
        w("## Seed 001 SLIs (%s)\n" % mode)
        w("| Experiment | Stage | Output toks/s | Requests/s | TTFT p95 (s) "
          "| E2E p95 (s) | nginx CPU % |")
        w("|---|---|---:|---:|---:|---:|---:|")
        for e in exps:
            rep, r, _ = data[e]
            items = [("all", rep["summary"]["metrics"])]
            if len(rep["stages"]) > 1:
                for st in rep["stages"]:
                    label = ("c=%d" % st["concurrency_level"]
                             if "concurrency_level" in st
                             else "%g/s" % st["rate"])
                    items.append((label, st["metrics"]))
            for label, m in items:
                lat = m["latency"]
                w("| %s | %s | %s | %s | %s | %s | %s |" % (
                    LABEL[e], label,
                    num(m["throughput"].get("output_tokens_per_sec"),
                        "%.1f"),
                    num(m["throughput"].get("requests_per_sec"), "%.3f"),
                    num(lat["time_to_first_token"].get("p95"), "%.3f"),
                    num(lat["request_latency"].get("p95"), "%.3f"),
                    num(r.get("nginx_cpu_percent"), "%.1f")
                    if label == "all" else ""))
        w("")

    w("## Charts\n")
    for png, title in (("latency_vs_qps.png", "Latency vs QPS"),
                       ("throughput_vs_qps.png", "Throughput vs QPS"),
                       ("ttft_p90_vs_qps.png", "TTFT p90 vs QPS"),
                       ("itl_mean_vs_qps.png", "ITL mean vs QPS"),
                       ("waiting_queue_vs_time.png", "Waiting queue vs time"),
                       ("kv_cache_usage_vs_time.png",
                        "KV cache usage vs time")):
        w("### %s\n\n<img src=\"%s\" alt=\"%s\" width=\"720\"/>\n"
          % (title, png, title))

    w("## Per-%s results\n" % ("concurrency" if concurrent else "QPS"))
    if seed:
        w("As llm-d's report computes them (above); requests count in the "
          "stage in which they were sent, and a stage ends when all its "
          "requests have.\n")
        first = seed[next(iter(seed))][0]
        shown = set()
        for st in first:
            qps = st["qps"]
            warm = st["stage"] == 0 and mode in ("full", "quick")
            if not warm and qps in shown:
                continue
            shown.add(None if warm else qps)
            w("### QPS = %.1f%s\n" % (qps, " (warm-up: stage 0, left out "
              "of the summary as in llm-d's report)" if warm else ""))
            w(SEED_HEAD)
            rows = []
            for e in seed:
                if warm:
                    rows += [(e, seedway.per_qps([r], False)[0])
                             for r in seed[e][0] if r["stage"] == 0]
                else:
                    rows += [(e, g) for g in seed[e][1] if g["qps"] == qps]
            rows.sort(key=lambda x: seedway.sort_key(x[1])
                      + (-x[1]["success_rate"],))
            for e, g in rows:
                w(seed_row(LABEL[e], g))
            w("")
    elif exps:
        for i, st in enumerate(data[exps[0]][0]["stages"]):
            if "concurrency_level" in st:
                w("### Concurrency = %d\n" % st["concurrency_level"])
            else:
                w("### QPS = %.1f%s\n" % (st["rate"], " (warmup)"
                  if i == 0 and mode in ("full", "quick") else ""))
            w(HEAD)
            rows = [(e, data[e][0]["stages"][i]["metrics"]) for e in exps
                    if i < len(data[e][0]["stages"])]
            rows.sort(key=lambda x: (x[1]["latency"]["time_to_first_token"]
                                     .get("p90") or float("inf")))
            for e, m in rows:
                w(row(LABEL[e], m))
            w("")

    w("## Raw data\n")
    w("Per experiment directory: `loadgen/report.yaml` (inference-perf "
      "field names, per stage and summary), `loadgen/"
      "per_request_lifecycle_metrics.jsonl`, `pod_metrics.txt` (epoch, pod, "
      "waiting, running, KV usage), `resources.json`, `pod*.metrics` (final "
      "/metrics), `llmd_status.json`.\n")
    with open(os.path.join(res, "README.md"), "w") as f:
        f.write("\n".join(out))

    # chart data
    for e in exps:
        rep, _, pods = data[e]
        with open(os.path.join(res, "stages_%s.dat" % e), "w") as f:
            f.write("# x e2e_mean e2e_p90 ttft_mean ttft_p90 out_tok_s "
                    "itl_mean\n")
            # the warmup stage repeats a later rate: leave it out of curves
            for i, st in enumerate(rep["stages"]):
                if i == 0 and mode in ("full", "quick"):
                    continue
                m = st["metrics"]
                x = st.get("concurrency_level", st.get("rate"))
                lat = m["latency"]

                def g(d, k):
                    v = d.get(k)
                    return "NaN" if v is None else "%.6g" % v
                f.write("%s %s %s %s %s %s %s\n" % (
                    x, g(lat["request_latency"], "mean"),
                    g(lat["request_latency"], "p90"),
                    g(lat["time_to_first_token"], "mean"),
                    g(lat["time_to_first_token"], "p90"),
                    g(m["throughput"], "output_tokens_per_sec"),
                    g(lat["inter_token_latency"], "mean")))
        for p, samples in pods.items():
            with open(os.path.join(res, "pod_%s_%d.dat" % (e, p)), "w") as f:
                f.write("# t_sim waiting running kv_percent\n")
                for t, wq, run, kv in samples:
                    f.write("%.2f %g %g %.2f\n" % (t, wq, run, 100 * kv))
    with open(os.path.join(res, "plots.gp"), "w") as f:
        f.write('EXPS = "%s"\n' % " ".join(exps))
        f.write('XLABEL = "%s"\n' % ("concurrency" if concurrent
                                      else "QPS (requests/s)"))
        f.write('MODE = "%s (time scale %g)"\n' % (mode, scale))


if __name__ == "__main__":
    main()
