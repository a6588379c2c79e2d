/*
 * Whole decisions (llmd_decide): filters, the profile handlers and their
 * deciders, the scorers that need more than load metrics, and the no-hit
 * LRU record afterwards.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "core/llmd_decide.h"
#include "test_epp.h"

#define HEAD \
    "apiVersion: llm-d.ai/v1alpha1\n" \
    "kind: EndpointPickerConfig\n"

#define NEPS  6

/* One request over NEPS endpoints, all idle and fresh unless a test says
   otherwise. */
typedef struct {
    llmd_endpoint_state_t  eps[NEPS];
    llmd_endpoint_info_t   info[NEPS];
    llmd_plugin_input_t    pin[LLMD_CONFIG_MAX_PLUGINS + 2];
    llmd_decide_input_t    in;
    llmd_decision_t        d;
    double                 scores[64 * NEPS];
    uint64_t               rng;
} req_t;


/* n endpoints; labels[i] may be NULL (no labels). */
static void
req_init(req_t *r, size_t n, const char *const *labels)
{
    size_t  i;

    memset(r, 0, sizeof(req_t));

    for (i = 0; i < n; i++) {
        r->eps[i].fresh = 1;
        r->info[i].labels = labels ? labels[i] : NULL;
        r->info[i].id = 1000 + i;
    }

    for (i = 0; i < LLMD_CONFIG_MAX_PLUGINS + 2; i++) {
        r->pin[i].session_endpoint = -1;
    }

    r->rng = 42;
    r->in.eps = r->eps;
    r->in.info = r->info;
    r->in.neps = n;
    r->in.plugin_in = r->pin;
    r->in.rng = &r->rng;
    r->d.scores = r->scores;
}


static int
decide(const llmd_config_t *cf, req_t *r)
{
    assert_true(llmd_decide_scores_size(cf, r->in.neps)
                <= sizeof(r->scores) / sizeof(double));

    return llmd_decide(cf, &r->in, &r->d);
}


/* The candidates a stage kept, as a bitmask. */
static unsigned
kept(const llmd_stage_t *st)
{
    size_t    i;
    unsigned  m;

    m = 0;

    for (i = 0; i < st->result.norder; i++) {
        m |= 1u << st->result.order[i];
    }

    return m;
}


/* A one-profile config over n labelled endpoints keeps those in mask. */
static void
expect_kept(const char *yaml, size_t n, const char *const *labels,
    unsigned mask)
{
    req_t           r;
    llmd_config_t  *cf;

    cf = load(yaml);
    req_init(&r, n, labels);
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(kept(&r.d.decode), mask);
    llmd_config_free(cf);
}


static const char *const  roles[NEPS] = {
    "llm-d.ai/role=decode", "llm-d.ai/role=prefill",
    "llm-d.ai/role=both", NULL, "llm-d.ai/role=encode",
    "llm-d.ai/role=prefill-decode,zone=a"
};


static void
test_role_filters(void **state)
{
    req_t           r;
    llmd_config_t  *cf;

    cf = load(HEAD "plugins:\n- type: decode-filter\n");
    req_init(&r, NEPS, roles);
    assert_int_equal(decide(cf, &r), 0);
    /* decode, both, unlabelled, prefill-decode */
    assert_int_equal(kept(&r.d.decode), 0x2d);
    assert_int_equal(r.d.decode.passed[3], 1);
    assert_int_equal(r.d.decode.passed[1], 0);
    llmd_config_free(cf);

    cf = load(HEAD "plugins:\n- type: prefill-filter\n");
    req_init(&r, NEPS, roles);
    assert_int_equal(decide(cf, &r), 0);
    /* prefill, both, prefill-decode; not the unlabelled one */
    assert_int_equal(kept(&r.d.decode), 0x26);
    llmd_config_free(cf);

    expect_kept(HEAD "plugins:\n- type: encode-filter\n",
                NEPS, roles, 0x10);

    /* no info at all: no labels anywhere */
    cf = load(HEAD "plugins:\n- type: prefill-filter\n");
    req_init(&r, NEPS, roles);
    r.in.info = NULL;
    assert_int_equal(decide(cf, &r), -1);
    assert_int_equal(r.d.decode.result.norder, 0);
    assert_non_null(r.d.decode.profile);
    llmd_config_free(cf);
}


