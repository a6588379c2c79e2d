/*
 * Scraping vLLM /metrics of every server of an llmd upstream with nginx's
 * non-blocking I/O: one HTTP/1.0 GET per server every llmd_metrics_interval
 * (close-delimited, never chunked), parsed by the core Prometheus parser
 * and published to shared memory under the endpoint's seqlock. A server
 * that is unreachable, slow or answers garbage keeps its last good values,
 * which become stale after llmd_metrics_stale; the error is counted and
 * logged once per change of state, never per scrape.
 */

#include "nginx/ngx_llmd.h"
#include "core/llmd_prom.h"


typedef struct {
    ngx_llmd_srv_conf_t     *lcf;
    ngx_uint_t               slot;
    ngx_str_t                name;       /* ip:port, for Host and logs */
    ngx_addr_t               addr;
    ngx_event_t              timer;
    ngx_peer_connection_t    pc;
    ngx_buf_t                request;
    ngx_buf_t                response;
    ngx_msec_t               started;
    ngx_uint_t               failing;
    ngx_llmd_metrics_sh_t    base;       /* in-flight counters at send */
    ngx_queue_t              queue;
} ngx_llmd_scrape_t;


static void ngx_llmd_scrape_timer(ngx_event_t *ev);
static void ngx_llmd_scrape_write(ngx_event_t *wev);
static void ngx_llmd_scrape_read(ngx_event_t *rev);
static void ngx_llmd_scrape_done(ngx_llmd_scrape_t *sc);
static void ngx_llmd_scrape_fail(ngx_llmd_scrape_t *sc, const char *fmt,
    ...);
static void ngx_llmd_scrape_close(ngx_llmd_scrape_t *sc);
static void ngx_llmd_scrape_rearm(ngx_llmd_scrape_t *sc);


static ngx_queue_t  ngx_llmd_scrapes;
static ngx_uint_t   ngx_llmd_scrapes_inited;


/*
 * Starts scraping the endpoint in a slot (a static server at the helper's
 * start, a discovered one when it appears). Its own memory: endpoints come
 * and go while the helper runs.
 */
ngx_int_t
ngx_llmd_scrape_add(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot)
{
    u_char                  *p;
    size_t                   len;
    ngx_llmd_scrape_t       *sc;
    ngx_llmd_endpoint_sh_t  *ep;

    if (!ngx_llmd_scrapes_inited) {
        ngx_queue_init(&ngx_llmd_scrapes);
        ngx_llmd_scrapes_inited = 1;
    }

    ep = &lcf->sh->endpoints[slot];

    len = sizeof(ngx_llmd_scrape_t) + NGX_SOCKADDRLEN + ep->name_len
          + sizeof("GET  HTTP/1.0" CRLF "Host: " CRLF
                   "Accept: text/plain" CRLF
                   "User-Agent: nginx-llmd" CRLF CRLF)
          + lcf->metrics_uri.len + ep->name_len
          + lcf->metrics_buffer;

    sc = ngx_calloc(len, ngx_cycle->log);
    if (sc == NULL) {
        return NGX_ERROR;
    }

    p = (u_char *) (sc + 1);

    sc->lcf = lcf;
    sc->slot = slot;

    sc->addr.sockaddr = (struct sockaddr *) p;
    sc->addr.socklen = ep->socklen;
    p = ngx_cpymem(p, ep->sockaddr, ep->socklen);
    p += NGX_SOCKADDRLEN - ep->socklen;

    sc->name.data = p;
    sc->name.len = ep->name_len;
    p = ngx_cpymem(p, ep->name, ep->name_len);

    sc->request.start = p;
    sc->request.end = ngx_sprintf(p, "GET %V HTTP/1.0" CRLF
                                  "Host: %V" CRLF
                                  "Accept: text/plain" CRLF
                                  "User-Agent: nginx-llmd" CRLF CRLF,
                                  &lcf->metrics_uri, &sc->name);

    sc->response.start = sc->request.end;
    sc->response.end = sc->response.start + lcf->metrics_buffer;

    sc->timer.handler = ngx_llmd_scrape_timer;
    sc->timer.data = sc;
    sc->timer.log = ngx_cycle->log;
    sc->timer.cancelable = 1;

    ngx_queue_insert_tail(&ngx_llmd_scrapes, &sc->queue);

    /* spread the first scrapes a little */
    ngx_add_timer(&sc->timer, slot % 8);

    return NGX_OK;
}


