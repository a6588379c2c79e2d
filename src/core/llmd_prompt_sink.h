/*
 * Where the body scanner's prompt bytes go (docs/parsers.md, "Request body
 * scanner"): counted, copied into a caller buffer while they fit, and
 * hashed into approximate prefix blocks (core/llmd_prefix_hash.h's chain)
 * as they come, so the prompt is never materialised to be hashed.  Once
 * the last block is hashed and nothing needs counting, active is 0 and
 * the producer may stop writing.
 */
#ifndef LLMD_PROMPT_SINK_H
#define LLMD_PROMPT_SINK_H

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "core/llmd_common.h"

/* Blocks up to this size are gathered in buf, larger ones in st. */
#define LLMD_PROMPT_SINK_STACK_BLOCK  1024

typedef struct {
    int             active;     /* bytes are still wanted */
    size_t          n;          /* bytes written (when counting: all) */
    size_t          nh;         /* hashes written to out */

    unsigned char  *copy;
    size_t          cap;
    int             count;
    uint32_t        bs;         /* block size; 0: not (or no longer)
                                   hashing */
    uint32_t        maxb;
    uint64_t       *out;
    uint64_t        h;          /* the chain's last hash */
    size_t          fill;       /* bytes of the current block */
    /* the partial block: large, so kept last (starting a sink does not
       touch it) */
    XXH3_state_t    st;
    unsigned char   buf[LLMD_PROMPT_SINK_STACK_BLOCK];
} llmd_prompt_sink_t;

/*
 * A sink that copies into copy[0..cap) while the bytes fit (copy NULL:
 * nowhere) and counts them all when copy is set or count is 1; it hashes
 * nothing until llmd_prompt_sink_hash().
 */
void llmd_prompt_sink_start(llmd_prompt_sink_t *s, unsigned char *copy,
    size_t cap, int count);

/*
 * Also hash the bytes into up to max_blocks prefix hashes in out, the
 * chain seeded by model and salt, as llmd_prefix_hashes() computes them
 * over the same bytes (block_size 0 or max_blocks 0: no hashing).  Before
 * the first write.
 */
void llmd_prompt_sink_hash(llmd_prompt_sink_t *s, const char *model,
    size_t model_len, const char *salt, size_t salt_len,
    uint32_t block_size, uint32_t max_blocks, uint64_t *out);

void llmd_prompt_sink_write(llmd_prompt_sink_t *s, const void *data,
    size_t len);

/* llmd_prompt_sink_write for a callback taking void * (llmd_go_write_pt) */
void llmd_prompt_sink_write_pt(void *s, const void *data, size_t len);

#endif /* LLMD_PROMPT_SINK_H */