static void
test_by_label(void **state)
{
    static const char *const  gpus[4] = {
        "gpu=a100", "gpu=", "gpu=t4", NULL
    };

    expect_kept(HEAD "plugins:\n- type: by-label\n  parameters:\n"
                "    label: gpu\n    validValues: [a100]\n",
                4, gpus, 0x1);

    expect_kept(HEAD "plugins:\n- type: by-label\n  parameters:\n"
                "    label: gpu\n    validValues: [t4]\n"
                "    allowsNoLabel: true\n",
                4, gpus, 0xc);

    /* as a Go map, a missing label reads as "": "" matches it too */
    expect_kept(HEAD "plugins:\n- type: by-label\n  parameters:\n"
                "    label: gpu\n    validValues: [\"\"]\n",
                4, gpus, 0xa);
}


static void
test_label_selector(void **state)
{
    static const char *const  labels[5] = {
        "role=decode,gpu=h100", "role=decode,gpu=t4", "role=decode",
        "role=prefill,gpu=h100,spot=", NULL
    };

    expect_kept(HEAD "plugins:\n- type: label-selector-filter\n"
                "  parameters:\n    matchLabels: {role: decode}\n",
                5, labels, 0x7);

    /* NotIn keeps an endpoint without the label */
    expect_kept(HEAD "plugins:\n- type: by-label-selector\n"
                "  parameters:\n    matchExpressions:\n"
                "    - {key: gpu, operator: NotIn, values: [t4]}\n",
                5, labels, 0x1d);

    expect_kept(HEAD "plugins:\n- type: label-selector-filter\n"
                "  parameters:\n    matchExpressions:\n"
                "    - {key: gpu, operator: Exists}\n"
                "    - {key: spot, operator: DoesNotExist}\n",
                5, labels, 0x3);

    expect_kept(HEAD "plugins:\n- type: label-selector-filter\n"
                "  parameters:\n    matchExpressions:\n"
                "    - {key: gpu, operator: In, values: [h100, a100]}\n"
                "    matchLabels: {role: decode}\n",
                5, labels, 0x1);

    /* empty selector: everything */
    expect_kept(HEAD "plugins:\n- type: label-selector-filter\n",
                5, labels, 0x1f);

    /* filters run in order; the second sees what the first left */
    expect_kept(HEAD "plugins:\n- type: label-selector-filter\n  name: a\n"
                "  parameters:\n    matchLabels: {gpu: h100}\n"
                "- type: label-selector-filter\n  name: b\n"
                "  parameters:\n    matchLabels: {role: prefill}\n",
                5, labels, 0x8);
}


static void
test_utilization_and_session_filters(void **state)
{
    req_t           r;
    llmd_config_t  *cf;

    cf = load(HEAD "plugins:\n- type: utilization-filter\n"
              "  parameters:\n    conditions:\n"
              "    - {metric: waiting-queue, maxValue: 2}\n"
              "    - {metric: kv-cache-utilization, maxValue: 0.9}\n"
              "    - {metric: active-requests, maxValue: 10}\n");
    req_init(&r, 4, NULL);
    r.eps[0].waiting = 3;
    r.eps[1].kv_usage = 0.95;
    r.eps[2].active = 11;
    r.eps[3].waiting = 2;
    r.eps[3].kv_usage = 0.9;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(kept(&r.d.decode), 0x8);

    /* an endpoint without fresh metrics is as busy as the worst fresh */
    r.eps[3].fresh = 0;
    r.eps[3].waiting = 0;
    assert_int_equal(decide(cf, &r), -1);
    llmd_config_free(cf);

    cf = load(HEAD "plugins:\n- type: utilization-filter\n"
              "  parameters:\n    fallbackOnEmpty: true\n    conditions:\n"
              "    - {metric: running-requests, maxValue: 0}\n");
    req_init(&r, 3, NULL);
    r.eps[0].running = 1;
    r.eps[1].running = 2;
    r.eps[2].running = 3;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(kept(&r.d.decode), 0x7);
    llmd_config_free(cf);

    /* session-affinity-filter pins the session's endpoint, else all */
    cf = load(HEAD "plugins:\n- type: session-affinity-filter\n");
    req_init(&r, 4, NULL);
    r.pin[0].session_endpoint = 2;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(kept(&r.d.decode), 0x4);
    r.pin[0].session_endpoint = -1;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(kept(&r.d.decode), 0xf);
    llmd_config_free(cf);
}


