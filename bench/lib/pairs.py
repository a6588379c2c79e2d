#!/usr/bin/python3
"""One profile against another over many runs of one bench/scheduling.sh
mode: does A lose to B, or does one run's comparison only show its draw?

    pairs.py [--a precise] [--b default] RUN_DIR [...]

Each RUN_DIR is one run (bench/results/<mode>-<time>) with the two
experiments A and B in it (default: precise and default, the two that
issue 15's target 3 compares in `make bench-sweep`); runs without both (a
report.json and the per-request data each) are skipped with a note on
stderr. Per run, from each experiment's
loadgen/report.json: output tok/s and TTFT p90; from its per-request data
(picks.py's --ttft counts): the requests at or above the first requests'
floor, which decide where the p90 sits. Then, over the runs:

  - in how many runs A's TTFT p90 <= B's, A's output >= B's, and both
    (the target as one run judges it);
  - the mean of A - B (p90, s; requests at or above the floor) and of
    A / B (output), each with a 95 % bootstrap interval (10,000 resamples
    of the runs, a fixed seed: the same input prints the same figures);
  - with resources.json (bench/scheduling.sh writes it), the simulator's
    CPU wait (its threads runnable, waiting for a CPU, wall s): on a
    shared machine the pods lag behind whatever else runs, and one
    profile's extra work (KV events, the helper) can tip it;
  - the two-sided sign test of the p90 comparison (runs where A's p90 is
    lower against higher, ties left out): the chance of a split at least
    that uneven if either side were as likely to win a run.

An interval that holds 0 (1 for the ratio) says the runs do not tell A
from B; a sign test p well above 0.05 says a single run's verdict is its
draw. Python standard library only.
"""
import json
import math
import os
import random
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import picks  # noqa: E402  (the --ttft counts, not copied)


def experiment(run, name):
    d = os.path.join(run, name)
    try:
        with open(os.path.join(d, "loadgen", "report.json")) as f:
            m = json.load(f)["summary"]["metrics"]
        c = picks.ttft_counts(d)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    try:
        with open(os.path.join(d, "resources.json")) as f:
            wait = float(json.load(f)["sim_runq_wait_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        wait = None
    return {"output": m["throughput"]["output_tokens_per_sec"],
            "p90": m["latency"]["time_to_first_token"]["p90"],
            "slow": c["slow"], "tenth": c["tenth"], "wait": wait}


def wait_str(x):
    return "-" if x["wait"] is None else "%.1f" % x["wait"]


def bootstrap(xs, stat, n=10000, seed=1):
    """95 % percentile interval of stat over resamples of xs."""
    rnd = random.Random(seed)
    vals = sorted(stat([rnd.choice(xs) for _ in xs]) for _ in range(n))
    return vals[int(0.025 * n)], vals[int(0.975 * n) - 1]


def sign_test(wins, losses):
    """Two-sided exact binomial test at p = 1/2."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2.0 ** n
    return min(1.0, 2 * tail)


def main(argv):
    a, b = "precise", "default"
    runs = []
    args = argv[1:]
    while args and args[0] in ("--a", "--b"):
        if len(args) < 2:
            print("usage: pairs.py [--a A] [--b B] RUN_DIR [...]",
                  file=sys.stderr)
            return 2
        if args[0] == "--a":
            a = args[1]
        else:
            b = args[1]
        args = args[2:]
    if not args:
        print("usage: pairs.py [--a A] [--b B] RUN_DIR [...]",
              file=sys.stderr)
        return 2
    for run in args:
        x, y = experiment(run, a), experiment(run, b)
        if x is None or y is None:
            print("%s: no %s" % (run, a if x is None else b),
                  file=sys.stderr)
            continue
        runs.append((os.path.basename(os.path.normpath(run)), x, y))
    if not runs:
        print("no run with both %s and %s" % (a, b), file=sys.stderr)
        return 1

    print("| run | %s / %s output tok/s | ratio | TTFT p90 (s) | "
          "difference (s) | at or above the floor (10 %% of requests) | "
          "simulator's CPU wait (s) | both halves |" % (a, b))
    print("|---|---|---:|---|---:|---|---|---|")
    p90_le = out_ge = both = wins = losses = 0
    for name, x, y in runs:
        le = x["p90"] <= y["p90"]
        ge = x["output"] >= y["output"]
        p90_le += le
        out_ge += ge
        both += le and ge
        wins += x["p90"] < y["p90"]
        losses += x["p90"] > y["p90"]
        print("| %s | %.1f / %.1f | %.3f | %.3f / %.3f | %+.3f | "
              "%d / %d (%d) | %s / %s | %s |" % (
                  name, x["output"], y["output"], x["output"] / y["output"],
                  x["p90"], y["p90"], x["p90"] - y["p90"], x["slow"],
                  y["slow"], x["tenth"], wait_str(x), wait_str(y),
                  "met" if le and ge else "missed"))

    n = len(runs)
    dp = [x["p90"] - y["p90"] for _, x, y in runs]
    ds = [x["slow"] - y["slow"] for _, x, y in runs]
    ro = [x["output"] / y["output"] for _, x, y in runs]
    mean = statistics.mean
    print()
    print("runs: %d" % n)
    print("%s's TTFT p90 <= %s's: %d of %d; output >= : %d of %d; "
          "both: %d of %d" % (a, b, p90_le, n, out_ge, n, both, n))
    lo, hi = bootstrap(dp, mean)
    print("TTFT p90, %s - %s: mean %+.3f s, 95 %% interval %+.3f .. "
          "%+.3f s" % (a, b, mean(dp), lo, hi))
    lo, hi = bootstrap(ds, mean)
    print("requests at or above the floor, %s - %s: mean %+.1f, "
          "95 %% interval %+.1f .. %+.1f" % (a, b, mean(ds), lo, hi))
    lo, hi = bootstrap(ro, mean)
    print("output tok/s, %s / %s: mean %.4f, 95 %% interval %.4f .. "
          "%.4f" % (a, b, mean(ro), lo, hi))
    dw = [x["wait"] - y["wait"] for _, x, y in runs
          if x["wait"] is not None and y["wait"] is not None]
    if dw:
        lo, hi = bootstrap(dw, mean)
        print("simulator's CPU wait, %s - %s: mean %+.1f s, 95 %% interval "
              "%+.1f .. %+.1f s (%d runs); %s's longer in %d" % (
                  a, b, mean(dw), lo, hi, len(dw), a,
                  sum(1 for v in dw if v > 0)))
    print("sign test, TTFT p90: %s lower in %d, higher in %d: p = %.3f" % (
        a, wins, losses, sign_test(wins, losses)))
    return 0


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    sys.exit(main(sys.argv))
