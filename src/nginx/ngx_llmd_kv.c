/*
 * vLLM KV-cache events into the precise index, in the helper process: the
 * ZeroMQ glue, which moves messages and performs what the stream rules
 * (kv/llmd_kv_stream.h) decide.
 *
 * libzmq sockets run inside nginx's event loop: each socket's ZMQ_FD is
 * registered as an edge-triggered read event, and the handler receives
 * until nothing is queued and ZMQ_EVENTS says no message is ready (the
 * descriptor only signals state changes). A timer drains again as a
 * safety net and enforces replay deadlines.
 *
 * Modes (directive llmd_kv_events):
 *   bind     one SUB bound at an endpoint; every pod connects to it and is
 *            known by the <pod> part of its topic kv@<pod>@<model>;
 *   connect  one SUB per endpoint, connected to the endpoint's host on a
 *            configured port, plus an optional DEALER to the pod's replay
 *            ROUTER and a monitor that sees disconnects; endpoints that
 *            appear or leave (llmd_endpoints) get or lose their sockets.
 *
 * Pods are known by their endpoint slot (ngx_llmd_endpoints.c).
 */

#include <zmq.h>
#if (__GLIBC__)
#include <malloc.h>
#endif

#include "nginx/ngx_llmd.h"
#include "kv/llmd_kv_pod.h"
#include "kv/llmd_kv_stream.h"


#define NGX_LLMD_KV_MAX_FRAMES     5
#define NGX_LLMD_KV_DRAIN_BATCH    4096
#define NGX_LLMD_KV_TICK           100
#define NGX_LLMD_KV_MAX_MSG        (64 * 1024 * 1024)
#define NGX_LLMD_KV_CLEAR_NOTICE   60000
/*
 * Messages libzmq queues per connected publisher before it stops reading:
 * the publisher then buffers on its side (vLLM: up to its SNDHWM of
 * 100,000) or drops, and a drop is a gap. Bounds the helper's memory and
 * the index lag: 64 batches of 112 KB (400 blocks of 64 tokens) are 7 MB
 * and 26 ms of events at 1 M blocks/s; a queue that short also keeps the
 * next batches in the CPU's caches.
 */
#define NGX_LLMD_KV_RCVHWM         64
/*
 * Blocks applied per hold of the shared-memory lock: a worker's decision
 * waits for at most one hold. In a full index a new block costs about
 * 1 us (cache misses; 32 blocks held 31-37 us on average at full speed),
 * so 8 blocks (two vLLM events of 4) keep a hold near 8 us while the lock
 * costs a few ns per block.
 */
#define NGX_LLMD_KV_HOLD_BLOCKS    8


typedef enum {
    NGX_LLMD_KV_SOCK_SUB = 0,
    NGX_LLMD_KV_SOCK_REPLAY,
    NGX_LLMD_KV_SOCK_MONITOR
} ngx_llmd_kv_sock_type_e;


typedef struct ngx_llmd_kv_up_s  ngx_llmd_kv_up_t;

typedef struct {
    void                     *zsock;
    ngx_connection_t         *c;
    ngx_llmd_kv_up_t         *up;
    ngx_int_t                 slot;       /* -1: any pod (bind mode) */
    ngx_llmd_kv_sock_type_e   type;
    char                     *pending;    /* endpoint still to bind */
} ngx_llmd_kv_sock_t;


/* What the helper remembers of one pod. */
typedef struct {
    llmd_kv_stream_t          stream;
    ngx_llmd_kv_sock_t       *replay;
    ngx_msec_t                cleared;    /* last "cleared" notice */
    unsigned                  spoof_warned:1;
} ngx_llmd_kv_pod_t;


struct ngx_llmd_kv_up_s {
    ngx_llmd_srv_conf_t      *lcf;
    ngx_llmd_kv_pod_t         pods[LLMD_MAX_ENDPOINTS];    /* per slot */
    llmd_kv_server_t          servers[LLMD_MAX_ENDPOINTS]; /* names */
    ngx_array_t               socks;      /* ngx_llmd_kv_sock_t * */
    ngx_event_t               tick;
    ngx_log_t                *log;
};


/* Context of one batch being applied. */
typedef struct {
    ngx_llmd_kv_up_t         *up;
    ngx_uint_t                slot;
    const char               *model;
    size_t                    model_len;
    uint64_t                  root;
    llmd_kv_apply_stats_t     st;
    ngx_uint_t                held;       /* blocks in this hold */
    uint64_t                  hold_start; /* ns; 0: the lock is free */
} ngx_llmd_kv_apply_t;


static ngx_int_t ngx_llmd_kv_open_pod(ngx_llmd_kv_up_t *up,
    ngx_llmd_kv_sock_type_e kind, ngx_uint_t slot, ngx_uint_t port,
    ngx_uint_t relative);
static ngx_int_t ngx_llmd_kv_open(ngx_llmd_kv_up_t *up,
    ngx_llmd_kv_sock_type_e kind, ngx_int_t slot, const char *endpoint,
    ngx_uint_t bind);
static ngx_int_t ngx_llmd_kv_watch(ngx_llmd_kv_sock_t *sub);
static ngx_llmd_kv_sock_t *ngx_llmd_kv_socket(ngx_llmd_kv_up_t *up,
    ngx_llmd_kv_sock_type_e kind, ngx_int_t slot);
