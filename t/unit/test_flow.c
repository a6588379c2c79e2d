/*
 * Flow control core: the saturation detectors (llm-d's utilization- and
 * concurrency-detector formulas and defaults), the EndpointPickerConfig's
 * featureGates / flowControl / saturationDetector, and the queue (bands by
 * priority, fairness between flows, FCFS, bounds).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/llmd_config.h"
#include "core/llmd_saturation.h"
#include "core/llmd_flowq.h"

#define HEAD \
    "apiVersion: inference.networking.x-k8s.io/v1alpha1\n" \
    "kind: EndpointPickerConfig\n" \
    "plugins:\n" \
    "- type: queue-scorer\n"

#define PROFILES \
    "schedulingProfiles:\n" \
    "- name: default\n" \
    "  plugins:\n" \
    "  - pluginRef: queue-scorer\n"


static llmd_config_t *
load(const char *yaml, char *err, size_t errlen)
{
    err[0] = '\0';
    return llmd_config_load_string(yaml, strlen(yaml), "t.yaml", err,
                                   errlen);
}


static void
expect_error(const char *yaml, const char *what)
{
    char            err[LLMD_ERRLEN];
    llmd_config_t  *cf;

    cf = load(yaml, err, sizeof(err));
    if (cf != NULL) {
        llmd_config_free(cf);
        fail_msg("loaded although it should fail with \"%s\"", what);
    }

    if (strstr(err, what) == NULL) {
        fail_msg("error \"%s\" does not contain \"%s\"", err, what);
    }
}


static void
test_utilization_pool(void **state)
{
    llmd_sat_params_t    p;
    llmd_sat_endpoint_t  eps[3];
    size_t               stale;

    llmd_sat_defaults(&p, LLMD_SAT_UTILIZATION);
    assert_int_equal(p.queue_depth_threshold, 5);
    assert_true(p.kv_cache_util_threshold == 0.8);
    assert_int_equal(p.staleness_ms, 200);
    assert_true(p.headroom == 0.0);

    memset(eps, 0, sizeof(eps));

    /* no candidates: saturated */
    assert_true(llmd_sat_pool(&p, eps, 0, NULL) == 1.0);

    /* roofline: max(queue 5/5, kv 0.4/0.8) = 1.0, max(0, 0.4) = 0.5 */
    eps[0].have_metrics = 1;
    eps[0].waiting = 5;
    eps[0].kv_usage = 0.4;
    eps[1].have_metrics = 1;
    eps[1].kv_usage = 0.4;
    assert_true(llmd_sat_pool(&p, eps, 2, &stale) == 0.75);
    assert_int_equal(stale, 0);

    /* KV alone saturates */
    eps[1].kv_usage = 0.8;
    assert_true(llmd_sat_pool(&p, eps, 2, NULL) == 1.0);

    /* stale or missing metrics count 1.0 (fail-closed) */
    eps[1].kv_usage = 0.0;
    eps[0].waiting = 0;
    eps[0].kv_usage = 0;
    eps[0].age_ms = 201;
    eps[2].have_metrics = 0;
    assert_true(llmd_sat_pool(&p, eps, 3, &stale) == 2.0 / 3.0);
    assert_int_equal(stale, 2);
    eps[0].age_ms = 200;
    assert_true(llmd_sat_pool(&p, eps, 2, &stale) == 0.0);
}


static void
test_utilization_filter(void **state)
{
    llmd_sat_params_t    p;
    llmd_sat_endpoint_t  ep;

    llmd_sat_defaults(&p, LLMD_SAT_UTILIZATION);
    memset(&ep, 0, sizeof(ep));
    ep.have_metrics = 1;
    ep.waiting = 4;
    assert_true(llmd_sat_endpoint_ok(&p, &ep));
    ep.waiting = 5;
    assert_false(llmd_sat_endpoint_ok(&p, &ep));

    /* headroom 0.2: queue limit 6, KV limit 0.96 */
    p.headroom = 0.2;
    assert_true(llmd_sat_endpoint_ok(&p, &ep));
    ep.kv_usage = 0.95;
    assert_true(llmd_sat_endpoint_ok(&p, &ep));
    ep.kv_usage = 0.96;
    assert_false(llmd_sat_endpoint_ok(&p, &ep));

    ep.kv_usage = 0;
    ep.age_ms = 1000;
    assert_false(llmd_sat_endpoint_ok(&p, &ep));
}


