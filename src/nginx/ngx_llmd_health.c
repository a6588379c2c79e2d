/*
 * llmd_health [UPSTREAM]: a readiness answer for load balancers and
 * kubelet probes, safe to expose (no addresses, no counters): 200 when at
 * least one endpoint of each llmd upstream (or of the one named) is a
 * candidate with fresh metrics, else 503. The body says how many are
 * ready:  {"status":"ready","upstreams":{"vllm":{"endpoints":4,
 * "ready":3}}}
 */

#include "nginx/ngx_llmd.h"


static ngx_int_t ngx_llmd_health_handler(ngx_http_request_t *r);
static ngx_uint_t ngx_llmd_health_names(ngx_llmd_loc_conf_t *llcf,
    ngx_llmd_srv_conf_t *lcf);
static ngx_uint_t ngx_llmd_ready(ngx_llmd_srv_conf_t *lcf,
    ngx_uint_t *members);


char *
ngx_llmd_health(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_llmd_loc_conf_t  *llcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (clcf->handler == ngx_llmd_health_handler) {
        return "is duplicate";
    }

    value = cf->args->elts;

    if (cf->args->nelts == 2) {
        llcf->health_upstream = value[1];
    }

    clcf->handler = ngx_llmd_health_handler;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_llmd_health_handler(ngx_http_request_t *r)
{
    u_char                *p;
    size_t                 size;
    ngx_int_t              rc;
    ngx_buf_t             *b;
    ngx_uint_t             i, ready, members, all, found;
    ngx_chain_t            out;
    ngx_llmd_loc_conf_t   *llcf;
    ngx_llmd_srv_conf_t  **lcfp;
    ngx_llmd_main_conf_t  *lmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);
    if (rc != NGX_OK) {
        return rc;
    }

    llcf = ngx_http_get_module_loc_conf(r, ngx_http_llmd_module);
    lmcf = ngx_http_get_module_main_conf(r, ngx_http_llmd_module);
    lcfp = lmcf->upstreams.elts;

    size = sizeof("{\"status\":\"not ready\",\"upstreams\":{}}\n");

    for (i = 0; i < lmcf->upstreams.nelts; i++) {
        size += lcfp[i]->upstream->host.len * 6
                + sizeof("\"\":{\"endpoints\":,\"ready\":},")
                + 2 * NGX_INT_T_LEN;
    }

    b = ngx_create_temp_buf(r->pool, size);
    if (b == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /* first whether every upstream asked about is ready, then the body */
    all = 1;
    found = 0;

    for (i = 0; i < lmcf->upstreams.nelts; i++) {
        if (ngx_llmd_health_names(llcf, lcfp[i])) {
            found++;
            all = all && ngx_llmd_ready(lcfp[i], &members) > 0;
        }
    }

    if (found == 0) {
        /* a location naming no llmd upstream is never ready */
        all = 0;
    }

    p = ngx_sprintf(b->last, "{\"status\":\"%s\",\"upstreams\":{",
                    all ? "ready" : "not ready");
    found = 0;

    for (i = 0; i < lmcf->upstreams.nelts; i++) {
        if (!ngx_llmd_health_names(llcf, lcfp[i])) {
            continue;
        }

        ready = ngx_llmd_ready(lcfp[i], &members);

        if (found++) {
            *p++ = ',';
        }

        *p++ = '"';
        p = (u_char *) ngx_escape_json(p, lcfp[i]->upstream->host.data,
                                       lcfp[i]->upstream->host.len);
        p = ngx_sprintf(p, "\":{\"endpoints\":%ui,\"ready\":%ui}",
                        members, ready);
    }

    *p++ = '}';
    *p++ = '}';
    *p++ = LF;

    b->last = p;
    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.status = all ? NGX_HTTP_OK
                                : NGX_HTTP_SERVICE_UNAVAILABLE;
    r->headers_out.content_length_n = b->last - b->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


/* Whether the location asks about this upstream (all, or the one named). */
static ngx_uint_t
ngx_llmd_health_names(ngx_llmd_loc_conf_t *llcf, ngx_llmd_srv_conf_t *lcf)
{
    return llcf->health_upstream.len == 0
           || (llcf->health_upstream.len == lcf->upstream->host.len
               && ngx_strncmp(llcf->health_upstream.data,
                              lcf->upstream->host.data,
                              lcf->upstream->host.len) == 0);
}


/* Candidates with fresh metrics (with llmd_metrics off: candidates). */
static ngx_uint_t
ngx_llmd_ready(ngx_llmd_srv_conf_t *lcf, ngx_uint_t *members)
{
    ngx_uint_t               i, n, ready;
    ngx_msec_t               now;
    ngx_llmd_cand_t          cands[LLMD_MAX_ENDPOINTS];
    ngx_llmd_metrics_sh_t    m;
    ngx_llmd_endpoint_sh_t  *ep;

    n = ngx_llmd_members_read(lcf->sh, cands);
    *members = n;

    if (!lcf->metrics) {
        return n;
    }

    now = ngx_current_msec;
    ready = 0;

    for (i = 0; i < n; i++) {
        ep = &lcf->sh->endpoints[cands[i].slot];
        ngx_llmd_metrics_read(ep, &m);

        if (m.updated != 0
            && ngx_llmd_metrics_age(now, m.updated) <= lcf->metrics_stale)
        {
            ready++;
        }
    }

    return ready;
}