/* P/D of llm-d's guide: decode first, the prefix-based decider. */
static void
test_disagg_prefix_decider(void **state)
{
    req_t                     r;
    llmd_config_t            *cf;
    static const char *const  pd[4] = {
        "llm-d.ai/role=prefill", "llm-d.ai/role=decode",
        "llm-d.ai/role=prefill", "llm-d.ai/role=decode"
    };

    cf = load_file("t/data/epp-pd-guide.yaml");    /* nonCachedTokens 16 */

    req_init(&r, 4, pd);
    r.eps[3].waiting = 5;                 /* decode goes to endpoint 1 */
    r.in.prompt_tokens = 100;
    r.info[1].cached_tokens = 90;         /* 10 uncached < 16 */
    assert_int_equal(decide(cf, &r), 0);
    assert_ptr_equal(r.d.decode.profile, cf->decode);
    assert_int_equal(r.d.decode.result.order[0], 1);
    assert_int_equal(kept(&r.d.decode), 0xa);
    assert_null(r.d.prefill.profile);

    r.info[1].cached_tokens = 84;         /* 16 uncached: disaggregate */
    assert_int_equal(decide(cf, &r), 0);
    assert_ptr_equal(r.d.prefill.profile, cf->prefill);
    assert_int_equal(kept(&r.d.prefill), 0x5);
    /* the other decode endpoint's cache does not count */
    r.info[1].cached_tokens = 90;
    r.info[3].cached_tokens = 0;
    assert_int_equal(decide(cf, &r), 0);
    assert_null(r.d.prefill.profile);

    /* a prompt shorter than nonCachedTokens stays on decode */
    r.in.prompt_tokens = 15;
    r.info[1].cached_tokens = 0;
    assert_int_equal(decide(cf, &r), 0);
    assert_null(r.d.prefill.profile);

    /* scores of both stages are kept, by endpoint */
    r.in.prompt_tokens = 1000;
    r.in.prefix_total = 10;
    r.eps[2].prefix_match = 5;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(r.d.prefill.result.order[0], 2);
    assert_int_equal(r.d.prefill.result.nscorers, 2);
    assert_true(r.d.prefill.result.scores[2] == 0.5);    /* prefix */
    assert_true(r.d.prefill.result.scores[1] == 0);      /* filtered */
    assert_true(r.d.prefill.result.total[2] == 2 * 0.5 + 1);

    /* no prefill endpoint: the prefill stage ran and found none, decode
       still routes the request */
    r.info[0].labels = NULL;
    r.info[2].labels = "llm-d.ai/role=decode";
    assert_int_equal(decide(cf, &r), 0);
    assert_non_null(r.d.prefill.profile);
    assert_int_equal(r.d.prefill.result.norder, 0);
    assert_true(r.d.decode.result.norder > 0);

    /* no decode endpoint: the request fails, prefill never runs */
    req_init(&r, 4, pd);
    r.info[1].labels = "llm-d.ai/role=prefill";
    r.info[3].labels = "llm-d.ai/role=prefill";
    r.in.prompt_tokens = 1000;
    assert_int_equal(decide(cf, &r), -1);
    assert_int_equal(r.d.decode.result.norder, 0);
    assert_null(r.d.prefill.profile);

    llmd_config_free(cf);
}


