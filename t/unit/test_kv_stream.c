/*
 * The KV-event stream rules without sockets (kv/llmd_kv_stream.h): first
 * and in-order batches, engine restarts, gaps with and without a replay
 * socket, one replay at a time, the end marker, the replay deadline,
 * disconnections and (re)connections, the model kept for topic-less
 * replies; and where a pod's events come from (kv/llmd_kv_pod.h): topic
 * pods matched to server names, publisher endpoints built from them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "kv/llmd_kv_pod.h"
#include "kv/llmd_kv_stream.h"

#define MODEL      "Qwen/Qwen3-0.6B"
#define MODEL_LEN  (sizeof(MODEL) - 1)
#define T0         1000000


static llmd_kv_action_t
live(llmd_kv_stream_t *s, uint64_t seq, uint64_t now)
{
    return llmd_kv_stream_live(s, seq, MODEL, MODEL_LEN, now);
}


static void
assert_applies(llmd_kv_action_t act, const char *model, size_t len)
{
    assert_true(act.what & LLMD_KV_APPLY);
    assert_int_equal(act.model_len, len);
    assert_memory_equal(act.model, model, len);
}


/* A stream that has seen sequence 1 at T0. */
static void
stream_at_seq_1(llmd_kv_stream_t *s, int can_replay)
{
    memset(s, 0, sizeof(*s));

    if (can_replay) {
        llmd_kv_stream_enable_replay(s);
    }

    assert_int_equal(live(s, 1, T0).what, LLMD_KV_APPLY);
}


/* A stream with a replay socket, replaying since T0 the lost 2..4. */
static void
stream_replaying(llmd_kv_stream_t *s)
{
    llmd_kv_action_t  act;

    stream_at_seq_1(s, 1);

    act = live(s, 5, T0);
    assert_true(act.what & LLMD_KV_REQUEST_REPLAY);
    assert_true(act.replay_from == 2);
    assert_true(s->replaying);
}


static void
first_batch_is_applied_whatever_its_seq(void **state)
{
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    memset(&s, 0, sizeof(s));

    act = live(&s, 41, T0);
    assert_int_equal(act.what, LLMD_KV_APPLY);
    assert_applies(act, MODEL, MODEL_LEN);
    assert_true(s.have_seq);
    assert_true(s.next_seq == 42);
}


static void
in_order_batches_are_applied(void **state)
{
    uint64_t          seq;
    llmd_kv_stream_t  s;

    stream_at_seq_1(&s, 1);

    for (seq = 2; seq <= 5; seq++) {
        assert_int_equal(live(&s, seq, T0 + seq).what, LLMD_KV_APPLY);
    }

    assert_true(s.next_seq == 6);
    assert_false(s.replaying);
}


static void
lower_seq_is_an_engine_restart(void **state)
{
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    stream_at_seq_1(&s, 1);
    (void) live(&s, 2, T0);

    /* a restart is no gap: nothing to replay, the new batch is applied */
    act = live(&s, 0, T0);
    assert_int_equal(act.what, LLMD_KV_CLEAR | LLMD_KV_APPLY);
    assert_string_equal(act.why, "event sequence restarted (engine restart)");
    assert_true(s.next_seq == 1);

    /* the same sequence again also went back */
    act = live(&s, 0, T0);
    assert_true(act.what & LLMD_KV_CLEAR);
}


static void
gap_without_replay_clears(void **state)
{
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    stream_at_seq_1(&s, 0);

    act = live(&s, 5, T0);
    assert_int_equal(act.what,
                     LLMD_KV_COUNT_GAP | LLMD_KV_CLEAR | LLMD_KV_APPLY);
    assert_string_equal(act.why, "event batches lost and no replay socket");
    assert_false(s.replaying);
    assert_true(s.next_seq == 6);
}


