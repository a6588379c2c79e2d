/*
 * Prefill/decode disaggregation as llm-d runs it (docs/simulator.md):
 * vLLM's NIXL connector (kv_transfer_params: a prefill leg answers where
 * its KV blocks are, a decode request names blocks to pull) and the decode
 * pod's routing sidecar, which on x-prefiller-host-port sends the prefill
 * leg to that pod before the request reaches the decode engine.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include <cJSON.h>

#include "sim.h"


typedef struct {
    sim_req_t        *r;
    sim_pd_done_pt    done;
} sim_pd_leg_t;


static void sim_pd_leg_done(void *ctx, int status, const char *body,
    size_t len, const char *err);
static int sim_pd_set(cJSON *o, const char *name, cJSON *v);


size_t
sim_pd_remote_blocks(const cJSON *params)
{
    const cJSON  *ids, *e;
    size_t        n;

    if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params,
                                                       "do_remote_prefill")))
    {
        return 0;
    }

    ids = cJSON_GetObjectItemCaseSensitive(params, "remote_block_ids");
    if (!cJSON_IsArray(ids)) {
        return 0;
    }

    /* newer vLLM nests one list per KV-cache group: the first is ours */
    if (cJSON_IsArray(ids->child)) {
        ids = ids->child;
    }

    n = 0;
    cJSON_ArrayForEach(e, ids) {
        n += cJSON_IsNumber(e);
    }

    return n;
}


int
sim_pd_is_prefill_leg(const cJSON *params)
{
    return cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(params,
                                                         "do_remote_decode"));
}


/*
 * As vLLM's NixlConnector.request_finished(): the prompt's full blocks,
 * this engine's id and its NIXL side channel (the pod's address; the port
 * offset by the pod index as the KV-event ports, unless --hosts gives
 * every pod an address).
 */
int
sim_pd_params_json(sim_buf_t *b, const sim_pod_t *pod, const sim_req_t *r)
{
    size_t  i, n = r->n_prompt / (size_t) pod->cf->block_size;

    if (n > r->n_blocks) {
        n = r->n_blocks;
    }

    sim_buf_puts(b, "{\"do_remote_prefill\":true,\"do_remote_decode\":false,"
                 "\"remote_block_ids\":[[");
    for (i = 0; i < n; i++) {
        sim_buf_printf(b, "%s%d", i ? "," : "", r->blocks[i]);
    }

    return sim_buf_printf(b, "]],\"remote_engine_id\":\"%s\","
                          "\"remote_request_id\":\"%s%s\","
                          "\"remote_host\":\"%s\",\"remote_port\":%d,"
                          "\"tp_size\":1}", pod->engine_id,
                          r->api == SIM_API_CHAT ? "chatcmpl-" : "cmpl-",
                          r->id, pod->host,
                          SIM_NIXL_SIDE_CHANNEL_PORT
                          + (pod->cf->nhosts ? 0 : pod->index));
}


/* Replaces (or adds) o's member name with v; 0, or -1 without memory. */
static int
sim_pd_set(cJSON *o, const char *name, cJSON *v)
{
    if (v == NULL) {
        return -1;
    }

    cJSON_DeleteItemFromObjectCaseSensitive(o, name);
    if (!cJSON_AddItemToObject(o, name, v)) {
        cJSON_Delete(v);
        return -1;
    }

    return 0;
}


/*
 * What llm-d's sidecar sends the prefiller (NIXL v2 connector): the
 * client's body with stream false, no stream_options, every token limit 1,
 * and kv_transfer_params asking for a remote decode.
 */
char *
sim_pd_prefill_body(const cJSON *request)
{
    static const char  *limits[] = {
        "max_tokens", "max_completion_tokens", "min_tokens"
    };
    static const char  *remote[] = {
        "remote_engine_id", "remote_block_ids", "remote_host", "remote_port"
    };
    cJSON              *j, *kv;
    char               *out = NULL;
    size_t              i;
    int                 bad;

    j = cJSON_Duplicate(request, 1);
    kv = cJSON_CreateObject();
    if (j == NULL || kv == NULL) {
        cJSON_Delete(kv);
        goto done;
    }

    bad = sim_pd_set(j, "stream", cJSON_CreateFalse());
    cJSON_DeleteItemFromObjectCaseSensitive(j, "stream_options");
    for (i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        bad |= sim_pd_set(j, limits[i], cJSON_CreateNumber(1));
    }

    bad |= sim_pd_set(kv, "do_remote_decode", cJSON_CreateTrue());
    bad |= sim_pd_set(kv, "do_remote_prefill", cJSON_CreateFalse());
    for (i = 0; i < sizeof(remote) / sizeof(remote[0]); i++) {
        bad |= sim_pd_set(kv, remote[i], cJSON_CreateNull());
    }

    if (sim_pd_set(j, "kv_transfer_params", kv) == 0 && !bad) {
        out = cJSON_PrintUnformatted(j);
    }

done:

    cJSON_Delete(j);
    return out;
}


