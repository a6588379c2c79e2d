/*
 * llmd-bench-kv-pub: vLLM KV events at full speed (or at a set rate) into
 * the helper's bind socket, and how fast they become visible.
 *
 *   llmd-bench-kv-pub ENDPOINT STATUS_PORT SECONDS PODS FIRST_POD_PORT
 *                     [blocks-per-s (0 = full speed)] [events-per-batch]
 *
 * PODS publishers (one ZeroMQ PUB socket each, as every vLLM pod has one)
 * connect to ENDPOINT (the helper's `llmd_kv_events bind`) and send
 * [kv@127.0.0.1:<port>@<model>, seq, batch] messages round robin, where a
 * batch is events-per-batch BlockStored events of 4 blocks x 64 tokens,
 * array encoded as vLLM's msgspec does (smallest integer encodings), every
 * other event chained to its predecessor; token ids uniform, or a real
 * tokenization's with LLMD_BENCH_TOKENS=FILE (kv_bench_util.h). The
 * batches are built once with msgpack-c and copied into a pool of POOL
 * send buffers; per send only the block hashes and one token per event
 * are rewritten in a free buffer,
 * which libzmq sends without a copy (zmq_msg_init_data) and gives back
 * once written to the socket, so the publisher costs little CPU and its
 * memory is bounded (POOL buffers). At full speed the sockets do not drop
 * (ZMQ_XPUB_NODROP) and the publisher waits for a buffer: the helper's
 * speed is then what is measured.
 *
 * A second thread polls http://127.0.0.1:STATUS_PORT/llmd/status every
 * 2 ms and sums the endpoints' kv.blocks_stored (cJSON). A batch is
 * visible once its pod's counter covers it; lag = time of the status reply
 * that first shows it - time it was sent (upper bound, 2 ms resolution plus
 * the status request).
 *
 * Prints one line per second (sent, applied, blocks/s) and a summary: sent
 * and applied blocks/s over the run (after a 1 s warm-up), lag p50/p90/p99/
 * max. 127.0.0.1 only.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cJSON.h>
#include <msgpack.h>
#include <zmq.h>

#include "kv_bench_util.h"

#define MAXPODS     64
#define BLOCKS      4
#define BS          64
#define MODEL       "Qwen/Qwen3-0.6B"
#define NVARIANTS   8
#define MAXREC      (1u << 22)
/* send buffers in flight at most (all pods): 64 x 112 KB at the default */
#define POOL        64


typedef struct {
    msgpack_sbuffer  buf;
    size_t          *hash_off;     /* offsets of the 8-byte hash values */
    size_t           nhash;
    size_t          *tok_off;      /* offsets of one uint32 token per event */
    size_t           ntok;
} batch_t;

/* A send buffer: a copy of a template batch, lent to libzmq per send. */
typedef struct sbuf_s  sbuf_t;

struct sbuf_s {
    char            *data;
    size_t           size;
    const batch_t   *tpl;          /* offsets of its hashes and tokens */
    sbuf_t          *next;         /* free list */
};

typedef struct {
    double    t;                   /* sent */
    uint64_t  cum;                 /* the pod's blocks up to this batch */
} rec_t;

typedef struct {
    void      *sock;
    uint64_t   seq;
    uint64_t   sent_blocks;
    rec_t     *recs;
    size_t     nrec;               /* written by the publisher */
    size_t     seen;               /* first not yet visible (poller) */
    char       topic[64];
    char       name[32];
} pod_t;


static pod_t          pods[MAXPODS];
static int            npods;
static int            status_port;
static volatile int   stop;
static double        *lags;
static size_t         nlags, lags_cap;
static double         t_warm;
static uint64_t       applied_total;
static pthread_mutex_t  lag_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t       rnd_state = 0x9e3779b97f4a7c15ULL;
static kv_bench_tokens_t  tokens;   /* the batches' ids (LLMD_BENCH_TOKENS) */
static sbuf_t        *pool_free;
static pthread_mutex_t  pool_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t   pool_cv = PTHREAD_COND_INITIALIZER;


/* libzmq's free function: the buffer was written to the socket (or
   dropped); runs in libzmq's I/O thread. */