/* The endpoint left its source: stop scraping it. */
void
ngx_llmd_scrape_remove(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot)
{
    ngx_queue_t        *q;
    ngx_llmd_scrape_t  *sc;

    if (!ngx_llmd_scrapes_inited) {
        return;
    }

    for (q = ngx_queue_head(&ngx_llmd_scrapes);
         q != ngx_queue_sentinel(&ngx_llmd_scrapes);
         q = ngx_queue_next(q))
    {
        sc = ngx_queue_data(q, ngx_llmd_scrape_t, queue);

        if (sc->lcf == lcf && sc->slot == slot) {
            if (sc->timer.timer_set) {
                ngx_del_timer(&sc->timer);
            }

            ngx_llmd_scrape_close(sc);
            ngx_queue_remove(q);
            ngx_free(sc);
            return;
        }
    }
}


void
ngx_llmd_scrape_stop_all(void)
{
    ngx_queue_t        *q;
    ngx_llmd_scrape_t  *sc;

    if (!ngx_llmd_scrapes_inited) {
        return;
    }

    for (q = ngx_queue_head(&ngx_llmd_scrapes);
         q != ngx_queue_sentinel(&ngx_llmd_scrapes);
         q = ngx_queue_next(q))
    {
        sc = ngx_queue_data(q, ngx_llmd_scrape_t, queue);

        if (sc->timer.timer_set) {
            ngx_del_timer(&sc->timer);
        }

        ngx_llmd_scrape_close(sc);
    }
}


static void
ngx_llmd_scrape_timer(ngx_event_t *ev)
{
    ngx_int_t                rc;
    ngx_connection_t        *c;
    ngx_llmd_scrape_t       *sc;
    ngx_llmd_endpoint_sh_t  *ep;

    sc = ev->data;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    if (sc->lcf->sh->writer_pid != ngx_pid) {
        ngx_log_error(NGX_LOG_INFO, ev->log, 0,
                      "llmd: process %P took over scraping upstream \"%V\"",
                      sc->lcf->sh->writer_pid, &sc->lcf->upstream->host);
        return;
    }

    if (sc->pc.connection) {
        /* the previous scrape is still running; its timer ends it */
        ngx_add_timer(&sc->timer, sc->lcf->metrics_interval);
        return;
    }

    sc->started = ngx_current_msec;

    /* what the balancer sends from now on is not in this scrape yet */
    ep = &sc->lcf->sh->endpoints[sc->slot];
    sc->base.base_sent = ep->sent;
    sc->base.base_sent_tokens = ep->sent_tokens;
    sc->base.base_done = ep->done;
    sc->base.base_done_tokens = ep->done_tokens;

    sc->request.pos = sc->request.start;
    sc->request.last = sc->request.end;
    sc->response.pos = sc->response.start;
    sc->response.last = sc->response.start;

    ngx_memzero(&sc->pc, sizeof(ngx_peer_connection_t));

    sc->pc.sockaddr = sc->addr.sockaddr;
    sc->pc.socklen = sc->addr.socklen;
    sc->pc.name = &sc->name;
    sc->pc.get = ngx_event_get_peer;
    sc->pc.log = ev->log;
    /* one warning per failing endpoint (below), not nginx's line per scrape */
    sc->pc.log_error = NGX_ERROR_INFO;

    rc = ngx_event_connect_peer(&sc->pc);

    if (rc == NGX_ERROR || rc == NGX_BUSY || rc == NGX_DECLINED) {
        sc->pc.connection = NULL;
        ngx_llmd_scrape_fail(sc, "cannot connect");
        return;
    }

    c = sc->pc.connection;
    c->data = sc;
    c->read->handler = ngx_llmd_scrape_read;
    c->write->handler = ngx_llmd_scrape_write;
    c->sendfile = 0;

    ngx_add_timer(c->read, sc->lcf->metrics_timeout);

    if (rc == NGX_OK) {
        ngx_llmd_scrape_write(c->write);
    }
}


