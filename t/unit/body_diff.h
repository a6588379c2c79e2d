/*
 * The differential check of the request body scanner against cJSON: one
 * body through llmd_request_parse() (core/llmd_prompt.h, the reference)
 * and llmd_body_scan() (core/llmd_body_scan.h); any difference in the
 * return code, the error message, model, cache_salt, stream, tools,
 * add_generation_prompt (chat), whether there is a prompt, its bytes or
 * its prefix hashes is a disagreement (with an even max_blocks the
 * scanner also prefetches from a table as it hashes, which must change
 * nothing).  Used by t/unit/test_body_scan.c and fuzz/fuzz_body_scan.c.
 */
#ifndef BODY_DIFF_H
#define BODY_DIFF_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "core/llmd_prompt.h"
#include "core/llmd_body_scan.h"
#include "core/llmd_prefix_hash.h"


/*
 * A region: bump allocation from a 1 MiB chunk kept from call to call,
 * larger requests malloc'ed and freed at release (ASan sees overruns of
 * those; the chunk is poisoned nowhere, which is the price of speed).
 */
typedef struct body_diff_block_s  body_diff_block_t;

struct body_diff_block_s {
    body_diff_block_t  *next;
    long double         data[];
};

typedef struct {
    body_diff_block_t  *big;
    size_t              used;
} body_diff_arena_t;

#define BODY_DIFF_CHUNK  (1 << 20)

static long double  body_diff_chunk[BODY_DIFF_CHUNK / sizeof(long double)];


static void *
body_diff_alloc(void *ctx, size_t size)
{
    body_diff_arena_t  *ar = ctx;
    body_diff_block_t  *b;
    void               *p;

    size = (size + 15) & ~(size_t) 15;

    if (size <= BODY_DIFF_CHUNK / 4 && ar->used + size <= BODY_DIFF_CHUNK) {
        p = (char *) body_diff_chunk + ar->used;
        ar->used += size;
        return p;
    }

    b = malloc(sizeof(body_diff_block_t) + (size ? size : 1));
    if (b == NULL) {
        return NULL;
    }

    b->next = ar->big;
    ar->big = b;

    return b->data;
}


static void
body_diff_release(body_diff_arena_t *ar)
{
    body_diff_block_t  *b;

    while (ar->big != NULL) {
        b = ar->big;
        ar->big = b->next;
        free(b);
    }

    ar->used = 0;
}


/* what the reference answered last: -1, 0, or 1 for "too complex" */
static int   body_diff_last;
static char  body_diff_err[LLMD_ERRLEN];
/* chat bodies accepted whose messages the scanner read for the template
   (msgs_plain), and those it left to cJSON */
static unsigned long  body_diff_plain_n;
static unsigned long  body_diff_unplain_n;
/* chats whose hashes were also computed from their plain messages */
static unsigned long  body_diff_msg_hashes_n;


/* Full blocks of len bytes, at most max_blocks. */
static size_t
body_diff_blocks(size_t len, uint32_t block_size, uint32_t max_blocks)
{
    return len / block_size < max_blocks ? len / block_size : max_blocks;
}


/*
 * cJSON's side of llmd_body_t.msgs_plain: every message an object whose
 * members are exactly one string "role" and one string "content" (keys as
 * cJSON holds them, cut at a NUL), at most cap of them; *n their count.
 */
static int
body_diff_plain(const cJSON *messages, size_t cap, size_t *n)
{
    int           role, content;
    const cJSON  *m, *c;

    *n = 0;

    for (m = messages->child; m != NULL; m = m->next) {
        if (!cJSON_IsObject(m) || *n == cap) {
            return 0;
        }

        role = 0;
        content = 0;

        for (c = m->child; c != NULL; c = c->next) {
            if (!cJSON_IsString(c) || c->string == NULL) {
                return 0;
            }

            if (strcmp(c->string, "role") == 0 && !role) {
                role = 1;

            } else if (strcmp(c->string, "content") == 0 && !content) {
                content = 1;

            } else {
                return 0;
            }
        }

        if (!role || !content) {
            return 0;
        }

        (*n)++;
    }

    return 1;
}


