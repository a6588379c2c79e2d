/*
 * What the balancer decided, for access logs and headers:
 *   $llmd_endpoint      the endpoint picked (last attempt), e.g. 10.0.0.1:8000
 *   $llmd_profile       the scheduling profile that routed the request
 *                       (the decode stage's)
 *   $llmd_prefill_endpoint  the prefill pod of a disaggregated request
 *   $llmd_prefix_match  prompt blocks found on the picked server / total
 *   $llmd_scores        every server with its weighted total, best first
 *   $llmd_decision_us   body parse + scoring + pick, microseconds
 */

#include "nginx/ngx_llmd.h"


static ngx_int_t ngx_llmd_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


enum {
    NGX_LLMD_VAR_ENDPOINT = 0,
    NGX_LLMD_VAR_PROFILE,
    NGX_LLMD_VAR_PREFIX_MATCH,
    NGX_LLMD_VAR_SCORES,
    NGX_LLMD_VAR_DECISION_US,
    NGX_LLMD_VAR_PREFILL
};


static ngx_http_variable_t  ngx_llmd_vars[] = {

    { ngx_string("llmd_endpoint"), NULL, ngx_llmd_variable,
      NGX_LLMD_VAR_ENDPOINT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmd_profile"), NULL, ngx_llmd_variable,
      NGX_LLMD_VAR_PROFILE, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmd_prefix_match"), NULL, ngx_llmd_variable,
      NGX_LLMD_VAR_PREFIX_MATCH, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmd_scores"), NULL, ngx_llmd_variable,
      NGX_LLMD_VAR_SCORES, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmd_decision_us"), NULL, ngx_llmd_variable,
      NGX_LLMD_VAR_DECISION_US, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("llmd_prefill_endpoint"), NULL, ngx_llmd_variable,
      NGX_LLMD_VAR_PREFILL, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_llmd_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_llmd_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_llmd_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    u_char                  *p;
    size_t                   len;
    double                   m;
    ngx_uint_t               k, i;
    ngx_llmd_ctx_t          *ctx;
    ngx_llmd_endpoint_sh_t  *ep;

    ctx = ngx_http_get_module_ctx(r, ngx_http_llmd_module);

    if (ctx == NULL || !ctx->scheduled) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = NULL;
    len = 0;

    switch (data) {

    case NGX_LLMD_VAR_ENDPOINT:
        if (ctx->chosen < 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ctx->peer_name.data;
        len = ctx->peer_name.len;
        break;

    case NGX_LLMD_VAR_PROFILE:
        p = (u_char *) (ctx->decision && ctx->decision->decode.profile
                        ? ctx->decision->decode.profile->name
                        : ctx->lcf->profile->name);
        len = ngx_strlen(p);
        break;

    case NGX_LLMD_VAR_PREFILL:
        if (ctx->prefill < 0) {
            v->not_found = 1;
            return NGX_OK;
        }

        p = ctx->prefill_name.data;
        len = ctx->prefill_name.len;
        break;

    case NGX_LLMD_VAR_PREFIX_MATCH:
        p = ngx_pnalloc(r->pool, 2 * NGX_INT_T_LEN + 1);
        if (p == NULL) {
            return NGX_ERROR;
        }

        m = ctx->chosen >= 0 ? ctx->match[ctx->chosen] : 0;

        /* precise matches are tier-weighted: CPU blocks count 0.8 */
        if (m == (double) (uint32_t) m) {
            len = ngx_sprintf(p, "%uD/%uD", (uint32_t) m, ctx->prefix_total)
                  - p;
        } else {
            len = ngx_sprintf(p, "%.1f/%uD", m, ctx->prefix_total) - p;
        }
        break;

    case NGX_LLMD_VAR_SCORES:
        p = ngx_pnalloc(r->pool, ctx->neps * (NGX_LLMD_NAME_LEN
                                              + sizeof("=-0000.0000 ")));
        if (p == NULL) {
            return NGX_ERROR;
        }

        v->data = p;

        for (k = 0; ctx->result && k < ctx->result->norder; k++) {
            i = ctx->result->order[k];
            ep = &ctx->lcf->sh->endpoints[ctx->cands[i].slot];

            if (k) {
                *p++ = ' ';
            }

            /* a name read while the slot changes hands is only a log */
            p = ngx_sprintf(p, "%*s=%.3f", ngx_min(ep->name_len,
                                                   NGX_LLMD_NAME_LEN),
                            ep->name, ctx->result->total[i]);
        }

        len = p - v->data;
        p = v->data;
        break;

    case NGX_LLMD_VAR_DECISION_US:
        p = ngx_pnalloc(r->pool, NGX_INT64_LEN + 3);
        if (p == NULL) {
            return NGX_ERROR;
        }

        len = ngx_sprintf(p, "%.1f", (double) ctx->decision_ns / 1000.0)
              - p;
        break;
    }

    v->len = len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}