static void
gap_with_replay_requests_the_missing_batches(void **state)
{
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    stream_at_seq_1(&s, 1);

    act = live(&s, 5, T0 + 7);
    assert_int_equal(act.what,
                     LLMD_KV_COUNT_GAP | LLMD_KV_REQUEST_REPLAY
                     | LLMD_KV_APPLY);
    assert_true(act.replay_from == 2);
    assert_true(s.replaying);
    assert_true(s.replay_deadline == T0 + 7 + LLMD_KV_REPLAY_TIMEOUT_MS);
}


static void
running_replay_is_not_requested_again(void **state)
{
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    stream_replaying(&s);

    /* a second gap is counted, but the running replay covers it */
    act = live(&s, 9, T0 + 1);
    assert_int_equal(act.what, LLMD_KV_COUNT_GAP | LLMD_KV_APPLY);
    assert_true(s.replay_deadline == T0 + LLMD_KV_REPLAY_TIMEOUT_MS);

    /* and so is a reconnection */
    assert_int_equal(llmd_kv_stream_connected(&s, T0 + 2).what, 0);
}


static void
end_marker_finishes_the_replay(void **state)
{
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    stream_replaying(&s);

    act = llmd_kv_stream_replayed(&s, 2, "m", 1);
    assert_int_equal(act.what, LLMD_KV_APPLY);
    assert_true(s.replaying);

    act = llmd_kv_stream_replayed(&s, LLMD_KV_END_SEQ, NULL, 0);
    assert_int_equal(act.what, LLMD_KV_REPLAY_DONE);
    assert_false(s.replaying);

    /* finished: the deadline no longer applies, a new gap asks again */
    act = llmd_kv_stream_tick(&s, T0 + 2 * LLMD_KV_REPLAY_TIMEOUT_MS);
    assert_int_equal(act.what, 0);

    act = live(&s, 8, T0 + 3 * LLMD_KV_REPLAY_TIMEOUT_MS);
    assert_true(act.what & LLMD_KV_REQUEST_REPLAY);
    assert_true(act.replay_from == 6);
}


static void
replay_past_its_deadline_clears(void **state)
{
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    stream_replaying(&s);

    act = llmd_kv_stream_tick(&s, T0 + LLMD_KV_REPLAY_TIMEOUT_MS);
    assert_int_equal(act.what, 0);
    assert_true(s.replaying);

    act = llmd_kv_stream_tick(&s, T0 + LLMD_KV_REPLAY_TIMEOUT_MS + 1);
    assert_int_equal(act.what, LLMD_KV_CLEAR);
    assert_string_equal(act.why, "replay timed out");
    assert_false(s.replaying);

    /* cleared once only */
    act = llmd_kv_stream_tick(&s, T0 + LLMD_KV_REPLAY_TIMEOUT_MS + 2);
    assert_int_equal(act.what, 0);
}


static void
tick_without_replay_does_nothing(void **state)
{
    llmd_kv_stream_t  s;

    stream_at_seq_1(&s, 1);

    assert_int_equal(llmd_kv_stream_tick(&s, T0 - 1).what, 0);
    assert_int_equal(llmd_kv_stream_tick(&s, UINT64_MAX).what, 0);
}


static void
deadline_holds_across_clock_wrap(void **state)
{
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    memset(&s, 0, sizeof(s));
    llmd_kv_stream_enable_replay(&s);

    act = llmd_kv_stream_connected(&s, UINT64_MAX - 10);
    assert_true(act.what & LLMD_KV_REQUEST_REPLAY);

    assert_int_equal(llmd_kv_stream_tick(&s, 100).what, 0);
    assert_int_equal(llmd_kv_stream_tick(&s, LLMD_KV_REPLAY_TIMEOUT_MS).what,
                     LLMD_KV_CLEAR);
}


static void
failed_replay_request_clears(void **state)
{
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    stream_replaying(&s);

    assert_string_equal(llmd_kv_stream_replay_failed(&s),
                        "event batches lost and the replay request failed");
    assert_false(s.replaying);

    /* nothing runs any more: no deadline, the next gap asks again */
    act = llmd_kv_stream_tick(&s, T0 + 2 * LLMD_KV_REPLAY_TIMEOUT_MS);
    assert_int_equal(act.what, 0);

    act = live(&s, 7, T0);
    assert_true(act.what & LLMD_KV_REQUEST_REPLAY);
    assert_true(act.replay_from == 6);
}