static void ngx_llmd_kv_read(ngx_event_t *rev);
static void ngx_llmd_kv_drain(ngx_llmd_kv_sock_t *ks);
static void ngx_llmd_kv_live(ngx_llmd_kv_sock_t *ks, zmq_msg_t *frames,
    ngx_uint_t n);
static void ngx_llmd_kv_replayed(ngx_llmd_kv_sock_t *ks, zmq_msg_t *frames,
    ngx_uint_t n);
static void ngx_llmd_kv_monitor(ngx_llmd_kv_sock_t *ks, zmq_msg_t *frames,
    ngx_uint_t n);
static void ngx_llmd_kv_perform(ngx_llmd_kv_up_t *up, ngx_uint_t slot,
    const llmd_kv_action_t *act, const void *payload, size_t len);
static void ngx_llmd_kv_apply(ngx_llmd_kv_up_t *up, ngx_uint_t slot,
    const char *model, size_t model_len, const void *payload, size_t len);
static void ngx_llmd_kv_event(void *data, const llmd_kv_event_t *ev);
static void ngx_llmd_kv_unlock(ngx_llmd_kv_apply_t *a);
static uint64_t ngx_llmd_kv_ns(void);
static void ngx_llmd_kv_request_replay(ngx_llmd_kv_up_t *up,
    ngx_uint_t slot, uint64_t from);
static void ngx_llmd_kv_tick(ngx_event_t *ev);
static void ngx_llmd_kv_close(ngx_llmd_kv_up_t *up);
static void ngx_llmd_kv_close_sock(ngx_llmd_kv_sock_t *ks);
static ngx_llmd_kv_up_t *ngx_llmd_kv_up(ngx_llmd_srv_conf_t *lcf);


static void         *ngx_llmd_kv_ctx;
static ngx_array_t  *ngx_llmd_kv_ups;     /* ngx_llmd_kv_up_t * */
static ngx_uint_t    ngx_llmd_kv_monitors;

/* The libzmq socket type of each kind of socket. */
static const int     ngx_llmd_kv_zmq_types[] = {
    ZMQ_SUB,        /* NGX_LLMD_KV_SOCK_SUB */
    ZMQ_DEALER,     /* NGX_LLMD_KV_SOCK_REPLAY */
    ZMQ_PAIR        /* NGX_LLMD_KV_SOCK_MONITOR */
};


ngx_int_t
ngx_llmd_kv_start(ngx_cycle_t *cycle, ngx_llmd_srv_conf_t *lcf)
{
    ngx_uint_t          i;
    ngx_llmd_kv_up_t   *up, **upp;

    if (!lcf->precise || lcf->kv_mode == NGX_LLMD_KV_OFF) {
        return NGX_OK;
    }

    if (ngx_llmd_kv_ctx == NULL) {
#if (__GLIBC__)
        /*
         * libzmq's I/O thread allocates each message and this thread frees
         * it: glibc would give the freed heap back to the kernel and fault
         * it in again for the next messages (15 % of the helper's time at
         * full speed). The queue bound (NGX_LLMD_KV_RCVHWM) bounds what
         * stays allocated.
         */
        (void) mallopt(M_TRIM_THRESHOLD, 64 * 1024 * 1024);
        (void) mallopt(M_MMAP_THRESHOLD, 16 * 1024 * 1024);
#endif

        ngx_llmd_kv_ctx = zmq_ctx_new();
        if (ngx_llmd_kv_ctx == NULL) {
            ngx_log_error(NGX_LOG_ALERT, cycle->log, ngx_errno,
                          "llmd: zmq_ctx_new() failed");
            return NGX_ERROR;
        }

        ngx_llmd_kv_ups = ngx_array_create(cycle->pool, 4,
                                           sizeof(ngx_llmd_kv_up_t *));
        if (ngx_llmd_kv_ups == NULL) {
            return NGX_ERROR;
        }
    }

    up = ngx_pcalloc(cycle->pool, sizeof(ngx_llmd_kv_up_t));
    if (up == NULL
        || ngx_array_init(&up->socks, cycle->pool, 8,
                          sizeof(ngx_llmd_kv_sock_t *))
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    up->lcf = lcf;
    up->log = cycle->log;

    ngx_llmd_kv_index_map(cycle, lcf, 1);

    upp = ngx_array_push(ngx_llmd_kv_ups);
    if (upp == NULL) {
        return NGX_ERROR;
    }

    *upp = up;

    if (lcf->kv_mode == NGX_LLMD_KV_BIND
        && ngx_llmd_kv_open(up, NGX_LLMD_KV_SOCK_SUB, -1,
                            (char *) lcf->kv_endpoint.data, 1)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the endpoints known now; discovery adds and removes the others */
    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        if (lcf->sh->endpoints[i].state != NGX_LLMD_EP_FREE
            && lcf->sh->endpoints[i].state != NGX_LLMD_EP_DRAINING)
        {
            ngx_llmd_kv_add(lcf, i);
        }
    }

    up->tick.handler = ngx_llmd_kv_tick;
    up->tick.data = up;
    up->tick.log = cycle->log;
    up->tick.cancelable = 1;
    ngx_add_timer(&up->tick, NGX_LLMD_KV_TICK);

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "llmd: receiving KV events for upstream \"%V\" (%s %V)",
                  &lcf->upstream->host,
                  lcf->kv_mode == NGX_LLMD_KV_BIND ? "bind" : "connect",
                  lcf->kv_mode == NGX_LLMD_KV_BIND
                      ? &lcf->kv_endpoint : &lcf->upstream->host);

    return NGX_OK;
}


