"""The figures of llm-d's published report, computed the way it computes them.

llm-d's reports are tables made by llm-d's benchmark aggregator from the
files inference-perf v0.2 writes (stage_N_lifecycle_metrics.json and
per_request_lifecycle_metrics.json).  llmd-loadgen's inference-perf-v0.2
mode writes inference-perf's figures in report.json (stages[].inference_perf,
summary.inference_perf); this module does the aggregator's part:

per stage (a row of a "QPS = X" table):
  Output toks/s   inference-perf's successes.throughput.output_tokens_per_sec:
                  output tokens of the successes (counted on their text, BOS
                  included) / (last end - first send) of the stage, the ends
                  of failures included
  Requests/s      (successes + failures) / send window (last send - first
                  send), so it reads as the offered rate
  Success Rate    successes / (successes + failures)
  TTFT p90, mean  of the successes: send to the first line of the stream
  ITL mean, p90   of every gap between consecutive lines of the streams,
                  the blank line after each event included
  ITL p50         inference-perf v0.2 names its median "median", the
                  aggregator reads "p50", finds none and falls back to the
                  median over the per-request file, which holds every stage
                  of the run: the same value in every row, the run's median
                  line gap (0: half the gaps are 0)
  stages with the same rate are one row: counts and send windows added,
  the other figures averaged

summary row ("Summary across QPS", the warm-up stage 0 left out as the
report's --skip-stage0):
  Output toks/s   the mean of the rows' Output toks/s
  Requests/s      all requests / the sum of the send windows
  Success Rate    all successes / all requests
  TTFT, ITL       the rows' values averaged with their successes as weights
                  (a "p90" of the summary is such a mean, not a percentile)
Python standard library only.
"""
import math

SEED_ORDER_KEY = ("ttft_p90", "ttft_mean")


def _get(d, *path):
    for k in path:
        if not isinstance(d, dict):
            return None
        d = d.get(k)
    return d


def _num(x):
    return float("nan") if x is None else float(x)


def stage_rows(rep):
    """One row per stage of an llmd-loadgen report.json in the mode."""
    run_itl_p50 = _num(_get(rep, "summary", "inference_perf", "successes",
                            "latency", "inter_token_latency", "median"))
    rows = []
    for i, st in enumerate(rep.get("stages", [])):
        ip = st.get("inference_perf")
        if ip is None:
            return []
        su, fa, ls = ip["successes"], ip["failures"], ip["load_summary"]
        lat = su["latency"]
        rows.append({
            "stage": i,
            "qps": float(st.get("rate", ls.get("requested_rate") or 0)),
            "successes": su["count"],
            "failures": fa["count"],
            "send_duration": _num(ls.get("send_duration")),
            "out_tok_s": _num(_get(su, "throughput",
                                   "output_tokens_per_sec")),
            "ttft_mean": _num(_get(lat, "time_to_first_token", "mean")),
            "ttft_p90": _num(_get(lat, "time_to_first_token", "p90")),
            "itl_mean": _num(_get(lat, "inter_token_latency", "mean")),
            "itl_p50": run_itl_p50,
            "itl_p90": _num(_get(lat, "inter_token_latency", "p90")),
            # not in the seed's table: the real interval between tokens
            "itl_token_mean": _num(_get(st, "metrics", "latency",
                                        "inter_token_latency", "mean")),
        })
    return rows


def _mean(values):
    v = [x for x in values if not math.isnan(x)]
    return sum(v) / len(v) if v else float("nan")


def per_qps(rows, skip_stage0=True):
    """The aggregator's rows: one per requested rate."""
    groups = {}
    for r in rows:
        if skip_stage0 and r["stage"] == 0:
            continue
        groups.setdefault(r["qps"], []).append(r)
    out = []
    for qps in sorted(groups):
        g = groups[qps]
        s = sum(r["successes"] for r in g)
        f = sum(r["failures"] for r in g)
        dur = sum(r["send_duration"] for r in g)
        row = {"qps": qps, "successes": s, "failures": f,
               "send_duration": dur,
               "requests_per_s": (s + f) / dur if dur > 0 else float("nan"),
               "success_rate": s / (s + f) if s + f else float("nan")}
        for k in ("out_tok_s", "ttft_mean", "ttft_p90", "itl_mean",
                  "itl_p50", "itl_p90", "itl_token_mean"):
            row[k] = _mean([r[k] for r in g])
        out.append(row)
    return out


def summary(groups):
    """The "Summary across QPS" row from the per-QPS rows."""
    if not groups:
        return None
    s = sum(g["successes"] for g in groups)
    f = sum(g["failures"] for g in groups)
    dur = sum(g["send_duration"] for g in groups)
    row = {"successes": s, "failures": f, "send_duration": dur,
           "out_tok_s": _mean([g["out_tok_s"] for g in groups]),
           "requests_per_s": (s + f) / dur if dur > 0 else float("nan"),
           "success_rate": s / (s + f) if s + f else float("nan")}
    for k in ("ttft_mean", "ttft_p90", "itl_mean", "itl_p50", "itl_p90",
              "itl_token_mean"):
        num = sum(g[k] * g["successes"] for g in groups
                  if not math.isnan(g[k]))
        row[k] = num / s if s else float("nan")
    return row


def sort_key(row):
    """The aggregator's order: TTFT p90, then TTFT mean."""
    return tuple(float("inf") if math.isnan(row[k]) else row[k]
                 for k in SEED_ORDER_KEY)
