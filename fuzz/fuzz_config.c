/*
 * Fuzz target: EndpointPickerConfig YAML (llmd_config_load_string,
 * core/llmd_config.h).  A configuration that loads is then run once: its
 * primary profile schedules four fixed endpoints (one with stale metrics,
 * a prompt of eight blocks), so that every scorer and picker a strange
 * but accepted file can build is exercised with its parameters.
 */
#include <string.h>

#include "core/llmd_scheduler.h"
#include "fuzz_common.h"


#define FUZZ_NEPS  4


static void fuzz_schedule(const llmd_config_t *cf);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char            err[LLMD_ERRLEN];
    size_t          i;
    llmd_config_t  *cf;

    err[0] = '\0';
    cf = llmd_config_load_string((const char *) data, size, "fuzz.yaml",
                                 err, sizeof(err));

    if (cf == NULL) {
        FUZZ_CHECK(err[0] != '\0');
        return 0;
    }

    FUZZ_CHECK(cf->handler != NULL);
    FUZZ_CHECK(cf->nprofiles >= 1);
    FUZZ_CHECK(cf->nwarnings <= LLMD_CONFIG_MAX_WARNINGS);

    for (i = 0; i < cf->nwarnings; i++) {
        fuzz_touch(cf->warnings[i], strlen(cf->warnings[i]));
    }

    for (i = 0; i < cf->nplugins; i++) {
        fuzz_touch(cf->plugins[i].name, strlen(cf->plugins[i].name));
    }

    fuzz_schedule(cf);
    llmd_config_free(cf);

    return 0;
}


static void
fuzz_schedule(const llmd_config_t *cf)
{
    int                      seen[FUZZ_NEPS];
    size_t                   i;
    uint64_t                 rng;
    llmd_sched_input_t       in;
    llmd_sched_result_t      res;
    const llmd_profile_t    *profile;
    double                   scores[LLMD_MAX_SCORERS * FUZZ_NEPS];

    /* waiting, running, kv_usage, fresh, active, prefix_match,
       inflight_tokens, request_tokens */
    static const llmd_endpoint_state_t  eps[FUZZ_NEPS] = {
        { 0, 1, 0.10, 1, 0, 8, 0, 64 },
        { 5, 4, 0.90, 1, 3, 2, 9000, 512 },
        { 2, 2, 0.50, 0, 1, 0, 300, 1024 },
        { 1, 0, 0.00, 1, 7, 5, 5e6, 320 },
    };

    profile = llmd_config_primary_profile(cf);
    FUZZ_CHECK(profile != NULL);
    FUZZ_CHECK(profile->picker != NULL);
    FUZZ_CHECK(profile->nscorers <= LLMD_MAX_SCORERS);

    (void) llmd_profile_prefix_scorer(profile);

    rng = 0x9e3779b97f4a7c15ULL;
    in.eps = eps;
    in.neps = FUZZ_NEPS;
    in.prefix_total = 8;
    in.rng = &rng;
    res.scores = scores;

    FUZZ_CHECK(llmd_schedule(profile, &in, &res) == 0);
    FUZZ_CHECK(res.norder == FUZZ_NEPS);
    FUZZ_CHECK(res.nscorers == profile->nscorers);

    /* the order is a permutation of the candidates */
    memset(seen, 0, sizeof(seen));

    for (i = 0; i < res.norder; i++) {
        FUZZ_CHECK(res.order[i] < FUZZ_NEPS && !seen[res.order[i]]);
        seen[res.order[i]] = 1;
    }

    for (i = 0; i < res.nscorers * FUZZ_NEPS; i++) {
        FUZZ_CHECK(scores[i] >= 0 && scores[i] <= 1);
    }
}
