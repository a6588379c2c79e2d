/*
 * KV events as vLLM publishes them (spec vllm-interop.md sections 1-2): one
 * ZMQ PUB per pod sending [topic, seq (8 bytes BE), msgpack batch] once per
 * engine step with events, in the array encoding (vLLM < #42892) or the map
 * encoding of events, and an optional replay ROUTER answering
 * [id, "", seq8] from a bounded buffer of whole batches.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <msgpack.h>
#include <zmq.h>

#include "sim.h"


#define SIM_END_SEQ  0xffffffffffffffffULL

typedef struct {
    uint64_t   seq;
    char      *data;
    size_t     len;
} sim_batch_t;

struct sim_pub_s {
    void              *pub;
    void              *router;
    int                map;
    int                replay_old;
    char               topic[512];
    size_t             topic_len;
    uint64_t           seq;
    sim_buf_t          ev;              /* encoded events of this step */
    size_t             nev;
    sim_batch_t       *ring;            /* replay buffer */
    int                ring_cap;
    int                ring_start;
    int                ring_n;
    sim_buf_t          held;            /* reorder fault */
    uint64_t           held_seq;
    int                has_held;
    sim_pub_faults_t   faults;
};

static void  *sim_zctx;


int
sim_events_global_init(void)
{
    if (sim_zctx == NULL) {
        sim_zctx = zmq_ctx_new();
    }
    return sim_zctx ? 0 : -1;
}


void
sim_events_global_done(void)
{
    if (sim_zctx) {
        zmq_ctx_term(sim_zctx);
        sim_zctx = NULL;
    }
}


static int
sim_mp_write(void *data, const char *buf, size_t len)
{
    return sim_buf_append(data, buf, len);
}


static void
sim_mp_str(msgpack_packer *pk, const char *s)
{
    size_t  n = strlen(s);

    msgpack_pack_str(pk, n);
    msgpack_pack_str_body(pk, s, n);
}


int
sim_events_encode_stored(sim_buf_t *out, int map, const uint64_t *hashes,
    size_t n, int has_parent, uint64_t parent, const uint32_t *toks,
    size_t ntok, int block_size, const char *salt, size_t salt_len)
{
    msgpack_packer  pk;
    size_t          i;
    size_t          before = out->len;
    int             extra;

    msgpack_packer_init(&pk, out, sim_mp_write);

    /* the salt is an extra key of the block starting at token 0 only */
    extra = map || (salt != NULL && !has_parent);

    if (map) {
        /* type, 7 required fields, extra_keys, group_idx, spec kind */
        msgpack_pack_map(&pk, 11);
        sim_mp_str(&pk, "type");
    } else {
        /* extra_keys (a trailing default) is sent only with a salt */
        msgpack_pack_array(&pk, extra ? 9 : 8);
    }
    sim_mp_str(&pk, "BlockStored");

    if (map) {
        sim_mp_str(&pk, "block_hashes");
    }
    msgpack_pack_array(&pk, n);
    for (i = 0; i < n; i++) {
        msgpack_pack_uint64(&pk, hashes[i]);
    }

    if (map) {
        sim_mp_str(&pk, "parent_block_hash");
    }
    if (has_parent) {
        msgpack_pack_uint64(&pk, parent);
    } else {
        msgpack_pack_nil(&pk);
    }

    if (map) {
        sim_mp_str(&pk, "token_ids");
    }
    msgpack_pack_array(&pk, ntok);
    for (i = 0; i < ntok; i++) {
        msgpack_pack_uint32(&pk, toks[i]);
    }

    if (map) {
        sim_mp_str(&pk, "block_size");
    }
    msgpack_pack_int(&pk, block_size);

    if (map) {
        sim_mp_str(&pk, "lora_id");
    }
    msgpack_pack_nil(&pk);

    if (map) {
        sim_mp_str(&pk, "medium");
    }
    sim_mp_str(&pk, "GPU");

    if (map) {
        sim_mp_str(&pk, "lora_name");
    }
    msgpack_pack_nil(&pk);

    if (extra) {
        if (map) {
            sim_mp_str(&pk, "extra_keys");
        }
        /* one entry per block */
        msgpack_pack_array(&pk, n);
        for (i = 0; i < n; i++) {
            if (i == 0 && salt && !has_parent) {
                msgpack_pack_array(&pk, 1);
                msgpack_pack_str(&pk, salt_len);
                msgpack_pack_str_body(&pk, salt, salt_len);
            } else {
                msgpack_pack_nil(&pk);
            }
        }
    }

    if (map) {
        sim_mp_str(&pk, "group_idx");
        msgpack_pack_int(&pk, 0);
        sim_mp_str(&pk, "kv_cache_spec_kind");
        sim_mp_str(&pk, "full_attention");
    }

    return out->len > before ? 0 : -1;
}


