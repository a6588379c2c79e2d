/*
 * Request body -> what the approximate decision needs, without a JSON tree:
 * a validating scanner held to llmd_request_parse() (core/llmd_prompt.h),
 * which parses with cJSON. Same accept/reject and the same error message,
 * the same model, cache_salt, stream and tools, and the prompt bytes that
 * llmd_request_parse() would build, which are never materialised: they
 * are hashed into prefix blocks (core/llmd_prefix_hash.h) as they are
 * produced, or copied into a caller buffer (tests).  docs/parsers.md,
 * "Request body scanner".
 */
#ifndef LLMD_BODY_SCAN_H
#define LLMD_BODY_SCAN_H

#include "core/llmd_common.h"
#include "core/llmd_prompt.h"

typedef struct {
    /* in: prefix hashing (block_size 0: none), as llmd_prefix_hashes() */
    uint32_t              block_size;
    uint32_t              max_blocks;
    uint64_t             *hashes;           /* max_blocks entries */
    /* in: where to copy the prompt bytes (NULL: nowhere); with a copy
       buffer the whole prompt is produced and prompt_len is exact */
    unsigned char        *copy;
    size_t                copy_cap;
    /* in: count the whole prompt_len even without a copy buffer (the
       prompt bytes are then produced to the end, only counted) */
    int                   exact_len;
    /* in, chat: where to put the messages the chat template reads (msgs
       NULL: not read): up to msgs_cap of them, their strings in
       msg_text[0..msg_text_cap) (the body's length is always enough) */
    llmd_request_msg_t   *msgs;
    size_t                msgs_cap;
    unsigned char        *msg_text;
    size_t                msg_text_cap;

    /* out, as in llmd_request_t */
    const char           *model;            /* "" when absent */
    size_t                model_len;
    const char           *cache_salt;       /* NULL when absent or empty */
    size_t                cache_salt_len;
    int                   stream;
    int                   tools;
    int                   add_generation_prompt;
    /* a prompt was produced (llmd_request_t.prompt != NULL) */
    int                   has_prompt;
    /* completions: the prompt is one JSON string, not a list (cJSON's
       json_prompt is a string): its bytes are that string's valuestring
       up to its first NUL, the text the precise scorer tokenizes */
    int                   prompt_string;
    /* its length; without a copy buffer or exact_len only counted until
       the last block is hashed */
    size_t                prompt_len;
    size_t                nhashes;
    /* chat: chat_template_kwargs is an object (llmd_request_t's
       json_chat_kwargs is not NULL) */
    int                   chat_kwargs;
    /* chat with msgs, accepted: every message is an object with exactly a
       string "role" and a string "content" (no other member, neither
       twice, as cJSON's keys compare), there are at most msgs_cap of them
       and chat_template_kwargs is not an object; then msgs[0..nmsgs) hold
       cJSON's valuestrings of each role and content.  Else 0 and nmsgs 0:
       the caller parses with cJSON to render the messages */
    int                   msgs_plain;
    size_t                nmsgs;
} llmd_body_t;

/*
 * Returns what llmd_request_parse() returns for the same input (0, or -1
 * with the same message in err), with b filled as above.  The model and
 * salt point into the body, or, when they hold escapes, into memory from
 * a (the only allocations).  Nothing else is allocated; the stack holds a
 * nesting stack of 1000 bytes and one hash block.
 */
int llmd_body_scan(llmd_api_t api, const char *body, size_t len,
    const llmd_alloc_t *a, llmd_body_t *b, char *err, size_t errlen);

/*
 * The prefix hashes llmd_body_scan() writes for a chat body whose
 * messages it read as plain (msgs_plain), from those messages alone: their
 * Go serialisation, hashed as it is produced (no copy of it).  The precise
 * scorer computes them only when the approximate index is read or written
 * (docs/kv-events.md).  Returns how many (at most max_blocks).
 */
size_t llmd_body_chat_hashes(const char *model, size_t model_len,
    const char *salt, size_t salt_len, const llmd_request_msg_t *msgs,
    size_t nmsgs, uint32_t block_size, uint32_t max_blocks, uint64_t *out);

#endif /* LLMD_BODY_SCAN_H */
