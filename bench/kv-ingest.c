/*
 * llmd-bench-kv: KV-event ingestion and precise matching figures.
 *   llmd-bench-kv [seconds-per-run] [index-MiB] [tokens-per-block]
 * Builds realistic vLLM batches with msgpack-c (100 BlockStored events of
 * 4 blocks x 64 tokens (or tokens-per-block) each, chained like growing
 * prompts, array and map encodings), then measures on one core:
 *   - decode only and decode + apply, in blocks/s;
 *   - a steady state where every batch also removes as many blocks as it
 *     stores (what a full vLLM cache sends);
 *   - index bytes per indexed block;
 *   - request keys + match for an 8k-token prompt (p50/p99 over 20000).
 * LLMD_BENCH_HUGE=1 asks for transparent huge pages for the index
 * (madvise(MADV_HUGEPAGE); the region is 2 MiB aligned and rounded up).
 * LLMD_BENCH_TOKENS=FILE takes the batches' token ids in turn from FILE
 * (kv_bench_util.h) instead of drawing them uniformly below 151936.
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "kv/llmd_kv_events.h"
#include "kv/llmd_kv_keys.h"
#include "kv/llmd_kv_index.h"

#include "kv_bench_util.h"

#define EVENTS      100
#define BLOCKS      4
/* tokens per block: the seed's 64, or vLLM's default 16 */
static int  BS = 64;
#define NBATCHES    200
#define MODEL       "Qwen/Qwen3-0.6B"


typedef struct {
    msgpack_sbuffer  buf;
    uint64_t         first_hash;         /* for the removal batch */
} batch_t;

typedef struct {
    llmd_kv_index_t        *idx;
    uint32_t                ep;
    uint64_t                blocks;
    llmd_kv_apply_stats_t   st;
} ctx_t;


static uint64_t  seed = 0x1234567;

static kv_bench_tokens_t  tokens;      /* the batches' ids */


/* One batch of EVENTS BlockStored events; hashes are unique per batch. */
static void
make_batch(batch_t *b, uint64_t base, int map)
{
    int             e, i;
    uint64_t        h, parent;
    msgpack_packer  pk;

    msgpack_sbuffer_init(&b->buf);
    msgpack_packer_init(&pk, &b->buf, msgpack_sbuffer_write);
    b->first_hash = base;

    msgpack_pack_array(&pk, 3);
    msgpack_pack_double(&pk, 1700000000.5);
    msgpack_pack_array(&pk, EVENTS);

    parent = 0;

    for (e = 0; e < EVENTS; e++) {
        if (map) {
            msgpack_pack_map(&pk, 11);
            kv_bench_pack_str(&pk, "type");
        } else {
            msgpack_pack_array(&pk, 8);
        }
        kv_bench_pack_str(&pk, "BlockStored");

        if (map) {
            kv_bench_pack_str(&pk, "block_hashes");
        }
        msgpack_pack_array(&pk, BLOCKS);
        for (i = 0; i < BLOCKS; i++) {
            h = base + (uint64_t) e * BLOCKS + i;
            msgpack_pack_uint64(&pk, h * 0x9e3779b97f4a7c15ULL);
        }

        if (map) {
            kv_bench_pack_str(&pk, "parent_block_hash");
        }
        /* every other event continues the previous one's prompt */
        if (e % 2 == 1) {
            msgpack_pack_uint64(&pk, parent * 0x9e3779b97f4a7c15ULL);
        } else {
            msgpack_pack_nil(&pk);
        }
        parent = base + (uint64_t) e * BLOCKS + BLOCKS - 1;

        if (map) {
            kv_bench_pack_str(&pk, "token_ids");
        }
        msgpack_pack_array(&pk, BLOCKS * BS);
        for (i = 0; i < BLOCKS * BS; i++) {
            msgpack_pack_uint32(&pk, kv_bench_token(&tokens));
        }

        if (map) {
            kv_bench_pack_str(&pk, "block_size");
        }
        msgpack_pack_uint32(&pk, BS);
        if (map) {
            kv_bench_pack_str(&pk, "lora_id");
        }
        msgpack_pack_nil(&pk);
        if (map) {
            kv_bench_pack_str(&pk, "medium");
        }
        kv_bench_pack_str(&pk, "GPU");
        if (map) {
            kv_bench_pack_str(&pk, "lora_name");
        }
        msgpack_pack_nil(&pk);

        if (map) {
            kv_bench_pack_str(&pk, "extra_keys");
            msgpack_pack_array(&pk, BLOCKS);
            for (i = 0; i < BLOCKS; i++) {
                msgpack_pack_nil(&pk);
            }
            kv_bench_pack_str(&pk, "group_idx");
            msgpack_pack_uint32(&pk, 0);
            kv_bench_pack_str(&pk, "kv_cache_spec_kind");
            kv_bench_pack_str(&pk, "full_attention");
        }
    }

    msgpack_pack_uint32(&pk, 0);
}


