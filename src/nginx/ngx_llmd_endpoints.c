/*
 * The endpoints of an llmd upstream: slots in shared memory keyed by
 * address, where `server` lines and discovery sources (DNS, files) put
 * them, and the candidate list every request reads.
 *
 * Writers (the configuration when the zone is set up, the helper process
 * when a source changes) hold the zone's mutex. Requests read without it:
 * the candidate list under its seqlock, a slot's address checked against
 * its incarnation, which changes before a slot is given to another
 * endpoint.
 */

#include "nginx/ngx_llmd.h"


static ngx_int_t ngx_llmd_slot_find(ngx_llmd_shctx_t *sh, u_char *name,
    size_t len);
static ngx_int_t ngx_llmd_slot_new(ngx_llmd_shctx_t *sh);
static void ngx_llmd_slot_assign(ngx_llmd_endpoint_sh_t *ep,
    ngx_str_t *name, struct sockaddr *sockaddr, socklen_t socklen);
static void ngx_llmd_slot_free(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot);
static void ngx_llmd_slot_forget(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot);
static void ngx_llmd_members_rebuild(ngx_llmd_shctx_t *sh);


/*
 * The `server` lines of the upstream block, one static endpoint per
 * address (nginx resolved names at configuration time). A placeholder
 * added by llmd_endpoints (no address) is skipped.
 */
ngx_int_t
ngx_llmd_statics_init(ngx_conf_t *cf, ngx_llmd_srv_conf_t *lcf)
{
    ngx_uint_t                     i, j, k, n;
    ngx_llmd_static_t             *st;
    ngx_llmd_server_labels_t      *sl;
    ngx_http_upstream_server_t    *server;
    ngx_http_upstream_srv_conf_t  *uscf;

    uscf = lcf->upstream;

    if (uscf->shm_zone) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "upstream \"%V\": "
                           "llmd_balancer keeps its own shared memory "
                           "(llmd_balancer zone=SIZE); remove \"zone\"",
                           &uscf->host);
        return NGX_ERROR;
    }

    server = uscf->servers->elts;
    n = 0;

    for (i = 0; i < uscf->servers->nelts; i++) {
        if (server[i].backup) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                               "llmd_balancer does not support backup "
                               "servers in upstream \"%V\"", &uscf->host);
            return NGX_ERROR;
        }

        n += server[i].naddrs;
    }

    if (n > LLMD_MAX_ENDPOINTS) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "upstream \"%V\" has %ui servers; llmd_balancer "
                           "schedules at most %d", &uscf->host, n,
                           LLMD_MAX_ENDPOINTS);
        return NGX_ERROR;
    }

    if (ngx_array_init(&lcf->statics, cf->pool, n ? n : 1,
                       sizeof(ngx_llmd_static_t))
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    for (i = 0; i < uscf->servers->nelts; i++) {
        for (j = 0; j < server[i].naddrs; j++) {

            st = lcf->statics.elts;

            for (k = 0; k < lcf->statics.nelts; k++) {
                if (st[k].addr.name.len == server[i].addrs[j].name.len
                    && ngx_strncmp(st[k].addr.name.data,
                                   server[i].addrs[j].name.data,
                                   st[k].addr.name.len)
                       == 0)
                {
                    break;
                }
            }

            if (k < lcf->statics.nelts) {
                ngx_conf_log_error(NGX_LOG_WARN, cf, 0, "upstream \"%V\": "
                                   "server %V is listed twice; llmd_balancer"
                                   " schedules it once", &uscf->host,
                                   &server[i].addrs[j].name);
                continue;
            }

            if (server[i].addrs[j].name.len >= NGX_LLMD_NAME_LEN) {
                ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                                   "server name \"%V\" is too long",
                                   &server[i].addrs[j].name);
                return NGX_ERROR;
            }

            st = ngx_array_push(&lcf->statics);
            if (st == NULL) {
                return NGX_ERROR;
            }

            st->addr = server[i].addrs[j];
            st->max_fails = server[i].max_fails;
            st->fail_timeout = server[i].fail_timeout;
            st->max_conns = server[i].max_conns;
            st->down = server[i].down;
            st->slot = LLMD_MAX_ENDPOINTS;
            st->labels = NULL;

            /* llmd_server_labels: by the address as written or resolved */
            sl = lcf->server_labels ? lcf->server_labels->elts : NULL;

            for (k = 0; sl && k < lcf->server_labels->nelts; k++) {
                if ((sl[k].address.len == server[i].name.len
                     && ngx_strncmp(sl[k].address.data, server[i].name.data,
                                    server[i].name.len) == 0)
                    || (sl[k].address.len == st->addr.name.len
                        && ngx_strncmp(sl[k].address.data,
                                       st->addr.name.data,
                                       st->addr.name.len) == 0))
                {
                    st->labels = sl[k].labels;
                    sl[k].used = 1;
                    break;
                }
            }
        }
    }

    sl = lcf->server_labels ? lcf->server_labels->elts : NULL;

    for (k = 0; sl && k < lcf->server_labels->nelts; k++) {
        if (!sl[k].used) {
            ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "upstream \"%V\": "
                               "llmd_server_labels \"%V\" (line %ui) names "
                               "no server", &uscf->host, &sl[k].address,
                               sl[k].line);
            return NGX_ERROR;
        }
    }

    return NGX_OK;
}