static void
pool_put(void *data, void *hint)
{
    sbuf_t  *b = hint;

    (void) data;
    pthread_mutex_lock(&pool_mu);
    b->next = pool_free;
    pool_free = b;
    pthread_cond_signal(&pool_cv);
    pthread_mutex_unlock(&pool_mu);
}


/* A free send buffer; NULL if none came back within 10 ms. */
static sbuf_t *
pool_get(void)
{
    sbuf_t           *b;
    struct timespec   ts;

    pthread_mutex_lock(&pool_mu);
    if (pool_free == NULL) {
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 10000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        while (pool_free == NULL
               && pthread_cond_timedwait(&pool_cv, &pool_mu, &ts) == 0)
        {
            /* woken: look again */
        }
    }
    b = pool_free;
    if (b != NULL) {
        pool_free = b->next;
    }
    pthread_mutex_unlock(&pool_mu);

    return b;
}


/* A uint64 always as 0xcf + 8 bytes, its offset remembered for rewriting. */
static void
pack_hash(msgpack_packer *pk, batch_t *b, uint64_t h)
{
    unsigned char  v[9];
    int            i;

    v[0] = 0xcf;
    for (i = 0; i < 8; i++) {
        v[1 + i] = (unsigned char) (h >> (56 - 8 * i));
    }
    b->hash_off[b->nhash++] = b->buf.size + 1;
    msgpack_sbuffer_write(&b->buf, (const char *) v, 9);
    (void) pk;
}


static void
make_batch(batch_t *b, int events)
{
    int             e, i, k;
    unsigned char   v[5];
    uint32_t        t;
    msgpack_packer  pk;

    msgpack_sbuffer_init(&b->buf);
    b->hash_off = calloc((size_t) events * (BLOCKS + 1), sizeof(size_t));
    b->tok_off = calloc((size_t) events, sizeof(size_t));
    b->nhash = b->ntok = 0;
    msgpack_packer_init(&pk, &b->buf, msgpack_sbuffer_write);

    /* [ts, [events...], dp_rank] */
    msgpack_pack_array(&pk, 3);
    msgpack_pack_double(&pk, 1760000000.5);
    msgpack_pack_array(&pk, events);

    for (e = 0; e < events; e++) {
        /* BlockStored: [tag, hashes, parent, tokens, block_size, lora_id,
           medium, lora_name, extra_keys] (vLLM 0.11+, 9 elements) */
        msgpack_pack_array(&pk, 9);
        kv_bench_pack_str(&pk, "BlockStored");
        msgpack_pack_array(&pk, BLOCKS);
        for (i = 0; i < BLOCKS; i++) {
            pack_hash(&pk, b, 0);
        }
        if (e % 2) {
            pack_hash(&pk, b, 0);          /* parent: previous event's last */
        } else {
            msgpack_pack_nil(&pk);
        }
        msgpack_pack_array(&pk, BLOCKS * BS);
        for (k = 0; k < BLOCKS * BS; k++) {
            if (k == 0) {
                /* rewritten per send: distinct prompts, distinct keys */
                v[0] = 0xce;
                memset(v + 1, 0, 4);
                b->tok_off[b->ntok++] = b->buf.size + 1;
                msgpack_sbuffer_write(&b->buf, (const char *) v, 5);
                continue;
            }
            t = kv_bench_token(&tokens);
            msgpack_pack_uint32(&pk, t);
        }
        msgpack_pack_uint32(&pk, BS);
        msgpack_pack_nil(&pk);
        kv_bench_pack_str(&pk, "GPU");
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
    }

    msgpack_pack_int(&pk, 0);
}


static void
put_be64(char *p, uint64_t v)
{
    int  i;

    for (i = 0; i < 8; i++) {
        p[i] = (char) (v >> (56 - 8 * i));
    }
}


static void
put_be32(char *p, uint32_t v)
{
    int  i;

    for (i = 0; i < 4; i++) {
        p[i] = (char) (v >> (24 - 8 * i));
    }
}


