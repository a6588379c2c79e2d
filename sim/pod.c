/*
 * One simulated vLLM pod: its endpoints (routing), its life cycle (start,
 * stop, restart with an empty cache and a new event sequence, as a
 * restarted vLLM has) and the fault switches tests use.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/epoll.h>

#include <cJSON.h>

#include "sim.h"


sim_pod_t  *sim_pods;
int         sim_npods;


static void sim_pod_engine_id(sim_pod_t *pod);


static void
sim_pod_removed(void *ctx, uint64_t hash)
{
    sim_pod_t  *pod = ctx;

    sim_pub_block_removed(pod->pub, hash);
}


/* Expands {ip} {port} {model} in the topic template. */
static void
sim_topic(sim_pod_t *pod)
{
    const char  *t = pod->cf->kv_topic;
    char        *o = pod->topic, *end = pod->topic + sizeof(pod->topic) - 1;
    char         val[300];
    size_t       n;

    while (*t && o < end) {
        val[0] = '\0';
        if (strncmp(t, "{ip}", 4) == 0) {
            snprintf(val, sizeof(val), "%s", pod->host);
            t += 4;
        } else if (strncmp(t, "{port}", 6) == 0) {
            snprintf(val, sizeof(val), "%d", pod->port);
            t += 6;
        } else if (strncmp(t, "{model}", 7) == 0) {
            snprintf(val, sizeof(val), "%s", pod->cf->model);
            t += 7;
        } else {
            *o++ = *t++;
            continue;
        }
        n = strlen(val);
        if (n > (size_t) (end - o)) {
            n = (size_t) (end - o);
        }
        memcpy(o, val, n);
        o += n;
    }
    *o = '\0';
}


/*
 * A restarted vLLM has a new engine id (a uuid4 unless configured): blocks
 * named by the old one are gone.  Made of the pod's address, port and
 * start time, so that pods and starts differ.
 */
static void
sim_pod_engine_id(sim_pod_t *pod)
{
    struct in_addr  a;
    uint64_t        t = (uint64_t) sim_now_ns();

    if (inet_pton(AF_INET, pod->host, &a) != 1) {
        a.s_addr = 0;
    }

    snprintf(pod->engine_id, sizeof(pod->engine_id),
             "%08x-%04x-4%03x-8%03x-%012llx", ntohl(a.s_addr),
             (unsigned) pod->port, (unsigned) (t >> 48) & 0xfff,
             (unsigned) (t >> 36) & 0xfff,
             (unsigned long long) (t & 0xffffffffffffULL));
}


int
sim_pod_init(sim_pod_t *pod, const sim_config_t *cf, int index, char *err,
    size_t errlen)
{
    memset(pod, 0, sizeof(sim_pod_t));
    pod->index = index;
    pod->cf = cf;
    pod->role = (sim_role_t) cf->roles[index];

    if (cf->nhosts) {
        /* one port, an address per pod: x-sim-pod needs both */
        pod->host = cf->hosts[index];
        pod->port = cf->port;
        snprintf(pod->name, sizeof(pod->name), "%s:%d", pod->host,
                 pod->port);
    } else {
        pod->host = cf->host;
        pod->port = cf->port + index;
        snprintf(pod->name, sizeof(pod->name), "%d", pod->port);
    }

    pod->lfd = -1;
    pod->lh.tag = SIM_TAG_LISTEN;
    pod->lh.obj = pod;
    pod->rh.tag = SIM_TAG_REPLAY;
    pod->rh.obj = pod;
    sim_topic(pod);

    if (sim_hasher_init(&pod->hasher, cf->hash_algo, cf->hash_seed) != 0) {
        snprintf(err, errlen, "bad hash seed");
        return -1;
    }

    if (cf->fault_json
        && sim_pod_fault(pod, cf->fault_json, strlen(cf->fault_json), err,
                         errlen) != 0)
    {
        return -1;
    }

    return 0;
}