/*
 * When the zone is set up (start or reload), under the mutex: every
 * `server` gets a slot, the one it had before if any; slots of servers and
 * sources that left the configuration are freed; endpoints of sources
 * still configured stay as they were until the helper asks the source
 * again.
 */
ngx_int_t
ngx_llmd_endpoints_map(ngx_llmd_srv_conf_t *lcf, ngx_log_t *log)
{
    ngx_int_t                s;
    ngx_uint_t               i, j, keep;
    ngx_llmd_shctx_t        *sh;
    ngx_llmd_static_t       *st;
    ngx_llmd_source_t       *src;
    ngx_llmd_endpoint_sh_t  *ep;

    sh = lcf->sh;
    st = lcf->statics.elts;
    src = lcf->sources.elts;

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        ep = &sh->endpoints[i];

        if (ep->state == NGX_LLMD_EP_FREE) {
            continue;
        }

        keep = 0;

        if (ep->source_key == 0) {
            for (j = 0; j < lcf->statics.nelts; j++) {
                if (st[j].addr.name.len == ep->name_len
                    && ngx_strncmp(st[j].addr.name.data, ep->name,
                                   ep->name_len) == 0)
                {
                    keep = 1;
                    break;
                }
            }

        } else {
            for (j = 0; j < lcf->sources.nelts; j++) {
                if (src[j].key == ep->source_key) {
                    keep = 1;
                    break;
                }
            }
        }

        if (!keep) {
            ngx_llmd_slot_free(lcf, i);
        }
    }

    for (j = 0; j < lcf->statics.nelts; j++) {
        s = ngx_llmd_slot_find(sh, st[j].addr.name.data,
                               st[j].addr.name.len);

        if (s == NGX_ERROR) {
            s = ngx_llmd_slot_new(sh);
            if (s == NGX_ERROR) {
                ngx_log_error(NGX_LOG_EMERG, log, 0,
                              "llmd: no free endpoint slot for \"%V\"",
                              &st[j].addr.name);
                return NGX_ERROR;
            }

            ngx_llmd_slot_forget(lcf, s);
            ngx_llmd_slot_assign(&sh->endpoints[s], &st[j].addr.name,
                                 st[j].addr.sockaddr, st[j].addr.socklen);
        }

        /* a discovered endpoint that is now a `server` line, too */
        ep = &sh->endpoints[s];
        ep->source_key = 0;
        ep->source_type = NGX_LLMD_SOURCE_STATIC;
        if (st[j].labels) {
            ngx_cpystrn(ep->labels, st[j].labels, LLMD_LABELS_LEN);

        } else {
            ep->labels[0] = '\0';
        }

        ep->max_fails = st[j].max_fails;
        ep->fail_timeout = st[j].fail_timeout;
        ep->max_conns = st[j].max_conns;
        ep->down = st[j].down;
        ep->state = NGX_LLMD_EP_ACTIVE;

        st[j].slot = s;
    }

    /* discovery statistics follow their source by key */
    for (j = 0; j < lcf->sources.nelts; j++) {
        for (i = 0; i < NGX_LLMD_MAX_SOURCES; i++) {
            if (sh->sources[i].key == src[j].key) {
                break;
            }
        }

        if (i == NGX_LLMD_MAX_SOURCES) {
            for (i = 0; i < NGX_LLMD_MAX_SOURCES; i++) {
                if (sh->sources[i].key == 0) {
                    ngx_memzero(&sh->sources[i],
                                sizeof(ngx_llmd_source_sh_t));
                    sh->sources[i].key = src[j].key;
                    break;
                }
            }
        }

        src[j].index = i;
    }

    for (i = 0; i < NGX_LLMD_MAX_SOURCES; i++) {
        for (j = 0; j < lcf->sources.nelts; j++) {
            if (src[j].index == i) {
                break;
            }
        }

        if (j == lcf->sources.nelts) {
            sh->sources[i].key = 0;
        }
    }

    ngx_llmd_members_rebuild(sh);

    return NGX_OK;
}


