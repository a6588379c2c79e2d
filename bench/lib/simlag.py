#!/usr/bin/python3
"""How far the simulator fell behind its own clock during one experiment.

usage: simlag.py DIR SCALE

Reads DIR/simstate_before<i>.json (after the warm-up) and
DIR/simstate<i>.json (at the end) of every pod (vllm-sim's /sim/state,
its "lag" object) and prints per pod and in total, over the measured run:
steps, the model's mean step (simulated ms), the share of steps the event
loop ended late, their mean lag (wall ms and simulated ms at SCALE), the
largest, the lag the clock could not absorb (lost; simulated seconds) and
the engine's CPU time per step (wall us).

With DIR/simlag.txt (bench/lib/sampler.py: every pod's /sim/state lag
sampled over the run) and the load generator's per-request data, it
also prints the lag per stage of the workload (each stage from its
first request's send to the next stage's first): steps, their summed
lag (wall s), the mean lag per step (wall ms) and the largest lag
summed over the pods in one sampling interval (wall s).
"""
import json
import os
import sys

import picks     # the load generator's per-request data


def load(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def main():
    d, scale = sys.argv[1], float(sys.argv[2])
    rows = []
    i = 0
    while os.path.exists(os.path.join(d, "simstate%d.json" % i)):
        a = load(os.path.join(d, "simstate_before%d.json" % i)) or {}
        b = load(os.path.join(d, "simstate%d.json" % i))
        i += 1
        if not b or "lag" not in b:
            continue
        la, lb = a.get("lag", {}), b["lag"]

        def delta(k):
            return lb.get(k, 0) - la.get(k, 0)

        steps = b.get("steps", 0) - a.get("steps", 0)
        rows.append((b.get("pod", i - 1), steps, delta("model_s"),
                     delta("late_steps"), delta("lag_s"), lb.get("lag_max_s", 0),
                     delta("lost_s"), delta("engine_cpu_s")))
    if not rows:
        print("no /sim/state lag figures")
        return
    tot = [sum(r[k] for r in rows) for k in range(8)]
    tot[0] = "all"
    tot[5] = max(r[5] for r in rows)
    tot[6] = max(r[6] for r in rows)    # one loop: the same stalls
    print("| pod | steps | model step (ms) | late steps | mean lag wall ms "
          "(sim ms) | max lag wall ms | lost (sim s) | engine CPU/step (us) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows + [tuple(tot)]:
        pod, steps, model, late, lag, mx, lost, cpu = r
        n = steps or 1
        print("| %s | %d | %.1f | %.0f %% | %.2f (%.1f) | %.0f | %.1f | %.0f |"
              % (pod, steps, 1e3 * model / n, 100.0 * late / n,
                 1e3 * lag / (late or 1), 1e3 * scale * lag / (late or 1),
                 1e3 * mx, scale * lost, 1e6 * cpu / n))
    per_stage(d, scale)


def stages(d, scale):
    """[(stage, start epoch)] from the load generator's data."""
    rep = load(os.path.join(d, "loadgen", "report.json"))
    try:
        reqs = picks.load(d)
    except (OSError, ValueError):
        return []
    if not rep:
        return []
    t0 = rep.get("loadgen", {}).get("start_epoch")
    first = {}
    for r in reqs:
        s = r.get("stage")
        if s is not None and r.get("sent") is not None:
            t = t0 + r["sent"] / scale
            first[s] = min(first.get(s, t), t)
    return sorted(first.items())


def per_stage(d, scale):
    path = os.path.join(d, "simlag.txt")
    st = stages(d, scale)
    if not os.path.exists(path) or not st:
        return
    samples = {}                # epoch -> [steps, lag_s] summed over pods
    with open(path) as f:
        for line in f:
            v = line.split()
            if len(v) < 6:
                continue
            a = samples.setdefault(float(v[0]), [0, 0.0])
            a[0] += int(v[2])
            a[1] += float(v[4])
    ts = sorted(samples)
    if len(ts) < 2:
        return
    bounds = [t for _, t in st] + [ts[-1] + 1]
    print()
    print("| stage | wall s | steps | summed lag (wall s) | mean lag per step "
          "(wall ms) | largest in one sample (wall s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for k, (stage, start) in enumerate(st):
        end = bounds[k + 1]
        inside = [t for t in ts if start <= t < end]
        if not inside:
            continue
        prev = [t for t in ts if t < start]
        a = samples[prev[-1]] if prev else samples[inside[0]]
        b = samples[inside[-1]]
        worst = 0.0
        last = a
        for t in inside:
            worst = max(worst, samples[t][1] - last[1])
            last = samples[t]
        steps = b[0] - a[0]
        print("| %s | %.1f | %d | %.2f | %.2f | %.2f |"
              % (stage, min(end, ts[-1]) - start, steps, b[1] - a[1],
                 1e3 * (b[1] - a[1]) / (steps or 1), worst))


if __name__ == "__main__":
    main()
