/*
 * The decision for one request (llmd_decide.h): the profile handler of the
 * configuration runs its profiles in llm-d's order, the disaggregation
 * deciders say whether the prefill and encode stages run, and no-hit-lru
 * scorers record the endpoints of cold requests afterwards.
 */
#include <ctype.h>
#include <string.h>

#include "core/llmd_plugins.h"


static void llmd_stage_clear(llmd_stage_t *st);
static size_t llmd_stage_run(llmd_stage_t *st, const llmd_profile_t *profile,
    const llmd_decide_input_t *in, const llmd_endpoint_state_t *eps,
    llmd_decision_t *d, size_t *used);
static int llmd_disagg(const llmd_config_t *cf, const llmd_decide_input_t *in,
    const llmd_endpoint_state_t *eps, llmd_decision_t *d, size_t *used);
static int llmd_pd(const llmd_config_t *cf, const llmd_decide_input_t *in,
    const llmd_endpoint_state_t *eps, llmd_decision_t *d, size_t *used);
static int llmd_decider_says(const llmd_plugin_t *decider,
    const llmd_decide_input_t *in, int ep);
static int llmd_pd_threshold(const llmd_disagg_params_t *dp,
    const llmd_decide_input_t *in, int ep);
static const llmd_profile_t *llmd_header_profile(const llmd_config_t *cf,
    const llmd_decide_input_t *in);


size_t
llmd_decide_scores_size(const llmd_config_t *cf, size_t neps)
{
    size_t  i, n;

    /* every profile once: covers any stages a request may run */
    n = 0;

    for (i = 0; i < cf->nprofiles; i++) {
        n += cf->profiles[i].nscorers * neps;
    }

    return n;
}


int
llmd_decide(const llmd_config_t *cf, const llmd_decide_input_t *in,
    llmd_decision_t *d)
{
    size_t                  used;
    const llmd_profile_t   *profile;
    llmd_endpoint_state_t   eps[LLMD_MAX_ENDPOINTS];

    /*
     * Not the whole 8.6 KB: a stage's arrays are written for every
     * candidate when it runs (llmd_profile_run()) and read only then
     */
    llmd_stage_clear(&d->decode);
    llmd_stage_clear(&d->prefill);
    llmd_stage_clear(&d->encode);
    memset(d->nohit_cold, 0, sizeof(d->nohit_cold));
    used = 0;

    if (in->neps == 0 || in->neps > LLMD_MAX_ENDPOINTS) {
        return -1;
    }

    llmd_apply_staleness(in->eps, in->neps, eps);

    switch (cf->handler->type) {

    case LLMD_PLUGIN_DISAGG_PROFILE_HANDLER:
        return llmd_disagg(cf, in, eps, d, &used);

    case LLMD_PLUGIN_PD_PROFILE_HANDLER:
        return llmd_pd(cf, in, eps, d, &used);

    case LLMD_PLUGIN_HEADER_PROFILE_HANDLER:
        profile = llmd_header_profile(cf, in);
        break;

    default:
        profile = cf->decode;
    }

    if (profile == NULL) {
        return -1;
    }

    return llmd_stage_run(&d->decode, profile, in, eps, d, &used) ? 0 : -1;
}


/* A stage that has not run: no profile, no order, no scores. */
static void
llmd_stage_clear(llmd_stage_t *st)
{
    st->profile = NULL;
    st->result.norder = 0;
    st->result.scores = NULL;
    st->result.nscorers = 0;
}


void
llmd_decide_record(const llmd_config_t *cf, const llmd_decide_input_t *in,
    const llmd_decision_t *d, int decode_ep, int prefill_ep)
{
    size_t                i;
    llmd_nohit_lru_t     *lru;
    const llmd_plugin_t  *p;

    if (in->info == NULL || in->plugin_in == NULL) {
        return;
    }

    /* llm-d records the prefill pick of a profile named "prefill" only */
    if (d->prefill.profile == NULL || d->prefill.result.norder == 0
        || strcmp(d->prefill.profile->name, "prefill") != 0)
    {
        prefill_ep = -1;
    }

    for (i = 0; i < cf->nplugins; i++) {
        p = &cf->plugins[i];

        if (p->type != LLMD_PLUGIN_NO_HIT_LRU_SCORER
            || !d->nohit_cold[p->index])
        {
            continue;
        }

        lru = in->plugin_in[p->index].nohit;
        if (lru == NULL) {
            continue;
        }

        if (decode_ep >= 0 && (size_t) decode_ep < in->neps) {
            llmd_nohit_lru_record(lru, in->info[decode_ep].id);
        }

        if (prefill_ep >= 0 && (size_t) prefill_ep < in->neps) {
            llmd_nohit_lru_record(lru, in->info[prefill_ep].id);
        }
    }
}


/* One stage: its profile with filters, scores kept after the previous. */
static size_t
llmd_stage_run(llmd_stage_t *st, const llmd_profile_t *profile,
    const llmd_decide_input_t *in, const llmd_endpoint_state_t *eps,
    llmd_decision_t *d, size_t *used)
{
    st->profile = profile;
    st->result.scores = d->scores ? d->scores + *used : NULL;
    *used += profile->nscorers * in->neps;

    return llmd_profile_run(profile, in, eps, 1, d->nohit_cold, &st->result,
                            st->passed);
}