/* A batch removing the blocks of batch b (one BlockRemoved per block). */
static void
make_removal(msgpack_sbuffer *out, const batch_t *b)
{
    int             i;
    msgpack_packer  pk;

    msgpack_sbuffer_init(out);
    msgpack_packer_init(&pk, out, msgpack_sbuffer_write);

    msgpack_pack_array(&pk, 3);
    msgpack_pack_double(&pk, 1700000000.5);
    msgpack_pack_array(&pk, EVENTS * BLOCKS);
    for (i = 0; i < EVENTS * BLOCKS; i++) {
        msgpack_pack_array(&pk, 3);
        kv_bench_pack_str(&pk, "BlockRemoved");
        msgpack_pack_array(&pk, 1);
        msgpack_pack_uint64(&pk, (b->first_hash + i) * 0x9e3779b97f4a7c15ULL);
        kv_bench_pack_str(&pk, "GPU");
    }
    msgpack_pack_uint32(&pk, 0);
}


static void
count_only(void *data, const llmd_kv_event_t *ev)
{
    ((ctx_t *) data)->blocks += ev->nhashes;
}


static void
apply(void *data, const llmd_kv_event_t *ev)
{
    ctx_t     *c = data;
    uint64_t   root;

    root = ev->lora_name
           ? llmd_kv_root_key("42", 2, ev->lora_name, ev->lora_name_len)
           : llmd_kv_root_key("42", 2, MODEL, sizeof(MODEL) - 1);

    llmd_kv_index_apply(c->idx, c->ep, root, BS, ev, &c->st);
    c->blocks += ev->nhashes;
}


static int
cmp_double(const void *a, const void *b)
{
    double  x = *(const double *) a, y = *(const double *) b;

    return x < y ? -1 : x > y;
}


int
main(int argc, char **argv)
{
    int                    map, steady, rounds, tree;
    char                   err[256];
    void                  *mem;
    size_t                 i, r, bytes, nkeys;
    double                 secs, t0, t, *lat, match[LLMD_MAX_ENDPOINTS];
    uint32_t              *prompt;
    uint64_t               keys[8192 / 16], root, h[8192 / 16];
    ctx_t                  c;
    batch_t               *b[2];
    msgpack_sbuffer       *rm;
    llmd_kv_event_t        ev;
    llmd_kv_index_stats_t  is;

    secs = argc > 1 ? atof(argv[1]) : 2.0;
    bytes = (size_t) (argc > 2 ? atoi(argv[2]) : 256) << 20;
    if (argc > 3 && atoi(argv[3]) > 0 && atoi(argv[3]) <= 1024) {
        BS = atoi(argv[3]);
    }

    if (kv_bench_tokens_init(&tokens) != 0) {
        return 1;
    }

    b[0] = calloc(NBATCHES, sizeof(batch_t));
    b[1] = calloc(NBATCHES, sizeof(batch_t));
    rm = calloc(NBATCHES, sizeof(msgpack_sbuffer));
    /* 2 MB aligned, so that LLMD_BENCH_HUGE=1 can ask for huge pages */
    bytes = (bytes + (2 << 20) - 1) & ~(size_t) ((2 << 20) - 1);
    mem = aligned_alloc(2 << 20, bytes);
    lat = calloc(20000, sizeof(double));
    if (!b[0] || !b[1] || !rm || !mem || !lat) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }

    /* first-touch page faults of the region are not what is measured (they
       are paid once per page of shared memory) */
#ifdef MADV_HUGEPAGE
    if (getenv("LLMD_BENCH_HUGE") && mem != NULL) {
        if (madvise(mem, bytes, MADV_HUGEPAGE) != 0) {
            perror("madvise(MADV_HUGEPAGE)");
        }
    }