int
sim_events_encode_removed(sim_buf_t *out, int map, uint64_t hash)
{
    msgpack_packer  pk;

    msgpack_packer_init(&pk, out, sim_mp_write);

    if (map) {
        msgpack_pack_map(&pk, 3);
        sim_mp_str(&pk, "type");
        sim_mp_str(&pk, "BlockRemoved");
        sim_mp_str(&pk, "block_hashes");
    } else {
        msgpack_pack_array(&pk, 3);
        sim_mp_str(&pk, "BlockRemoved");
    }

    msgpack_pack_array(&pk, 1);
    msgpack_pack_uint64(&pk, hash);

    if (map) {
        sim_mp_str(&pk, "medium");
    }
    sim_mp_str(&pk, "GPU");
    return 0;
}


int
sim_events_encode_cleared(sim_buf_t *out, int map)
{
    msgpack_packer  pk;

    msgpack_packer_init(&pk, out, sim_mp_write);

    if (map) {
        msgpack_pack_map(&pk, 1);
        sim_mp_str(&pk, "type");
    } else {
        msgpack_pack_array(&pk, 1);
    }
    sim_mp_str(&pk, "AllBlocksCleared");
    return 0;
}


int
sim_events_encode_batch(sim_buf_t *out, double ts, const sim_buf_t *ev,
    size_t nev)
{
    msgpack_packer  pk;

    msgpack_packer_init(&pk, out, sim_mp_write);

    /* [ts, [events...], data_parallel_rank] */
    msgpack_pack_array(&pk, 3);
    msgpack_pack_double(&pk, ts);
    msgpack_pack_array(&pk, nev);
    if (ev->len && sim_buf_append(out, ev->data, ev->len) != 0) {
        return -1;
    }
    msgpack_pack_int(&pk, 0);
    return 0;
}


/*
 * Without --hosts (host NULL), vLLM's data-parallel rule applied to pods: a
 * bound TCP port is offset by the pod index, ipc/inproc names get
 * "_dp<index>", and a connected endpoint is the same for every pod.  With
 * --hosts every pod has its own address and the same ports, as pods in a
 * cluster: a bound TCP endpoint takes the pod's address, a connected one is
 * reached from it (ZMQ's "source;destination" form).
 */
int
sim_events_endpoint(const char *tmpl, int index, const char *host, int bind,
    char *out, size_t cap)
{
    const char  *colon;
    char        *end;
    long         port;
    int          n;

    if (strncmp(tmpl, "tcp://", 6) == 0) {
        colon = strrchr(tmpl, ':');
        if (colon == NULL || colon < tmpl + 6) {
            return -1;
        }
        port = strtol(colon + 1, &end, 10);
        if (host == NULL && bind) {
            port += index;
        }
        if (*end != '\0' || port <= 0 || port > 65535) {
            return -1;
        }

        if (host == NULL) {
            n = snprintf(out, cap, "%.*s:%ld", (int) (colon - tmpl), tmpl,
                         port);

        } else if (bind) {
            n = snprintf(out, cap, "tcp://%s:%ld", host, port);

        } else if (strchr(tmpl, ';') == NULL) {
            n = snprintf(out, cap, "tcp://%s:0;%s", host, tmpl + 6);

        } else {
            /* the source is given already */
            n = snprintf(out, cap, "%s", tmpl);
        }

        return (n < 0 || (size_t) n >= cap) ? -1 : 0;
    }

    if (index == 0 || !bind) {
        n = snprintf(out, cap, "%s", tmpl);
    } else {
        n = snprintf(out, cap, "%s_dp%d", tmpl, index);
    }
    return (n < 0 || (size_t) n >= cap) ? -1 : 0;
}