/*
 * disagg-profile-handler. Decode first: decode, then encode and prefill
 * when their deciders say so about the decode pick; decode finding no
 * endpoint fails the request. Prefill first: prefill whenever configured,
 * encode by its decider, then decode.
 */
static int
llmd_disagg(const llmd_config_t *cf, const llmd_decide_input_t *in,
    const llmd_endpoint_state_t *eps, llmd_decision_t *d, size_t *used)
{
    int                          top;
    const llmd_disagg_params_t  *dp;

    dp = &cf->handler->u.disagg;

    if (dp->prefill_first) {
        if (cf->prefill != NULL) {
            llmd_stage_run(&d->prefill, cf->prefill, in, eps, d, used);
        }

        if (cf->encode != NULL
            && llmd_decider_says(dp->encode_decider, in, -1))
        {
            llmd_stage_run(&d->encode, cf->encode, in, eps, d, used);
        }

        return llmd_stage_run(&d->decode, cf->decode, in, eps, d, used)
               ? 0 : -1;
    }

    if (llmd_stage_run(&d->decode, cf->decode, in, eps, d, used) == 0) {
        return -1;
    }

    top = d->decode.result.order[0];

    if (cf->encode != NULL
        && llmd_decider_says(dp->encode_decider, in, top))
    {
        llmd_stage_run(&d->encode, cf->encode, in, eps, d, used);
    }

    if (cf->prefill != NULL
        && llmd_decider_says(dp->prefill_decider, in, top))
    {
        llmd_stage_run(&d->prefill, cf->prefill, in, eps, d, used);
    }

    return 0;
}


/*
 * pd-profile-handler (deprecated): decode, then prefill when the decider
 * (or, without one, the threshold of llm-d <= v0.4) says so.
 */
static int
llmd_pd(const llmd_config_t *cf, const llmd_decide_input_t *in,
    const llmd_endpoint_state_t *eps, llmd_decision_t *d, size_t *used)
{
    int                          top, run;
    const llmd_disagg_params_t  *dp;

    dp = &cf->handler->u.disagg;

    if (llmd_stage_run(&d->decode, cf->decode, in, eps, d, used) == 0) {
        return -1;
    }

    if (cf->prefill == NULL) {
        return 0;
    }

    top = d->decode.result.order[0];

    run = dp->prefill_decider != NULL
          ? llmd_decider_says(dp->prefill_decider, in, top)
          : llmd_pd_threshold(dp, in, top);

    if (run) {
        llmd_stage_run(&d->prefill, cf->prefill, in, eps, d, used);
    }

    return 0;
}


/* Whether the stage runs; ep: the decode pick (index in eps) or -1. */
static int
llmd_decider_says(const llmd_plugin_t *decider, const llmd_decide_input_t *in,
    int ep)
{
    int64_t   cached, uncached;
    uint32_t  need, gate;

    if (decider == NULL) {
        return 0;
    }

    switch (decider->type) {

    case LLMD_PLUGIN_ALWAYS_PD_DECIDER:
        return 1;

    case LLMD_PLUGIN_MULTIMODAL_DECIDER:
        return in->multimodal != 0;

    case LLMD_PLUGIN_PREFIX_PD_DECIDER:
        need = decider->u.pd_decider.non_cached_tokens;
        gate = decider->u.pd_decider.prompt_tokens;

        /* nonCachedTokens 0 disables the decider */
        if (need == 0 || ep < 0) {
            return 0;
        }

        if ((gate > 0 && in->prompt_tokens < gate)
            || in->prompt_tokens < need)
        {
            return 0;
        }

        cached = in->info ? in->info[ep].cached_tokens : 0;
        uncached = (int64_t) in->prompt_tokens - cached;

        return uncached >= (int64_t) need;

    default:
        return 0;
    }
}


/*
 * llm-d <= v0.4: prefill runs unless the uncached part of the prompt, in
 * characters, is below threshold; the cached part is counted as llm-d did,
 * (matched blocks - 1) x hashBlockSize x 4.
 */
static int
llmd_pd_threshold(const llmd_disagg_params_t *dp,
    const llmd_decide_input_t *in, int ep)
{
    double  hit, uncached;

    if (dp->threshold == 0) {
        return 1;
    }

    hit = (double) (int64_t) in->eps[ep].prefix_match - 1;
    hit = hit > 0 ? hit : 0;

    uncached = (double) in->prompt_chars
               - hit * dp->hash_block_size * 4;

    return uncached >= dp->threshold;
}


/*
 * header-profile-handler: the one profile; else the profile its header
 * names, the default one when the header is missing or blank; NULL when
 * that profile is not configured.
 */
static const llmd_profile_t *
llmd_header_profile(const llmd_config_t *cf, const llmd_decide_input_t *in)
{
    size_t       i, len;
    const char  *v, *name;

    if (cf->nprofiles == 1) {
        return &cf->profiles[0];
    }

    v = in->profile_header ? in->profile_header : "";

    while (isspace((unsigned char) *v)) {
        v++;
    }

    len = strlen(v);
    while (len > 0 && isspace((unsigned char) v[len - 1])) {
        len--;
    }

    if (len == 0) {
        v = cf->handler->u.header_profile.default_profile;
        len = strlen(v);
    }

    for (i = 0; i < cf->nprofiles; i++) {
        name = cf->profiles[i].name;

        if (strlen(name) == len && memcmp(name, v, len) == 0) {
            return &cf->profiles[i];
        }
    }

    return NULL;
}
