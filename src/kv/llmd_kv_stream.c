/*
 * The rules of one pod's KV-event stream (llmd_kv_stream.h): the 8-byte
 * sequence of each live batch tells a restart (it goes back) from lost
 * batches (it jumps ahead); lost batches are asked again from the pod's
 * replay socket when it has one, else the pod's entries are forgotten,
 * since a missed store breaks every chain built on it.
 */
#include <string.h>

#include "kv/llmd_kv_stream.h"


static void llmd_kv_stream_request_replay(llmd_kv_stream_t *s,
    uint64_t from, uint64_t now_ms, llmd_kv_action_t *act);
static void llmd_kv_stream_clear(llmd_kv_action_t *act, const char *why);


void
llmd_kv_stream_enable_replay(llmd_kv_stream_t *s)
{
    s->can_replay = 1;
}


llmd_kv_action_t
llmd_kv_stream_live(llmd_kv_stream_t *s, uint64_t seq, const char *model,
    size_t model_len, uint64_t now_ms)
{
    llmd_kv_action_t  act;

    memset(&act, 0, sizeof(act));

    if (s->have_seq && seq != s->next_seq) {
        if (seq < s->next_seq) {
            /* the sequence restarts with the engine: its cache is empty */
            llmd_kv_stream_clear(&act, "event sequence restarted "
                                 "(engine restart)");

        } else {
            act.what |= LLMD_KV_COUNT_GAP;

            if (s->can_replay) {
                llmd_kv_stream_request_replay(s, s->next_seq, now_ms, &act);

            } else {
                llmd_kv_stream_clear(&act, "event batches lost and no "
                                     "replay socket");
            }
        }
    }

    /* the first sequence seen is taken as it is: a stream may start at 1 */
    s->have_seq = 1;
    s->next_seq = seq + 1;

    if (model_len <= sizeof(s->model)) {
        memcpy(s->model, model, model_len);
        s->model_len = model_len;
    }

    act.what |= LLMD_KV_APPLY;
    act.model = model;
    act.model_len = model_len;

    return act;
}


llmd_kv_action_t
llmd_kv_stream_replayed(llmd_kv_stream_t *s, uint64_t seq, const char *model,
    size_t model_len)
{
    llmd_kv_action_t  act;

    memset(&act, 0, sizeof(act));

    if (seq == LLMD_KV_END_SEQ) {
        s->replaying = 0;
        act.what = LLMD_KV_REPLAY_DONE;
        return act;
    }

    if (model == NULL) {
        if (s->model_len == 0) {
            act.what = LLMD_KV_MALFORMED;
            return act;
        }

        model = s->model;
        model_len = s->model_len;
    }

    /* replayed batches may come after later live ones: applied as they come */
    act.what = LLMD_KV_APPLY;
    act.model = model;
    act.model_len = model_len;

    return act;
}


const char *
llmd_kv_stream_replay_failed(llmd_kv_stream_t *s)
{
    s->replaying = 0;

    return "event batches lost and the replay request failed";
}


llmd_kv_action_t
llmd_kv_stream_disconnected(llmd_kv_stream_t *s)
{
    llmd_kv_action_t  act;

    memset(&act, 0, sizeof(act));

    s->have_seq = 0;
    llmd_kv_stream_clear(&act, "event stream disconnected");

    return act;
}


llmd_kv_action_t
llmd_kv_stream_connected(llmd_kv_stream_t *s, uint64_t now_ms)
{
    llmd_kv_action_t  act;

    memset(&act, 0, sizeof(act));

    if (s->can_replay) {
        /* whatever the pod still buffers tells us what it holds */
        llmd_kv_stream_request_replay(s, 0, now_ms, &act);
    }

    return act;
}


llmd_kv_action_t
llmd_kv_stream_tick(llmd_kv_stream_t *s, uint64_t now_ms)
{
    llmd_kv_action_t  act;

    memset(&act, 0, sizeof(act));

    if (s->replaying && (int64_t) (now_ms - s->replay_deadline) > 0) {
        s->replaying = 0;
        llmd_kv_stream_clear(&act, "replay timed out");
    }

    return act;
}


/* One replay at a time: a running one may already cover the new gap. */
static void
llmd_kv_stream_request_replay(llmd_kv_stream_t *s, uint64_t from,
    uint64_t now_ms, llmd_kv_action_t *act)
{
    if (s->replaying) {
        return;
    }

    s->replaying = 1;
    s->replay_deadline = now_ms + LLMD_KV_REPLAY_TIMEOUT_MS;

    act->what |= LLMD_KV_REQUEST_REPLAY;
    act->replay_from = from;
}


static void
llmd_kv_stream_clear(llmd_kv_action_t *act, const char *why)
{
    act->what |= LLMD_KV_CLEAR;
    act->why = why;
}