static void
test_deciders(void **state)
{
    req_t                     r;
    llmd_config_t            *cf;
    static const char *const  pd[2] = {
        "llm-d.ai/role=decode", "llm-d.ai/role=prefill"
    };

#define PD_CONFIG(decider, params) \
    HEAD "plugins:\n- type: prefill-filter\n- type: decode-filter\n" \
    "- type: " decider "\n  name: dec\n" params \
    "- type: disagg-profile-handler\n  parameters:\n" \
    "    deciders: {prefill: dec}\n" \
    "schedulingProfiles:\n- name: prefill\n  plugins:\n" \
    "  - pluginRef: prefill-filter\n- name: decode\n  plugins:\n" \
    "  - pluginRef: decode-filter\n"

    cf = load(PD_CONFIG("always-disagg-pd-decider", ""));
    req_init(&r, 2, pd);
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(r.d.prefill.result.order[0], 1);
    llmd_config_free(cf);

    /* nonCachedTokens 0 disables the decider */
    cf = load(PD_CONFIG("prefix-based-pd-decider", ""));
    req_init(&r, 2, pd);
    r.in.prompt_tokens = 100000;
    assert_int_equal(decide(cf, &r), 0);
    assert_null(r.d.prefill.profile);
    llmd_config_free(cf);

    /* promptTokens gates on the whole prompt */
    cf = load(PD_CONFIG("prefix-based-pd-decider",
                        "  parameters: {nonCachedTokens: 8,"
                        " promptTokens: 64}\n"));
    req_init(&r, 2, pd);
    r.in.prompt_tokens = 63;
    assert_int_equal(decide(cf, &r), 0);
    assert_null(r.d.prefill.profile);
    r.in.prompt_tokens = 64;
    assert_int_equal(decide(cf, &r), 0);
    assert_non_null(r.d.prefill.profile);
    /* without information nothing is cached (and nothing labelled: the
       prefill stage runs and finds no endpoint) */
    r.in.info = NULL;
    assert_int_equal(decide(cf, &r), 0);
    assert_non_null(r.d.prefill.profile);
    assert_int_equal(r.d.prefill.result.norder, 0);
    llmd_config_free(cf);

    /* the multimodal decider as the prefill decider */
    cf = load(PD_CONFIG("always-disagg-multimodal-decider", ""));
    req_init(&r, 2, pd);
    assert_int_equal(decide(cf, &r), 0);
    assert_null(r.d.prefill.profile);
    r.in.multimodal = 1;
    assert_int_equal(decide(cf, &r), 0);
    assert_non_null(r.d.prefill.profile);
    llmd_config_free(cf);

#undef PD_CONFIG
}


static void
test_encode_and_prefill_first(void **state)
{
    req_t                     r;
    llmd_config_t            *cf;
    static const char *const  epd[3] = {
        "role=encode", "role=prefill", "role=decode"
    };

    cf = load_file("t/data/epp-epd-labels.yaml");  /* nonCachedTokens 8 */
    req_init(&r, 3, epd);
    r.in.prompt_tokens = 100;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(r.d.decode.result.order[0], 2);
    assert_int_equal(r.d.prefill.result.order[0], 1);
    assert_null(r.d.encode.profile);

    r.in.multimodal = 1;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(r.d.encode.result.norder, 1);
    assert_int_equal(r.d.encode.result.order[0], 0);
    llmd_config_free(cf);

    /* prefill first: prefill runs for every request, even when decode
       then finds nothing */
    cf = load(HEAD "plugins:\n- type: prefill-filter\n- type: decode-filter\n"
              "- type: disagg-profile-handler\n  parameters:\n"
              "    stageOrder: prefill-first\n"
              "schedulingProfiles:\n- name: prefill\n  plugins:\n"
              "  - pluginRef: prefill-filter\n- name: decode\n  plugins:\n"
              "  - pluginRef: decode-filter\n");
    req_init(&r, 2, NULL);
    r.info[0].labels = "llm-d.ai/role=prefill";
    r.info[1].labels = "llm-d.ai/role=decode";
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(r.d.prefill.result.order[0], 0);
    assert_int_equal(r.d.decode.result.order[0], 1);
    r.info[1].labels = "llm-d.ai/role=prefill";
    assert_int_equal(decide(cf, &r), -1);
    assert_int_equal(r.d.prefill.result.norder, 2);
    llmd_config_free(cf);
}


/* pd-profile-handler without a decider: llm-d <= v0.4's threshold. */
static void
test_pd_threshold(void **state)
{
    req_t           r;
    llmd_config_t  *cf;

    /* the seed-era config: no threshold, prefill always runs */
    cf = load_file("t/data/epp-pd-seed.yaml");
    req_init(&r, 2, NULL);
    r.info[0].labels = "llm-d.ai/role=prefill";
    r.info[1].labels = "llm-d.ai/role=decode";
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(r.d.decode.result.order[0], 1);
    assert_int_equal(r.d.prefill.result.order[0], 0);
    llmd_config_free(cf);

    /* threshold 10, hashBlockSize 5: a matched block after the first
       counts 5 x 4 = 20 characters */
    cf = load_file("t/data/epp-pd-threshold.yaml");
    req_init(&r, 2, NULL);
    r.info[0].labels = "llm-d.ai/role=prefill";
    r.info[1].labels = "llm-d.ai/role=decode";
    r.in.prompt_chars = 9;
    assert_int_equal(decide(cf, &r), 0);
    assert_null(r.d.prefill.profile);
    r.in.prompt_chars = 10;
    assert_int_equal(decide(cf, &r), 0);
    assert_non_null(r.d.prefill.profile);
    r.in.prompt_chars = 49;
    r.eps[1].prefix_match = 3;            /* (3 - 1) x 20 = 40 cached */
    assert_int_equal(decide(cf, &r), 0);
    assert_null(r.d.prefill.profile);
    r.in.prompt_chars = 50;
    assert_int_equal(decide(cf, &r), 0);
    assert_non_null(r.d.prefill.profile);
    llmd_config_free(cf);
}