int
sim_pod_start(sim_pod_t *pod, char *err, size_t errlen)
{
    struct epoll_event  ev;
    const sim_config_t *cf = pod->cf;
    int                 fd, ep = sim_http_epoll_fd();

    if (pod->up) {
        return 0;
    }

    sim_kv_destroy(pod->kv);
    pod->kv = sim_kv_create(cf->num_blocks, sim_pod_removed, pod);
    if (pod->kv == NULL) {
        snprintf(err, errlen, "cannot allocate %u KV blocks",
                 cf->num_blocks);
        return -1;
    }

    sim_stats_init(&pod->stats);
    sim_pod_engine_id(pod);

    if (cf->kv_endpoint) {
        pod->pub = sim_pub_create(cf, pod->index,
                                  cf->nhosts ? pod->host : NULL, pod->topic,
                                  err, errlen);
        if (pod->pub == NULL) {
            return -1;
        }
    }

    pod->lfd = sim_http_listen(pod->host, pod->port);
    if (pod->lfd < 0) {
        snprintf(err, errlen, "listen %s:%d: %m", pod->host, pod->port);
        sim_pub_destroy(pod->pub);
        pod->pub = NULL;
        return -1;
    }

    ev.events = EPOLLIN;
    ev.data.ptr = &pod->lh;
    epoll_ctl(ep, EPOLL_CTL_ADD, pod->lfd, &ev);

    fd = sim_pub_replay_fd(pod->pub);
    if (fd >= 0) {
        ev.events = EPOLLIN;
        ev.data.ptr = &pod->rh;
        epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    }

    pod->up = 1;
    return 0;
}


void
sim_pod_stop(sim_pod_t *pod)
{
    sim_conn_t  *c;
    int          fd, ep = sim_http_epoll_fd();

    if (!pod->up) {
        return;
    }

    epoll_ctl(ep, EPOLL_CTL_DEL, pod->lfd, NULL);
    close(pod->lfd);
    pod->lfd = -1;

    for (c = pod->conns; c; c = c->next) {
        if (c->sreq) {
            c->sreq->conn = NULL;
            c->sreq = NULL;
        }
        c->busy = 0;
        sim_http_close(c);
    }

    sim_engine_clear(pod);

    fd = sim_pub_replay_fd(pod->pub);
    if (fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    }
    sim_pub_destroy(pod->pub);
    pod->pub = NULL;
    pod->up = 0;
}


int64_t
sim_pod_timers(sim_pod_t *pod, int64_t now)
{
    sim_pod_faults_t  *f = &pod->faults;
    char               err[256];
    int64_t            next = 0;

    if (f->stop_at_ns && now >= f->stop_at_ns) {
        f->stop_at_ns = 0;
        sim_pod_stop(pod);
        if (!pod->cf->quiet) {
            sim_log("pod %d (%s:%d) stopped", pod->index, pod->host,
                    pod->port);
        }
    }

    if (f->restart_at_ns && now >= f->restart_at_ns) {
        f->restart_at_ns = 0;
        if (sim_pod_start(pod, err, sizeof(err)) != 0) {
            /* e.g. the old ZMQ port is not released yet: try again */
            f->restart_at_ns = now + 50 * 1000000LL;
        } else if (!pod->cf->quiet) {
            sim_log("pod %d (%s:%d) started", pod->index, pod->host,
                    pod->port);
        }
    }

    if (f->stop_at_ns) {
        next = f->stop_at_ns;
    }
    if (f->restart_at_ns && (next == 0 || f->restart_at_ns < next)) {
        next = f->restart_at_ns;
    }
    return next;
}


static int
sim_json_int(const cJSON *o, const char *name, int *v)
{
    const cJSON  *e = cJSON_GetObjectItemCaseSensitive(o, name);

    if (!cJSON_IsNumber(e)) {
        return 0;
    }
    *v = e->valueint;
    return 1;
}


