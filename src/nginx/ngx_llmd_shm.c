/*
 * The shared-memory zone of one llmd upstream: the endpoint slots
 * (ngx_llmd_endpoints.c; keyed by address, so metrics, counters and the
 * prefix index survive a reload and follow a server when the list is
 * reordered), seqlocked metrics written by the helper process, decision
 * counters, and the prefix indexes.
 */

#include "nginx/ngx_llmd.h"


static ngx_int_t ngx_llmd_init_zone(ngx_shm_zone_t *shm_zone, void *data);
static void *ngx_llmd_alloc_region(ngx_slab_pool_t *shpool, size_t size,
    size_t min, size_t *len);


const double  ngx_llmd_hist_bounds_us[NGX_LLMD_HIST_BUCKETS] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 25000
};


ngx_int_t
ngx_llmd_shm_add(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf)
{
    ngx_str_t                      name;
    ngx_http_upstream_srv_conf_t  *uscf;

    uscf = lcf->upstream;

    name.len = sizeof("llmd_") - 1 + uscf->host.len;
    name.data = ngx_pnalloc(cf->pool, name.len);
    if (name.data == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(name.data, "llmd_%V", &uscf->host);

    lcf->shm_zone = ngx_shared_memory_add(cf, &name, lcf->zone_size,
                                          &ngx_http_llmd_module);
    if (lcf->shm_zone == NULL) {
        return NGX_ERROR;
    }

    if (lcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "shared zone \"%V\" is already used", &name);
        return NGX_ERROR;
    }

    lcf->shm_zone->init = ngx_llmd_init_zone;
    lcf->shm_zone->data = lcf;

    return NGX_OK;
}


static ngx_int_t
ngx_llmd_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_llmd_srv_conf_t  *olcf = data;

    size_t                 len, size;
    void                  *mem;
    ngx_int_t              rc;
    ngx_slab_pool_t       *shpool;
    ngx_llmd_shctx_t      *sh;
    ngx_llmd_srv_conf_t   *lcf;

    lcf = shm_zone->data;
    shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (olcf && olcf->sh) {
        /* reload: keep the endpoints, counters and the prefix index */
        lcf->sh = olcf->sh;
        lcf->shpool = olcf->shpool;
        lcf->index = olcf->index;
        lcf->kv_index = olcf->kv_index;

        if (lcf->precise && lcf->kv_index == NULL) {
            ngx_log_error(NGX_LOG_WARN, shm_zone->shm.log, 0,
                          "llmd zone \"%V\" was created without a KV-event "
                          "index: precise scoring starts after a restart, "
                          "approximate until then", &shm_zone->shm.name);
            lcf->precise = 0;
        }

        ngx_shmtx_lock(&shpool->mutex);
        rc = ngx_llmd_endpoints_map(lcf, shm_zone->shm.log);

        if (rc == NGX_OK) {
            rc = ngx_llmd_decide_zone(lcf, shpool, 1, shm_zone->shm.log);
        }

        ngx_shmtx_unlock(&shpool->mutex);

        return rc;
    }

    lcf->shpool = shpool;

    sh = ngx_slab_calloc(shpool, sizeof(ngx_llmd_shctx_t));
    if (sh == NULL) {
        return NGX_ERROR;
    }

    sh->magic = NGX_LLMD_SHM_MAGIC;
    sh->version = NGX_LLMD_SHM_VERSION;
    shpool->data = sh;
    lcf->sh = sh;

    len = sizeof(" in llmd zone \"\"") + shm_zone->shm.name.len;

    shpool->log_ctx = ngx_slab_alloc(shpool, len);
    if (shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(shpool->log_ctx, " in llmd zone \"%V\"%Z",
                &shm_zone->shm.name);

    shpool->log_nomem = 0;

    if (ngx_llmd_decide_zone(lcf, shpool, 0, shm_zone->shm.log) != NGX_OK) {
        return NGX_ERROR;
    }

    /*
     * The indexes take every remaining page: all of it for the approximate
     * index, or three quarters for the precise (KV-event) index and the
     * rest for the approximate one, which serves pods without live events.
     */
    size = shpool->pfree * ngx_pagesize;

    if (lcf->precise) {
        mem = ngx_llmd_alloc_region(shpool, size / 4 * 3,
                                    llmd_kv_index_min_size(), &len);
        if (mem == NULL) {
            goto too_small;
        }

        lcf->kv_index = llmd_kv_index_create(mem, len);
        if (lcf->kv_index == NULL) {
            goto too_small;
        }

        sh->kv_index_mem = mem;
        sh->kv_index_size = len;
        size = shpool->pfree * ngx_pagesize;
    }

    mem = ngx_llmd_alloc_region(shpool, size, llmd_prefix_index_min_size(),
                                &len);
    if (mem == NULL) {
        goto too_small;
    }

    lcf->index = llmd_prefix_index_create(mem, len);
    if (lcf->index == NULL) {
        goto too_small;
    }

    sh->index_mem = mem;
    sh->index_size = len;

    return ngx_llmd_endpoints_map(lcf, shm_zone->shm.log);

too_small:

    ngx_log_error(NGX_LOG_EMERG, shm_zone->shm.log, 0,
                  "llmd zone \"%V\" is too small for its indexes",
                  &shm_zone->shm.name);
    return NGX_ERROR;
}