int
sim_pd_target(const char *value, size_t len, char *host, size_t hostlen,
    int *port)
{
    struct in_addr   a;
    const char      *p = value, *end, *colon;
    char            *e, num[8];
    long             v;

    /* the first of a comma-separated list, trimmed, "http://" allowed */
    end = memchr(p, ',', len);
    if (end == NULL) {
        end = p + len;
    }
    while (p < end && (*p == ' ' || *p == '\t')) {
        p++;
    }
    while (end > p && (end[-1] == ' ' || end[-1] == '\t')) {
        end--;
    }
    if ((size_t) (end - p) > 7 && strncmp(p, "http://", 7) == 0) {
        p += 7;
    }

    colon = memrchr(p, ':', (size_t) (end - p));
    if (colon == NULL || colon == p || (size_t) (colon - p) >= hostlen
        || end - colon - 1 < 1 || (size_t) (end - colon - 1) >= sizeof(num))
    {
        return -1;
    }

    memcpy(host, p, (size_t) (colon - p));
    host[colon - p] = '\0';
    memcpy(num, colon + 1, (size_t) (end - colon - 1));
    num[end - colon - 1] = '\0';

    v = strtol(num, &e, 10);
    if (!isdigit((unsigned char) num[0]) || *e != '\0' || v < 1 || v > 65535
        || inet_pton(AF_INET, host, &a) != 1)
    {
        return -1;
    }

    *port = (int) v;
    return 0;
}


void
sim_pd_sidecar(sim_req_t *r, const cJSON *request, const char *target,
    size_t target_len, sim_pd_done_pt done)
{
    sim_pod_t           *pod = r->pod;
    const sim_config_t  *cf = pod->cf;
    sim_pd_leg_t        *leg;
    const char          *path;
    char                 host[SIM_MAX_HOST], hdr[128], *body = NULL;
    int                  port;

    r->state = SIM_REQ_SIDECAR;
    pod->stats.sidecar_legs++;

    leg = malloc(sizeof(sim_pd_leg_t));
    if (leg == NULL) {
        done(r, 500, NULL, 0, "out of memory");
        return;
    }
    leg->r = r;
    leg->done = done;

    if (sim_pd_target(target, target_len, host, sizeof(host), &port) != 0) {
        /* llm-d's proxy cannot reach such a prefiller either */
        sim_pd_leg_done(leg, 0, NULL, 0, "bad x-prefiller-host-port");
        return;
    }

    body = sim_pd_prefill_body(request);
    path = r->api == SIM_API_CHAT ? "/v1/chat/completions" : "/v1/completions";
    snprintf(hdr, sizeof(hdr), "x-request-id: %s\r\n", r->id);

    if (body == NULL
        || sim_client_post(cf->nhosts ? pod->host : NULL, host, port, path,
                           hdr, body, strlen(body), cf->pd_connect_timeout_ms,
                           cf->pd_timeout_ms, sim_pd_leg_done, leg)
           == NULL)
    {
        sim_pd_leg_done(leg, 0, NULL, 0, "out of memory");
    }

    free(body);
}


/*
 * The prefiller's answer.  A 2xx body's kv_transfer_params go to the
 * decode engine and its cached_tokens to the client's usage (llm-d
 * rewrites them so).  Anything else fails the request with the prefiller's
 * status and body (502 when it cannot be reached), as llm-d's sidecar does,
 * or with --pd-fallback is prefilled here.
 */
static void
sim_pd_leg_done(void *ctx, int status, const char *body, size_t len,
    const char *err)
{
    sim_pd_leg_t  *leg = ctx;
    sim_req_t     *r = leg->r;
    sim_pd_done_pt done = leg->done;
    sim_stats_t   *st = &r->pod->stats;
    const cJSON   *cached;
    cJSON         *j = NULL;

    free(leg);

    if (status >= 200 && status < 300) {
        j = cJSON_ParseWithLength(body, len);
        if (!cJSON_IsObject(j)) {
            status = 0;
            err = "prefiller answered no JSON object";
        }
    }

    if (status >= 200 && status < 300) {
        r->remote_blocks = sim_pd_remote_blocks(
            cJSON_GetObjectItemCaseSensitive(j, "kv_transfer_params"));
        cached = cJSON_GetObjectItemCaseSensitive(
            cJSON_GetObjectItemCaseSensitive(
                cJSON_GetObjectItemCaseSensitive(j, "usage"),
                "prompt_tokens_details"), "cached_tokens");
        r->prefill_cached = cJSON_IsNumber(cached) ? cached->valueint : 0;
        cJSON_Delete(j);
        done(r, 0, NULL, 0, NULL);
        return;
    }

    cJSON_Delete(j);
    st->sidecar_failures++;

    if (r->pod->cf->pd_fallback) {
        st->sidecar_fallbacks++;
        r->remote_blocks = 0;
        done(r, 0, NULL, 0, NULL);
        return;
    }

    done(r, status ? status : 502, body, status ? len : 0,
         err ? err : "prefill request failed");
}
