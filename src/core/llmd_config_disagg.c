/*
 * Profile handlers and the disaggregation deciders of an
 * EndpointPickerConfig: their parameters, and once every plugin and profile
 * is read, the stages the handler runs (cf->decode, cf->prefill,
 * cf->encode) with their deciders resolved (docs/scheduling.md, "Profile
 * handlers"). Names and defaults are llm-d's (disagg/, headerprofile/).
 */
#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/llmd_config_params.h"
#include "core/llmd_param.h"


static int llmd_disagg_handler(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_stage_order(llmd_yaml_ctx_t *ctx, yaml_node_t *node,
    int *prefill_first);
static int llmd_pd_handler(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p);
static int llmd_resolve_decider(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    const llmd_plugin_t *h, const char *name, const char *what,
    llmd_plugin_t **out);
static int llmd_disagg_stages(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    llmd_plugin_t *h);
static int llmd_pd_stages(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    llmd_plugin_t *h);
static void llmd_header_plugins(llmd_config_t *cf);
static void llmd_trim(char *s);


int
llmd_disagg_params(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    static const char *const   none[] = { NULL };
    static const char *const   decider[] = {
        "nonCachedTokens", "promptTokens", NULL
    };
    static const char *const   headers[] = {
        "prefillProfile", "encodeProfile", NULL
    };
    static const char *const   header_profile[] = {
        "headerName", "defaultProfile", NULL
    };

    switch (p->type) {

    case LLMD_PLUGIN_DISAGG_PROFILE_HANDLER:
        return llmd_disagg_handler(ctx, cf, doc, params, p);

    case LLMD_PLUGIN_PD_PROFILE_HANDLER:
        return llmd_pd_handler(ctx, cf, doc, params, p);

    case LLMD_PLUGIN_PREFIX_PD_DECIDER:
        if (llmd_param_count(ctx, llmd_yaml_get(doc, params, "nonCachedTokens"),
                             "nonCachedTokens parameter of prefix "
                             "disaggregation decider", 0,
                             &p->u.pd_decider.non_cached_tokens)
            != 0
            || llmd_param_count(ctx,
                                llmd_yaml_get(doc, params, "promptTokens"),
                                "promptTokens parameter of prefix "
                                "disaggregation decider", 0,
                                &p->u.pd_decider.prompt_tokens)
               != 0)
        {
            return -1;
        }

        return llmd_param_warn_unknown(cf, doc, params, p, decider);

    case LLMD_PLUGIN_HEADERS_HANDLER:
        if (llmd_param_strdup(ctx,
                              llmd_yaml_get(doc, params, "prefillProfile"),
                              "prefillProfile", "prefill",
                              &p->u.headers.prefill)
            != 0
            || llmd_param_strdup(ctx,
                                 llmd_yaml_get(doc, params, "encodeProfile"),
                                 "encodeProfile", "encode",
                                 &p->u.headers.encode)
               != 0)
        {
            return -1;
        }

        return llmd_param_warn_unknown(cf, doc, params, p, headers);

    case LLMD_PLUGIN_HEADER_PROFILE_HANDLER:
        if (llmd_param_header(ctx, llmd_yaml_get(doc, params, "headerName"),
                              "headerName", "EPP-Profile",
                              p->u.header_profile.header,
                              sizeof(p->u.header_profile.header))
            != 0
            || llmd_param_strdup(ctx,
                                 llmd_yaml_get(doc, params, "defaultProfile"),
                                 "defaultProfile", "decode",
                                 &p->u.header_profile.default_profile)
               != 0)
        {
            return -1;
        }

        llmd_trim(p->u.header_profile.default_profile);

        return llmd_param_warn_unknown(cf, doc, params, p, header_profile);

    default:
        /* always-disagg-pd-decider, always-disagg-multimodal-decider */
        return llmd_param_warn_unknown(cf, doc, params, p, none);
    }
}


/*
 * disagg-profile-handler: profiles.{decode,prefill,encode},
 * deciders.{prefill,encode}, stageOrder; or the deprecated flat names,
 * never both (llm-d decodes either schema strictly).
 */
static int
llmd_disagg_handler(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    size_t                     i;
    yaml_node_t               *nested, *legacy, *n;
    llmd_disagg_params_t      *dp;
    static const struct {
        const char  *map;           /* nested: map.key */
        const char  *key;
        const char  *flat;          /* deprecated flat name */
        const char  *dflt;
        size_t       off;
    } fields[] = {
        { "profiles", "decode", "decodeProfile", "decode",
          offsetof(llmd_disagg_params_t, decode) },
        { "profiles", "prefill", "prefillProfile", "prefill",
          offsetof(llmd_disagg_params_t, prefill) },
        { "profiles", "encode", "encodeProfile", "encode",
          offsetof(llmd_disagg_params_t, encode) },
        { "deciders", "prefill", "prefillDeciderPluginName", NULL,
          offsetof(llmd_disagg_params_t, prefill_decider_name) },
        { "deciders", "encode", "encodeDeciderPluginName", NULL,
          offsetof(llmd_disagg_params_t, encode_decider_name) },
    };
    static const char *const   known[] = {
        "stageOrder", "profiles", "deciders", "decodeProfile",
        "prefillProfile", "encodeProfile", "prefillDeciderPluginName",
        "encodeDeciderPluginName", "deciderPluginName", NULL
    };

    dp = &p->u.disagg;

    nested = llmd_yaml_get(doc, params, "profiles");
    if (nested == NULL) {
        nested = llmd_yaml_get(doc, params, "deciders");
    }

    /* pd-profile-handler's deciderPluginName: the weaker flat alias */
    legacy = llmd_yaml_get(doc, params, "deciderPluginName");
    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        n = llmd_yaml_get(doc, params, fields[i].flat);
        legacy = n ? n : legacy;
    }

    if (legacy != NULL && nested != NULL) {
        return llmd_yaml_error(ctx, legacy, "failed to parse parameters of "
                               "the disagg-profile-handler: use one format "
                               "exclusively: either nested profiles/"
                               "deciders or the deprecated flat fields");
    }

    for (i = 0; i < sizeof(fields) / sizeof(fields[0]); i++) {
        n = legacy ? llmd_yaml_get(doc, params, fields[i].flat)
                   : llmd_yaml_get(doc, llmd_yaml_get(doc, params,
                                                      fields[i].map),
                                   fields[i].key);

        if (legacy && n == NULL
            && fields[i].off
               == offsetof(llmd_disagg_params_t, prefill_decider_name))
        {
            n = llmd_yaml_get(doc, params, "deciderPluginName");
        }

        if (llmd_param_strdup(ctx, n, legacy ? fields[i].flat
                                             : fields[i].key,
                              fields[i].dflt,
                              (char **) ((char *) dp + fields[i].off))
            != 0)
        {
            return -1;
        }
    }

    if (legacy != NULL
        && llmd_config_warn(cf, llmd_yaml_line(legacy), "%s: the flat "
                            "parameters are deprecated, use profiles and "
                            "deciders", p->name)
           != 0)
    {
        return -1;
    }

    if (llmd_stage_order(ctx, llmd_yaml_get(doc, params, "stageOrder"),
                         &dp->prefill_first)
        != 0)
    {
        return -1;
    }

    if (dp->prefill_first && dp->prefill_decider_name != NULL) {
        return llmd_yaml_error(ctx, params, "prefill decider is not "
                               "supported in prefill-first stage order");
    }

    return llmd_param_warn_unknown(cf, doc, params, p, known);
}