static void
test_concurrency(void **state)
{
    llmd_sat_params_t    p;
    llmd_sat_endpoint_t  eps[2];

    llmd_sat_defaults(&p, LLMD_SAT_CONCURRENCY);
    assert_int_equal(p.max_concurrency, 100);
    assert_int_equal(p.max_token_concurrency, 1000000);

    memset(eps, 0, sizeof(eps));
    p.max_concurrency = 4;
    eps[0].inflight = 4;
    eps[1].inflight = 2;
    /* aggregate 6 / (2 * 4); metrics do not matter */
    assert_true(llmd_sat_pool(&p, eps, 2, NULL) == 0.75);
    assert_false(llmd_sat_endpoint_ok(&p, &eps[0]));
    assert_true(llmd_sat_endpoint_ok(&p, &eps[1]));
}


static void
test_config_defaults(void **state)
{
    char            err[LLMD_ERRLEN];
    llmd_config_t  *cf;

    cf = load(HEAD PROFILES, err, sizeof(err));
    assert_non_null(cf);
    assert_false(cf->flow.enabled);
    assert_int_equal(cf->saturation.type, LLMD_SAT_UTILIZATION);
    assert_int_equal(cf->saturation.queue_depth_threshold, 5);
    assert_null(cf->detector_name);
    assert_int_equal(cf->flow.ttl_ms, 60000);
    assert_int_equal(cf->flow.no_endpoint_ttl_ms, 60000);
    assert_int_equal(cf->flow.max_requests, 0);
    llmd_config_free(cf);
}