static void
disconnect_clears_and_forgets_the_seq(void **state)
{
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    stream_at_seq_1(&s, 0);
    (void) live(&s, 10, T0);

    act = llmd_kv_stream_disconnected(&s);
    assert_int_equal(act.what, LLMD_KV_CLEAR);
    assert_string_equal(act.why, "event stream disconnected");
    assert_false(s.have_seq);

    /* a pod coming back at any sequence is a new stream */
    assert_int_equal(live(&s, 3, T0).what, LLMD_KV_APPLY);
}


static void
connect_requests_a_replay_from_zero(void **state)
{
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    /* no replay socket: nothing to ask */
    stream_at_seq_1(&s, 0);
    assert_int_equal(llmd_kv_stream_connected(&s, T0).what, 0);
    assert_false(s.replaying);

    llmd_kv_stream_enable_replay(&s);

    act = llmd_kv_stream_connected(&s, T0);
    assert_int_equal(act.what, LLMD_KV_REQUEST_REPLAY);
    assert_true(act.replay_from == 0);
    assert_true(s.replaying);
    assert_true(s.replay_deadline == T0 + LLMD_KV_REPLAY_TIMEOUT_MS);
}


static void
topicless_reply_takes_the_live_model(void **state)
{
    char              big[LLMD_KV_MODEL_MAX + 1];
    llmd_kv_stream_t  s;
    llmd_kv_action_t  act;

    memset(&s, 0, sizeof(s));

    /* no live topic seen yet: the reply cannot be keyed */
    act = llmd_kv_stream_replayed(&s, 1, NULL, 0);
    assert_int_equal(act.what, LLMD_KV_MALFORMED);

    (void) live(&s, 1, T0);

    act = llmd_kv_stream_replayed(&s, 1, NULL, 0);
    assert_int_equal(act.what, LLMD_KV_APPLY);
    assert_applies(act, MODEL, MODEL_LEN);

    /* a reply's own topic wins */
    act = llmd_kv_stream_replayed(&s, 1, "other", 5);
    assert_applies(act, "other", 5);

    /* the last live topic is kept, one too long to keep is not */
    (void) llmd_kv_stream_live(&s, 2, "m2", 2, T0);
    memset(big, 'x', sizeof(big));
    act = llmd_kv_stream_live(&s, 3, big, sizeof(big), T0);
    assert_applies(act, big, sizeof(big));

    act = llmd_kv_stream_replayed(&s, 2, NULL, 0);
    assert_applies(act, "m2", 2);

    /* an empty live model leaves topic-less replies unkeyable */
    (void) llmd_kv_stream_live(&s, 4, "", 0, T0);
    act = llmd_kv_stream_replayed(&s, 3, NULL, 0);
    assert_int_equal(act.what, LLMD_KV_MALFORMED);
}


static const llmd_kv_server_t  servers[] = {
    { "10.0.0.1:8000", 13 },
    { "10.0.0.2:8000", 13 },
    { "10.0.0.2:8001", 13 },
    { "localhost", 9 },
};

#define NSERVERS  (sizeof(servers) / sizeof(servers[0]))


static void
pod_found_by_ip_and_port(void **state)
{
    assert_int_equal(llmd_kv_pod_find(servers, NSERVERS,
                                      "10.0.0.2:8001", 13), 2);
    assert_int_equal(llmd_kv_pod_find(servers, NSERVERS,
                                      "10.0.0.1:8000", 13), 0);
}