static void
ngx_llmd_scrape_write(ngx_event_t *wev)
{
    ssize_t             n;
    ngx_connection_t   *c;
    ngx_llmd_scrape_t  *sc;

    c = wev->data;
    sc = c->data;

    if (wev->timedout) {
        ngx_llmd_scrape_fail(sc, "timed out connecting");
        return;
    }

    while (sc->request.pos < sc->request.last) {
        n = c->send(c, sc->request.pos, sc->request.last - sc->request.pos);

        if (n == NGX_ERROR) {
            ngx_llmd_scrape_fail(sc, "cannot send the request");
            return;
        }

        if (n == NGX_AGAIN) {
            if (ngx_handle_write_event(wev, 0) != NGX_OK) {
                ngx_llmd_scrape_fail(sc, "cannot wait to send");
            }

            return;
        }

        sc->request.pos += n;
    }
}


static void
ngx_llmd_scrape_read(ngx_event_t *rev)
{
    size_t              size;
    ssize_t             n;
    ngx_connection_t   *c;
    ngx_llmd_scrape_t  *sc;

    c = rev->data;
    sc = c->data;

    if (rev->timedout) {
        ngx_llmd_scrape_fail(sc, "timed out after %M ms",
                             sc->lcf->metrics_timeout);
        return;
    }

    for ( ;; ) {
        size = sc->response.end - sc->response.last;

        if (size == 0) {
            ngx_llmd_scrape_fail(sc, "response larger than "
                                 "llmd_metrics_buffer (%uz bytes)",
                                 sc->lcf->metrics_buffer);
            return;
        }

        n = c->recv(c, sc->response.last, size);

        if (n == NGX_AGAIN) {
            if (ngx_handle_read_event(rev, 0) != NGX_OK) {
                ngx_llmd_scrape_fail(sc, "cannot wait to read");
            }

            return;
        }

        if (n == NGX_ERROR) {
            ngx_llmd_scrape_fail(sc, "connection failed");
            return;
        }

        if (n == 0) {
            ngx_llmd_scrape_done(sc);
            return;
        }

        sc->response.last += n;
    }
}