/*
 * 0 when both agree; else 1 with what differs in why.  block_size and
 * max_blocks: the prefix hashing compared (max_blocks <= 512).
 */
static int
body_diff(llmd_api_t api, const char *body, size_t len, uint32_t block_size,
    uint32_t max_blocks, char *why, size_t whylen)
{
    int                  rc1, rc2, bad, plain;
    char                 err1[LLMD_ERRLEN], err2[LLMD_ERRLEN];
    size_t               n1, n3, i, nplain;
    unsigned char       *mtext;
    const cJSON         *m;
    llmd_request_msg_t   msgs[64];
    uint64_t             h1[512], h2[512], h3[512];
    llmd_body_t          b;
    llmd_alloc_t         a;
    llmd_request_t       req;
    unsigned char       *copy;
    body_diff_arena_t    ar;

    ar.big = NULL;
    ar.used = 0;
    a.alloc = body_diff_alloc;
    a.ctx = &ar;
    bad = 0;
    copy = NULL;
    mtext = NULL;

    if (max_blocks > 512) {
        max_blocks = 512;
    }

#define BODY_DIFF(...)                                                      \
    do { snprintf(why, whylen, __VA_ARGS__); bad = 1; goto done; } while (0)

    rc1 = llmd_request_parse(api, body, len, &a, &req, err1, sizeof(err1));
    body_diff_last = rc1 != 0 ? -1 : strstr(err1, "too complex") != NULL;
    memcpy(body_diff_err, err1, sizeof(err1));

    memset(&b, 0, sizeof(b));
    b.block_size = block_size;
    b.max_blocks = max_blocks;
    b.hashes = h2;

    b.copy_cap = (rc1 == 0 && req.prompt != NULL) ? req.prompt_len : 0;
    copy = malloc(b.copy_cap + 1);
    if (copy == NULL) {
        BODY_DIFF("out of memory");
    }

    b.copy = copy;

    /* the messages for the chat template: in text of the body's length,
       at most 4 or 64 of them */
    mtext = malloc(len + 1);
    if (mtext == NULL) {
        BODY_DIFF("out of memory");
    }

    b.msgs = msgs;
    b.msgs_cap = (max_blocks & 1) ? 4 : 64;
    b.msg_text = mtext;
    b.msg_text_cap = len;

    rc2 = llmd_body_scan(api, body, len, &a, &b, err2, sizeof(err2));

    if (rc1 != rc2 || strcmp(err1, err2) != 0) {
        BODY_DIFF("cJSON %d \"%.200s\", scanner %d \"%.200s\"", rc1, err1, rc2,
                  err2);
    }

    if (rc1 != 0) {
        goto done;
    }

    if (req.model_len != b.model_len
        || memcmp(req.model, b.model, b.model_len) != 0)
    {
        BODY_DIFF("model \"%.*s\" vs \"%.*s\"", (int) req.model_len,
                  req.model, (int) b.model_len, b.model);
    }

    if ((req.cache_salt == NULL) != (b.cache_salt == NULL)
        || req.cache_salt_len != b.cache_salt_len
        || (b.cache_salt != NULL
            && memcmp(req.cache_salt, b.cache_salt, b.cache_salt_len) != 0))
    {
        BODY_DIFF("cache_salt differs");
    }

    if (req.stream != b.stream) {
        BODY_DIFF("stream %d vs %d", req.stream, b.stream);
    }

    if (api == LLMD_API_CHAT
        && (req.tools != b.tools
            || req.add_generation_prompt != b.add_generation_prompt))
    {
        BODY_DIFF("tools %d/%d or add_generation_prompt %d/%d", req.tools,
                  b.tools, req.add_generation_prompt,
                  b.add_generation_prompt);
    }

    if (api == LLMD_API_CHAT && req.json_messages != NULL) {
        if ((req.json_chat_kwargs != NULL) != b.chat_kwargs) {
            BODY_DIFF("chat_template_kwargs an object: cJSON %d, scanner %d",
                      req.json_chat_kwargs != NULL, b.chat_kwargs);
        }

        plain = req.json_chat_kwargs == NULL
                && body_diff_plain(req.json_messages, b.msgs_cap, &nplain);

        if (plain != b.msgs_plain || (plain && nplain != b.nmsgs)) {
            BODY_DIFF("messages plain: cJSON %d (%zu), scanner %d (%zu)",
                      plain, plain ? nplain : 0, b.msgs_plain, b.nmsgs);
        }

        for (i = 0, m = req.json_messages->child; plain && i < nplain;
             i++, m = m->next)
        {
            if (strcmp(cJSON_GetObjectItemCaseSensitive(m, "role")
                           ->valuestring, msgs[i].role) != 0
                || strcmp(cJSON_GetObjectItemCaseSensitive(m, "content")
                              ->valuestring, msgs[i].content) != 0)
            {
                BODY_DIFF("message %zu: role or content differs", i);
            }
        }

        if (plain) {
            body_diff_plain_n++;

        } else {
            body_diff_unplain_n++;
        }

    } else if (b.msgs_plain || b.nmsgs) {
        BODY_DIFF("messages read where cJSON has none");
    }

    /* the precise scorer tokenizes the scanner's copy of a string prompt
       where it tokenized cJSON's valuestring (up to its first NUL) */
    if ((api == LLMD_API_COMPLETIONS && cJSON_IsString(req.json_prompt))
        != b.prompt_string)
    {
        BODY_DIFF("prompt is a string: cJSON %d, scanner %d",
                  api == LLMD_API_COMPLETIONS
                  && cJSON_IsString(req.json_prompt), b.prompt_string);
    }

    if (b.prompt_string
        && (req.json_prompt->valuestring == NULL
            || strlen(req.json_prompt->valuestring) != b.prompt_len
            || memcmp(req.json_prompt->valuestring, copy, b.prompt_len)
               != 0))
    {
        BODY_DIFF("string prompt: cJSON's valuestring differs from the "
                  "scanner's %zu bytes", b.prompt_len);
    }

    if ((req.prompt != NULL) != b.has_prompt) {
        BODY_DIFF("prompt %s vs %s", req.prompt ? "present" : "absent",
                  b.has_prompt ? "present" : "absent");
    }

    if (req.prompt == NULL) {
        goto done;
    }

    if (req.prompt_len != b.prompt_len
        || memcmp(req.prompt, copy, req.prompt_len) != 0)
    {
        BODY_DIFF("prompt of %zu bytes \"%.*s\" vs %zu \"%.*s\"",
                  req.prompt_len, (int) req.prompt_len, req.prompt,
                  b.prompt_len,
                  (int) (b.prompt_len <= req.prompt_len ? b.prompt_len : 0),
                  copy);
    }

    n1 = llmd_prefix_hashes(req.model, req.model_len, req.cache_salt,
                            req.cache_salt_len, req.prompt, req.prompt_len,
                            block_size, max_blocks, h1);

    if (n1 != b.nhashes || memcmp(h1, h2, n1 * sizeof(uint64_t)) != 0) {
        BODY_DIFF("%zu prefix hashes vs %zu (or their values)", n1,
                  b.nhashes);
    }

    /* the precise scorer's hashes, computed later from what it keeps:
       the messages (plain chat) or the copy (a string prompt); their
       count from prompt_len alone */
    if (block_size && max_blocks
        && n1 != body_diff_blocks(req.prompt_len, block_size, max_blocks))
    {
        BODY_DIFF("%zu prefix hashes, not prompt_len / block_size", n1);
    }

    if (api == LLMD_API_CHAT && b.msgs_plain) {
        n3 = llmd_body_chat_hashes(b.model, b.model_len, b.cache_salt,
                                   b.cache_salt_len, msgs, b.nmsgs,
                                   block_size, max_blocks, h3);

        if (n1 != n3 || memcmp(h1, h3, n1 * sizeof(uint64_t)) != 0) {
            BODY_DIFF("%zu prefix hashes vs %zu from the plain messages "
                      "(or their values)", n1, n3);
        }

        body_diff_msg_hashes_n++;
    }

#undef BODY_DIFF

done:

    free(copy);
    free(mtext);
    body_diff_release(&ar);
    return bad;
}

#endif /* BODY_DIFF_H */
