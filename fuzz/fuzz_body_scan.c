/*
 * Fuzz target: the request body scanner (llmd_body_scan,
 * core/llmd_body_scan.h) held to cJSON (llmd_request_parse,
 * core/llmd_prompt.h) by t/unit/body_diff.h: any difference in accept or
 * reject, the error message, model, cache_salt, stream, tools,
 * add_generation_prompt, the prompt bytes or their prefix hashes, or the
 * chat messages read for the template (msgs_plain, roles and contents)
 * aborts.
 * The first input byte picks the API (low two bits: 0 other,
 * 1 completions, 2 chat, 3 other), the prefix block size (bits 2-3: 1, 4,
 * 64 or 1100 bytes, the last hashed by XXH3's streaming calls) and, with
 * bit 4, a small cJSON budget (1 + 16 x bits 5-7 bytes besides 16 x the
 * body) so that "too complex" is reached by small bodies; the rest is the
 * body, passed at its exact size.  The input's size modulo 4 picks the
 * implementation of llmd_str_find() (core/llmd_str_find.h): the byte loop,
 * SSE2, AVX2 or AVX-512BW (the best the CPU has when it lacks that one).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../t/unit/body_diff.h"
#include "core/llmd_str_find.h"
#include "fuzz_common.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int            bad;
    char           why[1024];
    char          *body;
    unsigned       mode;
    uint32_t       bs;
    llmd_api_t     api;
    fuzz_input_t   in;

    static const llmd_api_t  apis[4] = {
        LLMD_API_OTHER, LLMD_API_COMPLETIONS, LLMD_API_CHAT, LLMD_API_OTHER
    };
    static const uint32_t    sizes[4] = { 1, 4, 64, 1100 };

    if (llmd_str_find_use(LLMD_STR_FIND_SCALAR + (int) (size % 4)) != 0) {
        FUZZ_CHECK(llmd_str_find_use(LLMD_STR_FIND_AUTO) == 0);
    }

    in.p = data;
    in.n = size;
    mode = fuzz_byte(&in);
    api = apis[mode & 3];
    bs = sizes[(mode >> 2) & 3];

    llmd_request_set_json_budget_min((mode & 0x10)
                                     ? 1 + 16 * ((mode >> 5) & 7) : 0);

    /* an exact-size copy: ASan sees any read past the body */
    body = malloc(in.n ? in.n : 1);
    FUZZ_CHECK(body != NULL);
    memcpy(body, in.p, in.n);

    bad = body_diff(api, body, in.n, bs, 64, why, sizeof(why));

    if (bad) {
        fprintf(stderr, "scanner and cJSON disagree: %s\n", why);
    }

    FUZZ_CHECK(!bad);

    free(body);
    llmd_request_set_json_budget_min(0);

    return 0;
}
