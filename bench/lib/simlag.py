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
"""
import json
import os
import sys


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


if __name__ == "__main__":
    main()