/*
 * What a source found now: new addresses get a slot (PENDING, or ACTIVE
 * at once when metrics are off), vanished ones start draining. Slots that
 * changed are marked in added[] / removed[] for the helper's scrapers and
 * KV-event sockets. Endpoints another source or a `server` line owns are
 * left alone. Returns how many addresses found no free slot.
 */
ngx_uint_t
ngx_llmd_endpoints_sync(ngx_llmd_srv_conf_t *lcf, ngx_llmd_source_t *src,
    ngx_llmd_found_t *found, ngx_uint_t n, u_char *added, u_char *removed)
{
    ngx_int_t                s;
    ngx_uint_t               i, j, over, listed, changed;
    ngx_llmd_shctx_t        *sh;
    ngx_llmd_endpoint_sh_t  *ep;

    sh = lcf->sh;
    over = 0;
    changed = 0;

    ngx_shmtx_lock(&lcf->shpool->mutex);

    /*
     * A reload removed this source (ngx_llmd_endpoints_map() freed its
     * endpoints) while the previous helper still runs: what it finds now
     * must not bring them back.
     */
    if (src->index >= NGX_LLMD_MAX_SOURCES
        || sh->sources[src->index].key != src->key)
    {
        ngx_shmtx_unlock(&lcf->shpool->mutex);
        return 0;
    }

    /* gone from the answer: drain */
    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        ep = &sh->endpoints[i];

        if (ep->source_key != src->key
            || (ep->state != NGX_LLMD_EP_PENDING
                && ep->state != NGX_LLMD_EP_ACTIVE))
        {
            continue;
        }

        listed = 0;

        for (j = 0; j < n; j++) {
            if (found[j].name.len == ep->name_len
                && ngx_strncmp(found[j].name.data, ep->name, ep->name_len)
                   == 0)
            {
                listed = 1;
                break;
            }
        }

        if (!listed) {
            ep->state = NGX_LLMD_EP_DRAINING;
            ep->changed = ngx_current_msec;
            ngx_llmd_slot_forget(lcf, i);
            removed[i] = 1;
            changed = 1;
        }
    }

    for (j = 0; j < n; j++) {
        s = ngx_llmd_slot_find(sh, found[j].name.data, found[j].name.len);

        if (s != NGX_ERROR) {
            ep = &sh->endpoints[s];

            if (ep->source_key != src->key) {
                continue;             /* a `server` or another source's */
            }

            /* labels may change without the address changing */
            ngx_cpystrn(ep->labels, found[j].labels, LLMD_LABELS_LEN);

            if (ep->state != NGX_LLMD_EP_DRAINING) {
                continue;
            }

            /* back before it was reaped: a fresh start, as a new pod */
            ngx_llmd_slot_free(lcf, s);
        }

        s = ngx_llmd_slot_new(sh);
        if (s == NGX_ERROR) {
            over++;
            continue;
        }

        ep = &sh->endpoints[s];
        ngx_llmd_slot_forget(lcf, s);
        ngx_llmd_slot_assign(ep, &found[j].name, found[j].sockaddr,
                             found[j].socklen);
        ep->source_key = src->key;
        ep->source_type = src->type;
        ngx_cpystrn(ep->labels, found[j].labels, LLMD_LABELS_LEN);
        ep->state = lcf->metrics ? NGX_LLMD_EP_PENDING : NGX_LLMD_EP_ACTIVE;
        ep->changed = ngx_current_msec;
        added[s] = 1;
        removed[s] = 0;
        changed = 1;
    }

    if (changed) {
        ngx_llmd_members_rebuild(sh);
    }

    ngx_shmtx_unlock(&lcf->shpool->mutex);

    return over;
}