int
sim_pod_fault(sim_pod_t *pod, const char *json, size_t len, char *err,
    size_t errlen)
{
    cJSON             *j;
    sim_pod_faults_t  *f;
    sim_pub_faults_t  *pf;
    int64_t            now = sim_now_ns();
    int                v;

    j = cJSON_ParseWithLength(json, len);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        snprintf(err, errlen, "fault body must be a JSON object");
        return -1;
    }

    if (sim_json_int(j, "pod", &v)) {
        if (v < 0 || v >= sim_npods) {
            cJSON_Delete(j);
            snprintf(err, errlen, "no pod %d", v);
            return -1;
        }
        pod = &sim_pods[v];
    }

    f = &pod->faults;
    pf = pod->pub ? sim_pub_faults(pod->pub) : NULL;

    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "reset"))) {
        f->metrics_delay_ms = 0;
        f->metrics_garbage = 0;
        if (pf) {
            pf->drop = 0;
            pf->reorder = 0;
        }
    }

    if (sim_json_int(j, "metrics_delay_ms", &v)) {
        f->metrics_delay_ms = v < 0 ? 0 : v;
    }
    if (cJSON_GetObjectItemCaseSensitive(j, "metrics_garbage")) {
        f->metrics_garbage = cJSON_IsTrue(
            cJSON_GetObjectItemCaseSensitive(j, "metrics_garbage"));
    }
    if (pf && sim_json_int(j, "drop_events", &v)) {
        pf->drop = v;
    }
    if (pf && cJSON_GetObjectItemCaseSensitive(j, "reorder_events")) {
        pf->reorder = cJSON_IsTrue(
            cJSON_GetObjectItemCaseSensitive(j, "reorder_events"));
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "restart_sequence")))
    {
        sim_pub_restart_sequence(pod->pub);
    }

    /* stops run at the next loop turn, after this answer is written */
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "stop"))) {
        f->stop_at_ns = now;
        f->restart_at_ns = 0;
    }
    if (sim_json_int(j, "down_ms", &v)) {
        f->stop_at_ns = now;
        f->restart_at_ns = now + (int64_t) (v < 1 ? 1 : v) * 1000000LL;
    }
    if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "start"))) {
        f->restart_at_ns = now;
    }

    cJSON_Delete(j);
    return 0;
}


static void
sim_pod_state(sim_conn_t *c, sim_pod_t *pod)
{
    sim_stats_t  *st = &pod->stats;
    sim_buf_t     b = { NULL, 0, 0 };

    sim_buf_printf(&b, "{\"pod\":%d,\"host\":\"%s\",\"port\":%d,\"up\":%s,"
                   "\"running\":%d,\"waiting\":%d,\"num_blocks\":%u,"
                   "\"free_blocks\":%u,\"cached_blocks\":%u,\"steps\":%llu,"
                   "\"requests\":%llu,\"next_seq\":%llu,\"topic\":",
                   pod->index, pod->host, pod->port,
                   pod->up ? "true" : "false",
                   pod->eng.running.n, pod->eng.waiting.n,
                   sim_kv_num_blocks(pod->kv), sim_kv_num_free(pod->kv),
                   sim_kv_num_cached(pod->kv),
                   (unsigned long long) pod->eng.steps,
                   (unsigned long long) pod->requests,
                   (unsigned long long) sim_pub_next_seq(pod->pub));
    sim_buf_json_str(&b, pod->topic, strlen(pod->topic));
    sim_buf_printf(&b, ",\"role\":\"%s\",\"loading\":%d,\"pd\":{"
                   "\"prefill_legs\":%llu,\"remote_prefills\":%llu,"
                   "\"kv_pulls\":%llu,\"kv_pull_bytes\":%llu,"
                   "\"kv_pull_seconds\":%.9g,\"sidecar_prefills\":%llu,"
                   "\"sidecar_failures\":%llu,\"sidecar_fallbacks\":%llu},"
                   "\"lag\":{\"model_s\":%.6f,\"late_steps\":%llu,"
                   "\"lag_s\":%.6f,\"lag_max_s\":%.6f,\"lost_s\":%.6f,"
                   "\"engine_cpu_s\":%.6f}}",
                   sim_role_name(pod->role), pod->eng.loading.n,
                   (unsigned long long) st->prefill_legs,
                   (unsigned long long) st->remote_prefills,
                   (unsigned long long) st->kv_pulls,
                   (unsigned long long) st->kv_pull_bytes,
                   st->xfer_time.sum,
                   (unsigned long long) st->sidecar_legs,
                   (unsigned long long) st->sidecar_failures,
                   (unsigned long long) st->sidecar_fallbacks,
                   pod->eng.model_us / 1e6,
                   (unsigned long long) pod->eng.late_steps,
                   pod->eng.lag_sum_ns / 1e9, pod->eng.lag_max_ns / 1e9,
                   pod->eng.lost_ns / 1e9, pod->eng.cpu_ns / 1e9);
    sim_http_respond(c, 200, "application/json", b.data, b.len);
    sim_buf_free(&b);
}