static void
ngx_llmd_scrape_done(ngx_llmd_scrape_t *sc)
{
    char                     err[LLMD_ERRLEN];
    u_char                  *p, *last, *body;
    ngx_uint_t               status;
    llmd_vllm_metrics_t      vm;
    ngx_llmd_metrics_sh_t    m;
    ngx_llmd_endpoint_sh_t  *ep;

    p = sc->response.start;
    last = sc->response.last;

    /* "HTTP/1.x NNN ..." */
    if (last - p < 12 || ngx_strncmp(p, "HTTP/1.", 7) != 0
        || p[8] != ' ')
    {
        ngx_llmd_scrape_fail(sc, "not an HTTP response");
        return;
    }

    status = ngx_atoi(p + 9, 3);

    if (status != NGX_HTTP_OK) {
        ngx_llmd_scrape_fail(sc, "HTTP status %i", (ngx_int_t) status);
        return;
    }

    body = NULL;

    for ( /* void */ ; p + 1 < last; p++) {
        if (p[0] == '\n' && p[1] == '\n') {
            body = p + 2;
            break;
        }

        if (p + 3 < last && p[0] == '\r' && p[1] == '\n'
            && p[2] == '\r' && p[3] == '\n')
        {
            body = p + 4;
            break;
        }
    }

    if (body == NULL) {
        ngx_llmd_scrape_fail(sc, "truncated HTTP response");
        return;
    }

    if (llmd_prom_parse_vllm((char *) body, last - body, &vm, err,
                             sizeof(err))
        != 0)
    {
        ngx_llmd_scrape_fail(sc, "%s", err);
        return;
    }

    ngx_llmd_scrape_close(sc);

    ep = &sc->lcf->sh->endpoints[sc->slot];

    ngx_llmd_metrics_read(ep, &m);

    m.waiting = vm.have_waiting ? vm.waiting : 0;
    m.running = vm.have_running ? vm.running : 0;
    m.kv_usage = vm.have_kv ? vm.kv_usage : 0;
    m.have_waiting = vm.have_waiting;
    m.have_kv = vm.have_kv;

    if (vm.have_cache_info) {
        m.block_size = vm.block_size;
        m.num_gpu_blocks = vm.num_gpu_blocks;
    }

    ngx_llmd_lora_write(sc->lcf->sh, sc->slot, &vm);

    m.updated = ngx_current_msec ? ngx_current_msec : 1;

    /* in-flight counts since the scrape start again from here */
    m.base_sent = sc->base.base_sent;
    m.base_sent_tokens = sc->base.base_sent_tokens;
    m.base_done = sc->base.base_done;
    m.base_done_tokens = sc->base.base_done_tokens;

    ngx_llmd_metrics_write(ep, &m);
    (void) ngx_atomic_fetch_add(&ep->scrapes, 1);

    if (ep->state == NGX_LLMD_EP_PENDING) {
        ngx_llmd_endpoint_activate(sc->lcf, sc->slot);
        ngx_log_error(NGX_LOG_NOTICE, sc->timer.log, 0,
                      "llmd: endpoint %V of upstream \"%V\" answers its "
                      "metrics and takes requests now", &sc->name,
                      &sc->lcf->upstream->host);
    }

    if (sc->failing) {
        sc->failing = 0;

        /* the pod is back: requests need not wait for fail_timeout */
        ep->fails = 0;

        ngx_log_error(NGX_LOG_NOTICE, sc->timer.log, 0,
                      "llmd: metrics of %V in upstream \"%V\" are back",
                      &sc->name, &sc->lcf->upstream->host);
    }

    ngx_llmd_scrape_rearm(sc);
}


static void
ngx_llmd_scrape_fail(ngx_llmd_scrape_t *sc, const char *fmt, ...)
{
    u_char                  *p;
    va_list                  args;
    ngx_llmd_metrics_sh_t    m;
    ngx_llmd_endpoint_sh_t  *ep;

    ngx_llmd_scrape_close(sc);

    ep = &sc->lcf->sh->endpoints[sc->slot];

    ngx_llmd_metrics_read(ep, &m);

    va_start(args, fmt);
    p = ngx_vslprintf(m.last_error, m.last_error + NGX_LLMD_ERROR_LEN - 1,
                      fmt, args);
    va_end(args);
    *p = '\0';

    m.error_time = ngx_current_msec ? ngx_current_msec : 1;

    ngx_llmd_metrics_write(ep, &m);
    (void) ngx_atomic_fetch_add(&ep->scrape_errors, 1);

    if (!sc->failing) {
        sc->failing = 1;

        /*
         * A pod that does not answer may be restarting with an empty cache:
         * its KV-event index is not trusted until its events come again.
         */
        ep->kv_live = 0;
        ep->kv_connected = 0;

        ngx_log_error(NGX_LOG_WARN, sc->timer.log, 0,
                      "llmd: cannot scrape %V%V in upstream \"%V\": %s",
                      &sc->name, &sc->lcf->metrics_uri,
                      &sc->lcf->upstream->host, m.last_error);
    }

    ngx_llmd_scrape_rearm(sc);
}


static void
ngx_llmd_scrape_close(ngx_llmd_scrape_t *sc)
{
    if (sc->pc.connection) {
        ngx_close_connection(sc->pc.connection);
        sc->pc.connection = NULL;
    }
}


static void
ngx_llmd_scrape_rearm(ngx_llmd_scrape_t *sc)
{
    ngx_msec_t  elapsed, delay;

    if (ngx_exiting || ngx_terminate || ngx_quit) {
        return;
    }

    elapsed = ngx_current_msec - sc->started;
    delay = (elapsed < sc->lcf->metrics_interval)
            ? sc->lcf->metrics_interval - elapsed : 1;

    if (!sc->timer.timer_set) {
        ngx_add_timer(&sc->timer, delay);
    }
}