/* The first metrics of a discovered endpoint: it becomes a candidate. */
void
ngx_llmd_endpoint_activate(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot)
{
    ngx_llmd_endpoint_sh_t  *ep;

    ep = &lcf->sh->endpoints[slot];

    ngx_shmtx_lock(&lcf->shpool->mutex);

    if (ep->state == NGX_LLMD_EP_PENDING) {
        ep->state = NGX_LLMD_EP_ACTIVE;
        ep->changed = ngx_current_msec;
        ngx_llmd_members_rebuild(lcf->sh);
    }

    ngx_shmtx_unlock(&lcf->shpool->mutex);
}


/*
 * Draining slots whose in-flight requests are done, or that drained for
 * longer than `limit` (a worker that died mid-request leaves its count),
 * become free. Returns how many were freed.
 */
ngx_uint_t
ngx_llmd_endpoints_reap(ngx_llmd_srv_conf_t *lcf, ngx_msec_t limit)
{
    ngx_uint_t               i, n;
    ngx_llmd_endpoint_sh_t  *ep;

    n = 0;

    ngx_shmtx_lock(&lcf->shpool->mutex);

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        ep = &lcf->sh->endpoints[i];

        if (ep->state == NGX_LLMD_EP_DRAINING
            && (ep->active == 0
                || ngx_current_msec - ep->changed > limit))
        {
            ngx_llmd_slot_free(lcf, i);
            n++;
        }
    }

    ngx_shmtx_unlock(&lcf->shpool->mutex);

    return n;
}


/*
 * The candidates of one decision, without the mutex: the member list is
 * copied under its seqlock with each slot's incarnation. Returns how many.
 */
ngx_uint_t
ngx_llmd_members_read(ngx_llmd_shctx_t *sh, ngx_llmd_cand_t *cands)
{
    ngx_uint_t         i, n, tries;
    ngx_atomic_uint_t  seq;

    for (tries = 0; tries < 64; tries++) {
        seq = sh->members_seq;

        if (seq & 1) {
            ngx_cpu_pause();
            continue;
        }

        ngx_memory_barrier();

        n = ngx_min(sh->nmembers, LLMD_MAX_ENDPOINTS);

        for (i = 0; i < n; i++) {
            cands[i].slot = sh->members[i];
            cands[i].incarnation = sh->endpoints[cands[i].slot].incarnation;
        }

        ngx_memory_barrier();

        if (sh->members_seq == seq) {
            return n;
        }
    }

    /* a writer that died mid-update: no candidates this time */
    return 0;
}


/*
 * The address of a candidate, copied into the request's pool, or NULL when
 * the slot no longer holds that endpoint.
 */