/* "decode-first" or "prefill-first", any case, '-' and '_' ignored. */
static int
llmd_stage_order(llmd_yaml_ctx_t *ctx, yaml_node_t *node, int *prefill_first)
{
    char         buf[32];
    size_t       n;
    const char  *s, *c;

    *prefill_first = 0;

    if (node == NULL || llmd_yaml_is_null(node)) {
        return 0;
    }

    if (llmd_yaml_string(ctx, node, "stageOrder", &s) != 0) {
        return -1;
    }

    n = 0;
    for (c = s; *c && n + 1 < sizeof(buf); c++) {
        if (*c != '-' && *c != '_') {
            buf[n++] = (char) tolower((unsigned char) *c);
        }
    }

    buf[n] = '\0';

    if (*c == '\0') {
        if (n == 0 || strcmp(buf, "decodefirst") == 0
            || strcmp(buf, "decode") == 0)
        {
            return 0;
        }

        if (strcmp(buf, "prefillfirst") == 0 || strcmp(buf, "prefill") == 0)
        {
            *prefill_first = 1;
            return 0;
        }
    }

    return llmd_yaml_error(ctx, node, "invalid stage order \"%s\", must be "
                           "\"decode-first\" or \"prefill-first\"", s);
}


/*
 * pd-profile-handler (deprecated): decodeProfile, prefillProfile,
 * deciderPluginName (llm-d >= v0.5), and the threshold rule of llm-d <=
 * v0.4 (threshold, hashBlockSize) when no decider is configured.
 */