static void
test_header_profile_handler(void **state)
{
    req_t           r;
    llmd_config_t  *cf;

    cf = load(HEAD "plugins:\n- type: prefill-filter\n- type: decode-filter\n"
              "- type: header-profile-handler\n"
              "schedulingProfiles:\n- name: prefill\n  plugins:\n"
              "  - pluginRef: prefill-filter\n- name: decode\n  plugins:\n"
              "  - pluginRef: decode-filter\n");
    req_init(&r, 2, NULL);
    r.info[0].labels = "llm-d.ai/role=prefill";
    r.info[1].labels = "llm-d.ai/role=decode";

    r.in.profile_header = " prefill ";
    assert_int_equal(decide(cf, &r), 0);
    assert_string_equal(r.d.decode.profile->name, "prefill");
    assert_int_equal(kept(&r.d.decode), 0x1);

    r.in.profile_header = NULL;           /* default: decode */
    assert_int_equal(decide(cf, &r), 0);
    assert_string_equal(r.d.decode.profile->name, "decode");

    r.in.profile_header = "encode";       /* not configured: an error */
    assert_int_equal(decide(cf, &r), -1);
    assert_null(r.d.decode.profile);
    llmd_config_free(cf);
}


static void
test_session_lora_running_scorers(void **state)
{
    req_t           r;
    llmd_config_t  *cf;

    cf = load(HEAD "plugins:\n- type: session-affinity-scorer\n"
              "- type: lora-affinity-scorer\n"
              "- type: running-requests-size-scorer\n"
              "schedulingProfiles:\n- name: s\n  plugins:\n"
              "  - pluginRef: session-affinity-scorer\n"
              "  - pluginRef: lora-affinity-scorer\n"
              "  - pluginRef: running-requests-size-scorer\n");
    req_init(&r, 5, NULL);

#define SCORE(s, e) (r.d.decode.result.scores[(s) * 5 + (e)])

    r.pin[0].session_endpoint = 3;
    r.in.model = "sql-lora";
    r.info[0].lora_running = "sql-lora, other";
    r.info[0].lora_max = 2;
    r.info[1].lora_running = "a";                   /* room: 1 + 0 < 2 */
    r.info[1].lora_max = 2;
    r.info[2].lora_running = "a,b";
    r.info[2].lora_waiting = "sql-lora";            /* full, waiting */
    r.info[2].lora_max = 3;
    r.info[3].lora_running = "a,a, b";              /* 2 distinct, full */
    r.info[3].lora_max = 2;
    /* endpoint 4: no LoRA information at all */
    r.eps[0].running = 4;
    r.eps[1].running = 2;
    r.eps[2].running = 0;
    r.eps[3].running = 4;
    r.eps[4].running = 1;

    assert_int_equal(decide(cf, &r), 0);
    assert_true(SCORE(0, 3) == 1 && SCORE(0, 0) == 0 && SCORE(0, 4) == 0);
    assert_true(SCORE(1, 0) == 1.0);
    assert_true(SCORE(1, 1) == 0.8);
    assert_true(SCORE(1, 2) == 0.6);
    assert_true(SCORE(1, 3) == 0);
    assert_true(SCORE(1, 4) == 0);
    assert_true(SCORE(2, 2) == 1 && SCORE(2, 0) == 0 && SCORE(2, 1) == 0.5);

    /* all equal: 1 */
    r.eps[0].running = r.eps[1].running = r.eps[2].running = 1;
    r.eps[3].running = r.eps[4].running = 1;
    r.pin[0].session_endpoint = -1;
    assert_int_equal(decide(cf, &r), 0);
    assert_true(SCORE(2, 4) == 1 && SCORE(0, 3) == 0);

#undef SCORE

    llmd_config_free(cf);
}