/*
 * The KV index's pages mapped into this process's page tables now, not by
 * the first touch of each (a page fault in the middle of a batch or of a
 * decision, ~11-27 us on a VM). The zone has a fixed size.
 * madvise(MADV_POPULATE_WRITE) (Linux 5.14+) maps every page without
 * writing. The helper (write_each) also writes every page once: it writes
 * every page sooner or later, and on a VM with shadow page tables the
 * first write costs a hypervisor exit even for a page already mapped (8 %
 * of the helper's time at full speed while the index fills, a newly
 * applied block 8x dearer until its random bucket pages were touched); a
 * worker writes them only where madvise is missing. The write is an atomic
 * add of 0: other processes write the index meanwhile.
 */
void
ngx_llmd_kv_index_map(ngx_cycle_t *cycle, ngx_llmd_srv_conf_t *lcf,
    ngx_uint_t write_each)
{
    char        *who;
    u_char      *start, *end, *p;
    ngx_msec_t   t;

    if (lcf->sh == NULL || lcf->sh->kv_index_mem == NULL) {
        return;
    }

    who = write_each ? "" : " in the worker";

    start = ngx_align_ptr(lcf->sh->kv_index_mem, ngx_pagesize);
    end = (u_char *) ((uintptr_t) ((u_char *) lcf->sh->kv_index_mem
                                   + lcf->sh->kv_index_size)
                      & ~((uintptr_t) ngx_pagesize - 1));

    if (end <= start) {
        return;
    }

    ngx_time_update();
    t = ngx_current_msec;

#if (NGX_LINUX && defined MADV_POPULATE_WRITE)
    if (madvise(start, end - start, MADV_POPULATE_WRITE) != 0) {
        write_each = 1;
    }
#else
    write_each = 1;
#endif

    if (write_each) {
        for (p = start; p < end; p += ngx_pagesize) {
            (void) ngx_atomic_fetch_add((ngx_atomic_t *) p, 0);
        }
    }

    ngx_time_update();

    ngx_log_error(NGX_LOG_NOTICE, cycle->log, 0,
                  "llmd: KV index of upstream \"%V\" prefaulted%s: %uz MB "
                  "in %M ms", &lcf->upstream->host,
                  who,
                  (size_t) (end - start) >> 20, ngx_current_msec - t);
}


/*
 * An endpoint appeared: its stream starts afresh, its name is known to
 * topic lookup (bind), it gets its sockets (connect).
 */
void
ngx_llmd_kv_add(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot)
{
    ngx_llmd_kv_up_t        *up;
    ngx_llmd_endpoint_sh_t  *ep;

    up = ngx_llmd_kv_up(lcf);
    if (up == NULL || slot >= LLMD_MAX_ENDPOINTS) {
        return;
    }

    ngx_llmd_kv_remove(lcf, slot);

    ep = &lcf->sh->endpoints[slot];
    up->servers[slot].data = (const char *) ep->name;
    up->servers[slot].len = ep->name_len;

    if (lcf->kv_mode != NGX_LLMD_KV_CONNECT) {
        return;
    }

    if (ngx_llmd_kv_open_pod(up, NGX_LLMD_KV_SOCK_SUB, slot, lcf->kv_port,
                             lcf->kv_port_relative)
        != NGX_OK
        || (lcf->kv_replay_port != 0
            && ngx_llmd_kv_open_pod(up, NGX_LLMD_KV_SOCK_REPLAY, slot,
                                    lcf->kv_replay_port,
                                    lcf->kv_replay_relative)
               != NGX_OK))
    {
        ngx_log_error(NGX_LOG_ALERT, up->log, 0, "llmd: no KV-event "
                      "sockets for %*s in upstream \"%V\"; it is scored "
                      "approximately", ep->name_len, ep->name,
                      &lcf->upstream->host);
        ngx_llmd_kv_remove(lcf, slot);
    }
}


/* An endpoint left: its sockets close, its topic is unknown again. */
void
ngx_llmd_kv_remove(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot)
{
    ngx_uint_t            j;
    ngx_llmd_kv_up_t     *up;
    ngx_llmd_kv_sock_t  **ksp;

    up = ngx_llmd_kv_up(lcf);
    if (up == NULL || slot >= LLMD_MAX_ENDPOINTS) {
        return;
    }

    ksp = up->socks.elts;

    for (j = 0; j < up->socks.nelts; /* void */) {
        if (ksp[j]->slot != (ngx_int_t) slot) {
            j++;
            continue;
        }

        ngx_llmd_kv_close_sock(ksp[j]);
        ksp[j] = ksp[--up->socks.nelts];
    }

    ngx_memzero(&up->pods[slot], sizeof(ngx_llmd_kv_pod_t));
    up->servers[slot].len = 0;

    /* its subscriber, if any, is closed */
    if (lcf->sh->writer_pid == ngx_pid) {
        lcf->sh->endpoints[slot].kv_connected = 0;
    }
}


/* The KV-event state of an upstream in this helper, or NULL. */
static ngx_llmd_kv_up_t *
ngx_llmd_kv_up(ngx_llmd_srv_conf_t *lcf)
{
    ngx_uint_t          i;
    ngx_llmd_kv_up_t  **upp;

    if (ngx_llmd_kv_ups == NULL) {
        return NULL;
    }

    upp = ngx_llmd_kv_ups->elts;

    for (i = 0; i < ngx_llmd_kv_ups->nelts; i++) {
        if (upp[i]->lcf == lcf) {
            return upp[i];
        }
    }

    return NULL;
}


