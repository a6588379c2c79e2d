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
    unsigned char  *p;
    size_t          n, cap;
} kv_event_log_t;


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


/* An llmd_kv_event_cb: appends every field of ev to the log in data. */
static void
kv_event_log_record(void *data, const llmd_kv_event_t *ev)
{
    kv_event_log_t  *l = data;
    uint64_t         v[12];

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