static void
test_config_flow(void **state)
{
    char                     err[LLMD_ERRLEN];
    llmd_config_t           *cf;
    const llmd_flow_band_t  *b;

    cf = load("apiVersion: llm-d.ai/v1alpha1\n"
              "kind: EndpointPickerConfig\n"
              "featureGates:\n"
              "- flowControl\n"
              "plugins:\n"
              "- type: queue-scorer\n"
              "- type: utilization-detector\n"
              "  name: sat\n"
              "  parameters:\n"
              "    queueDepthThreshold: 3\n"
              "    kvCacheUtilThreshold: 0.5\n"
              "    metricsStalenessThreshold: 1s\n"
              "    headroom: 0.5\n"
              "- type: round-robin-fairness-policy\n"
              "- type: fcfs-ordering-policy\n"
              PROFILES
              "flowControl:\n"
              "  maxRequests: 1k\n"
              "  maxBytes: 1Mi\n"
              "  defaultRequestTTL: 30s\n"
              "  saturationDetector:\n"
              "    pluginRef: sat\n"
              "  defaultNegativePriorityBand:\n"
              "    maxRequests: 2\n"
              "  priorityBands:\n"
              "  - priority: 10\n"
              "    maxBytes: \"500\"\n"
              "    fairnessPolicyRef: round-robin-fairness-policy\n"
              "    orderingPolicyRef: fcfs-ordering-policy\n",
              err, sizeof(err));
    assert_non_null(cf);
    assert_true(cf->flow.enabled);
    assert_string_equal(cf->detector_name, "sat");
    assert_int_equal(cf->saturation.queue_depth_threshold, 3);
    assert_true(cf->saturation.kv_cache_util_threshold == 0.5);
    assert_int_equal(cf->saturation.staleness_ms, 1000);
    assert_true(cf->saturation.headroom == 0.5);
    assert_int_equal(cf->flow.max_requests, 1000);
    assert_int_equal(cf->flow.max_bytes, 1048576);
    assert_int_equal(cf->flow.ttl_ms, 30000);
    assert_int_equal(cf->flow.no_endpoint_ttl_ms, 30000);

    b = llmd_flow_band_for(&cf->flow, 10);
    assert_int_equal(b->max_bytes, 500);
    assert_int_equal(b->fairness, LLMD_FAIR_ROUND_ROBIN);
    b = llmd_flow_band_for(&cf->flow, -1);
    assert_int_equal(b->max_requests, 2);
    b = llmd_flow_band_for(&cf->flow, 0);
    assert_int_equal(b->max_requests, 0);
    assert_int_equal(b->fairness, LLMD_FAIR_GLOBAL_STRICT);
    llmd_config_free(cf);

    /* the gate off: flowControl's settings ignored with a warning, the
       deprecated top-level saturationDetector still chooses the detector */
    cf = load(HEAD
              "- type: concurrency-detector\n"
              "  parameters:\n"
              "    maxConcurrency: 7\n"
              PROFILES
              "featureGates: [\"flowControl=false\"]\n"
              "saturationDetector:\n"
              "  pluginRef: concurrency-detector\n"
              "flowControl:\n"
              "  maxRequests: 10\n",
              err, sizeof(err));
    assert_non_null(cf);
    assert_false(cf->flow.enabled);
    assert_int_equal(cf->saturation.type, LLMD_SAT_CONCURRENCY);
    assert_int_equal(cf->saturation.max_concurrency, 7);
    assert_int_equal(cf->flow.max_requests, 0);
    assert_true(cf->nwarnings >= 1);
    assert_non_null(strstr(cf->warnings[cf->nwarnings - 1],
                           "feature gate is disabled"));
    llmd_config_free(cf);

    /* noEndpointRequestTTL apart; a declared utilization-detector is the
       default detector */
    cf = load(HEAD
              "- type: utilization-detector\n"
              "  parameters:\n"
              "    queueDepthThreshold: 9\n"
              PROFILES
              "featureGates: [\"flowControl=TRUE\"]\n"
              "flowControl:\n"
              "  defaultRequestTTL: 2s\n"
              "  noEndpointRequestTTL: 5m\n",
              err, sizeof(err));
    assert_non_null(cf);
    assert_true(cf->flow.enabled);
    assert_int_equal(cf->saturation.queue_depth_threshold, 9);
    assert_int_equal(cf->flow.ttl_ms, 2000);
    assert_int_equal(cf->flow.no_endpoint_ttl_ms, 300000);
    llmd_config_free(cf);
}


static void
test_config_errors(void **state)
{
    expect_error(HEAD "- type: utilization-detector\n"
                 "  parameters:\n    queueDepthThreshold: 0\n" PROFILES,
                 "queueDepthThreshold must be strictly positive");
    expect_error(HEAD "- type: utilization-detector\n"
                 "  parameters:\n    kvCacheUtilThreshold: 1.5\n" PROFILES,
                 "kvCacheUtilThreshold must be in (0.0, 1.0]");
    expect_error(HEAD "- type: utilization-detector\n"
                 "  parameters:\n    headroom: -1\n" PROFILES,
                 "headroom must be a non-negative value");
    expect_error(HEAD "- type: concurrency-detector\n"
                 "  parameters:\n    concurrencyMode: bytes\n" PROFILES,
                 "unsupported concurrencyMode");
    expect_error(HEAD PROFILES "saturationDetector:\n  pluginRef: nope\n",
                 "saturation detector plugin 'nope' not found");
    expect_error(HEAD PROFILES "saturationDetector:\n"
                 "  pluginRef: queue-scorer\n",
                 "is not a saturation detector");
    expect_error(HEAD PROFILES "featureGates: [flowControl=maybe]\n",
                 "is not a valid value for the feature gate flowControl");
    expect_error(HEAD PROFILES "featureGates: [flowControl]\n"
                 "flowControl:\n  maxRequests: -5\n",
                 "must be non-negative");
    expect_error(HEAD PROFILES "featureGates: [flowControl]\n"
                 "flowControl:\n  maxBytes: 12X\n",
                 "unable to parse quantity");
    expect_error(HEAD PROFILES "flowControl:\n  bogus: 1\n",
                 "unknown field \"bogus\"");
    expect_error(HEAD PROFILES "featureGates: [flowControl]\n"
                 "flowControl:\n  priorityBands:\n  - priority: 1\n"
                 "  - priority: 1\n", "duplicate priority level 1");
    expect_error(HEAD PROFILES "featureGates: [flowControl]\n"
                 "flowControl:\n  priorityBands:\n  - priority: 1\n"
                 "    fairnessPolicyRef: queue-scorer\n",
                 "not a fairness policy");
}


