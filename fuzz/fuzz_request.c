/*
 * Fuzz target: request bodies (llmd_request_parse, core/llmd_prompt.h), as
 * the module parses them before scheduling.  The first input byte picks
 * the API (low two bits: 0 other, 1 completions, 2 chat, 3 other) and,
 * when its top bit is set, the allocation that fails (bits 2-6), so the
 * out-of-memory paths run too; the rest is the body.  cJSON's memory comes
 * from an arena released after each input, as an nginx request pool is.
 * The body is also classified as a request path (llmd_api_from_path).
 */
#include <stdlib.h>
#include <string.h>

#include "core/llmd_prompt.h"
#include "fuzz_common.h"


typedef struct fuzz_block_s  fuzz_block_t;

struct fuzz_block_s {
    fuzz_block_t  *next;
    /* max_align_t alignment for what follows, as malloc gives */
    long double    data[];
};

typedef struct {
    fuzz_block_t  *blocks;
    long           fail_at;      /* the allocation that fails; -1: none */
    long           count;
} fuzz_arena_t;


static void *fuzz_arena_alloc(void *ctx, size_t size);
static void fuzz_arena_release(fuzz_arena_t *ar);
static void fuzz_check_request(const llmd_request_t *req, size_t len);


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int             rc;
    char            err[LLMD_ERRLEN];
    unsigned        mode;
    llmd_api_t      api;
    llmd_alloc_t    a;
    fuzz_arena_t    ar;
    fuzz_input_t    in;
    llmd_request_t  req;

    static const llmd_api_t  apis[4] = {
        LLMD_API_OTHER, LLMD_API_COMPLETIONS, LLMD_API_CHAT, LLMD_API_OTHER
    };

    in.p = data;
    in.n = size;
    mode = fuzz_byte(&in);
    api = apis[mode & 3];

    ar.blocks = NULL;
    ar.count = 0;
    ar.fail_at = (mode & 0x80) ? (long) ((mode >> 2) & 0x1f) : -1;
    a.alloc = fuzz_arena_alloc;
    a.ctx = &ar;

    (void) llmd_api_from_path((const char *) in.p, in.n);

    err[0] = 'x';
    rc = llmd_request_parse(api, (const char *) in.p, in.n, &a, &req, err,
                            sizeof(err));

    FUZZ_CHECK(rc == 0 || rc == -1);
    FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);

    if (rc == 0) {
        fuzz_check_request(&req, in.n);

    } else {
        FUZZ_CHECK(err[0] != '\0');
    }

    fuzz_arena_release(&ar);

    return 0;
}


/* What a successful parse promises; reads every byte it points at. */
static void
fuzz_check_request(const llmd_request_t *req, size_t len)
{
    FUZZ_CHECK(req->model != NULL);
    FUZZ_CHECK(req->model_len <= len);
    fuzz_touch(req->model, req->model_len + 1);
    FUZZ_CHECK(req->model[req->model_len] == '\0');

    if (req->cache_salt != NULL) {
        FUZZ_CHECK(req->cache_salt_len > 0 && req->cache_salt_len <= len);
        fuzz_touch(req->cache_salt, req->cache_salt_len);
    }

    FUZZ_CHECK(req->prompt != NULL || req->prompt_len == 0);
    fuzz_touch(req->prompt, req->prompt_len);
    FUZZ_CHECK(req->stream == 0 || req->stream == 1);
}


static void *
fuzz_arena_alloc(void *ctx, size_t size)
{
    fuzz_arena_t  *ar = ctx;
    fuzz_block_t  *b;

    if (ar->count++ == ar->fail_at) {
        return NULL;
    }

    b = malloc(sizeof(fuzz_block_t) + size);
    if (b == NULL) {
        return NULL;
    }

    b->next = ar->blocks;
    ar->blocks = b;

    return b->data;
}


static void
fuzz_arena_release(fuzz_arena_t *ar)
{
    fuzz_block_t  *b, *next;

    for (b = ar->blocks; b != NULL; b = next) {
        next = b->next;
        free(b);
    }

    ar->blocks = NULL;
}