/* New hashes (unique per pod and batch) and first tokens in buffer sb. */
static void
refresh(sbuf_t *sb, uint64_t *next_hash, int events)
{
    const batch_t  *b = sb->tpl;

    int        e, i;
    size_t     h;
    uint64_t   last;

    h = 0;
    last = 0;

    for (e = 0; e < events; e++) {
        uint64_t  first = *next_hash;

        for (i = 0; i < BLOCKS; i++) {
            put_be64(sb->data + b->hash_off[h++], (*next_hash)++);
        }
        if (e % 2) {
            put_be64(sb->data + b->hash_off[h++], last);
        }
        last = first + BLOCKS - 1;

        put_be32(sb->data + b->tok_off[e],
                 65536 + (uint32_t) (kv_bench_rnd(&rnd_state)
                                     % (151936 - 65536)));
    }
}


/* GET /llmd/status; the sum of blocks_stored per pod; -1 on failure. */
static int
poll_status(uint64_t *per_pod)
{
    int                  fd, i, j;
    char                *buf, *body;
    size_t               len, cap;
    ssize_t              n;
    cJSON               *root, *ups, *up, *eps, *ep, *name, *kv, *bs;
    struct sockaddr_in   sa;
    static const char    req[] = "GET /llmd/status HTTP/1.0\r\n"
                                 "Host: 127.0.0.1\r\n\r\n";

    fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }

    memset(&sa, 0, sizeof(sa));
    sa.sin_family = AF_INET;
    sa.sin_port = htons((uint16_t) status_port);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    if (connect(fd, (struct sockaddr *) &sa, sizeof(sa)) != 0
        || write(fd, req, sizeof(req) - 1) != (ssize_t) sizeof(req) - 1)
    {
        close(fd);
        return -1;
    }

    cap = 1 << 16;
    buf = malloc(cap + 1);
    len = 0;

    while (buf && (n = read(fd, buf + len, cap - len)) > 0) {
        len += (size_t) n;
        if (len == cap) {
            cap *= 2;
            buf = realloc(buf, cap + 1);
        }
    }

    close(fd);

    if (buf == NULL) {
        return -1;
    }

    buf[len] = '\0';
    body = strstr(buf, "\r\n\r\n");
    root = body ? cJSON_Parse(body + 4) : NULL;
    free(buf);

    if (root == NULL) {
        return -1;
    }

    memset(per_pod, 0, sizeof(uint64_t) * (size_t) npods);
    ups = cJSON_GetObjectItem(root, "upstreams");

    cJSON_ArrayForEach(up, ups) {
        eps = cJSON_GetObjectItem(up, "endpoints");
        cJSON_ArrayForEach(ep, eps) {
            name = cJSON_GetObjectItem(ep, "name");
            kv = cJSON_GetObjectItem(ep, "kv");
            bs = kv ? cJSON_GetObjectItem(kv, "blocks_stored") : NULL;
            if (!cJSON_IsString(name) || !cJSON_IsNumber(bs)) {
                continue;
            }
            for (j = 0; j < npods; j++) {
                if (strcmp(pods[j].name, name->valuestring) == 0) {
                    per_pod[j] = (uint64_t) bs->valuedouble;
                }
            }
        }
    }

    cJSON_Delete(root);
    (void) i;

    return 0;
}


static void *
poller(void *arg)
{
    int        i;
    double     t;
    uint64_t   per_pod[MAXPODS], sum;
    size_t     nrec, k;
    struct timespec  ts = { 0, 2000000 };

    (void) arg;

    while (!stop) {
        if (poll_status(per_pod) == 0) {
            t = kv_bench_now();
            sum = 0;

            pthread_mutex_lock(&lag_mu);
            for (i = 0; i < npods; i++) {
                sum += per_pod[i];
                nrec = __atomic_load_n(&pods[i].nrec, __ATOMIC_ACQUIRE);
                for (k = pods[i].seen; k < nrec; k++) {
                    if (pods[i].recs[k].cum > per_pod[i]) {
                        break;
                    }
                    if (pods[i].recs[k].t >= t_warm) {
                        if (nlags == lags_cap) {
                            lags_cap = lags_cap ? 2 * lags_cap : 1 << 16;
                            lags = realloc(lags, lags_cap * sizeof(double));
                        }
                        lags[nlags++] = t - pods[i].recs[k].t;
                    }
                }
                pods[i].seen = k;
            }
            applied_total = sum;
            pthread_mutex_unlock(&lag_mu);
        }

        nanosleep(&ts, NULL);
    }

    return NULL;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}