static void
test_prefix_match_length(void **state)
{
    req_t           r;
    llmd_config_t  *cf;

    cf = load(HEAD "plugins:\n- type: prefix-cache-scorer\n"
              "  parameters: {matchLengthWeight: 0.5,"
              " matchLengthScaleTokens: 100}\n");
    req_init(&r, 3, NULL);
    r.in.prefix_total = 4;
    r.eps[0].prefix_match = 2;
    r.info[0].cached_tokens = 50;
    r.eps[1].prefix_match = 4;
    r.info[1].cached_tokens = 400;        /* capped at the scale */
    assert_int_equal(decide(cf, &r), 0);
    assert_true(r.d.decode.result.scores[0] == 0.5 * 0.25 + 0.5 * 0.5);
    assert_true(r.d.decode.result.scores[1] == 1);
    assert_true(r.d.decode.result.scores[2] == 0);
    llmd_config_free(cf);
}


static void
test_no_hit_lru(void **state)
{
    req_t              r;
    llmd_config_t     *cf;
    llmd_nohit_lru_t  *lru;

#define SCORE(e) (r.d.decode.result.scores[(e)])

    cf = load(HEAD "plugins:\n- type: no-hit-lru-scorer\n"
              "  parameters: {lruSize: 8}\n");
    lru = malloc(llmd_nohit_lru_size(8));
    assert_non_null(lru);
    llmd_nohit_lru_init(lru, 8);

    req_init(&r, 4, NULL);
    r.pin[0].nohit = lru;

    /* cold, nothing used: candidate order, 1, 2/3, 1/3, 0 */
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(r.d.nohit_cold[0], 1);
    assert_true(SCORE(0) == 1 && SCORE(3) == 0);
    assert_true(SCORE(1) > 0.66 && SCORE(1) < 0.67);
    assert_int_equal(r.d.decode.result.order[0], 0);

    llmd_decide_record(cf, &r.in, &r.d, 0, -1);
    llmd_decide_record(cf, &r.in, &r.d, 2, -1);

    /* never used 1, 3 first; then 0 (oldest), 2 */
    assert_int_equal(decide(cf, &r), 0);
    assert_true(SCORE(1) == 1);
    assert_true(SCORE(3) > 0.66 && SCORE(3) < 0.67);
    assert_true(SCORE(0) > 0.33 && SCORE(0) < 0.34);
    assert_true(SCORE(2) == 0);

    /* warm (any candidate holds a block): 0.5, nothing recorded */
    r.in.prefix_total = 4;
    r.eps[2].prefix_match = 1;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(r.d.nohit_cold[0], 0);
    assert_true(SCORE(0) == 0.5 && SCORE(3) == 0.5);
    llmd_decide_record(cf, &r.in, &r.d, 1, -1);
    assert_int_equal(lru->records, 2);

    /* one candidate: 1 */
    req_init(&r, 1, NULL);
    r.pin[0].nohit = lru;
    assert_int_equal(decide(cf, &r), 0);
    assert_true(SCORE(0) == 1);

    /* positions beyond the candidates clamp at 0 */
    llmd_nohit_lru_init(lru, 8);
    req_init(&r, 2, NULL);
    r.pin[0].nohit = lru;
    r.info[0].id = 7;
    r.info[1].id = 8;
    llmd_nohit_lru_record(lru, 8);
    llmd_nohit_lru_record(lru, 1);
    llmd_nohit_lru_record(lru, 2);
    llmd_nohit_lru_record(lru, 7);
    assert_int_equal(decide(cf, &r), 0);
    assert_true(SCORE(1) == 1);           /* position 0 */
    assert_true(SCORE(0) == 0);           /* 1 - 3 / 1 < 0 */

#undef SCORE

    llmd_config_free(cf);

    /* P/D: the prefill pick of a profile named "prefill" is recorded too */
    cf = load(HEAD "plugins:\n- type: prefill-filter\n- type: decode-filter\n"
              "- type: no-hit-lru-scorer\n- type: always-disagg-pd-decider\n"
              "- type: disagg-profile-handler\n  parameters:\n"
              "    deciders: {prefill: always-disagg-pd-decider}\n"
              "schedulingProfiles:\n- name: prefill\n  plugins:\n"
              "  - pluginRef: prefill-filter\n"
              "  - pluginRef: no-hit-lru-scorer\n- name: decode\n"
              "  plugins:\n  - pluginRef: decode-filter\n"
              "  - pluginRef: no-hit-lru-scorer\n");
    llmd_nohit_lru_init(lru, 8);
    req_init(&r, 2, NULL);
    r.info[0].labels = "llm-d.ai/role=prefill";
    r.info[1].labels = "llm-d.ai/role=decode";
    r.pin[2].nohit = lru;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(r.d.nohit_cold[2], 1);
    llmd_decide_record(cf, &r.in, &r.d, 1, 0);
    assert_int_equal(lru->records, 2);
    assert_int_equal(lru->lru.count, 2);
    llmd_config_free(cf);

    free(lru);
}