/* vLLM: bind stable (wildcards, ipc, inproc), connect volatile. */
static int
sim_should_bind(const char *ep)
{
    return strchr(ep, '*') || strstr(ep, "::")
           || strncmp(ep, "ipc://", 6) == 0
           || strncmp(ep, "inproc://", 9) == 0;
}


sim_pub_t *
sim_pub_create(const sim_config_t *cf, int index, const char *host,
    const char *topic, char *err, size_t errlen)
{
    sim_pub_t  *pub;
    char        ep[512];
    int         linger = 0, hwm = cf->kv_hwm, bind, rc;

    pub = calloc(1, sizeof(sim_pub_t));
    if (pub == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }

    pub->map = cf->kv_map_encoding;
    pub->replay_old = cf->kv_replay_old;
    snprintf(pub->topic, sizeof(pub->topic), "%s", topic);
    pub->topic_len = strlen(pub->topic);
    pub->ring_cap = cf->kv_buffer_steps > 0 ? cf->kv_buffer_steps : 1;

    pub->ring = calloc((size_t) pub->ring_cap, sizeof(sim_batch_t));
    if (pub->ring == NULL || sim_events_global_init() != 0) {
        snprintf(err, errlen, "out of memory");
        goto failed;
    }

    /*
     * Separate pods, unlike vLLM's data-parallel ranks, all connect to the
     * one endpoint a centralized subscriber binds; only bound endpoints
     * need a port (or, with --hosts, an address) each.
     */
    bind = sim_should_bind(cf->kv_endpoint);
    if (sim_events_endpoint(cf->kv_endpoint, index, host, bind, ep,
                            sizeof(ep))
        != 0)
    {
        snprintf(err, errlen, "bad KV-event endpoint \"%s\"",
                 cf->kv_endpoint);
        goto failed;
    }

    pub->pub = zmq_socket(sim_zctx, ZMQ_PUB);
    if (pub->pub == NULL) {
        snprintf(err, errlen, "zmq_socket: %s", zmq_strerror(zmq_errno()));
        goto failed;
    }
    zmq_setsockopt(pub->pub, ZMQ_LINGER, &linger, sizeof(linger));
    zmq_setsockopt(pub->pub, ZMQ_SNDHWM, &hwm, sizeof(hwm));
    zmq_setsockopt(pub->pub, ZMQ_RCVHWM, &hwm, sizeof(hwm));

    rc = bind ? zmq_bind(pub->pub, ep) : zmq_connect(pub->pub, ep);
    if (rc != 0) {
        snprintf(err, errlen, "%s %s: %s", bind ? "bind" : "connect", ep,
                 zmq_strerror(zmq_errno()));
        goto failed;
    }

    if (cf->kv_replay_endpoint) {
        if (sim_events_endpoint(cf->kv_replay_endpoint, index, host, 1, ep,
                                sizeof(ep))
            != 0)
        {
            snprintf(err, errlen, "bad replay endpoint \"%s\"",
                     cf->kv_replay_endpoint);
            goto failed;
        }

        pub->router = zmq_socket(sim_zctx, ZMQ_ROUTER);
        if (pub->router == NULL) {
            snprintf(err, errlen, "zmq_socket: %s",
                     zmq_strerror(zmq_errno()));
            goto failed;
        }
        zmq_setsockopt(pub->router, ZMQ_LINGER, &linger, sizeof(linger));

        /* the replay socket is always bound */
        if (zmq_bind(pub->router, ep) != 0) {
            snprintf(err, errlen, "bind %s: %s", ep,
                     zmq_strerror(zmq_errno()));
            goto failed;
        }
    }

    return pub;

failed:

    sim_pub_destroy(pub);
    return NULL;
}


