/*
 * vLLM KV-event wire formats: the msgpack KVEventBatch payload (frame 2 of a
 * live message), the "kv@<pod>@<model>" topic (frame 0) and the 8-byte
 * big-endian sequence number (frame 1).  See docs/kv-events.md.
 *
 * The decoder accepts the batch and each event in the array and in the map
 * encoding, every field generation, hashes as unsigned or signed ints or as
 * bin; it ignores unknown keys and extra elements.  Hostile input never
 * crashes and never allocates more than a bounded multiple of its length.
 */
#ifndef LLMD_KV_EVENTS_H
#define LLMD_KV_EVENTS_H

#include "core/llmd_common.h"

/* Hard limits. */
#define LLMD_KV_MAX_PAYLOAD      (64u << 20)
#define LLMD_KV_MAX_TOKENS       (1u << 20)       /* per event */
#define LLMD_KV_MAX_HASHES       (1u << 16)       /* per event */

typedef enum {
    LLMD_KV_BLOCK_STORED = 1,
    LLMD_KV_BLOCK_REMOVED,
    LLMD_KV_ALL_CLEARED
} llmd_kv_event_type_t;

typedef struct llmd_kv_event_s  llmd_kv_event_t;

struct llmd_kv_event_s {
    llmd_kv_event_type_t  type;
    const uint64_t       *hashes;      /* engine hashes, normalised to u64 */
    size_t                nhashes;
    int                   has_parent;
    uint64_t              parent;
    const uint32_t       *tokens;
    size_t                ntokens;
    uint32_t              block_size;  /* 0 if absent */
    const char           *lora_name;   /* NULL when nil/absent */
    size_t                lora_name_len;
    int                   cpu;         /* medium "CPU" (any case): cpu tier */

    /* added: extra_keys (spec 2.5) */
    const char           *salt;        /* cache_salt of the prompt's first
                                          block (parent nil), else NULL */
    size_t                salt_len;
    int                   extra_unsupported;  /* multimodal or embeds keys:
                                                 not keyable from tokens */

    /* the event delivered after this one, to prefetch for; NULL when it
       is the last or not known yet (the tree decoder never knows) */
    const llmd_kv_event_t *next;
};

typedef struct {
    double    ts;
    int64_t   dp_rank;                 /* -1 when nil or absent */
    size_t    events;                  /* events passed to the handler */
    size_t    skipped;                 /* unknown tags, undecodable events */
} llmd_kv_batch_info_t;

typedef void (*llmd_kv_event_handler_pt)(void *data,
    const llmd_kv_event_t *ev);

/*
 * Decodes one frame-2 payload; calls handler for each decodable event in
 * order (unknown tags and undecodable events are skipped and counted);
 * returns 0, or -1 with err when the batch as a whole is malformed (then
 * handler was not called for any event).  The pointers in an event are
 * valid only during the handler call.  info and err may be NULL.
 * Keeps a zone chunk and a scratch buffer per thread between calls (see
 * llmd_kv_decoder_release); must not be called from its own handler.
 */
int llmd_kv_batch_decode(const void *buf, size_t len,
    llmd_kv_event_handler_pt handler, void *data, llmd_kv_batch_info_t *info,
    char *err, size_t errlen);

/*
 * The same decoding through msgpack-c's object tree: the reference that
 * llmd_kv_batch_decode() (a direct reader of the prescanned bytes, no
 * tree) is held to by t/unit/test_kv_diff.c and fuzz/fuzz_kv.c. Same
 * results, events and error messages on every input; about twice as slow.
 */
int llmd_kv_batch_decode_tree(const void *buf, size_t len,
    llmd_kv_event_handler_pt handler, void *data, llmd_kv_batch_info_t *info,
    char *err, size_t errlen);

/* Batches llmd_kv_batch_decode() read directly and handed to the tree
   decoder (malformed or unusual ones), in this thread. */
void llmd_kv_decoder_counts(size_t *direct, size_t *tree);

/* Frees the memory the decoders keep between batches in the calling
   thread (one zone chunk and the event scratch of the tree decoder, the
   event, hash and token buffers of the direct reader). */
void llmd_kv_decoder_release(void);

/* "kv@<pod>@<model>" -> pod and model slices; -1 if not exactly 3 '@'
   parts starting with "kv". */
int llmd_kv_topic_parse(const char *topic, size_t len, const char **pod,
    size_t *pod_len, const char **model, size_t *model_len);

/* 8-byte big-endian sequence frame -> value; -1 if len < 8. */
int llmd_kv_seq_parse(const void *frame, size_t len, uint64_t *seq);

#endif /* LLMD_KV_EVENTS_H */