void
ngx_llmd_kv_stop_all(void)
{
    ngx_uint_t          i;
    ngx_llmd_kv_up_t  **upp;

    if (ngx_llmd_kv_ctx == NULL) {
        return;
    }

    upp = ngx_llmd_kv_ups->elts;

    for (i = 0; i < ngx_llmd_kv_ups->nelts; i++) {
        ngx_llmd_kv_close(upp[i]);
    }

    (void) zmq_ctx_term(ngx_llmd_kv_ctx);
    ngx_llmd_kv_ctx = NULL;
}


static void
ngx_llmd_kv_close(ngx_llmd_kv_up_t *up)
{
    ngx_uint_t            j;
    ngx_llmd_kv_sock_t  **ksp;

    if (up->tick.timer_set) {
        ngx_del_timer(&up->tick);
    }

    ksp = up->socks.elts;

    for (j = 0; j < up->socks.nelts; j++) {
        ngx_llmd_kv_close_sock(ksp[j]);
    }

    up->socks.nelts = 0;
}


static void
ngx_llmd_kv_close_sock(ngx_llmd_kv_sock_t *ks)
{
    int  linger;

    if (ks->c) {
        /* the descriptor belongs to libzmq: unregister, never close */
        if (ks->c->read->active) {
            ngx_del_event(ks->c->read, NGX_READ_EVENT, 0);
        }

        if (ks->c->read->posted) {
            ngx_delete_posted_event(ks->c->read);
        }

        ks->c->fd = (ngx_socket_t) -1;
        ngx_free_connection(ks->c);
        ks->c = NULL;
    }

    if (ks->type == NGX_LLMD_KV_SOCK_SUB && ks->slot >= 0) {
        /* its monitor stops before it closes */
        (void) zmq_socket_monitor(ks->zsock, NULL, 0);
    }

    linger = 0;
    (void) zmq_setsockopt(ks->zsock, ZMQ_LINGER, &linger, sizeof(linger));
    (void) zmq_close(ks->zsock);

    ngx_free(ks);
}


/* Forget every entry of a pod: restart, disconnect, lost events. */
void
ngx_llmd_kv_clear(ngx_llmd_srv_conf_t *lcf, ngx_uint_t slot, const char *why)
{
    ngx_uint_t               level;
    ngx_llmd_kv_up_t        *up;
    ngx_llmd_endpoint_sh_t  *ep;

    if (lcf->kv_index == NULL) {
        return;
    }

    ep = &lcf->sh->endpoints[slot];

    ngx_shmtx_lock(&lcf->shpool->mutex);
    llmd_kv_index_clear_endpoint(lcf->kv_index, slot);
    ngx_shmtx_unlock(&lcf->shpool->mutex);

    ep->kv_live = 0;
    ep->kv_connected = 0;
    (void) ngx_atomic_fetch_add(&ep->kv_clears, 1);

    /* a pod that keeps restarting is one notice a minute, the rest info */
    up = ngx_llmd_kv_up(lcf);
    level = NGX_LOG_NOTICE;

    if (up && slot < LLMD_MAX_ENDPOINTS) {
        if (up->pods[slot].cleared
            && ngx_current_msec - up->pods[slot].cleared
               < NGX_LLMD_KV_CLEAR_NOTICE)
        {
            level = NGX_LOG_INFO;

        } else {
            up->pods[slot].cleared = ngx_current_msec ? ngx_current_msec : 1;
        }
    }

    ngx_log_error(level, ngx_cycle->log, 0,
                  "llmd: KV index of %*s in upstream \"%V\" cleared: %s",
                  ep->name_len, ep->name, &lcf->upstream->host, why);
}


/* The SUB or replay socket of server slot, at port (absolute or +N). */
static ngx_int_t
ngx_llmd_kv_open_pod(ngx_llmd_kv_up_t *up, ngx_llmd_kv_sock_type_e kind,
    ngx_uint_t slot, ngx_uint_t port, ngx_uint_t relative)
{
    char  endpoint[NGX_SOCKADDR_STRLEN + 32];

    if (llmd_kv_pod_endpoint(&up->servers[slot], port, relative != 0,
                             endpoint, sizeof(endpoint))
        != 0)
    {
        return NGX_ERROR;
    }

    return ngx_llmd_kv_open(up, kind, slot, endpoint, 0);
}


static ngx_int_t
ngx_llmd_kv_open(ngx_llmd_kv_up_t *up, ngx_llmd_kv_sock_type_e kind,
    ngx_int_t slot, const char *endpoint, ngx_uint_t bind)
{
    int                   rc;
    ngx_llmd_kv_sock_t   *ks;
    ngx_llmd_srv_conf_t  *lcf;

    lcf = up->lcf;

    ks = ngx_llmd_kv_socket(up, kind, slot);
    if (ks == NULL) {
        return NGX_ERROR;
    }

    if (kind == NGX_LLMD_KV_SOCK_SUB
        && zmq_setsockopt(ks->zsock, ZMQ_SUBSCRIBE, lcf->prefix.topic_filter,
                          ngx_strlen(lcf->prefix.topic_filter))
           != 0)
    {
        return NGX_ERROR;
    }

    rc = bind ? zmq_bind(ks->zsock, endpoint)
              : zmq_connect(ks->zsock, endpoint);

    if (rc != 0 && bind && zmq_errno() == EADDRINUSE) {
        /*
         * After a reload the previous helper may still hold the address
         * for a moment: retry from the timer until it lets go.
         */
        ks->pending = (char *) endpoint;
        ngx_log_error(NGX_LOG_INFO, up->log, 0, "llmd: \"%s\" is in use, "
                      "binding again shortly", endpoint);
        return NGX_OK;
    }

    if (rc != 0) {
        ngx_log_error(NGX_LOG_EMERG, up->log, 0,
                      "llmd: cannot %s KV-event socket to \"%s\" for "
                      "upstream \"%V\": %s", bind ? "bind" : "connect",
                      endpoint, &lcf->upstream->host,
                      zmq_strerror(zmq_errno()));
        return NGX_ERROR;
    }

    if (kind == NGX_LLMD_KV_SOCK_REPLAY) {
        up->pods[slot].replay = ks;
        llmd_kv_stream_enable_replay(&up->pods[slot].stream);
    }

    if (kind != NGX_LLMD_KV_SOCK_SUB || bind) {
        return NGX_OK;
    }

    return ngx_llmd_kv_watch(ks);
}