/*
 * One decision kept for the next request (as the module keeps them): what
 * a stage that ran left is gone when the next decision does not run it,
 * and a no-hit-lru scorer of that stage no longer says "cold".
 */
static void
test_decision_reused(void **state)
{
    size_t             i;
    req_t              r;
    llmd_config_t     *cf;
    llmd_nohit_lru_t  *lru;

    cf = load(HEAD "plugins:\n- type: prefill-filter\n- type: decode-filter\n"
              "- type: no-hit-lru-scorer\n- type: prefix-based-pd-decider\n"
              "  parameters: {nonCachedTokens: 16}\n"
              "- type: disagg-profile-handler\n  parameters:\n"
              "    deciders: {prefill: prefix-based-pd-decider}\n"
              "schedulingProfiles:\n- name: prefill\n  plugins:\n"
              "  - pluginRef: prefill-filter\n"
              "  - pluginRef: no-hit-lru-scorer\n- name: decode\n"
              "  plugins:\n  - pluginRef: decode-filter\n");
    lru = malloc(llmd_nohit_lru_size(8));
    assert_non_null(lru);
    llmd_nohit_lru_init(lru, 8);

    req_init(&r, 4, NULL);
    r.info[0].labels = "llm-d.ai/role=prefill";
    r.info[1].labels = "llm-d.ai/role=decode";
    r.info[2].labels = "llm-d.ai/role=prefill";
    r.info[3].labels = "llm-d.ai/role=decode";
    r.pin[2].nohit = lru;

    /* 100 uncached tokens: prefill runs, its scorer sees a cold request */
    r.in.prompt_tokens = 100;
    assert_int_equal(decide(cf, &r), 0);
    assert_ptr_equal(r.d.prefill.profile, cf->prefill);
    assert_int_equal(r.d.prefill.result.norder, 2);
    assert_int_equal(r.d.nohit_cold[2], 1);

    /* 10: decode alone, in the same decision */
    r.in.prompt_tokens = 10;
    assert_int_equal(decide(cf, &r), 0);
    assert_null(r.d.prefill.profile);
    assert_int_equal(r.d.prefill.result.norder, 0);
    assert_null(r.d.encode.profile);
    assert_int_equal(r.d.encode.result.norder, 0);

    for (i = 0; i < sizeof(r.d.nohit_cold); i++) {
        assert_int_equal(r.d.nohit_cold[i], 0);
    }

    /* nothing is recorded for it */
    llmd_decide_record(cf, &r.in, &r.d, 1, -1);
    assert_int_equal(lru->records, 0);

    llmd_config_free(cf);
    free(lru);
}


/* llmd_schedule() is unchanged: no filters, every candidate ranked. */
static void
test_schedule_runs_no_filters(void **state)
{
    size_t                 i;
    double                 scores[8];
    uint64_t               rng;
    llmd_config_t         *cf;
    llmd_sched_input_t     in;
    llmd_sched_result_t    res;
    llmd_endpoint_state_t  eps[4];

    cf = load(HEAD "plugins:\n- type: prefill-filter\n- type: queue-scorer\n");
    memset(eps, 0, sizeof(eps));

    for (i = 0; i < 4; i++) {
        eps[i].fresh = 1;
        eps[i].waiting = (double) i;
    }

    rng = 1;
    in.eps = eps;
    in.neps = 4;
    in.prefix_total = 0;
    in.rng = &rng;
    res.scores = scores;

    assert_int_equal(llmd_schedule(llmd_config_primary_profile(cf), &in,
                                   &res), 0);
    assert_int_equal(res.norder, 4);
    assert_int_equal(res.order[0], 0);
    assert_int_equal(res.order[3], 3);
    llmd_config_free(cf);
}

