#!/usr/bin/python3
"""Where the requests of one bench/scheduling.sh experiment went.

    picks.py EXPERIMENT_DIR [...]         per stage: requests per pod
    picks.py --bursts EXPERIMENT_DIR [...] per group burst (make bench-bursts)
    picks.py --ttft EXPERIMENT_DIR [...]   which requests make the TTFT p90
    picks.py --firsts EXPERIMENT_DIR [...] how groups' first requests were placed
    picks.py --exposure EXPERIMENT_DIR [...] what the first requests cost
                                           the siblings behind them
    picks.py --ties EXPERIMENT_DIR [...]   ties of their scores, and what a
                                           recent-load tie-break would do
    picks.py --span EXPERIMENT_DIR [...]   what sets output tok/s: the
                                           request that finished last

Reads EXPERIMENT_DIR/loadgen/per_request_lifecycle_metrics.jsonl (one line
per request: stage, group, scheduled, server, input/cached tokens, TTFT;
times in simulated seconds).

Per stage: the requests each pod got, the busiest pod's share, the groups
whose first request of the run fell in the stage and where they went (with
prefix caching a group then stays where its prefix is), and the share of
prompt tokens served from the pods' caches.

--bursts (llmd-loadgen --group-bursts: all siblings of one group sent at
one instant): per burst, the busiest pod's share of its requests against
1.5 x the fair share (1.5 / pods). For every burst where one pod got more,
both sides of the trade, from this run's data:

  saved  = sum over that pod's requests of the burst of
           cached prompt tokens x prefill seconds per token
  queued = sum over the same requests of (TTFT - the lowest TTFT among
           them): the time they waited behind each other on that pod

Prefill seconds per token are measured in the same run: the 10th
percentile of TTFT / input tokens over the requests that were the first of
their burst on their pod and hit no cache (cached tokens 0) - the low end,
where a request's TTFT is its prefill and little queueing. A burst "pays" when
saved > queued.

--ttft: the first request of each group computes its whole prompt, so its
TTFT has a floor (the fastest first request's); once
more than 10 % of all requests reach it the run's TTFT p90 sits on it, else
well below. Per experiment: the p90, the floor, how many requests reach it
(first requests, and siblings per stage), how many of those siblings were
sent to a pod computing none, one, or two or more first requests (sent
before them, first token after) - of those computing none, how many still
had in front of them (sent before, first token after) a sibling sent
during a first request's prefill: the backlog a first request leaves,
drained after its first token - and how many first requests were sent to
a pod still computing another (sent before that one's first token); last,
how many siblings (slow or not) were sent to a pod computing a first
request, which the first requests' placement decides.

--firsts: where each group's first request (nothing cached) went against
the uncached prompt tokens in prefill per pod when it was sent (requests
sent before it, first token after; input less cached tokens, as the pods
reported them): how many went to a pod with the fewest, of those how many
when two or more pods tied there (all of them idle, as a rule: the
picker's draw decides), how many to a pod still computing another first
request (of them while some pod computed none); and how many siblings were
served off their group's first pod (of them with nothing cached).

--exposure: per stage, the groups' first requests that found nothing
cached, their mean TTFT, and the siblings exposed as --ties counts them
(requests of other groups, not a group's first, sent to a first request's
pod while it computed, from its send to its first token: they wait
behind it; its own group's follow it wherever it goes), without the
access log. Next to it the same count for a pod drawn blind, the
siblings sent to any pod in that window divided by the pods: what a
placement that cannot know the next arrivals exposes on average, and the
least possible: the pod that got the fewest siblings in the window, which
takes knowing the arrivals to come (first order: a different pick would
change the window and the picks after it). Last, how many of the exposed
reached the floor (--ttft). Summed over the stage's first requests (a
sibling inside two windows counts twice). A directory without readable
per-request data: a message naming it, exit status 2 (every mode).

--ties (needs the run's access.log, ACCESS_LOG=1): per stage, for the
groups' first requests (nothing cached), whether the picker saw a tie: the
best score equal to the second as logged ($llmd_scores, 3 decimals), or
within 0.03 / 0.1 of it. Then the siblings each first request exposed: the
requests of other groups sent to its pod while it computed (from its send
to its first token), which would queue behind it on that pod and would on
any other pod (siblings stay home). Exposed siblings summed over the
stage's first requests: as placed; expected for a pick at random among all
pods; for a tie-break among tied pods (equal as logged) by the fewest
requests sent to a pod in the last scrape interval (0.05 s x the run's time
scale, simulated) or in the last 3 s (random among those still equal); for
that 3 s key among the pods within 0.1 of the best score, and among all
pods; the least possible (the pod with the fewest, each time); and for a
pick of the pod with the fewest groups homed (groups whose first request
went there before: about where the coming siblings will go). Last, first
requests stacked on a pod still computing another: how many, of them
sent more than one scrape interval after that pod's latest first request
(after a scrape had reset the in-flight counts), of them while some pod
computed none, and the median of the picked pod's score less the best
score among those. The access log's requests are matched to the loadgen's
per pod, in the order they were sent.

--span: output tok/s (the load generator's) is every output token over the
span from the first request's scheduled send to the last request's end, so
with the same requests in every run it is decided by when the last request
finished. Per experiment: the output tokens, the span and output tok/s;
the request that ended last: its send after the first, its TTFT, its
decode time (end less first token) and time per output token, its pod and
that pod's mean decode batch over its decode (requests on the pod between
their first token and their end, averaged over the time); and each pod's
last end (the pod that set the span, then the others). Python standard
library only.
"""
import json
import os
import statistics
import sys