/* A per-pod subscriber also watches its connection to see the pod go. */
static ngx_int_t
ngx_llmd_kv_watch(ngx_llmd_kv_sock_t *sub)
{
    char                 mon[64];
    ngx_llmd_kv_sock_t  *ks;

    ngx_snprintf((u_char *) mon, sizeof(mon), "inproc://llmd-kv-mon-%ui%Z",
                 ngx_llmd_kv_monitors++);

    if (zmq_socket_monitor(sub->zsock, mon,
                           ZMQ_EVENT_CONNECTED | ZMQ_EVENT_DISCONNECTED)
        != 0)
    {
        ngx_log_error(NGX_LOG_WARN, sub->up->log, 0, "llmd: no KV-event "
                      "connection monitor: %s", zmq_strerror(zmq_errno()));
        return NGX_OK;
    }

    ks = ngx_llmd_kv_socket(sub->up, NGX_LLMD_KV_SOCK_MONITOR, sub->slot);

    if (ks == NULL || zmq_connect(ks->zsock, mon) != 0) {
        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A libzmq socket of the given kind, kept in up->socks (which closes it)
 * and registered in the event loop by its ZMQ_FD.
 */
static ngx_llmd_kv_sock_t *
ngx_llmd_kv_socket(ngx_llmd_kv_up_t *up, ngx_llmd_kv_sock_type_e kind,
    ngx_int_t slot)
{
    int                  fd, hwm, zero;
    size_t               size;
    int64_t              maxmsg;
    ngx_connection_t    *c;
    ngx_llmd_kv_sock_t  *ks, **ksp;

    ks = ngx_calloc(sizeof(ngx_llmd_kv_sock_t), up->log);
    if (ks == NULL) {
        return NULL;
    }

    ks->up = up;
    ks->slot = slot;
    ks->type = kind;

    ks->zsock = zmq_socket(ngx_llmd_kv_ctx, ngx_llmd_kv_zmq_types[kind]);
    if (ks->zsock == NULL) {
        ngx_log_error(NGX_LOG_ALERT, up->log, 0, "llmd: zmq_socket() "
                      "failed: %s", zmq_strerror(zmq_errno()));
        ngx_free(ks);
        return NULL;
    }

    ksp = ngx_array_push(&up->socks);
    if (ksp == NULL) {
        (void) zmq_close(ks->zsock);
        ngx_free(ks);
        return NULL;
    }

    *ksp = ks;

    /* a hostile or broken peer cannot make libzmq buffer without bound */
    maxmsg = NGX_LLMD_KV_MAX_MSG;
    hwm = NGX_LLMD_KV_RCVHWM;
    zero = 0;
    (void) zmq_setsockopt(ks->zsock, ZMQ_MAXMSGSIZE, &maxmsg,
                          sizeof(maxmsg));
    (void) zmq_setsockopt(ks->zsock, ZMQ_RCVHWM, &hwm, sizeof(hwm));
    (void) zmq_setsockopt(ks->zsock, ZMQ_LINGER, &zero, sizeof(zero));

    size = sizeof(fd);
    if (zmq_getsockopt(ks->zsock, ZMQ_FD, &fd, &size) != 0) {
        return NULL;
    }

    c = ngx_get_connection(fd, up->log);
    if (c == NULL) {
        return NULL;
    }

    c->data = ks;
    c->read->handler = ngx_llmd_kv_read;
    c->read->log = up->log;
    c->write->log = up->log;
    ks->c = c;

    if (ngx_add_event(c->read, NGX_READ_EVENT, NGX_CLEAR_EVENT) != NGX_OK) {
        return NULL;
    }

    return ks;
}


static void
ngx_llmd_kv_read(ngx_event_t *rev)
{
    ngx_connection_t  *c;

    c = rev->data;
    ngx_llmd_kv_drain(c->data);
}


static void
ngx_llmd_kv_drain(ngx_llmd_kv_sock_t *ks)
{
    int         events, more;
    size_t      size;
    ngx_uint_t  n, i, got;
    zmq_msg_t   frames[NGX_LLMD_KV_MAX_FRAMES], extra;

    for (n = 0; n < NGX_LLMD_KV_DRAIN_BATCH; n++) {
        got = 0;
        more = 1;

        /* one message: keep its first frames, drop any beyond the bound */
        while (more) {
            if (got < NGX_LLMD_KV_MAX_FRAMES) {
                zmq_msg_init(&frames[got]);
                if (zmq_msg_recv(&frames[got], ks->zsock, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&frames[got]);
                    break;
                }

                more = zmq_msg_more(&frames[got]);
                got++;

            } else {
                zmq_msg_init(&extra);
                if (zmq_msg_recv(&extra, ks->zsock, ZMQ_DONTWAIT) < 0) {
                    zmq_msg_close(&extra);
                    break;
                }

                more = zmq_msg_more(&extra);
                zmq_msg_close(&extra);
                got = NGX_LLMD_KV_MAX_FRAMES + 1;
            }
        }

        if (got == 0) {
            /*
             * nothing queued. ZMQ_EVENTS (a poll() of libzmq's mailbox:
             * with small batches poll() and libzmq's getpid() were 9 % of
             * the main thread when asked before every message) is asked
             * only here: it also rearms the edge-triggered descriptor, so
             * a message that came meanwhile is read now
             */
            size = sizeof(events);
            if (zmq_getsockopt(ks->zsock, ZMQ_EVENTS, &events, &size) != 0
                || !(events & ZMQ_POLLIN))
            {
                return;
            }

            continue;
        }

        if (got <= NGX_LLMD_KV_MAX_FRAMES) {
            switch (ks->type) {
            case NGX_LLMD_KV_SOCK_SUB:
                ngx_llmd_kv_live(ks, frames, got);
                break;
            case NGX_LLMD_KV_SOCK_REPLAY:
                ngx_llmd_kv_replayed(ks, frames, got);
                break;
            case NGX_LLMD_KV_SOCK_MONITOR:
                ngx_llmd_kv_monitor(ks, frames, got);
                break;
            }

        } else {
            (void) ngx_atomic_fetch_add(&ks->up->lcf->sh->kv_malformed, 1);
        }

        for (i = 0; i < got && i < NGX_LLMD_KV_MAX_FRAMES; i++) {
            zmq_msg_close(&frames[i]);
        }
    }

    /* more is queued: let timers and other sockets run first */
    ngx_post_event(ks->c->read, &ngx_posted_events);
}


/* [topic, seq, payload] from a SUB socket. */
static void
ngx_llmd_kv_live(ngx_llmd_kv_sock_t *ks, zmq_msg_t *frames, ngx_uint_t n)
{
    size_t                pod_len, model_len;
    uint64_t              seq;
    ngx_int_t             slot;
    const char           *pod, *model, *peer;
    ngx_llmd_kv_up_t     *up;
    llmd_kv_action_t      act;
    ngx_llmd_srv_conf_t  *lcf;

    up = ks->up;
    lcf = up->lcf;

    if (n != 3
        || llmd_kv_topic_parse(zmq_msg_data(&frames[0]),
                               zmq_msg_size(&frames[0]), &pod, &pod_len,
                               &model, &model_len)
           != 0
        || llmd_kv_seq_parse(zmq_msg_data(&frames[1]),
                             zmq_msg_size(&frames[1]), &seq)
           != 0)
    {
        (void) ngx_atomic_fetch_add(&lcf->sh->kv_malformed, 1);
        return;
    }

    slot = ks->slot >= 0 ? ks->slot
                         : llmd_kv_pod_find(up->servers, LLMD_MAX_ENDPOINTS,
                                            pod, pod_len);

    if (slot < 0) {
        if (ngx_atomic_fetch_add(&lcf->sh->kv_unknown_pod, 1) == 0) {
            ngx_log_error(NGX_LOG_WARN, up->log, 0,
                          "llmd: KV events from \"%*s\", which is no server "
                          "of upstream \"%V\", are dropped", pod_len, pod,
                          &lcf->upstream->host);
        }

        return;
    }

    if (ks->slot < 0 && lcf->kv_peer_check) {
        /* in bind mode anyone may connect: a pod speaks only for itself */
        peer = zmq_msg_gets(&frames[0], "Peer-Address");

        if (peer == NULL || !llmd_kv_pod_peer_is(&up->servers[slot], peer)) {
            (void) ngx_atomic_fetch_add(&lcf->sh->kv_spoofed, 1);

            if (!up->pods[slot].spoof_warned) {
                up->pods[slot].spoof_warned = 1;
                ngx_log_error(NGX_LOG_WARN, up->log, 0,
                              "llmd: KV events for %*s of upstream \"%V\" "
                              "came from %s and are dropped (a pod may only "
                              "publish for itself; \"llmd_kv_events bind ... "
                              "peers=any\" accepts them)",
                              pod_len, pod, &lcf->upstream->host,
                              peer ? peer : "an unknown address");
            }

            return;
        }
    }

    act = llmd_kv_stream_live(&up->pods[slot].stream, seq, model,
                              model_len, ngx_current_msec);

    lcf->sh->endpoints[slot].kv_last_seq = seq;

    ngx_llmd_kv_perform(up, slot, &act, zmq_msg_data(&frames[2]),
                        zmq_msg_size(&frames[2]));
}


/*
 * A DEALER sees ["", seq, payload] (vLLM before #45177) or
 * ["", topic, seq, payload]; seq 0xff..ff with an empty payload ends it.
 */
static void
ngx_llmd_kv_replayed(ngx_llmd_kv_sock_t *ks, zmq_msg_t *frames,
    ngx_uint_t n)
{
    size_t             pod_len, model_len;
    uint64_t           seq;
    const char        *pod, *model;
    llmd_kv_action_t   act;

    if ((n != 3 && n != 4)
        || zmq_msg_size(&frames[0]) != 0
        || llmd_kv_seq_parse(zmq_msg_data(&frames[n - 2]),
                             zmq_msg_size(&frames[n - 2]), &seq)
           != 0)
    {
        (void) ngx_atomic_fetch_add(&ks->up->lcf->sh->kv_malformed, 1);
        return;
    }

    model = NULL;
    model_len = 0;

    if (n == 4
        && llmd_kv_topic_parse(zmq_msg_data(&frames[1]),
                               zmq_msg_size(&frames[1]), &pod, &pod_len,
                               &model, &model_len)
           != 0)
    {
        model = NULL;
    }

    act = llmd_kv_stream_replayed(&ks->up->pods[ks->slot].stream, seq,
                                  model, model_len);

    ngx_llmd_kv_perform(ks->up, ks->slot, &act,
                        zmq_msg_data(&frames[n - 1]),
                        zmq_msg_size(&frames[n - 1]));
}


/* libzmq monitor messages: [event u16 + value u32, endpoint]. */
static void
ngx_llmd_kv_monitor(ngx_llmd_kv_sock_t *ks, zmq_msg_t *frames, ngx_uint_t n)
{
    uint16_t                 event;
    llmd_kv_stream_t        *stream;
    llmd_kv_action_t         act;
    ngx_llmd_endpoint_sh_t  *ep;

    if (n < 1 || zmq_msg_size(&frames[0]) < 6) {
        return;
    }

    ngx_memcpy(&event, zmq_msg_data(&frames[0]), sizeof(event));

    stream = &ks->up->pods[ks->slot].stream;
    ep = &ks->up->lcf->sh->endpoints[ks->slot];

    if (event == ZMQ_EVENT_DISCONNECTED) {
        ep->kv_connected = 0;
        act = llmd_kv_stream_disconnected(stream);

    } else if (event == ZMQ_EVENT_CONNECTED) {
        /*
         * a publisher connected to and silent has reported no block: its
         * precise match (nothing, or speculative entries) needs no
         * approximate fallback (ngx_llmd_prefix.c)
         */
        if (ks->up->lcf->sh->writer_pid == ngx_pid) {
            ep->kv_connected = 1;
        }

        act = llmd_kv_stream_connected(stream, ngx_current_msec);

    } else {
        return;
    }

    ngx_llmd_kv_perform(ks->up, ks->slot, &act, NULL, 0);
}


/* Does what the stream rules decided, in their order. */
static void
ngx_llmd_kv_perform(ngx_llmd_kv_up_t *up, ngx_uint_t slot,
    const llmd_kv_action_t *act, const void *payload, size_t len)
{
    ngx_llmd_srv_conf_t  *lcf;

    lcf = up->lcf;

    if (act->what & LLMD_KV_MALFORMED) {
        (void) ngx_atomic_fetch_add(&lcf->sh->kv_malformed, 1);
    }

    if (act->what & LLMD_KV_COUNT_GAP) {
        (void) ngx_atomic_fetch_add(&lcf->sh->endpoints[slot].kv_gaps, 1);
    }

    if (act->what & LLMD_KV_CLEAR) {
        ngx_llmd_kv_clear(lcf, slot, act->why);
    }

    if (act->what & LLMD_KV_REQUEST_REPLAY) {
        ngx_llmd_kv_request_replay(up, slot, act->replay_from);
    }

    if (act->what & LLMD_KV_APPLY) {
        ngx_llmd_kv_apply(up, slot, act->model, act->model_len, payload,
                          len);
    }
}


static void
ngx_llmd_kv_apply(ngx_llmd_kv_up_t *up, ngx_uint_t slot,
    const char *model, size_t model_len, const void *payload, size_t len)
{
    char                     err[LLMD_ERRLEN];
    ngx_int_t                rc;
    ngx_llmd_srv_conf_t     *lcf;
    ngx_llmd_kv_apply_t      a;
    ngx_llmd_endpoint_sh_t  *ep;
    llmd_kv_batch_info_t     info;

    lcf = up->lcf;

    ngx_memzero(&a, sizeof(a));
    a.up = up;
    a.slot = slot;
    a.model = model;
    a.model_len = model_len;
    a.root = llmd_kv_root_key(lcf->prefix.hash_seed,
                              ngx_strlen(lcf->prefix.hash_seed),
                              model, model_len);

    ep = &lcf->sh->endpoints[a.slot];

    /*
     * the lock is taken at the first event and released every
     * NGX_LLMD_KV_HOLD_BLOCKS blocks: workers never wait for a whole batch
     */
    rc = llmd_kv_batch_decode(payload, len, ngx_llmd_kv_event, &a, &info,
                              err, sizeof(err));

    ngx_llmd_kv_unlock(&a);

    if (rc != 0) {
        (void) ngx_atomic_fetch_add(&lcf->sh->kv_malformed, 1);
        ngx_log_error(NGX_LOG_INFO, up->log, 0,
                      "llmd: KV-event batch from %*s dropped: %s",
                      ep->name_len, ep->name, err);
        return;
    }

    (void) ngx_atomic_fetch_add(&ep->kv_batches, 1);
    (void) ngx_atomic_fetch_add(&ep->kv_blocks_stored, a.st.stored);
    (void) ngx_atomic_fetch_add(&ep->kv_blocks_removed, a.st.removed);
    (void) ngx_atomic_fetch_add(&ep->kv_dropped,
                                a.st.dropped_unknown_parent
                                + a.st.dropped_block_size
                                + a.st.dropped_other);
    ep->kv_last_event = ngx_current_msec;
    ep->kv_live = 1;
}


/* Called by the decoder for each event. */
static void
ngx_llmd_kv_event(void *data, const llmd_kv_event_t *ev)
{
    ngx_llmd_kv_apply_t  *a = data;

    uint64_t  root;

    root = a->root;

    /* LoRA blocks are keyed by the adapter's name, as llm-d does */
    if (ev->lora_name != NULL && ev->lora_name_len) {
        root = llmd_kv_root_key(a->up->lcf->prefix.hash_seed,
                                ngx_strlen(a->up->lcf->prefix.hash_seed),
                                ev->lora_name, ev->lora_name_len);
    }

    if (a->hold_start == 0) {
        ngx_shmtx_lock(&a->up->lcf->shpool->mutex);
        a->hold_start = ngx_llmd_kv_ns();
        a->held = 0;
    }

    /* the index is cache misses: start the next event's while applying */
    if (ev->next != NULL) {
        llmd_kv_index_prefetch(a->up->lcf->kv_index, (uint32_t) a->slot,
                               ev->next);
    }

    llmd_kv_index_apply(a->up->lcf->kv_index, (uint32_t) a->slot, root,
                        a->up->lcf->prefix.block_size, ev, &a->st);

    /* an event of no blocks costs about as much as a block */
    a->held += ev->nhashes ? ev->nhashes : 1;

    if (a->held >= NGX_LLMD_KV_HOLD_BLOCKS) {
        ngx_llmd_kv_unlock(a);
    }
}


/* Releases the index lock if held, and counts how long it was held. */
static void
ngx_llmd_kv_unlock(ngx_llmd_kv_apply_t *a)
{
    uint64_t           ns;
    ngx_llmd_shctx_t  *sh;

    if (a->hold_start == 0) {
        return;
    }

    ngx_shmtx_unlock(&a->up->lcf->shpool->mutex);

    ns = ngx_llmd_kv_ns() - a->hold_start;
    a->hold_start = 0;

    /* only the helper writes these */
    sh = a->up->lcf->sh;
    sh->kv_holds++;
    sh->kv_hold_ns_sum += ns;

    if (ns > sh->kv_hold_ns_max) {
        sh->kv_hold_ns_max = ns;
    }
}


/* Monotonic ns, never 0. */
static uint64_t
ngx_llmd_kv_ns(void)
{
    struct timespec  ts;

    (void) clock_gettime(CLOCK_MONOTONIC, &ts);

    return (uint64_t) ts.tv_sec * 1000000000 + ts.tv_nsec + 1;
}


static void
ngx_llmd_kv_request_replay(ngx_llmd_kv_up_t *up, ngx_uint_t slot,
    uint64_t from)
{
    int                  i;
    u_char               seq[8];
    ngx_llmd_kv_pod_t   *p;

    p = &up->pods[slot];

    for (i = 0; i < 8; i++) {
        seq[i] = (u_char) (from >> (56 - 8 * i));
    }

    if (zmq_send(p->replay->zsock, "", 0, ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0
        || zmq_send(p->replay->zsock, seq, 8, ZMQ_DONTWAIT) < 0)
    {
        ngx_llmd_kv_clear(up->lcf, slot,
                          llmd_kv_stream_replay_failed(&p->stream));
        return;
    }

    (void) ngx_atomic_fetch_add(&up->lcf->sh->endpoints[slot].kv_replays,
                                1);

    /* sending may have consumed the edge that announced a reply */
    ngx_post_event(p->replay->c->read, &ngx_posted_events);
}


static void
ngx_llmd_kv_tick(ngx_event_t *ev)
{
    ngx_uint_t            i;
    ngx_llmd_kv_up_t     *up;
    llmd_kv_action_t      act;
    ngx_llmd_kv_sock_t  **ksp;

    up = ev->data;
    ksp = up->socks.elts;

    if (up->lcf->sh->writer_pid != ngx_pid) {
        /* a newer helper took over: free the addresses for it */
        ngx_log_error(NGX_LOG_INFO, ev->log, 0, "llmd: KV events of "
                      "upstream \"%V\" handed over to process %P",
                      &up->lcf->upstream->host, up->lcf->sh->writer_pid);
        ngx_llmd_kv_close(up);
        return;
    }

    for (i = 0; i < up->socks.nelts; i++) {
        if (ksp[i]->pending) {
            if (zmq_bind(ksp[i]->zsock, ksp[i]->pending) == 0) {
                ngx_log_error(NGX_LOG_NOTICE, ev->log, 0, "llmd: bound "
                              "\"%s\" for KV events", ksp[i]->pending);
                ksp[i]->pending = NULL;

            } else if (zmq_errno() != EADDRINUSE) {
                ngx_log_error(NGX_LOG_ALERT, ev->log, 0, "llmd: cannot bind "
                              "\"%s\": %s", ksp[i]->pending,
                              zmq_strerror(zmq_errno()));
                ksp[i]->pending = NULL;
            }
        }

        ngx_llmd_kv_drain(ksp[i]);
    }

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        if (up->servers[i].len == 0) {
            continue;
        }

        act = llmd_kv_stream_tick(&up->pods[i].stream, ngx_current_msec);
        ngx_llmd_kv_perform(up, i, &act, NULL, 0);
    }

    if (!ngx_exiting && !ngx_terminate && !ngx_quit) {
        ngx_add_timer(ev, NGX_LLMD_KV_TICK);
    }
}