typedef struct {
    llmd_flowq_t        *q;
    llmd_flow_params_t   fp;
} fq_t;


static void
fq_init(fq_t *f, uint32_t nslots, uint32_t nflows)
{
    f->q = malloc(llmd_flowq_size(nslots, nflows));
    assert_non_null(f->q);
    llmd_flowq_init(f->q, nslots, nflows, &f->fp);
}


static uint32_t
enq(fq_t *f, int32_t prio, const char *id, uint64_t bytes, uint64_t now,
    uint64_t *seq)
{
    uint32_t  t;
    uint64_t  s;

    assert_int_equal(llmd_flowq_enqueue(f->q, &f->fp, prio, id, strlen(id),
                                        bytes, now, &t, &s), 0);
    if (seq) {
        *seq = s;
    }

    return t;
}


/* grants the next ticket; returns it */
static int64_t
take(fq_t *f, uint64_t now)
{
    int64_t  t;

    t = llmd_flowq_next(f->q);
    if (t >= 0) {
        llmd_flowq_grant(f->q, (uint32_t) t, now);
    }

    return t;
}


static void
test_queue_priority_fcfs(void **state)
{
    fq_t      f;
    uint32_t  a, b, c, d;
    uint64_t  sa;

    llmd_flow_defaults(&f.fp);
    fq_init(&f, 8, 8);

    assert_int_equal(llmd_flowq_next(f.q), -1);

    a = enq(&f, 0, "x", 10, 1, &sa);
    b = enq(&f, 0, "x", 10, 2, NULL);
    c = enq(&f, 5, "x", 10, 3, NULL);
    d = enq(&f, -1, "x", 10, 4, NULL);
    assert_int_equal(f.q->count, 4);
    assert_int_equal(f.q->bytes, 40);

    /* higher band first, then FCFS, the negative band last */
    assert_int_equal(take(&f, 10), c);
    assert_int_equal(take(&f, 10), a);
    assert_int_equal(llmd_flowq_state(f.q, a, sa), LLMD_TICKET_GRANTED);
    assert_int_equal(take(&f, 10), b);
    assert_int_equal(take(&f, 10), d);
    assert_int_equal(take(&f, 10), -1);
    assert_int_equal(f.q->count, 0);
    assert_int_equal(f.q->bytes, 0);

    /* waits 9, 8, 7, 6 ms: all in the <= 10 ms bucket */
    assert_int_equal(f.q->wait_hist[2], 4);
    assert_int_equal(f.q->wait_ms_sum, 30);

    assert_int_equal(f.q->granted, 4);
    llmd_flowq_release(f.q, a, sa, LLMD_FLOWQ_EVICTED_TTL, 20);
    assert_int_equal(f.q->outcomes[LLMD_FLOWQ_DISPATCHED], 1);
    assert_int_equal(f.q->granted, 3);
    assert_int_equal(llmd_flowq_state(f.q, a, sa), LLMD_TICKET_FREE);
    /* a stale release does nothing */
    llmd_flowq_release(f.q, a, sa, LLMD_FLOWQ_EVICTED_TTL, 20);
    assert_int_equal(f.q->outcomes[LLMD_FLOWQ_DISPATCHED], 1);
    assert_int_equal(f.q->outcomes[LLMD_FLOWQ_EVICTED_TTL], 0);

    free(f.q);
}