void
sim_pub_destroy(sim_pub_t *pub)
{
    int  i;

    if (pub == NULL) {
        return;
    }

    if (pub->pub) {
        zmq_close(pub->pub);
    }
    if (pub->router) {
        zmq_close(pub->router);
    }

    if (pub->ring) {
        for (i = 0; i < pub->ring_cap; i++) {
            free(pub->ring[i].data);
        }
        free(pub->ring);
    }

    sim_buf_free(&pub->ev);
    sim_buf_free(&pub->held);
    free(pub);
}


void
sim_pub_block_stored(sim_pub_t *pub, const uint64_t *hashes, size_t n,
    int has_parent, uint64_t parent, const uint32_t *toks, size_t ntok,
    int block_size, const char *salt, size_t salt_len)
{
    if (pub == NULL || n == 0) {
        return;
    }

    if (sim_events_encode_stored(&pub->ev, pub->map, hashes, n, has_parent,
                                 parent, toks, ntok, block_size, salt,
                                 salt_len) == 0)
    {
        pub->nev++;
    }
}


void
sim_pub_block_removed(sim_pub_t *pub, uint64_t hash)
{
    if (pub && sim_events_encode_removed(&pub->ev, pub->map, hash) == 0) {
        pub->nev++;
    }
}


void
sim_pub_all_cleared(sim_pub_t *pub)
{
    if (pub && sim_events_encode_cleared(&pub->ev, pub->map) == 0) {
        pub->nev++;
    }
}


static void
sim_seq_bytes(uint64_t seq, unsigned char out[8])
{
    int  i;

    for (i = 7; i >= 0; i--) {
        out[i] = (unsigned char) (seq & 0xff);
        seq >>= 8;
    }
}


