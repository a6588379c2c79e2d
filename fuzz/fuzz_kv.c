/*
 * Fuzz target: a vLLM KV-event message as the module receives it from a
 * pod (kv/llmd_kv_events.h): the topic frame (llmd_kv_topic_parse), the
 * sequence frame (llmd_kv_seq_parse) and the msgpack batch
 * (llmd_kv_batch_decode), whose events are applied to a small precise
 * index (llmd_kv_index_apply, kv/llmd_kv_index.h) that fills up and evicts.
 * The keys of the first stored prompt block chain are then matched and
 * speculated on. The batch is also decoded by msgpack-c's object tree
 * (llmd_kv_batch_decode_tree), the reference of the direct reader: any
 * difference in result, error message, batch info or any event field
 * aborts.
 *
 * Input: one byte n, n bytes of topic; one byte m (low 4 bits), m bytes of
 * sequence frame; the rest is the batch.  The sequence picks the endpoint
 * (seq % 4); the topic's model roots the keys.
 */
#include <stdlib.h>
#include <string.h>

#include "kv/llmd_kv_index.h"
#include "kv/llmd_kv_keys.h"
#include "fuzz_common.h"
#include "../t/unit/kv_event_log.h"


#define FUZZ_SEED        "42"
#define FUZZ_BLOCK_SIZE  16
#define FUZZ_EPS         4
#define FUZZ_ENTRIES     48
#define FUZZ_KEYS        16


typedef struct {
    llmd_kv_index_t        *idx;
    uint32_t                ep;
    uint64_t                root;
    size_t                  events;
    llmd_kv_apply_stats_t   st;
    uint64_t                keys[FUZZ_KEYS];
    size_t                  nkeys;
} fuzz_kv_t;


static void fuzz_kv_event(void *data, const llmd_kv_event_t *ev);
static void fuzz_kv_differential(const uint8_t *p, size_t n);
static void fuzz_kv_check_event(const llmd_kv_event_t *ev);
static void fuzz_kv_match(fuzz_kv_t *k);
static uint64_t fuzz_kv_frames(fuzz_input_t *in, const char **model,
    size_t *model_len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                     rc;
    char                    err[LLMD_ERRLEN];
    void                   *mem;
    size_t                  region, model_len;
    fuzz_kv_t               k;
    const char             *model;
    fuzz_input_t            in;
    llmd_kv_batch_info_t    info;
    llmd_kv_index_stats_t   ist;

    in.p = data;
    in.n = size;

    memset(&k, 0, sizeof(k));
    k.ep = (uint32_t) (fuzz_kv_frames(&in, &model, &model_len) % FUZZ_EPS);
    k.root = llmd_kv_root_key(FUZZ_SEED, sizeof(FUZZ_SEED) - 1, model,
                              model_len);

    /* a heap block of its exact size: ASan sees any write past it */
    region = llmd_kv_index_min_size()
             + FUZZ_ENTRIES * llmd_kv_index_entry_bytes();
    mem = malloc(region);
    FUZZ_CHECK(mem != NULL);
    k.idx = llmd_kv_index_create(mem, region);
    FUZZ_CHECK(k.idx != NULL);

    fuzz_kv_differential(in.p, in.n);

    err[0] = '\0';
    rc = llmd_kv_batch_decode(in.p, in.n, fuzz_kv_event, &k, &info, err,
                              sizeof(err));

    if (rc == 0) {
        FUZZ_CHECK(info.events == k.events);
        fuzz_kv_match(&k);

    } else {
        FUZZ_CHECK(rc == -1);
        FUZZ_CHECK(err[0] != '\0');
        /* a malformed batch is rejected as a whole */
        FUZZ_CHECK(k.events == 0);
    }

    llmd_kv_index_stats(k.idx, &ist);
    FUZZ_CHECK(ist.entries <= ist.capacity);
    /* slots, tags and overflow counts agree with the entries */
    FUZZ_CHECK(llmd_kv_index_check(k.idx) == 0);

    free(mem);

    return 0;
}


/* Takes the topic and sequence frames; returns the sequence, 0 if none. */
static uint64_t
fuzz_kv_frames(fuzz_input_t *in, const char **model, size_t *model_len)
{
    size_t          len, pod_len;
    uint64_t        seq;
    const char     *topic, *pod;
    const uint8_t  *frame;

    topic = (const char *) fuzz_bytes(in, fuzz_byte(in), &len);

    if (llmd_kv_topic_parse(topic, len, &pod, &pod_len, model, model_len)
        == 0)
    {
        FUZZ_CHECK(pod >= topic && pod + pod_len <= topic + len);
        FUZZ_CHECK(*model >= topic && *model + *model_len <= topic + len);

    } else {
        *model = "m";
        *model_len = 1;
    }

    frame = fuzz_bytes(in, fuzz_byte(in) & 15, &len);
    seq = 0;

    if (llmd_kv_seq_parse(frame, len, &seq) != 0) {
        FUZZ_CHECK(len < 8);
        seq = 0;
    }

    return seq;
}