def load(d):
    path = os.path.join(d, "loadgen", "per_request_lifecycle_metrics.jsonl")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def pods_of(reqs):
    return sorted({r["server"] for r in reqs if r.get("server")})


def per_stage(d):
    reqs = [r for r in load(d) if r.get("ok")]
    pods = pods_of(reqs)
    print("## %s: requests per pod and stage (%s)" % (
        os.path.basename(os.path.normpath(d)), ", ".join(pods)))
    print()
    print("| stage | requests | per pod | busiest share | new groups "
          "| new groups per pod | cached prompt tokens |")
    print("|---|---|---|---|---|---|---|")
    first = {}
    for r in sorted(reqs, key=lambda r: r["scheduled"]):
        if r["group"] >= 0 and r["group"] not in first:
            first[r["group"]] = r
    stages = sorted({r["stage"] for r in reqs})
    for s in stages:
        rs = [r for r in reqs if r["stage"] == s]
        n = [sum(1 for r in rs if r["server"] == p) for p in pods]
        ng = [g for g, r in first.items() if r["stage"] == s]
        gn = [sum(1 for g in ng if first[g]["server"] == p) for p in pods]
        inp = sum(r["input_tokens"] for r in rs)
        cached = sum(r.get("cached_tokens", 0) for r in rs)
        print("| %d | %d | %s | %.2f | %d | %s | %.0f %% |" % (
            s, len(rs), " / ".join(map(str, n)),
            max(n) / len(rs) if rs else 0, len(ng),
            " / ".join(map(str, gn)), 100.0 * cached / inp if inp else 0))
    n = [sum(1 for r in reqs if r["server"] == p) for p in pods]
    gn = [sum(1 for r in first.values() if r["server"] == p) for p in pods]
    print("| all | %d | %s | %.2f | %d | %s | |" % (
        len(reqs), " / ".join(map(str, n)), max(n) / len(reqs),
        len(first), " / ".join(map(str, gn))))
    print()