static void
test_queue_fairness(void **state)
{
    int       i;
    fq_t      f;
    uint32_t  a[4], b[2];

    /* global strict (llm-d's default): the oldest first, whatever flow */
    llmd_flow_defaults(&f.fp);
    fq_init(&f, 16, 8);

    for (i = 0; i < 4; i++) {
        a[i] = enq(&f, 0, "a", 1, i, NULL);
    }

    b[0] = enq(&f, 0, "b", 1, 10, NULL);
    b[1] = enq(&f, 0, "b", 1, 11, NULL);

    for (i = 0; i < 4; i++) {
        assert_int_equal(take(&f, 20), a[i]);
    }

    assert_int_equal(take(&f, 20), b[0]);
    free(f.q);

    /* round robin: the flows alternate */
    llmd_flow_defaults(&f.fp);
    f.fp.default_band.fairness = LLMD_FAIR_ROUND_ROBIN;
    fq_init(&f, 16, 8);

    for (i = 0; i < 4; i++) {
        a[i] = enq(&f, 0, "a", 1, i, NULL);
    }

    b[0] = enq(&f, 0, "b", 1, 10, NULL);
    b[1] = enq(&f, 0, "b", 1, 11, NULL);

    assert_int_equal(take(&f, 20), a[0]);
    assert_int_equal(take(&f, 20), b[0]);
    assert_int_equal(take(&f, 20), a[1]);
    assert_int_equal(take(&f, 20), b[1]);
    assert_int_equal(take(&f, 20), a[2]);
    assert_int_equal(take(&f, 20), a[3]);
    assert_int_equal(take(&f, 20), -1);
    free(f.q);
}


static void
test_queue_bounds(void **state)
{
    fq_t      f;
    uint32_t  t, a;
    uint64_t  s, sa;

    llmd_flow_defaults(&f.fp);
    f.fp.max_requests = 2;
    f.fp.max_bytes = 100;
    f.fp.has_negative_band = 1;
    f.fp.negative_band.max_requests = 1;
    fq_init(&f, 8, 8);

    a = enq(&f, -1, "x", 10, 0, &sa);
    /* the band of priority -1 holds one (each priority is a band; the
       negative template applies to each) */
    assert_int_equal(llmd_flowq_enqueue(f.q, &f.fp, -1, "z", 1, 10, 0, &t,
                                        &s), -1);
    assert_int_equal(f.q->outcomes[LLMD_FLOWQ_REJECTED_CAPACITY], 1);
    /* bytes: 10 + 91 > 100 */
    assert_int_equal(llmd_flowq_enqueue(f.q, &f.fp, 0, "x", 1, 91, 0, &t,
                                        &s), -1);
    enq(&f, 0, "x", 90, 0, NULL);
    /* count: 2 queued */
    assert_int_equal(llmd_flowq_enqueue(f.q, &f.fp, 0, "y", 1, 0, 0, &t,
                                        &s), -1);
    assert_int_equal(f.q->outcomes[LLMD_FLOWQ_REJECTED_CAPACITY], 3);

    /* a request that leaves (TTL) makes room */
    llmd_flowq_release(f.q, a, sa, LLMD_FLOWQ_EVICTED_TTL, 5);
    assert_int_equal(f.q->outcomes[LLMD_FLOWQ_EVICTED_TTL], 1);
    assert_int_equal(f.q->count, 1);
    enq(&f, 0, "y", 0, 0, NULL);
    free(f.q);

    /* the ticket table itself */
    llmd_flow_defaults(&f.fp);
    fq_init(&f, 2, 8);
    enq(&f, 0, "x", 0, 0, NULL);
    enq(&f, 0, "x", 0, 0, NULL);
    assert_int_equal(llmd_flowq_enqueue(f.q, &f.fp, 0, "x", 1, 0, 0, &t,
                                        &s), -1);
    free(f.q);
}