ngx_int_t
ngx_llmd_endpoint_address(ngx_llmd_shctx_t *sh, ngx_llmd_cand_t *cand,
    ngx_pool_t *pool, ngx_addr_t *addr)
{
    ngx_llmd_endpoint_sh_t  *ep;

    ep = &sh->endpoints[cand->slot];

    addr->sockaddr = ngx_palloc(pool, NGX_SOCKADDRLEN);
    addr->name.data = ngx_pnalloc(pool, NGX_LLMD_NAME_LEN);
    if (addr->sockaddr == NULL || addr->name.data == NULL) {
        return NGX_ERROR;
    }

    addr->socklen = ngx_min(ep->socklen, NGX_SOCKADDRLEN);
    ngx_memcpy(addr->sockaddr, ep->sockaddr, addr->socklen);
    addr->name.len = ngx_min(ep->name_len, NGX_LLMD_NAME_LEN);
    ngx_memcpy(addr->name.data, ep->name, addr->name.len);

    ngx_memory_barrier();

    return ep->incarnation == cand->incarnation ? NGX_OK : NGX_DECLINED;
}


static ngx_int_t
ngx_llmd_slot_find(ngx_llmd_shctx_t *sh, u_char *name, size_t len)
{
    ngx_uint_t               i;
    ngx_llmd_endpoint_sh_t  *ep;

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        ep = &sh->endpoints[i];

        if (ep->state != NGX_LLMD_EP_FREE && ep->name_len == len
            && ngx_strncmp(ep->name, name, len) == 0)
        {
            return i;
        }
    }

    return NGX_ERROR;
}


static ngx_int_t
ngx_llmd_slot_new(ngx_llmd_shctx_t *sh)
{
    ngx_uint_t  i;

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        if (sh->endpoints[i].state == NGX_LLMD_EP_FREE) {
            return i;
        }
    }

    return NGX_ERROR;
}


/* A free slot takes a new endpoint; its counters start from zero. */
static void
ngx_llmd_slot_assign(ngx_llmd_endpoint_sh_t *ep, ngx_str_t *name,
    struct sockaddr *sockaddr, socklen_t socklen)
{
    ngx_atomic_uint_t  incarnation;

    incarnation = ep->incarnation;
    ngx_memzero(ep, sizeof(ngx_llmd_endpoint_sh_t));
    ep->incarnation = incarnation + 1;

    ep->name_len = ngx_min(name->len, NGX_LLMD_NAME_LEN);
    ngx_memcpy(ep->name, name->data, ep->name_len);
    ep->socklen = ngx_min(socklen, NGX_SOCKADDRLEN);
    ngx_memcpy(ep->sockaddr, sockaddr, ep->socklen);
    ep->changed = ngx_current_msec;
}


/* The slot is given up: its incarnation moves first, for readers. */
static void
ngx_llmd_slot_free(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot)
{
    ngx_llmd_endpoint_sh_t  *ep;

    ep = &lcf->sh->endpoints[slot];

    (void) ngx_atomic_fetch_add(&ep->incarnation, 1);
    ngx_memory_barrier();

    ngx_llmd_slot_forget(lcf, slot);
    ep->state = NGX_LLMD_EP_FREE;
}


/* What the indexes learned about the endpoint in this slot. */
static void
ngx_llmd_slot_forget(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot)
{
    if (lcf->index) {
        llmd_prefix_index_clear_endpoint(lcf->index, slot);
    }

    if (lcf->kv_index) {
        llmd_kv_index_clear_endpoint(lcf->kv_index, slot);
    }
}


static void
ngx_llmd_members_rebuild(ngx_llmd_shctx_t *sh)
{
    ngx_uint_t  i, n;

    sh->members_seq++;
    ngx_memory_barrier();

    n = 0;

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        if (sh->endpoints[i].state == NGX_LLMD_EP_ACTIVE) {
            sh->members[n++] = (uint16_t) i;
        }
    }

    sh->nmembers = n;

    ngx_memory_barrier();
    sh->members_seq++;
}
