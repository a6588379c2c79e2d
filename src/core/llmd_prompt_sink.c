/*
 * The prompt sink (llmd_prompt_sink.h).  The chain is llmd_prefix_hash.h's;
 * blocks of llm-d's default size are hashed where they lie in the caller's
 * bytes, other sizes and blocks split across writes are gathered first.
 */
#include <string.h>

/* libxxhash's own code, inlined here: two XXH3 hashes per block are
   otherwise two calls into the shared library */
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "core/llmd_prompt_sink.h"
#include "core/llmd_prefix_hash.h"


/* llm-d's default block size: whole blocks of it are hashed with a
   constant length (inlined) */
#define LLMD_SINK_FAST_BLOCK  64


static void llmd_sink_blocks64(llmd_prompt_sink_t *s,
    const unsigned char **pp, size_t *plen);


void
llmd_prompt_sink_start(llmd_prompt_sink_t *s, unsigned char *copy,
    size_t cap, int count)
{
    memset(s, 0, offsetof(llmd_prompt_sink_t, st));

    s->copy = copy;
    s->cap = copy ? cap : 0;
    s->count = (copy != NULL) || count;
    s->active = s->count;
}


void
llmd_prompt_sink_hash(llmd_prompt_sink_t *s, const char *model,
    size_t model_len, const char *salt, size_t salt_len,
    uint32_t block_size, uint32_t max_blocks, uint64_t *out)
{
    if (block_size == 0 || max_blocks == 0 || out == NULL) {
        return;
    }

    s->bs = block_size;
    s->maxb = max_blocks;
    s->out = out;
    s->active = 1;
    s->h = llmd_prefix_seed(model, model_len, salt, salt_len);

    if (s->bs > LLMD_PROMPT_SINK_STACK_BLOCK) {
        (void) XXH3_64bits_reset(&s->st);
    }
}


/*
 * Whole 64-byte blocks from p while the sink is at a block boundary,
 * hashed where they are (no copy), the chain value kept in a register.
 * Each block's own XXH3 does not depend on the chain, so the CPU overlaps
 * it with the previous blocks' links; only the 16-byte link is serial.
 * Flattened: everything XXH3 calls is inlined here, with the lengths
 * constants.
 */
static __attribute__((flatten)) void
llmd_sink_blocks64(llmd_prompt_sink_t *s, const unsigned char **pp,
    size_t *plen)
{
    size_t                len, nh, maxb;
    uint64_t              h, *out;
    const unsigned char  *p;

    p = *pp;
    len = *plen;
    h = s->h;
    nh = s->nh;
    maxb = s->maxb;
    out = s->out;

    while (len >= LLMD_SINK_FAST_BLOCK) {
        h = llmd_prefix_link(h, XXH3_64bits(p, LLMD_SINK_FAST_BLOCK));
        out[nh++] = h;

        p += LLMD_SINK_FAST_BLOCK;
        len -= LLMD_SINK_FAST_BLOCK;

        if (nh == maxb) {
            s->bs = 0;
            s->active = s->count;
            break;
        }
    }

    s->h = h;
    s->nh = nh;
    *pp = p;
    *plen = len;
}


void
llmd_prompt_sink_write(llmd_prompt_sink_t *s, const void *data, size_t len)
{
    size_t                take;
    uint64_t              bh;
    const unsigned char  *p = data;

    if (s->copy != NULL && s->n + len <= s->cap) {
        memcpy(s->copy + s->n, p, len);
    }

    s->n += len;

    if (s->bs == LLMD_SINK_FAST_BLOCK && s->fill == 0
        && len >= LLMD_SINK_FAST_BLOCK)
    {
        llmd_sink_blocks64(s, &p, &len);
    }

    while (len && s->bs) {
        take = s->bs - s->fill;
        if (take > len) {
            take = len;
        }

        if (s->bs <= LLMD_PROMPT_SINK_STACK_BLOCK) {
            memcpy(s->buf + s->fill, p, take);

        } else {
            (void) XXH3_64bits_update(&s->st, p, take);
        }

        s->fill += take;
        p += take;
        len -= take;

        if (s->fill < s->bs) {
            break;
        }

        if (s->bs <= LLMD_PROMPT_SINK_STACK_BLOCK) {
            bh = XXH3_64bits(s->buf, s->bs);

        } else {
            bh = XXH3_64bits_digest(&s->st);
            (void) XXH3_64bits_reset(&s->st);
        }

        s->h = llmd_prefix_link(s->h, bh);
        s->out[s->nh++] = s->h;

        s->fill = 0;

        if (s->nh == s->maxb) {
            s->bs = 0;
            s->active = s->count;
        }
    }
}


void
llmd_prompt_sink_write_pt(void *s, const void *data, size_t len)
{
    llmd_prompt_sink_write(s, data, len);
}
