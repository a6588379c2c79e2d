/*
 * Request body -> what scheduling needs: the model, the cache salt and the
 * prompt bytes the approximate prefix scorer hashes. One cJSON parse, with
 * cJSON's allocations taken from the caller's region allocator.
 */
#ifndef LLMD_PROMPT_H
#define LLMD_PROMPT_H

#include "core/llmd_common.h"

typedef enum {
    LLMD_API_OTHER = 0,           /* scheduled on load signals alone */
    LLMD_API_COMPLETIONS,         /* .../completions */
    LLMD_API_CHAT                 /* .../chat/completions */
} llmd_api_t;

/* Classify a request path (query string excluded) by its suffix. */
llmd_api_t llmd_api_from_path(const char *path, size_t len);

/*
 * A chat message as the chat template reads it: role and content decoded,
 * each cut at its first NUL as cJSON's valuestring is, NUL-terminated.
 */
typedef struct {
    const char     *role;
    const char     *content;
} llmd_request_msg_t;

typedef struct {
    const char     *model;        /* "" when absent */
    size_t          model_len;
    const char     *cache_salt;   /* NULL when absent or empty */
    size_t          cache_salt_len;
    /*
     * Bytes hashed by the approximate scorer:
     *   completions, string prompt: the prompt;
     *   list of strings: joined with " ";
     *   token ids ([int] or [[int]]): each id as 4 little-endian bytes;
     *   chat: Go encoding/json serialisation of messages as llm-d GIE
     *   v1.1-v1.5 computes it (spec section 3.3.5, Gen A).
     */
    const unsigned char  *prompt;
    size_t                prompt_len;
    int                   stream;
    /*
     * The parsed JSON (in the caller's region, valid as long as it is):
     * `prompt` of a completions request and `messages` of a chat request,
     * for the precise scorer, which tokenizes them itself.  NULL if absent.
     */
    const struct cJSON   *json_prompt;
    const struct cJSON   *json_messages;
    int                   tools;      /* chat: a non-null `tools` field */
    /* chat: `chat_template_kwargs` (an object, else NULL) and
       `add_generation_prompt` (vLLM's default true) */
    const struct cJSON   *json_chat_kwargs;
    int                   add_generation_prompt;
    /*
     * Filled from llmd_body_scan() (core/llmd_body_scan.h) instead: the
     * prompt's prefix hashes are already computed (hashed = 1), prompt is
     * NULL, prompt_len is its length, the json_* fields are NULL.
     */
    int                   hashed;
    const uint64_t       *hashes;
    size_t                nhashes;
    /* with a copy buffer, a completions prompt that is one string: its
       text (json_prompt's valuestring up to its first NUL), else NULL */
    const char           *text;
    size_t                text_len;
    /* chat through the body scanner, when every message is exactly a
       string role and a string content (llmd_body_t.msgs_plain): the
       messages as cJSON's tree holds them, else NULL (json_messages is
       then parsed by cJSON for the precise scorer) */
    const llmd_request_msg_t  *msgs;
    size_t                     nmsgs;
} llmd_request_t;

/*
 * Returns 0 on success, -1 when the body is not a valid request (err holds a
 * message for a 400 answer, e.g. "request body is not valid JSON").
 */
int llmd_request_parse(llmd_api_t api, const char *body, size_t len,
    const llmd_alloc_t *a, llmd_request_t *out, char *err, size_t errlen);

/*
 * The bytes cJSON may allocate while parsing a body of len bytes (16 x len
 * + 1 MiB): past that the parse stops and the request is scheduled on load
 * alone ("too complex to hash").  llmd_body_scan() (core/llmd_body_scan.h)
 * counts cJSON's allocations against the same budget.  The minimum can be
 * lowered by tests to reach the cap with small bodies (0: back to 1 MiB).
 */
size_t llmd_request_json_budget(size_t len);
void llmd_request_set_json_budget_min(size_t min);

#endif /* LLMD_PROMPT_H */