def bursts(d):
    reqs = [r for r in load(d) if r.get("ok")]
    pods = pods_of(reqs)
    npods = max(len(pods), 1)
    by = {}
    for r in reqs:
        by.setdefault((round(r["scheduled"], 6), r["group"]), []).append(r)
    firsts = []
    for rs in by.values():
        on = {}
        for r in rs:
            on.setdefault(r["server"], []).append(r)
        for p, prs in on.items():
            f = min(prs, key=lambda r: r["time_to_first_token"])
            if f.get("cached_tokens", 0) == 0 and f["input_tokens"] > 0:
                firsts.append(f["time_to_first_token"] / f["input_tokens"])
    # the low end: an uncached request that did not wait is its prefill
    # alone; the median would count the queueing in (see the docstring)
    firsts.sort()
    tok_s = firsts[len(firsts) // 10] if firsts else float("nan")
    limit = 1.5 / npods
    over = pays = 0
    shares = []
    rows = []
    for key in sorted(by):
        rs = by[key]
        on = {}
        for r in rs:
            on.setdefault(r["server"], []).append(r)
        p, prs = max(on.items(), key=lambda kv: len(kv[1]))
        share = len(prs) / len(rs)
        shares.append(share)
        if share <= limit + 1e-9:
            continue
        over += 1
        low = min(r["time_to_first_token"] for r in prs)
        saved = sum(r.get("cached_tokens", 0) for r in prs) * tok_s
        queued = sum(r["time_to_first_token"] - low for r in prs)
        pays += saved > queued
        rows.append((key[0], key[1], len(rs), p, len(prs), share, saved,
                     queued))
    name = os.path.basename(os.path.normpath(d))
    print("## %s: %d bursts, %d pods" % (name, len(by), npods))
    print()
    print("prefill seconds per token (10th percentile of TTFT / input "
          "tokens over %d uncached first requests; median %.6f): %.6f" % (
              len(firsts), statistics.median(firsts) if firsts else 0,
              tok_s))
    print("busiest pod's share per burst: mean %.2f, median %.2f, max %.2f "
          "(fair %.2f, limit 1.5 x fair = %.3f)" % (
              statistics.mean(shares), statistics.median(shares),
              max(shares), 1 / npods, limit))
    print("bursts over the limit: %d of %d; of those, the cache hit saved "
          "more than the queueing cost in %d" % (over, len(by), pays))
    print("over the limit, in all: saved %.1f s, queued %.1f s" % (
        sum(r[6] for r in rows), sum(r[7] for r in rows)))
    if rows:
        print()
        print("| scheduled (s) | group | burst | pod | its requests | share "
              "| saved (s) | queued (s) | pays |")
        print("|---|---|---|---|---|---|---|---|---|")
        for t, g, n, p, k, sh, sv, q in rows:
            print("| %.2f | %d | %d | %s | %d | %.2f | %.3f | %.3f | %s |" % (
                t, g, n, p, k, sh, sv, q, "yes" if sv > q else "no"))
    print()


def nearest_rank(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] if xs else float("nan")


def group_firsts(reqs):
    """Each group's first request (reqs in the order sent), and those of
    them that found nothing cached (they compute their whole prompt)."""
    firsts = {}
    for r in reqs:
        if r["group"] >= 0 and r["group"] not in firsts:
            firsts[r["group"]] = r
    cold = [r for r in reqs
            if firsts.get(r["group"]) is r and r.get("cached_tokens", 0) == 0]
    return firsts, cold


def ttft_counts(d):
    """Which requests make the TTFT p90: the first request of every group
    computes its whole prompt, so its TTFT has a floor (the fastest first
    request's) that the p90 reaches as soon as more than 10 % of all
    requests are that slow; the rest of them are siblings that waited. Also: first requests sent to a pod while it still computed
    another first request (sent before that one's first token)."""
    reqs = sorted((r for r in load(d) if r.get("ok")),
                  key=lambda r: r["scheduled"])
    firsts, cold = group_firsts(reqs)
    floor = min((r["time_to_first_token"] for r in cold),
                default=float("nan"))
    slow = [r for r in reqs if r["time_to_first_token"] >= floor]
    slow_cold = sum(1 for r in slow if firsts.get(r["group"]) is r)
    stages = sorted({r["stage"] for r in reqs})
    per = [sum(1 for r in slow
               if r["stage"] == s and firsts.get(r["group"]) is not r)
           for s in stages]
    stacked = 0
    for i, r in enumerate(cold):
        stacked += any(c["server"] == r["server"]
                       and c["scheduled"] + c["time_to_first_token"]
                       > r["scheduled"] for c in cold[:i])
    def computing(r):
        # the first requests r's pod was computing when r was sent
        return sum(1 for c in cold if c["server"] == r["server"]
                   and c["scheduled"] < r["scheduled"]
                   < c["scheduled"] + c["time_to_first_token"])

    def waiting(x, r):
        # x was sent to r's pod before r and had no first token yet
        return (x["server"] == r["server"]
                and x["scheduled"] < r["scheduled"]
                < x["scheduled"] + x["time_to_first_token"])

    sibs = [r for r in reqs if firsts.get(r["group"]) is not r]
    # siblings sent to a pod computing a first request (slow or not): how
    # many requests the first requests' placement put behind them
    blocked = [r for r in sibs if computing(r)]
    # slow siblings by the first requests their pod was computing when
    # they were sent: none, one, two or more; of those behind none, how
    # many still had in front of them a sibling sent during a first
    # request's prefill (the backlog it left)
    ahead = [0, 0, 0]
    backlog = 0
    for r in slow:
        if firsts.get(r["group"]) is r:
            continue
        n = computing(r)
        ahead[min(n, 2)] += 1
        if n == 0 and any(waiting(x, r) for x in blocked):
            backlog += 1
    return {"p90": nearest_rank([r["time_to_first_token"] for r in reqs],
                                0.9),
            "floor": floor, "tenth": len(reqs) // 10, "slow": len(slow),
            "slow_cold": slow_cold, "per": per, "ahead": ahead,
            "backlog": backlog, "stacked": stacked, "cold": len(cold),
            "blocked": len(blocked)}


def ttft_tail(d):
    """--ttft: one row of ttft_counts."""
    c = ttft_counts(d)
    print("| %s | %.3f | %.3f | %d | %d | %d | %s | %d (%d) / %d / %d | "
          "%d of %d | %d |" % (
              os.path.basename(os.path.normpath(d)), c["p90"], c["floor"],
              c["tenth"], c["slow"], c["slow_cold"],
              " / ".join(map(str, c["per"])), c["ahead"][0], c["backlog"],
              c["ahead"][1], c["ahead"][2], c["stacked"], c["cold"],
              c["blocked"]))


def window_siblings(reqs, i, firsts):
    """The siblings that queue behind reqs[i] if sent to its pod: requests
    of other groups (its own follow it wherever it goes), not a group's
    first, sent to any pod after it and before its first token. reqs in
    the order sent."""
    r = reqs[i]
    end = r["sent"] + r["time_to_first_token"]
    out = []
    for x in reqs[i + 1:]:
        if x["sent"] >= end:
            break
        if firsts.get(x["group"]) is not x and x["group"] != r["group"]:
            out.append(x)
    return out


def per_pod(xs, pods):
    """How many of the requests xs each pod got."""
    n = dict.fromkeys(pods, 0)
    for x in xs:
        n[x["server"]] += 1
    return n


def exposure(d):
    """--exposure: per stage, what the groups' first requests cost the
    siblings sent to their pod while they computed."""
    reqs = sorted((r for r in load(d) if r.get("ok")),
                  key=lambda r: r["sent"])
    firsts, cold = group_firsts(reqs)
    name = os.path.basename(os.path.normpath(d))
    if not cold:
        print("%s: no group's first request found nothing cached" % d,
              file=sys.stderr)
        return 1
    pods = pods_of(reqs)
    floor = min(r["time_to_first_token"] for r in cold)
    cold_ids = {id(r) for r in cold}
    rows = {}
    for i, r in enumerate(reqs):
        if id(r) not in cold_ids:
            continue
        during = window_siblings(reqs, i, firsts)
        expo = per_pod(during, pods)
        row = rows.setdefault(r["stage"], [0, 0.0, 0, 0.0, 0, 0])
        row[0] += 1
        row[1] += r["time_to_first_token"]
        row[2] += expo[r["server"]]
        row[3] += statistics.mean(expo.values())
        row[4] += min(expo.values())
        row[5] += sum(1 for x in during if x["server"] == r["server"]
                      and x["time_to_first_token"] >= floor)
    for s in sorted(rows):
        n, ttft, placed, blind, least, slow = rows[s]
        print("| %s | %s | %d | %.3f | %d | %.1f | %d | %d |" % (
            name, s, n, ttft / n, placed, blind, least, slow))
    return 0


def first_placement(d):
    """How the first request of each group was placed (--firsts)."""
    reqs = sorted((r for r in load(d) if r.get("ok")),
                  key=lambda r: r["scheduled"])
    pods = pods_of(reqs)
    firsts, cold = group_firsts(reqs)
    fewest = tied = stacked = stacked_idle = 0
    for r in cold:
        tok = dict.fromkeys(pods, 0)
        fr = dict.fromkeys(pods, 0)
        for x in reqs:
            if x["scheduled"] >= r["scheduled"]:
                break
            if x["scheduled"] + x["time_to_first_token"] > r["scheduled"]:
                tok[x["server"]] += (x["input_tokens"]
                                     - x.get("cached_tokens", 0))
                if firsts.get(x["group"]) is x:
                    fr[x["server"]] += 1
        low = min(tok.values())
        if tok[r["server"]] == low:
            fewest += 1
            tied += sum(1 for p in pods if tok[p] == low) >= 2
        if fr[r["server"]]:
            stacked += 1
            stacked_idle += min(fr.values()) == 0
    off = [r for r in reqs if r["group"] >= 0 and firsts[r["group"]] is not r
           and r["server"] != firsts[r["group"]]["server"]]
    print("| %s | %d | %d (%d) | %d (%d) | %d (%d) |" % (
        os.path.basename(os.path.normpath(d)), len(cold), fewest, tied,
        stacked, stacked_idle, len(off),
        sum(1 for r in off if r.get("cached_tokens", 0) == 0)))


def access_scores(d, reqs):
    """Each request's logged scores ({pod port: score}), matched to reqs
    (in the order sent) per pod in the order the access log's requests
    started (its last len(reqs) picks: the warm-up comes first)."""
    log = []
    with open(os.path.join(d, "access.log")) as f:
        for line in f:
            fl = line.split(" ")
            if len(fl) < 6 or fl[2] == "-":
                continue
            a, b = line.index('"'), line.rindex('"')
            sc = {}
            for kv in line[a + 1:b].split():
                k, v = kv.rsplit("=", 1)
                sc[k.rsplit(":", 1)[-1]] = float(v)
            log.append((float(fl[0]) - float(fl[1]),
                        fl[2].rsplit(":", 1)[-1], sc))
    log.sort(key=lambda x: x[0])
    per = {}
    for x in log[-len(reqs):]:
        per.setdefault(x[1], []).append(x[2])
    out = []
    for r in reqs:
        q = per.get(r["server"], [])
        out.append(q.pop(0) if q else {})
    return out


def time_scale(d):
    try:
        with open(os.path.join(d, "..", "README.md")) as f:
            for line in f:
                if "Time scale " in line:
                    return float(line.split("Time scale ")[1].split(":")[0])
    except OSError:
        pass
    return 3.0


def ties(d):
    """--ties: see the docstring."""
    if not os.path.exists(os.path.join(d, "access.log")):
        print("%s: no access.log (run the benchmark with ACCESS_LOG=1)" % d,
              file=sys.stderr)
        return 1
    reqs = sorted((r for r in load(d) if r.get("ok")),
                  key=lambda r: r["sent"])
    pods = pods_of(reqs)
    scores = access_scores(d, reqs)
    scrape = 0.05 * time_scale(d)
    firsts, cold = group_firsts(reqs)
    name = os.path.basename(os.path.normpath(d))
    rows = {}
    for i, r in enumerate(reqs):
        if firsts.get(r["group"]) is not r or r.get("cached_tokens", 0):
            continue
        t = r["sent"]
        sc = {p: scores[i].get(p, float("-inf")) for p in pods}
        top = max(sc.values())
        ranked = sorted(sc.values(), reverse=True)
        margin = ranked[0] - ranked[1] if len(ranked) > 1 else 1.0
        expo = per_pod(window_siblings(reqs, i, firsts), pods)

        def recent(w):
            return per_pod([x for x in reqs[:i] if x["sent"] >= t - w], pods)

        def by(key, cand):
            lo = min(key[p] for p in cand)
            return statistics.mean(expo[p] for p in cand if key[p] == lo)

        tied = [p for p in pods if top - sc[p] < 0.0005]
        near = [p for p in pods if top - sc[p] < 0.1 + 0.0005]
        n_s, n_3 = recent(scrape), recent(3.0)
        comp = {p: [c for c in cold if c["server"] == p
                    and c["sent"] < t < c["sent"] + c["time_to_first_token"]]
                for p in pods}
        homed = dict.fromkeys(pods, 0)
        for f in firsts.values():
            if f["sent"] < t:
                homed[f["server"]] += 1
        own = expo[r["server"]]
        # per stage: counts, then exposed siblings in the columns' order
        row = rows.setdefault(r["stage"], {"n": [0, 0, 0, 0],
                                           "expo": [0.0] * 8, "stacked": []})
        for k, v in enumerate((1, len(tied) > 1, margin < 0.03,
                               margin < 0.1)):
            row["n"][k] += v
        for k, v in enumerate((own, statistics.mean(expo.values()),
                               by(n_s, tied) if len(tied) > 1 else own,
                               by(n_3, tied) if len(tied) > 1 else own,
                               by(n_3, near), by(n_3, pods),
                               min(expo.values()), by(homed, pods))):
            row["expo"][k] += v
        if comp[r["server"]]:
            idle = [p for p in pods if not comp[p]]
            row["stacked"].append((
                t - max(c["sent"] for c in comp[r["server"]]) > scrape,
                sc[r["server"]] - max(sc[p] for p in idle) if idle else None))
    for s in sorted(rows):
        n, e, st = rows[s]["n"], rows[s]["expo"], rows[s]["stacked"]
        idle = [m for _, m in st if m is not None]
        print("| %s | %d | %d | %d (%d / %d) | %d / %.1f / %.1f / %.1f / "
              "%.1f / %.1f / %d | %.1f | %d (%d, %d: %s) |" % (
                  (name, s) + tuple(n) + tuple(e) + (
                      len(st), sum(a for a, _ in st), len(idle),
                      "%.3f" % statistics.median(idle) if idle else "-")))


# flag: (the table's header lines or None, the function run per experiment)
def span(d):
    """What sets output tok/s (--span): the request that ended last."""
    reqs = [r for r in load(d) if r.get("ok")]
    if not reqs:
        return 1
    first = min(r["scheduled"] for r in reqs)
    end = {id(r): r["sent"] + r["request_latency"] for r in reqs}
    ft = {id(r): r["sent"] + r["time_to_first_token"] for r in reqs}
    last = max(reqs, key=lambda r: end[id(r)])
    a, b = ft[id(last)], end[id(last)]
    # requests decoding on its pod, time-averaged over its decode
    busy = sum(max(0.0, min(b, end[id(r)]) - max(a, ft[id(r)]))
               for r in reqs if r["server"] == last["server"])
    pods = {}
    for r in reqs:
        pods[r["server"]] = max(pods.get(r["server"], first), end[id(r)])
    out = sum(r.get("output_tokens", 0) for r in reqs)
    total = end[id(last)] - first
    print("| %s | %d | %.2f | %.1f | %.2f | %.3f | %.2f | %.4f | %s | %.1f "
          "| %s |" % (
              os.path.basename(os.path.normpath(d)), out, total,
              out / total if total > 0 else float("nan"),
              last["sent"] - first, last["time_to_first_token"], b - a,
              last.get("time_per_output_token") or float("nan"),
              last["server"], busy / (b - a) if b > a else float("nan"),
              " / ".join("%s %.2f" % (p, t - first) for p, t in
                         sorted(pods.items(), key=lambda x: -x[1]))))
    return 0


MODES = {
    "--bursts": (None, bursts),
    "--ttft": ((
        "| experiment | TTFT p90 (s) | floor: the fastest first "
        "request's TTFT (s) | 10 % of requests | requests at "
        "or above the floor | of them first requests | of them "
        "siblings per stage | of them siblings behind 0 (of those "
        "behind a first request's backlog) / 1 / 2+ first requests "
        "on their pod | first requests sent to a pod still computing "
        "another | siblings sent to a pod computing a first request "
        "|",
        "|---|---:|---:|---:|---:|---:|---|---|---:|---:|"),
        ttft_tail),
    "--exposure": ((
        "| experiment | stage | first requests | their mean TTFT (s) | "
        "siblings exposed: sent to its pod while it computed | the "
        "same for a pod drawn blind (the window's siblings / pods) | "
        "least possible (the pod that got the fewest in the window) | "
        "of the exposed, at or above the floor |",
        "|---|---:|---:|---:|---:|---:|---:|---:|"),
        exposure),
    "--firsts": ((
        "| experiment | first requests | to a pod with the fewest "
        "uncached tokens in prefill (of them 2+ pods tied there) | "
        "to a pod computing another first request (of them while "
        "some pod computed none) | siblings served off their group's "
        "first pod (of them with nothing cached) |",
        "|---|---:|---:|---:|---:|"),
        first_placement),
    "--ties": ((
        "| experiment | stage | first requests | best score tied as "
        "logged (within 0.03 / 0.1 of the second) | siblings exposed: "
        "as placed / at random / tie-break by requests sent in the "
        "last scrape interval / in the last 3 s / that 3 s key among "
        "pods within 0.1 / among all pods / least possible | "
        "siblings exposed by the pod with the fewest groups homed "
        "(first requests sent there before) | first "
        "requests stacked (sent after a scrape, while a pod computed "
        "none: median score margin) |",
        "|---|---:|---:|---:|---|---:|---|"),
        ties),
    "--span": ((
        "| experiment | output tokens | span (s) | output tok/s | last "
        "request: sent at (s) | its TTFT (s) | its decode (s) | its time "
        "per output token (s) | its pod | that pod's mean decode batch "
        "over its decode | each pod's last end (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|---:|---|"),
        span),
}


def main(argv):
    if len(argv) > 1 and argv[1] in MODES:
        header, each = MODES[argv[1]]
        for line in header or ():
            print(line)
        # the worst exit status of the experiments (--ties: 1 without a log)
        return max([readable(each, d) for d in argv[2:]], default=0)
    return max([readable(per_stage, d) for d in argv[1:]], default=0)


def readable(each, d):
    """each(d)'s exit status, or 2 with a message naming what could not be
    read (no per-request data, a line that is not JSON). Other errors are
    the script's own and keep their traceback."""
    try:
        return each(d) or 0
    except (OSError, json.JSONDecodeError) as e:
        print("picks.py: %s: %s" % (d, e), file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.dont_write_bytecode = True
    sys.exit(main(sys.argv))