static int
llmd_pd_handler(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    yaml_document_t *doc, yaml_node_t *params, llmd_plugin_t *p)
{
    int64_t                    v;
    yaml_node_t               *n;
    llmd_disagg_params_t      *dp;
    static const char *const   known[] = {
        "decodeProfile", "prefillProfile", "prefixPluginType",
        "prefixPluginName", "primaryPort", "deciderPluginName",
        "prefixMatchInfoProducerName", "threshold", "hashBlockSize", NULL
    };

    dp = &p->u.disagg;

    if (llmd_param_strdup(ctx, llmd_yaml_get(doc, params, "decodeProfile"),
                          "decodeProfile", "decode", &dp->decode)
        != 0
        || llmd_param_strdup(ctx,
                             llmd_yaml_get(doc, params, "prefillProfile"),
                             "prefillProfile", "prefill", &dp->prefill)
           != 0
        || llmd_param_strdup(ctx,
                             llmd_yaml_get(doc, params, "deciderPluginName"),
                             "deciderPluginName", NULL,
                             &dp->prefill_decider_name)
           != 0)
    {
        return -1;
    }

    n = llmd_yaml_get(doc, params, "threshold");
    if (llmd_param_int(ctx, n, "threshold", &v) != 0) {
        return -1;
    }

    if (v < 0) {
        return llmd_yaml_error(ctx, n, "invalid threshold: must be >= 0, "
                               "got %lld", (long long) v);
    }

    dp->threshold = (uint32_t) v;

    n = llmd_yaml_get(doc, params, "hashBlockSize");
    dp->hash_block_size = 64;       /* 16 tokens x 4 characters */

    if (n != NULL && !llmd_yaml_is_null(n)) {
        if (llmd_param_int(ctx, n, "hashBlockSize", &v) != 0) {
            return -1;
        }

        if (v <= 0) {
            return llmd_yaml_error(ctx, n, "invalid hashBlockSize: must be "
                                   "> 0, got %lld", (long long) v);
        }

        dp->hash_block_size = (uint32_t) v;
    }

    n = llmd_yaml_get(doc, params, "primaryPort");
    if (llmd_param_int(ctx, n, "primaryPort", &v) != 0) {
        return -1;
    }

    if (v != 0) {
        if (v < 1 || v > 65535) {
            return llmd_yaml_error(ctx, n, "invalid primaryPort: must be "
                                   "between 1 and 65535, got %lld",
                                   (long long) v);
        }

        dp->primary_port = (uint32_t) v;

        if (llmd_config_warn(cf, llmd_yaml_line(n), "%s: primaryPort (data "
                             "parallel) is not used by "
                             "ngx_http_llmd_module; ignored", p->name)
            != 0)
        {
            return -1;
        }
    }

    if (llmd_config_warn(cf, p->line, "%s: pd-profile-handler is "
                         "deprecated, use disagg-profile-handler", p->name)
        != 0)
    {
        return -1;
    }

    return llmd_param_warn_unknown(cf, doc, params, p, known);
}


int
llmd_config_stages(llmd_yaml_ctx_t *ctx, llmd_config_t *cf)
{
    llmd_plugin_t   *h;
    llmd_profile_t  *prof;

    h = cf->handler;

    switch (h->type) {

    case LLMD_PLUGIN_DISAGG_PROFILE_HANDLER:
        if (llmd_disagg_stages(ctx, cf, h) != 0) {
            return -1;
        }

        break;

    case LLMD_PLUGIN_PD_PROFILE_HANDLER:
        if (llmd_pd_stages(ctx, cf, h) != 0) {
            return -1;
        }

        break;

    case LLMD_PLUGIN_HEADER_PROFILE_HANDLER:
        /* the profile of a request without the header */
        prof = llmd_config_find_profile(cf,
                                        h->u.header_profile.default_profile);
        cf->decode = (prof != NULL && cf->nprofiles > 1)
                     ? prof : &cf->profiles[0];
        break;

    default:
        cf->decode = &cf->profiles[0];
    }

    llmd_header_plugins(cf);

    return 0;
}


static int
llmd_disagg_stages(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    llmd_plugin_t *h)
{
    llmd_profile_t        *prefill, *encode;
    llmd_disagg_params_t  *dp;

    dp = &h->u.disagg;

    cf->decode = llmd_config_find_profile(cf, dp->decode);
    if (cf->decode == NULL) {
        return llmd_yaml_error_at(ctx, h->line, "%s: there is no scheduling "
                                  "profile \"%s\" (profiles.decode), which "
                                  "runs for every request", h->name,
                                  dp->decode);
    }

    if (llmd_resolve_decider(ctx, cf, h, dp->prefill_decider_name,
                             "deciders.prefill", &dp->prefill_decider)
        != 0
        || llmd_resolve_decider(ctx, cf, h, dp->encode_decider_name,
                                "deciders.encode", &dp->encode_decider)
           != 0)
    {
        return -1;
    }

    prefill = llmd_config_find_profile(cf, dp->prefill);
    encode = llmd_config_find_profile(cf, dp->encode);

    /* a stage runs when its profile exists and, decode first, a decider
       may ask for it; prefill first, prefill always runs */
    if (prefill != NULL && prefill != cf->decode
        && (dp->prefill_first || dp->prefill_decider != NULL))
    {
        cf->prefill = prefill;
    }

    if (encode != NULL && encode != cf->decode
        && dp->encode_decider != NULL)
    {
        cf->encode = encode;
    }

    if (dp->prefill_decider != NULL && cf->prefill == NULL
        && llmd_config_warn(cf, h->line, "%s: deciders.prefill is set but "
                            "there is no scheduling profile \"%s\"; the "
                            "prefill stage never runs", h->name, dp->prefill)
           != 0)
    {
        return -1;
    }

    if (dp->encode_decider != NULL && cf->encode == NULL
        && llmd_config_warn(cf, h->line, "%s: deciders.encode is set but "
                            "there is no scheduling profile \"%s\"; the "
                            "encode stage never runs", h->name, dp->encode)
           != 0)
    {
        return -1;
    }

    /* disagg-profile-handler writes the stage headers itself */
    cf->prefill_header = 1;
    cf->encode_header = 1;

    return 0;
}