static int
send_batch(pod_t *p, sbuf_t *b)
{
    char            seq[8];
    zmq_msg_t       m;
    zmq_pollitem_t  pi;

    put_be64(seq, ++p->seq);

    for ( ;; ) {
        if (zmq_send(p->sock, p->topic, strlen(p->topic),
                     ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0)
        {
            break;
        }
        if (zmq_errno() != EAGAIN || stop) {
            return -1;
        }
        /* the helper is behind: wait for room (no drop, no gap) */
        pi.socket = p->sock;
        pi.fd = 0;
        pi.events = ZMQ_POLLOUT;
        (void) zmq_poll(&pi, 1, 10);
    }

    /* the rest of a multipart message is never refused; the batch goes
       without a copy, its buffer comes back through pool_put() */
    if (zmq_send(p->sock, seq, 8, ZMQ_SNDMORE) < 0) {
        pool_put(b->data, b);
        return -1;
    }

    (void) zmq_msg_init_data(&m, b->data, b->size, pool_put, b);

    if (zmq_msg_send(&m, p->sock, 0) < 0) {
        zmq_msg_close(&m);
        return -1;
    }

    return 0;
}


int
main(int argc, char **argv)
{
    int         i, v, events, secs, one, hwm;
    void       *ctx;
    double      t0, t_end, t_next, t_report, rate, t;
    uint64_t    next_hash[MAXPODS], sent, sent_warm, applied_warm, applied;
    size_t      k, bytes;
    pthread_t   th;
    batch_t     batches[NVARIANTS];
    sbuf_t     *sb;
    const char *endpoint;

    if (argc < 6) {
        fprintf(stderr, "usage: %s ENDPOINT STATUS_PORT SECONDS PODS "
                "FIRST_POD_PORT [blocks-per-s] [events-per-batch]\n",
                argv[0]);
        return 2;
    }

    endpoint = argv[1];
    status_port = atoi(argv[2]);
    secs = atoi(argv[3]);
    npods = atoi(argv[4]);
    rate = argc > 6 ? atof(argv[6]) : 0;
    events = argc > 7 ? atoi(argv[7]) : 100;

    if (npods < 1 || npods > MAXPODS || secs < 2 || events < 1) {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }

    if (kv_bench_tokens_init(&tokens) != 0) {
        return 2;
    }

    for (v = 0; v < NVARIANTS; v++) {
        make_batch(&batches[v], events);
    }
    bytes = batches[0].buf.size;

    for (k = 0; k < POOL; k++) {
        sb = calloc(1, sizeof(sbuf_t));
        sb->tpl = &batches[k % NVARIANTS];
        sb->size = sb->tpl->buf.size;
        sb->data = malloc(sb->size);
        memcpy(sb->data, sb->tpl->buf.data, sb->size);
        sb->next = pool_free;
        pool_free = sb;
    }

    ctx = zmq_ctx_new();
    one = 1;
    hwm = 1000;

    for (i = 0; i < npods; i++) {
        snprintf(pods[i].name, sizeof(pods[i].name), "127.0.0.1:%d",
                 atoi(argv[5]) + i);
        snprintf(pods[i].topic, sizeof(pods[i].topic), "kv@%s@%s",
                 pods[i].name, MODEL);
        pods[i].recs = malloc(MAXREC * sizeof(rec_t));
        pods[i].sock = zmq_socket(ctx, ZMQ_PUB);
        (void) zmq_setsockopt(pods[i].sock, ZMQ_SNDHWM, &hwm, sizeof(hwm));
        if (rate == 0) {
            (void) zmq_setsockopt(pods[i].sock, ZMQ_XPUB_NODROP, &one,
                                  sizeof(one));
        }
        if (zmq_connect(pods[i].sock, endpoint) != 0) {
            fprintf(stderr, "connect %s: %s\n", endpoint,
                    zmq_strerror(zmq_errno()));
            return 1;
        }
        next_hash[i] = ((uint64_t) (i + 1) << 48) + 1;
    }

    /* let the connections come up (a PUB drops what it sends before) */
    usleep(300000);

    printf("publishing %d pods, batches of %d events x %d blocks x %d "
           "tokens (%zu bytes, %s), %s for %d s\n", npods, events, BLOCKS,
           BS, bytes, kv_bench_tokens_name(&tokens),
           rate > 0 ? "paced" : "full speed", secs);
    if (rate > 0) {
        printf("rate %.0f blocks/s\n", rate);
    }
    fflush(stdout);

    t0 = kv_bench_now();
    t_warm = t0 + 1.0;
    t_end = t0 + secs;
    t_next = t0;
    t_report = t0 + 1.0;
    sent = 0;
    sent_warm = applied_warm = 0;

    pthread_create(&th, NULL, poller, NULL);

    for (v = 0; ; v++) {
        t = kv_bench_now();
        if (t >= t_end) {
            break;
        }

        if (t >= t_report) {
            pthread_mutex_lock(&lag_mu);
            applied = applied_total;
            pthread_mutex_unlock(&lag_mu);
            if (sent_warm == 0 && t >= t_warm) {
                sent_warm = sent;
                applied_warm = applied;
            }
            printf("t=%.0f sent %llu applied %llu\n", t - t0,
                   (unsigned long long) sent, (unsigned long long) applied);
            fflush(stdout);
            t_report += 1.0;
        }

        if (rate > 0) {
            if (t < t_next) {
                struct timespec  ts;
                double           d = t_next - t;

                ts.tv_sec = (time_t) d;
                ts.tv_nsec = (long) ((d - (double) ts.tv_sec) * 1e9);
                nanosleep(&ts, NULL);
            }
            t_next += (double) events * BLOCKS / rate;
        }

        /* the helper is behind when no buffer comes back */
        sb = pool_get();
        if (sb == NULL) {
            v--;
            continue;
        }

        i = v % npods;
        refresh(sb, &next_hash[i], events);

        if (send_batch(&pods[i], sb) != 0) {
            fprintf(stderr, "send: %s\n", zmq_strerror(zmq_errno()));
            break;
        }

        pods[i].sent_blocks += (uint64_t) events * BLOCKS;
        sent += (uint64_t) events * BLOCKS;

        if (pods[i].nrec < MAXREC) {
            pods[i].recs[pods[i].nrec].t = kv_bench_now();
            pods[i].recs[pods[i].nrec].cum = pods[i].sent_blocks;
            __atomic_store_n(&pods[i].nrec, pods[i].nrec + 1,
                             __ATOMIC_RELEASE);
        }
    }

    t = kv_bench_now();

    /* the helper catches up with what is queued: at most 5 s */
    for (k = 0; k < 500; k++) {
        pthread_mutex_lock(&lag_mu);
        applied = applied_total;
        pthread_mutex_unlock(&lag_mu);
        if (applied >= sent) {
            break;
        }
        usleep(10000);
    }

    double t_caught = kv_bench_now();

    stop = 1;
    pthread_join(th, NULL);

    pthread_mutex_lock(&lag_mu);
    applied = applied_total;
    pthread_mutex_unlock(&lag_mu);

    printf("sent %llu blocks in %.2f s: %.3f M blocks/s sent after "
           "warm-up\n", (unsigned long long) sent, t - t0,
           (double) (sent - sent_warm) / (t - t_warm) / 1e6);
    printf("applied %llu blocks (%s) by %.2f s: %.3f M blocks/s applied "
           "after warm-up (until all applied)\n",
           (unsigned long long) applied,
           applied >= sent ? "all" : "NOT all", t_caught - t0,
           (double) (applied - applied_warm) / (t_caught - t_warm) / 1e6);

    if (nlags) {
        qsort(lags, nlags, sizeof(double), cmp_double);
        printf("lag publish -> visible (%zu batches): p50 %.1f ms, p90 %.1f "
               "ms, p99 %.1f ms, max %.1f ms\n", nlags,
               lags[nlags / 2] * 1e3, lags[nlags * 9 / 10] * 1e3,
               lags[nlags * 99 / 100] * 1e3, lags[nlags - 1] * 1e3);
    }

    for (i = 0; i < npods; i++) {
        (void) zmq_close(pods[i].sock);
    }
    (void) zmq_ctx_term(ctx);

    return applied >= sent ? 0 : 1;
}