static void
fuzz_kv_event(void *data, const llmd_kv_event_t *ev)
{
    fuzz_kv_t  *k = data;

    uint64_t  root;

    k->events++;
    fuzz_kv_check_event(ev);

    /* LoRA blocks are keyed by the adapter's name, as the module does */
    root = k->root;

    if (ev->lora_name != NULL && ev->lora_name_len) {
        root = llmd_kv_root_key(FUZZ_SEED, sizeof(FUZZ_SEED) - 1,
                                ev->lora_name, ev->lora_name_len);
    }

    llmd_kv_index_apply(k->idx, k->ep, root, FUZZ_BLOCK_SIZE, ev, &k->st);

    /* the keys of the first prompt-start chain, for the match later */
    if (k->nkeys == 0 && ev->type == LLMD_KV_BLOCK_STORED
        && !ev->has_parent)
    {
        k->nkeys = llmd_kv_request_keys(root, root, ev->tokens, ev->ntokens,
                                        FUZZ_BLOCK_SIZE, ev->salt,
                                        ev->salt_len, k->keys, FUZZ_KEYS);
        FUZZ_CHECK(k->nkeys <= FUZZ_KEYS);
    }
}


/* What the decoder promises of an event; reads every byte it points at. */
static void
fuzz_kv_check_event(const llmd_kv_event_t *ev)
{
    FUZZ_CHECK(ev->type == LLMD_KV_BLOCK_STORED
               || ev->type == LLMD_KV_BLOCK_REMOVED
               || ev->type == LLMD_KV_ALL_CLEARED);
    FUZZ_CHECK(ev->nhashes <= LLMD_KV_MAX_HASHES);
    FUZZ_CHECK(ev->ntokens <= LLMD_KV_MAX_TOKENS);
    FUZZ_CHECK(ev->hashes != NULL || ev->nhashes == 0);
    FUZZ_CHECK(ev->tokens != NULL || ev->ntokens == 0);

    fuzz_touch(ev->hashes, ev->nhashes * sizeof(uint64_t));
    fuzz_touch(ev->tokens, ev->ntokens * sizeof(uint32_t));

    if (ev->lora_name != NULL) {
        fuzz_touch(ev->lora_name, ev->lora_name_len);
    }

    if (ev->salt != NULL) {
        fuzz_touch(ev->salt, ev->salt_len);
    }
}


/* Matches the stored chain, then speculates it on the next endpoint. */
static void
fuzz_kv_match(fuzz_kv_t *k)
{
    size_t    i;
    uint32_t  other;
    double    match[LLMD_MAX_ENDPOINTS];

    if (k->nkeys == 0) {
        return;
    }

    llmd_kv_index_match(k->idx, k->keys, k->nkeys, 0, match);

    for (i = 0; i < LLMD_MAX_ENDPOINTS; i++) {
        FUZZ_CHECK(match[i] >= 0 && match[i] <= k->nkeys);
    }

    other = (k->ep + 1) % FUZZ_EPS;
    llmd_kv_index_speculate(k->idx, other, k->keys, k->nkeys, 1000, 500);
    llmd_kv_index_match(k->idx, k->keys, k->nkeys, 1200, match);
    FUZZ_CHECK(match[other] == k->nkeys);

    /* expired: the speculative entries no longer count */
    llmd_kv_index_match(k->idx, k->keys, k->nkeys, 2000, match);
    FUZZ_CHECK(match[other] <= k->nkeys);
}


/* The direct reader against msgpack-c's tree, the reference. */
static void
fuzz_kv_differential(const uint8_t *p, size_t n)
{
    int                    rc1, rc2;
    char                   e1[LLMD_ERRLEN], e2[LLMD_ERRLEN];
    kv_event_log_t         l1, l2;
    llmd_kv_batch_info_t   i1, i2;

    memset(&l1, 0, sizeof(l1));
    memset(&l2, 0, sizeof(l2));
    e1[0] = e2[0] = '\0';

    rc1 = llmd_kv_batch_decode(p, n, kv_event_log_record, &l1, &i1, e1,
                               sizeof(e1));
    kv_event_log_end(&l1);
    rc2 = llmd_kv_batch_decode_tree(p, n, kv_event_log_record, &l2, &i2, e2,
                                    sizeof(e2));
    kv_event_log_end(&l2);

    FUZZ_CHECK(rc1 == rc2);
    FUZZ_CHECK(strcmp(e1, e2) == 0);
    FUZZ_CHECK(l1.n == l2.n);
    FUZZ_CHECK(l1.n == 0 || memcmp(l1.p, l2.p, l1.n) == 0);

    if (rc1 == 0) {
        FUZZ_CHECK(i1.events == i2.events && i1.skipped == i2.skipped);
        FUZZ_CHECK(i1.dp_rank == i2.dp_rank);
        FUZZ_CHECK(memcmp(&i1.ts, &i2.ts, sizeof(double)) == 0);
    }

    free(l1.p);
    free(l2.p);
}