static void
test_queue_cancel_middle(void **state)
{
    fq_t      f;
    uint32_t  a, b, c;
    uint64_t  sb;

    llmd_flow_defaults(&f.fp);
    fq_init(&f, 8, 8);
    a = enq(&f, 0, "x", 1, 0, NULL);
    b = enq(&f, 0, "x", 1, 0, &sb);
    c = enq(&f, 0, "x", 1, 0, NULL);

    llmd_flowq_release(f.q, b, sb, LLMD_FLOWQ_EVICTED_CANCELLED, 0);
    assert_int_equal(f.q->outcomes[LLMD_FLOWQ_EVICTED_CANCELLED], 1);
    assert_int_equal(take(&f, 0), a);
    assert_int_equal(take(&f, 0), c);
    assert_int_equal(take(&f, 0), -1);

    /* collected: running until released, counted dispatched once */
    llmd_flowq_collect(f.q, a, llmd_flowq_ticket(f.q, a)->seq);
    assert_int_equal(llmd_flowq_ticket(f.q, a)->state, LLMD_TICKET_RUNNING);
    assert_int_equal(f.q->running, 1);
    assert_int_equal(f.q->granted, 1);
    assert_int_equal(f.q->outcomes[LLMD_FLOWQ_DISPATCHED], 1);
    assert_int_equal(llmd_flowq_reap(f.q, 1000000, 1, 1), 1);  /* c only */
    assert_int_equal(f.q->running, 1);
    llmd_flowq_release(f.q, a, llmd_flowq_ticket(f.q, a)->seq,
                       LLMD_FLOWQ_EVICTED_TTL, 0);
    assert_int_equal(f.q->running, 0);
    assert_int_equal(f.q->outcomes[LLMD_FLOWQ_DISPATCHED], 1);
    assert_int_equal(f.q->outcomes[LLMD_FLOWQ_EVICTED_TTL], 0);

    /* the freed slot serves again with another sequence number */
    b = enq(&f, 0, "x", 1, 0, NULL);
    assert_int_equal(llmd_flowq_state(f.q, b, sb), LLMD_TICKET_FREE);
    free(f.q);
}


static void
test_queue_reap(void **state)
{
    fq_t      f;
    uint32_t  a, b, c;
    uint64_t  sa, sb, sc;

    llmd_flow_defaults(&f.fp);
    fq_init(&f, 8, 8);
    a = enq(&f, 0, "x", 1, 0, &sa);
    b = enq(&f, 0, "x", 1, 100, &sb);
    c = enq(&f, 0, "x", 1, 900, &sc);
    assert_int_equal(take(&f, 1000), a);      /* granted at 1000 */

    /* b queued 1900 ms > 1500; a granted 900 ms, not > 1000 */
    assert_int_equal(llmd_flowq_reap(f.q, 2000, 1500, 1000), 1);
    assert_int_equal(llmd_flowq_state(f.q, b, sb), LLMD_TICKET_FREE);
    assert_int_equal(llmd_flowq_state(f.q, a, sa), LLMD_TICKET_GRANTED);
    assert_int_equal(llmd_flowq_state(f.q, c, sc), LLMD_TICKET_QUEUED);
    assert_int_equal(f.q->outcomes[LLMD_FLOWQ_EVICTED_TTL], 1);

    assert_int_equal(llmd_flowq_reap(f.q, 2001, 0, 1000), 1);
    assert_int_equal(llmd_flowq_state(f.q, a, sa), LLMD_TICKET_FREE);
    assert_int_equal(f.q->granted, 0);
    assert_int_equal(f.q->count, 1);
    assert_int_equal(take(&f, 2002), c);
    free(f.q);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_utilization_pool),
        cmocka_unit_test(test_utilization_filter),
        cmocka_unit_test(test_concurrency),
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_config_flow),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_queue_priority_fcfs),
        cmocka_unit_test(test_queue_fairness),
        cmocka_unit_test(test_queue_bounds),
        cmocka_unit_test(test_queue_cancel_middle),
        cmocka_unit_test(test_queue_reap),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