/*
 * Saturation detectors are scheduling filters too (llm-d's Filter of both
 * detectors): listed in a profile, or declared in a file without profiles.
 * utilization: waiting < 5 * (1 + headroom) and KV < 0.8 * (1 + headroom),
 * stale endpoints out, none left: all (fail-open); concurrency: in flight
 * < int(maxConcurrency * (1 + headroom)), no fallback.
 */
static void
test_detector_filters(void **state)
{
    req_t           r;
    llmd_config_t  *cf;

    /* declared without profiles: in the default profile */
    cf = load(HEAD "plugins:\n- type: utilization-detector\n"
              "- type: queue-scorer\n");
    req_init(&r, 4, NULL);
    r.eps[0].waiting = 5;          /* at the threshold: out */
    r.eps[1].waiting = 4;
    r.eps[1].kv_usage = 0.8;       /* KV at the threshold: out */
    r.eps[2].waiting = 4.9;
    r.eps[3].fresh = 0;            /* stale: out */
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(kept(&r.d.decode), 1u << 2);

    /* none under the limits: all of them, the scorers choose */
    r.eps[2].waiting = 9;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(kept(&r.d.decode), 0xf);
    llmd_config_free(cf);

    /* headroom 0.2 in a profile: the limits are 6 and 0.96 */
    cf = load(HEAD "plugins:\n- type: utilization-detector\n"
              "  parameters: {headroom: 0.2}\n"
              "- type: queue-scorer\n"
              "schedulingProfiles:\n- name: default\n  plugins:\n"
              "  - pluginRef: utilization-detector\n"
              "  - pluginRef: queue-scorer\n");
    req_init(&r, 3, NULL);
    r.eps[0].waiting = 5.5;
    r.eps[1].waiting = 6;
    r.eps[2].kv_usage = 0.95;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(kept(&r.d.decode), (1u << 0) | (1u << 2));
    llmd_config_free(cf);

    /* concurrency: maxConcurrency 2, headroom 0.4: int(2.8) = 2 */
    cf = load(HEAD "plugins:\n- type: concurrency-detector\n"
              "  parameters: {maxConcurrency: 2, headroom: 0.4}\n"
              "- type: queue-scorer\n"
              "schedulingProfiles:\n- name: default\n  plugins:\n"
              "  - pluginRef: concurrency-detector\n"
              "  - pluginRef: queue-scorer\n");
    req_init(&r, 3, NULL);
    r.eps[0].active = 1;
    r.eps[1].active = 2;
    r.eps[2].active = 3;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(kept(&r.d.decode), 1u << 0);

    /* every endpoint full: no fallback */
    r.eps[0].active = 2;
    decide(cf, &r);
    assert_int_equal(r.d.decode.result.norder, 0);
    llmd_config_free(cf);

    /* a detector not listed in the profile filters nothing */
    cf = load(HEAD "plugins:\n- type: utilization-detector\n"
              "- type: queue-scorer\n"
              "schedulingProfiles:\n- name: default\n  plugins:\n"
              "  - pluginRef: queue-scorer\n");
    req_init(&r, 2, NULL);
    r.eps[0].waiting = 50;
    assert_int_equal(decide(cf, &r), 0);
    assert_int_equal(kept(&r.d.decode), 0x3);
    llmd_config_free(cf);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(test_role_filters),
        cmocka_unit_test(test_by_label),
        cmocka_unit_test(test_label_selector),
        cmocka_unit_test(test_utilization_and_session_filters),
        cmocka_unit_test(test_disagg_prefix_decider),
        cmocka_unit_test(test_deciders),
        cmocka_unit_test(test_encode_and_prefill_first),
        cmocka_unit_test(test_pd_threshold),
        cmocka_unit_test(test_header_profile_handler),
        cmocka_unit_test(test_session_lora_running_scorers),
        cmocka_unit_test(test_prefix_match_length),
        cmocka_unit_test(test_no_hit_lru),
        cmocka_unit_test(test_decision_reused),
        cmocka_unit_test(test_schedule_runs_no_filters),
        cmocka_unit_test(test_detector_filters),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