static void
sim_pod_metrics(sim_conn_t *c)
{
    static const char  garbage[] =
        "vllm:num_requests_running{engine=\"0\" 3.0\n"
        "vllm:kv_cache_usage_perc{{{ not-a-number\n"
        "\x01\x02\xff garbage }}}\n";
    sim_buf_t          b = { NULL, 0, 0 };

    if (c->pod->faults.metrics_garbage) {
        sim_http_respond(c, 200, "text/plain; version=0.0.4", garbage,
                         sizeof(garbage) - 1);
        return;
    }

    sim_metrics_render(c->pod, &b);
    sim_http_respond(c, 200, "text/plain; version=0.0.4; charset=utf-8",
                     b.data, b.len);
    sim_buf_free(&b);
}


static const char  sim_not_found[] = "{\"detail\":\"Not Found\"}";
static const char  sim_not_allowed[] = "{\"detail\":\"Method Not Allowed\"}";


void
sim_pod_route(sim_conn_t *c)
{
    sim_pod_t   *pod = c->pod;
    const char  *m = c->req.method;
    char        *path = c->req.path, *q, err[256];
    int          get, post;

    q = strchr(path, '?');
    if (q) {
        *q = '\0';
    }

    get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0;
    post = strcmp(m, "POST") == 0;

#define SIM_ROUTE(p, ok)                                                     \
    (strcmp(path, p) == 0 && ((ok) || (sim_http_respond(c, 405,             \
        "application/json", sim_not_allowed, sizeof(sim_not_allowed) - 1), 0)))

    if (SIM_ROUTE("/v1/completions", post)) {
        sim_openai_handle(c, SIM_API_COMPLETIONS);

    } else if (SIM_ROUTE("/v1/chat/completions", post)) {
        sim_openai_handle(c, SIM_API_CHAT);

    } else if (SIM_ROUTE("/metrics", get)) {
        if (pod->faults.metrics_delay_ms > 0
            && sim_http_delay(c, sim_now_ns()
                                 + pod->faults.metrics_delay_ms * 1000000LL,
                              sim_pod_metrics)
               == 0)
        {
            return;
        }
        sim_pod_metrics(c);

    } else if (SIM_ROUTE("/health", get)) {
        sim_http_respond(c, 200, "application/json", "", 0);

    } else if (SIM_ROUTE("/v1/models", get)) {
        sim_openai_models(c);

    } else if (SIM_ROUTE("/version", get)) {
        sim_http_respond(c, 200, "application/json",
                         "{\"version\":\"0.0.0+vllm-sim\"}", 27);

    } else if (SIM_ROUTE("/reset_prefix_cache", post)) {
        if (sim_kv_reset(pod->kv) != 0) {
            sim_openai_error(c, 409, "ConflictError", NULL,
                             "blocks are in use; prefix cache not reset");
            return;
        }
        sim_pub_all_cleared(pod->pub);
        sim_pub_flush(pod->pub, sim_wall_time());
        sim_http_respond(c, 200, "application/json", "", 0);

    } else if (SIM_ROUTE("/sim/fault", post)) {
        if (sim_pod_fault(pod, c->req.body, c->req.body_len, err,
                          sizeof(err)) != 0)
        {
            sim_openai_error(c, 400, "BadRequestError", NULL, "%s", err);
            return;
        }
        sim_http_respond(c, 200, "application/json", "{\"ok\":true}", 11);

    } else if (SIM_ROUTE("/sim/state", get)) {
        sim_pod_state(c, pod);

    } else if (strcmp(path, "/v1/completions") && strcmp(path, "/metrics")
               && strcmp(path, "/v1/chat/completions")
               && strcmp(path, "/health") && strcmp(path, "/v1/models")
               && strcmp(path, "/version")
               && strcmp(path, "/reset_prefix_cache")
               && strcmp(path, "/sim/fault") && strcmp(path, "/sim/state"))
    {
        sim_http_respond(c, 404, "application/json", sim_not_found,
                         sizeof(sim_not_found) - 1);
    }

#undef SIM_ROUTE
}