static void
sim_pub_send(sim_pub_t *pub, uint64_t seq, const char *data, size_t len)
{
    unsigned char  seq8[8];

    sim_seq_bytes(seq, seq8);

    /* a PUB never blocks: beyond the HWM messages are dropped */
    if (zmq_send(pub->pub, pub->topic, pub->topic_len,
                 ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0)
    {
        return;
    }
    zmq_send(pub->pub, seq8, 8, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    zmq_send(pub->pub, data, len, ZMQ_DONTWAIT);
}


static void
sim_pub_remember(sim_pub_t *pub, uint64_t seq, const sim_buf_t *b)
{
    sim_batch_t  *slot;
    char         *copy;
    int           k;

    copy = malloc(b->len ? b->len : 1);
    if (copy == NULL) {
        return;
    }
    memcpy(copy, b->data, b->len);

    if (pub->ring_n == pub->ring_cap) {
        /* drop the oldest batch */
        slot = &pub->ring[pub->ring_start];
        free(slot->data);
        slot->data = NULL;
        pub->ring_start = (pub->ring_start + 1) % pub->ring_cap;
        pub->ring_n--;
    }

    k = (pub->ring_start + pub->ring_n) % pub->ring_cap;
    pub->ring[k].seq = seq;
    pub->ring[k].data = copy;
    pub->ring[k].len = b->len;
    pub->ring_n++;
}


void
sim_pub_flush(sim_pub_t *pub, double ts)
{
    sim_buf_t  batch = { NULL, 0, 0 };
    uint64_t   seq;

    if (pub == NULL || pub->nev == 0) {
        return;
    }

    if (sim_events_encode_batch(&batch, ts, &pub->ev, pub->nev) != 0) {
        goto done;
    }

    seq = pub->seq++;
    sim_pub_remember(pub, seq, &batch);

    if (pub->faults.drop != 0) {
        if (pub->faults.drop > 0) {
            pub->faults.drop--;
        }
        goto done;
    }

    if (pub->faults.reorder) {
        if (!pub->has_held) {
            pub->held.len = 0;
            sim_buf_append(&pub->held, batch.data, batch.len);
            pub->held_seq = seq;
            pub->has_held = 1;
            goto done;
        }

        sim_pub_send(pub, seq, batch.data, batch.len);
        sim_pub_send(pub, pub->held_seq, pub->held.data, pub->held.len);
        pub->has_held = 0;
        goto done;
    }

    if (pub->has_held) {
        sim_pub_send(pub, pub->held_seq, pub->held.data, pub->held.len);
        pub->has_held = 0;
    }

    sim_pub_send(pub, seq, batch.data, batch.len);

done:

    sim_buf_free(&batch);
    pub->ev.len = 0;
    pub->nev = 0;
}


void
sim_pub_restart_sequence(sim_pub_t *pub)
{
    int  i;

    if (pub == NULL) {
        return;
    }

    pub->seq = 0;
    pub->has_held = 0;
    for (i = 0; i < pub->ring_cap; i++) {
        free(pub->ring[i].data);
        pub->ring[i].data = NULL;
    }
    pub->ring_start = 0;
    pub->ring_n = 0;
}


sim_pub_faults_t *
sim_pub_faults(sim_pub_t *pub)
{
    return &pub->faults;
}


uint64_t
sim_pub_next_seq(const sim_pub_t *pub)
{
    return pub ? pub->seq : 0;
}


int
sim_pub_replay_fd(sim_pub_t *pub)
{
    int     fd;
    size_t  len = sizeof(fd);

    if (pub == NULL || pub->router == NULL) {
        return -1;
    }

    if (zmq_getsockopt(pub->router, ZMQ_FD, &fd, &len) != 0) {
        return -1;
    }
    return fd;
}


static void
sim_pub_reply(sim_pub_t *pub, const void *id, size_t idlen, uint64_t seq,
    const char *data, size_t len)
{
    unsigned char  seq8[8];
    int            f = ZMQ_SNDMORE | ZMQ_DONTWAIT;

    sim_seq_bytes(seq, seq8);
    zmq_send(pub->router, id, idlen, f);
    zmq_send(pub->router, "", 0, f);
    if (!pub->replay_old) {
        /* vLLM after #45177 inserts the topic frame */
        zmq_send(pub->router, pub->topic, pub->topic_len, f);
    }
    zmq_send(pub->router, seq8, 8, f);
    zmq_send(pub->router, data, len, ZMQ_DONTWAIT);
}


/* Receives one multipart message; returns the frame count or -1. */
static int
sim_recv_frames(void *sock, char frames[4][64], size_t lens[4])
{
    int     n, more, rc;
    size_t  ml;

    n = 0;
    do {
        char  tmp[64];

        rc = zmq_recv(sock, tmp, sizeof(tmp), ZMQ_DONTWAIT);
        if (rc < 0) {
            return n ? n : -1;
        }
        if (n < 4) {
            memcpy(frames[n], tmp, (size_t) rc < 64 ? (size_t) rc : 64);
            lens[n] = (size_t) rc;
        }
        n++;
        ml = sizeof(more);
        more = 0;
        zmq_getsockopt(sock, ZMQ_RCVMORE, &more, &ml);
    } while (more);

    return n;
}


void
sim_pub_replay_poll(sim_pub_t *pub)
{
    char      frames[4][64];
    size_t    lens[4], elen;
    uint64_t  start;
    int       n, i, k, events;

    if (pub == NULL || pub->router == NULL) {
        return;
    }

    for ( ;; ) {
        elen = sizeof(events);
        if (zmq_getsockopt(pub->router, ZMQ_EVENTS, &events, &elen) != 0
            || !(events & ZMQ_POLLIN))
        {
            return;
        }

        n = sim_recv_frames(pub->router, frames, lens);
        if (n < 0) {
            return;
        }

        /* [identity, "", start_seq (8 bytes BE)], anything else ignored */
        if (n != 3 || lens[0] > 64 || lens[1] != 0 || lens[2] != 8) {
            continue;
        }

        start = 0;
        for (i = 0; i < 8; i++) {
            start = (start << 8) | (unsigned char) frames[2][i];
        }

        for (i = 0; i < pub->ring_n; i++) {
            k = (pub->ring_start + i) % pub->ring_cap;
            if (pub->ring[k].seq >= start) {
                sim_pub_reply(pub, frames[0], lens[0], pub->ring[k].seq,
                              pub->ring[k].data, pub->ring[k].len);
            }
        }

        sim_pub_reply(pub, frames[0], lens[0], SIM_END_SEQ, "", 0);
    }
}
