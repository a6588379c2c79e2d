/*
 * The rules of one pod's KV-event stream, without sockets: per-pod
 * sequence tracking, replay requests and their deadline, and what a
 * restart, a gap, a disconnection or a (re)connection means for the pod's
 * entries in the precise index.  The caller (the helper's ZeroMQ glue)
 * reports what it observed and performs the actions it gets back.
 * See docs/kv-events.md.
 */
#ifndef LLMD_KV_STREAM_H
#define LLMD_KV_STREAM_H

#include "core/llmd_common.h"

/* A replay not finished by then is given up and the pod cleared. */
#define LLMD_KV_REPLAY_TIMEOUT_MS  5000
/* The sequence of the message that ends a replay. */
#define LLMD_KV_END_SEQ            UINT64_MAX
/* Longest model name remembered for replies that carry no topic. */
#define LLMD_KV_MODEL_MAX          256

/* What the caller must do, in this order (flags of llmd_kv_action_t). */
#define LLMD_KV_COUNT_GAP       0x01  /* batches were lost: count a gap */
#define LLMD_KV_CLEAR           0x02  /* forget the pod's entries: why */
#define LLMD_KV_REQUEST_REPLAY  0x04  /* ask for batches from replay_from */
#define LLMD_KV_APPLY           0x08  /* apply the batch, keyed by model */
#define LLMD_KV_REPLAY_DONE     0x10  /* the replay ended (nothing to do) */
#define LLMD_KV_MALFORMED       0x20  /* drop the message, count it */

typedef struct {
    unsigned      what;          /* LLMD_KV_* flags; 0: nothing */
    const char   *why;           /* LLMD_KV_CLEAR: for the log */
    uint64_t      replay_from;   /* LLMD_KV_REQUEST_REPLAY */
    const char   *model;         /* LLMD_KV_APPLY */
    size_t        model_len;
} llmd_kv_action_t;

/* One pod's stream; all zeros is a new stream without replay socket. */
typedef struct {
    uint64_t      next_seq;
    uint64_t      replay_deadline;          /* ms, while replaying */
    char          model[LLMD_KV_MODEL_MAX]; /* from the last live topic */
    size_t        model_len;
    unsigned      have_seq:1;
    unsigned      replaying:1;
    unsigned      can_replay:1;
} llmd_kv_stream_t;

/* The pod has a replay socket: gaps and (re)connections ask it. */
void llmd_kv_stream_enable_replay(llmd_kv_stream_t *s);

/*
 * A live batch with sequence seq, published under model, seen at now_ms:
 * always APPLY (with that model); a lower sequence than expected also
 * CLEARs (engine restart), a higher one COUNT_GAPs and REQUESTs a replay
 * of the missing batches, or CLEARs when there is no replay socket.
 */
llmd_kv_action_t llmd_kv_stream_live(llmd_kv_stream_t *s, uint64_t seq,
    const char *model, size_t model_len, uint64_t now_ms);

/*
 * A replay reply with sequence seq; model is NULL when the reply carries
 * no usable topic (vLLM before #45177), then the model of the last live
 * topic is used.  The end marker gives REPLAY_DONE.
 */
llmd_kv_action_t llmd_kv_stream_replayed(llmd_kv_stream_t *s, uint64_t seq,
    const char *model, size_t model_len);

/* The replay request could not be sent: returns why to clear the pod. */
const char *llmd_kv_stream_replay_failed(llmd_kv_stream_t *s);

/* The connection to the pod went: CLEAR, the next sequence starts anew. */
llmd_kv_action_t llmd_kv_stream_disconnected(llmd_kv_stream_t *s);

/* The pod (re)connected: with a replay socket, REQUEST all it buffers. */
llmd_kv_action_t llmd_kv_stream_connected(llmd_kv_stream_t *s,
    uint64_t now_ms);

/* Time passes: a replay past its deadline is given up (CLEAR). */
llmd_kv_action_t llmd_kv_stream_tick(llmd_kv_stream_t *s, uint64_t now_ms);

#endif /* LLMD_KV_STREAM_H */