/* The largest slab allocation up to size bytes (and at least min). */
static void *
ngx_llmd_alloc_region(ngx_slab_pool_t *shpool, size_t size, size_t min,
    size_t *len)
{
    void  *mem;

    size = ngx_align(size, ngx_pagesize);

    while (size > min) {
        size -= ngx_pagesize;
        mem = ngx_slab_alloc(shpool, size);
        if (mem) {
            *len = size;
            return mem;
        }
    }

    return NULL;
}




void
ngx_llmd_metrics_read(ngx_llmd_endpoint_sh_t *ep, ngx_llmd_metrics_sh_t *out)
{
    ngx_uint_t    tries;
    ngx_atomic_uint_t  seq;

    for (tries = 0; tries < 64; tries++) {
        seq = ep->metrics.seq;

        if (seq & 1) {
            ngx_cpu_pause();
            continue;
        }

        ngx_memory_barrier();
        ngx_memcpy(out, (void *) &ep->metrics, sizeof(ngx_llmd_metrics_sh_t));
        ngx_memory_barrier();

        if (ep->metrics.seq == seq) {
            return;
        }
    }

    /* a writer that died mid-update: treat as no metrics */
    ngx_memzero(out, sizeof(ngx_llmd_metrics_sh_t));
}


void
ngx_llmd_metrics_write(ngx_llmd_endpoint_sh_t *ep, ngx_llmd_metrics_sh_t *in)
{
    ngx_atomic_uint_t  seq;

    seq = ep->metrics.seq;
    if (seq & 1) {
        /* a previous writer died mid-update */
        seq++;
    }

    ep->metrics.seq = seq + 1;
    ngx_memory_barrier();

    ep->metrics.waiting = in->waiting;
    ep->metrics.running = in->running;
    ep->metrics.kv_usage = in->kv_usage;
    ep->metrics.block_size = in->block_size;
    ep->metrics.num_gpu_blocks = in->num_gpu_blocks;
    ep->metrics.have_waiting = in->have_waiting;
    ep->metrics.have_kv = in->have_kv;
    ep->metrics.updated = in->updated;
    ep->metrics.error_time = in->error_time;
    ngx_memcpy(ep->metrics.last_error, in->last_error, NGX_LLMD_ERROR_LEN);

    ngx_memory_barrier();
    ep->metrics.seq = seq + 2;
}


void
ngx_llmd_record_decision(ngx_llmd_shctx_t *sh, uint64_t ns)
{
    ngx_uint_t  i;
    double      us;

    us = (double) ns / 1000.0;

    for (i = 0; i < NGX_LLMD_HIST_BUCKETS; i++) {
        if (us <= ngx_llmd_hist_bounds_us[i]) {
            break;
        }
    }

    (void) ngx_atomic_fetch_add(&sh->decision_hist[i], 1);
    (void) ngx_atomic_fetch_add(&sh->decision_ns_sum, ns);
    (void) ngx_atomic_fetch_add(&sh->decisions, 1);
}