static void
pod_found_by_bare_ip(void **state)
{
    static const llmd_kv_server_t  both[] = {
        { "pod:1", 5 },
        { "pod", 3 },
    };

    /* the first server on that host */
    assert_int_equal(llmd_kv_pod_find(servers, NSERVERS, "10.0.0.2", 8), 1);
    assert_int_equal(llmd_kv_pod_find(servers, NSERVERS, "10.0.0.1", 8), 0);

    /* an exact name wins over an earlier host match */
    assert_int_equal(llmd_kv_pod_find(both, 2, "pod", 3), 1);
}


static void
unknown_pod_not_found(void **state)
{
    assert_int_equal(llmd_kv_pod_find(servers, NSERVERS,
                                      "10.0.0.3:8000", 13), -1);
    assert_int_equal(llmd_kv_pod_find(servers, NSERVERS, "10.0.0.", 7), -1);
    assert_int_equal(llmd_kv_pod_find(servers, NSERVERS, "10.0.0.1:800",
                                      12), -1);
    assert_int_equal(llmd_kv_pod_find(servers, NSERVERS, "", 0), -1);
    assert_int_equal(llmd_kv_pod_find(servers, 0, "10.0.0.1", 8), -1);

    /* "localhost" has no port part: only its full name matches */
    assert_int_equal(llmd_kv_pod_find(servers, NSERVERS, "localhost", 9), 3);
    assert_int_equal(llmd_kv_pod_find(servers, NSERVERS, "local", 5), -1);
}


/*
 * The nginx glue passes its whole table of LLMD_MAX_ENDPOINTS slots, where
 * a slot without a server is { NULL, 0 }: such a slot is no server, even
 * for a topic with an empty pod ("kv@@model").
 */
static void
empty_slots_are_skipped(void **state)
{
    static const llmd_kv_server_t  slots[] = {
        { NULL, 0 },
        { "10.0.0.1:8000", 13 },
        { NULL, 0 },
        { "10.0.0.2:8000", 13 },
    };

    assert_int_equal(llmd_kv_pod_find(slots, 4, "10.0.0.2:8000", 13), 3);
    assert_int_equal(llmd_kv_pod_find(slots, 4, "10.0.0.2", 8), 3);
    assert_int_equal(llmd_kv_pod_find(slots, 4, "10.0.0.3", 8), -1);
    assert_int_equal(llmd_kv_pod_find(slots, 4, "", 0), -1);
}


static void
peer_must_be_the_pods_host(void **state)
{
    llmd_kv_server_t  v4 = { "10.0.0.1:8000", 13 };
    llmd_kv_server_t  v6 = { "[::1]:8000", 10 };
    llmd_kv_server_t  bare = { "localhost", 9 };

    assert_true(llmd_kv_pod_peer_is(&v4, "10.0.0.1"));
    assert_false(llmd_kv_pod_peer_is(&v4, "10.0.0.2"));
    assert_false(llmd_kv_pod_peer_is(&v4, "10.0.0.10"));
    assert_false(llmd_kv_pod_peer_is(&v4, "10.0.0."));
    assert_false(llmd_kv_pod_peer_is(&v4, ""));
    assert_true(llmd_kv_pod_peer_is(&v6, "::1"));
    assert_false(llmd_kv_pod_peer_is(&v6, "[::1]"));
    assert_false(llmd_kv_pod_peer_is(&bare, "localhost"));
}


static void
endpoint_absolute_port(void **state)
{
    char              buf[64];
    llmd_kv_server_t  v6 = { "[::1]:8000", 10 };

    assert_int_equal(llmd_kv_pod_endpoint(&servers[0], 5557, 0, buf,
                                          sizeof(buf)), 0);
    assert_string_equal(buf, "tcp://10.0.0.1:5557");

    /* the host ends at the last colon */
    assert_int_equal(llmd_kv_pod_endpoint(&v6, 1, 0, buf, sizeof(buf)), 0);
    assert_string_equal(buf, "tcp://[::1]:1");
}