static int
llmd_pd_stages(llmd_yaml_ctx_t *ctx, llmd_config_t *cf, llmd_plugin_t *h)
{
    llmd_plugin_t         *d;
    llmd_disagg_params_t  *dp;

    dp = &h->u.disagg;

    cf->decode = llmd_config_find_profile(cf, dp->decode);
    if (cf->decode == NULL) {
        return llmd_yaml_error_at(ctx, h->line, "%s: there is no scheduling "
                                  "profile \"%s\" (decodeProfile)", h->name,
                                  dp->decode);
    }

    if (dp->prefill_decider_name != NULL) {
        if (llmd_resolve_decider(ctx, cf, h, dp->prefill_decider_name,
                                 "deciderPluginName", &dp->prefill_decider)
            != 0)
        {
            return -1;
        }

    } else {
        /* llm-d >= v0.5 defaults to a decider of this name; older ones
           had none and used the threshold */
        d = llmd_config_find_plugin(cf, "prefix-based-pd-decider");
        if (d != NULL && llmd_plugin_is_decider(d->type)) {
            dp->prefill_decider = d;
        }
    }

    if (dp->prefill_decider != NULL && dp->threshold != 0
        && llmd_config_warn(cf, h->line, "%s: threshold is not used with "
                            "the decider \"%s\"; ignored", h->name,
                            dp->prefill_decider->name)
           != 0)
    {
        return -1;
    }

    /* with one profile everything ran after decode */
    cf->prefill = llmd_config_find_profile(cf, dp->prefill);
    if (cf->prefill == cf->decode) {
        cf->prefill = NULL;
    }

    return 0;
}


static int
llmd_resolve_decider(llmd_yaml_ctx_t *ctx, llmd_config_t *cf,
    const llmd_plugin_t *h, const char *name, const char *what,
    llmd_plugin_t **out)
{
    llmd_plugin_t  *d;

    *out = NULL;

    if (name == NULL) {
        return 0;
    }

    d = llmd_config_find_plugin(cf, name);
    if (d == NULL) {
        return llmd_yaml_error_at(ctx, h->line, "%s: %s plugin not found: "
                                  "%s", h->name, what, name);
    }

    if (!llmd_plugin_is_decider(d->type)) {
        return llmd_yaml_error_at(ctx, h->line, "%s: plugin %s (%s) is not "
                                  "a disaggregation decider (%s)", h->name,
                                  name, d->type_name, what);
    }

    *out = d;
    return 0;
}


/*
 * prefill-header-handler and disagg-headers-handler (deprecated PreRequest
 * plugins): the pick of the profile they name goes into the header.
 */
static void
llmd_header_plugins(llmd_config_t *cf)
{
    size_t          i;
    llmd_plugin_t  *p;

    for (i = 0; i < cf->nplugins; i++) {
        p = &cf->plugins[i];

        if (p->type != LLMD_PLUGIN_HEADERS_HANDLER) {
            continue;
        }

        if (cf->prefill != NULL
            && strcmp(cf->prefill->name, p->u.headers.prefill) == 0)
        {
            cf->prefill_header = 1;
        }

        if (cf->encode != NULL
            && strcmp(cf->encode->name, p->u.headers.encode) == 0)
        {
            cf->encode_header = 1;
        }
    }
}


/* Spaces around a name, as llm-d's strings.TrimSpace. */
static void
llmd_trim(char *s)
{
    size_t  len, skip;

    len = strlen(s);

    while (len > 0 && isspace((unsigned char) s[len - 1])) {
        s[--len] = '\0';
    }

    for (skip = 0; isspace((unsigned char) s[skip]); skip++) {
        /* void */
    }

    memmove(s, s + skip, len - skip + 1);
}