#endif
    memset(mem, 0, bytes);

    for (i = 0; i < NBATCHES; i++) {
        make_batch(&b[0][i], 1 + i * EVENTS * BLOCKS, 0);
        make_batch(&b[1][i], 1 + i * EVENTS * BLOCKS, 1);
        make_removal(&rm[i], &b[0][i]);
    }

    printf("batch: %d events x %d blocks x %d tokens (%s); payload array=%zu "
           "map=%zu bytes\n", EVENTS, BLOCKS, BS,
           kv_bench_tokens_name(&tokens),
           b[0][0].buf.size, b[1][0].buf.size);

    for (map = 0; map < 2; map++) {
        /* decode only: the direct reader, then msgpack-c's tree (the
           reference it is held to) */
        for (tree = 0; tree < 2; tree++) {
            memset(&c, 0, sizeof(c));
            t0 = kv_bench_now();
            for (rounds = 0; (t = kv_bench_now()) - t0 < secs; rounds++) {
                for (i = 0; i < NBATCHES; i++) {
                    if ((tree ? llmd_kv_batch_decode_tree
                              : llmd_kv_batch_decode)(b[map][i].buf.data,
                                             b[map][i].buf.size, count_only,
                                             &c, NULL, err, sizeof(err))
                        != 0)
                    {
                        fprintf(stderr, "%s\n", err);
                        return 1;
                    }
                }
            }
            printf("%s decode only%s %.2f M blocks/s (%.0f MB/s)\n",
                   map ? "map  " : "array", tree ? " (tree):" : ":       ",
                   c.blocks / (t - t0) / 1e6,
                   rounds * NBATCHES * (double) b[map][0].buf.size
                   / (t - t0) / 1e6);
        }

        /* decode + apply: fresh endpoints each round, until the index is
           full and evicts */
        for (steady = 0; steady < 2; steady++) {
            memset(&c, 0, sizeof(c));
            c.idx = llmd_kv_index_create(mem, bytes);
            t0 = kv_bench_now();

            for (rounds = 0; (t = kv_bench_now()) - t0 < secs; rounds++) {
                c.ep = rounds % LLMD_MAX_ENDPOINTS;

                for (i = 0; i < NBATCHES; i++) {
                    if (llmd_kv_batch_decode(b[map][i].buf.data,
                                             b[map][i].buf.size, apply, &c,
                                             NULL, err, sizeof(err)) != 0)
                    {
                        fprintf(stderr, "%s\n", err);
                        return 1;
                    }

                    if (steady && i >= 10) {
                        /* remove what was stored 10 batches ago */
                        llmd_kv_batch_decode(rm[i - 10].data, rm[i - 10].size,
                                             apply, &c, NULL, NULL, 0);
                    }
                }

                if (steady) {
                    llmd_kv_index_clear_endpoint(c.idx, c.ep);
                }
            }

            llmd_kv_index_stats(c.idx, &is);
            printf("%s decode+apply%s %.2f M events-blocks/s; stored %.2f M "
                   "blocks/s; entries %llu/%llu evictions %llu "
                   "dropped %llu\n",
                   map ? "map  " : "array",
                   steady ? " +remove:" : ":        ",
                   c.blocks / (t - t0) / 1e6, c.st.stored / (t - t0) / 1e6,
                   (unsigned long long) is.entries,
                   (unsigned long long) is.capacity,
                   (unsigned long long) is.evictions,
                   (unsigned long long) (c.st.dropped_unknown_parent
                                         + c.st.dropped_other
                                         + c.st.dropped_block_size));
        }
    }

    printf("index: %zu bytes per indexed (pod, block) entry; region %zu MiB "
           "holds %llu entries (%.1f bytes each, header included)\n",
           llmd_kv_index_entry_bytes(), bytes >> 20,
           (unsigned long long) is.capacity, (double) bytes / is.capacity);

    /* 8k-token precise decision: keys + match, 8 pods holding the prompt */
    prompt = malloc(8192 * sizeof(uint32_t));
    for (i = 0; i < 8192; i++) {
        prompt[i] = (uint32_t) (kv_bench_rnd(&seed) % 151936);
    }

    for (r = 0; r < 2; r++) {
        uint32_t  bs = r ? 16 : 64;

        c.idx = llmd_kv_index_create(mem, bytes);
        root = llmd_kv_root_key("42", 2, MODEL, sizeof(MODEL) - 1);
        nkeys = 8192 / bs;
        for (i = 0; i < nkeys; i++) {
            h[i] = kv_bench_rnd(&seed);
        }

        memset(&ev, 0, sizeof(ev));
        ev.type = LLMD_KV_BLOCK_STORED;
        ev.hashes = h;
        ev.nhashes = nkeys;
        ev.tokens = prompt;
        ev.ntokens = 8192;
        ev.block_size = bs;
        for (i = 0; i < 8; i++) {
            /* pods hold 1/8 .. 8/8 of the prompt */
            ev.nhashes = nkeys * (i + 1) / 8;
            ev.ntokens = ev.nhashes * bs;
            llmd_kv_index_apply(c.idx, (uint32_t) i * 3, root, bs, &ev,
                                NULL);
        }

        for (i = 0; i < 20000; i++) {
            t0 = kv_bench_now();
            llmd_kv_request_keys(root, root, prompt, 8192, bs, NULL, 0, keys,
                                 nkeys);
            llmd_kv_index_match(c.idx, keys, nkeys, 0, match);
            lat[i] = kv_bench_now() - t0;
        }

        if (match[21] != (double) nkeys) {
            fprintf(stderr, "match error %.1f\n", match[21]);
            return 1;
        }

        qsort(lat, 20000, sizeof(double), cmp_double);
        printf("8k-token keys+match, block %u (%zu keys, 8 pods): "
               "p50 %.1f us, p99 %.1f us\n", bs, nkeys, lat[10000] * 1e6,
               lat[19800] * 1e6);
    }

    for (i = 0; i < NBATCHES; i++) {
        msgpack_sbuffer_destroy(&b[0][i].buf);
        msgpack_sbuffer_destroy(&b[1][i].buf);
        msgpack_sbuffer_destroy(&rm[i]);
    }
    free(b[0]);
    free(b[1]);
    free(rm);
    free(mem);
    free(lat);
    free(prompt);

    return 0;
}