static void
endpoint_relative_port(void **state)
{
    char              buf[64];
    llmd_kv_server_t  top = { "127.0.0.1:65000", 15 };

    assert_int_equal(llmd_kv_pod_endpoint(&servers[2], 100, 1, buf,
                                          sizeof(buf)), 0);
    assert_string_equal(buf, "tcp://10.0.0.2:8101");

    assert_int_equal(llmd_kv_pod_endpoint(&top, 535, 1, buf, sizeof(buf)),
                     0);
    assert_string_equal(buf, "tcp://127.0.0.1:65535");
}


static void
endpoint_relative_overflow_fails(void **state)
{
    char              buf[64];
    llmd_kv_server_t  top = { "127.0.0.1:65000", 15 };
    llmd_kv_server_t  huge = { "127.0.0.1:99999999999999999999", 30 };

    assert_int_equal(llmd_kv_pod_endpoint(&top, 536, 1, buf, sizeof(buf)),
                     -1);
    assert_int_equal(llmd_kv_pod_endpoint(&huge, 1, 1, buf, sizeof(buf)),
                     -1);

    /* an absolute port does not depend on the server's */
    assert_int_equal(llmd_kv_pod_endpoint(&huge, 1, 0, buf, sizeof(buf)),
                     0);
    assert_string_equal(buf, "tcp://127.0.0.1:1");
}


static void
endpoint_without_port_fails(void **state)
{
    char              buf[64];
    llmd_kv_server_t  bad_port = { "10.0.0.1:80x", 12 };
    llmd_kv_server_t  no_port = { "10.0.0.1:", 9 };

    assert_int_equal(llmd_kv_pod_endpoint(&servers[3], 5557, 0, buf,
                                          sizeof(buf)), -1);
    assert_int_equal(llmd_kv_pod_endpoint(&servers[3], 1, 1, buf,
                                          sizeof(buf)), -1);

    /* a relative port needs the server's own port */
    assert_int_equal(llmd_kv_pod_endpoint(&bad_port, 1, 1, buf,
                                          sizeof(buf)), -1);
    assert_int_equal(llmd_kv_pod_endpoint(&no_port, 1, 1, buf,
                                          sizeof(buf)), -1);
}


static void
endpoint_too_long_for_buf_fails(void **state)
{
    char  buf[19];

    /* "tcp://10.0.0.1:5557" needs 20 bytes with its NUL */
    assert_int_equal(llmd_kv_pod_endpoint(&servers[0], 5557, 0, buf,
                                          sizeof(buf)), -1);
}


int
main(void)
{
    const struct CMUnitTest  tests[] = {
        cmocka_unit_test(first_batch_is_applied_whatever_its_seq),
        cmocka_unit_test(in_order_batches_are_applied),
        cmocka_unit_test(lower_seq_is_an_engine_restart),
        cmocka_unit_test(gap_without_replay_clears),
        cmocka_unit_test(gap_with_replay_requests_the_missing_batches),
        cmocka_unit_test(running_replay_is_not_requested_again),
        cmocka_unit_test(end_marker_finishes_the_replay),
        cmocka_unit_test(replay_past_its_deadline_clears),
        cmocka_unit_test(tick_without_replay_does_nothing),
        cmocka_unit_test(deadline_holds_across_clock_wrap),
        cmocka_unit_test(failed_replay_request_clears),
        cmocka_unit_test(disconnect_clears_and_forgets_the_seq),
        cmocka_unit_test(connect_requests_a_replay_from_zero),
        cmocka_unit_test(topicless_reply_takes_the_live_model),
        cmocka_unit_test(pod_found_by_ip_and_port),
        cmocka_unit_test(pod_found_by_bare_ip),
        cmocka_unit_test(unknown_pod_not_found),
        cmocka_unit_test(peer_must_be_the_pods_host),
        cmocka_unit_test(empty_slots_are_skipped),
        cmocka_unit_test(endpoint_absolute_port),
        cmocka_unit_test(endpoint_relative_port),
        cmocka_unit_test(endpoint_relative_overflow_fails),
        cmocka_unit_test(endpoint_without_port_fails),
        cmocka_unit_test(endpoint_too_long_for_buf_fails),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
