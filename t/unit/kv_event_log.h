/*
 * Every field of a decoded KV event serialised into a growing buffer, so
 * that the one-pass decoder (llmd_kv_batch_decode) and msgpack-c's tree
 * decoder (llmd_kv_batch_decode_tree, the reference) can be compared by
 * their logs.  Used by t/unit/test_kv_diff.c and fuzz/fuzz_kv.c.
 */
#ifndef KV_EVENT_LOG_H
#define KV_EVENT_LOG_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kv/llmd_kv_events.h"


typedef struct {
    unsigned char    *p;
    size_t            n, cap;
    /* ev->next of the last event, to check against the event that comes */
    int               pending;
    llmd_kv_event_t   next;
} kv_event_log_t;

/* Logged when ev->next announced something else than what came next (the
   tree decoder, which never announces, does not log it). */
#define KV_EVENT_LOG_BAD_NEXT  "\377" "bad next" "\377"


static void
kv_event_log_put(kv_event_log_t *l, const void *d, size_t n)
{
    if (l->n + n > l->cap) {
        l->cap = (l->n + n) * 2 + 4096;
        l->p = realloc(l->p, l->cap);
        if (l->p == NULL) {
            abort();
        }
    }

    if (n) {
        memcpy(l->p + l->n, d, n);
    }
    l->n += n;
}


/* The same event: every field, the pointers included (ev->next points
   into the same buffers as the event delivered after it). */
static int
kv_event_log_same(const llmd_kv_event_t *a, const llmd_kv_event_t *b)
{
    return a->type == b->type && a->hashes == b->hashes
           && a->nhashes == b->nhashes && a->has_parent == b->has_parent
           && a->parent == b->parent && a->tokens == b->tokens
           && a->ntokens == b->ntokens && a->block_size == b->block_size
           && a->lora_name == b->lora_name
           && a->lora_name_len == b->lora_name_len && a->cpu == b->cpu
           && a->salt == b->salt && a->salt_len == b->salt_len
           && a->extra_unsupported == b->extra_unsupported;
}


/* After a decode: an announced next event that never came is logged. */
static void
kv_event_log_end(kv_event_log_t *l)
{
    if (l->pending) {
        kv_event_log_put(l, KV_EVENT_LOG_BAD_NEXT,
                         sizeof(KV_EVENT_LOG_BAD_NEXT) - 1);
        l->pending = 0;
    }
}


/* An llmd_kv_event_cb: appends every field of ev to the log in data. */
static void
kv_event_log_record(void *data, const llmd_kv_event_t *ev)
{
    kv_event_log_t  *l = data;
    uint64_t         v[12];

    if (l->pending && !kv_event_log_same(&l->next, ev)) {
        kv_event_log_put(l, KV_EVENT_LOG_BAD_NEXT,
                         sizeof(KV_EVENT_LOG_BAD_NEXT) - 1);
    }

    l->pending = ev->next != NULL;
    if (ev->next != NULL) {
        l->next = *ev->next;
    }

    v[0] = ev->type;
    v[1] = ev->nhashes;
    v[2] = (uint64_t) ev->has_parent;
    v[3] = ev->has_parent ? ev->parent : 0;
    v[4] = ev->ntokens;
    v[5] = ev->block_size;
    v[6] = ev->lora_name != NULL;
    v[7] = ev->lora_name_len;
    v[8] = (uint64_t) ev->cpu;
    v[9] = ev->salt != NULL;
    v[10] = ev->salt_len;
    v[11] = (uint64_t) ev->extra_unsupported;
    kv_event_log_put(l, v, sizeof(v));

    kv_event_log_put(l, ev->hashes, ev->nhashes * sizeof(uint64_t));
    kv_event_log_put(l, ev->tokens, ev->ntokens * sizeof(uint32_t));

    if (ev->lora_name) {
        kv_event_log_put(l, ev->lora_name, ev->lora_name_len);
    }
    if (ev->salt) {
        kv_event_log_put(l, ev->salt, ev->salt_len);
    }
}

#endif /* KV_EVENT_LOG_H */
