/*
 * The helper process that keeps the endpoints (discovery), their metrics
 * and the KV-event index fresh in shared memory.
 *
 * nginx has no hook for extra processes, but it starts a supervised
 * "cache manager process" whenever a registered path has a manager
 * callback (ngx_add_path): the master respawns it if it dies and replaces
 * it on reload. llmd registers such a path and starts its scrapers from the
 * first manager call in that process. With master_process off there is no
 * helper, so the single process runs the scrapers itself.
 */

#include "nginx/ngx_llmd.h"


#define NGX_LLMD_MANAGER_DELAY  3600000


static ngx_msec_t ngx_llmd_helper_manager(void *data);
static void ngx_llmd_helper_start(ngx_cycle_t *cycle,
    ngx_llmd_main_conf_t *lmcf);


static ngx_uint_t  ngx_llmd_helper_started;


ngx_int_t
ngx_llmd_helper_add_path(ngx_conf_t *cf, ngx_llmd_main_conf_t *lmcf)
{
    ngx_path_t  *path;

    if (lmcf->helper_path) {
        return NGX_OK;
    }

    path = ngx_pcalloc(cf->pool, sizeof(ngx_path_t));
    if (path == NULL) {
        return NGX_ERROR;
    }

    /* named *_temp so test harnesses clean it like nginx's temp paths */
    ngx_str_set(&path->name, "llmd_temp");

    if (ngx_conf_full_name(cf->cycle, &path->name, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    path->manager = ngx_llmd_helper_manager;
    path->data = lmcf;
    path->conf_file = cf->conf_file->file.name.data;
    path->line = cf->conf_file->line;

    if (ngx_add_path(cf, &path) != NGX_OK) {
        return NGX_ERROR;
    }

    lmcf->helper_path = path;

    return NGX_OK;
}


static ngx_msec_t
ngx_llmd_helper_manager(void *data)
{
    ngx_llmd_main_conf_t  *lmcf = data;

    if (ngx_process == NGX_PROCESS_HELPER && !ngx_llmd_helper_started) {
        ngx_log_error(NGX_LOG_NOTICE, ngx_cycle->log, 0,
                      "llmd helper started, scraping %ui upstream(s)",
                      lmcf->upstreams.nelts);
        ngx_llmd_helper_start((ngx_cycle_t *) ngx_cycle, lmcf);
    }

    /* our own timers drive the work; do not wake a real cache manager */
    return NGX_LLMD_MANAGER_DELAY;
}


ngx_int_t
ngx_llmd_helper_init_process(ngx_cycle_t *cycle)
{
    ngx_llmd_main_conf_t  *lmcf;

    if (ngx_process != NGX_PROCESS_SINGLE) {
        return NGX_OK;
    }

    lmcf = ngx_http_cycle_get_module_main_conf(cycle, ngx_http_llmd_module);
    if (lmcf == NULL || lmcf->upstreams.nelts == 0) {
        return NGX_OK;
    }

    ngx_llmd_helper_start(cycle, lmcf);

    return NGX_OK;
}


void
ngx_llmd_helper_exit_process(ngx_cycle_t *cycle)
{
    if (ngx_llmd_helper_started) {
        ngx_llmd_discovery_stop_all();
        ngx_llmd_scrape_stop_all();
        ngx_llmd_kv_stop_all();
    }
}


static void
ngx_llmd_helper_start(ngx_cycle_t *cycle, ngx_llmd_main_conf_t *lmcf)
{
    ngx_uint_t              i, s;
    ngx_llmd_srv_conf_t   **lcfp, *lcf;

    ngx_llmd_helper_started = 1;

    lcfp = lmcf->upstreams.elts;

    for (i = 0; i < lmcf->upstreams.nelts; i++) {
        lcf = lcfp[i];

        /* a helper of the previous configuration stops writing now */
        lcf->sh->writer_pid = ngx_pid;

        /* the endpoints known now: `server` lines, and what sources found
           before a reload; discovery adds and removes the others */
        for (s = 0; lcf->metrics && s < LLMD_MAX_ENDPOINTS; s++) {
            if (lcf->sh->endpoints[s].state == NGX_LLMD_EP_FREE
                || lcf->sh->endpoints[s].state == NGX_LLMD_EP_DRAINING)
            {
                continue;
            }

            if (ngx_llmd_scrape_add(lcf, s) != NGX_OK) {
                ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                              "llmd: cannot start scraping upstream \"%V\"",
                              &lcf->upstream->host);
                break;
            }
        }

        if (ngx_llmd_kv_start(cycle, lcf) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                          "llmd: cannot receive KV events for upstream "
                          "\"%V\"; scoring falls back to approximate",
                          &lcf->upstream->host);
        }

        if (ngx_llmd_discovery_start(cycle, lcf) != NGX_OK) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, 0,
                          "llmd: cannot start endpoint discovery for "
                          "upstream \"%V\"", &lcf->upstream->host);
        }
    }
}
