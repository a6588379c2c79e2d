/*
 * Prefix cache of encodings: the ids of recently encoded texts, reusable
 * up to a boundary b where the tokenizer provably restarts, that is where
 *
 *     encode(T) = encode(T[0..b)) ++ encode_text(T[b..))             (*)
 *
 * for the whole (sanitized) text T, with encode_text() the pipeline from
 * the added-token split on and no state carried over.  Two kinds of b:
 *
 * A. The end of an added token that T's own added-token scan matched and
 *    that has no rstrip.  The scan is leftmost-longest: a match of T
 *    ending at or before b is also P = T[0..b)'s match (P has no match at
 *    a position where T has none, and T's choice fits into P), so P's
 *    segments and tokens are T's up to b.  T's scan goes on at b with no
 *    state but "the previous token", used only by rstrip (excluded).
 *
 * B. Inside a segment of T (not inside an added token match), where T[b-1]
 *    is an ASCII letter and T[b] an ASCII non-letter, for the split
 *    patterns of Llama-3, Qwen2 and GPT-2 only (llmd_tok_split_is_
 *    restartable) and without add_prefix_space (which only a segment's
 *    start gets):
 *    - added tokens: as in A, P's scan is T's up to b, and the scan of
 *      T[b..) finds T's next match; lstrip of that token cannot reach b-1
 *      (a letter), nor can the rstrip of the token before;
 *    - NFC: a code point below U+0300 has canonical combining class 0, is
 *      NFC_QC=Yes and is never the second of a composition pair, so NFC
 *      of the segment is NFC of its part before b followed by NFC of the
 *      part from b, and both parts keep T[b-1] and T[b] at the junction;
 *    - the regex: in these patterns only the contractions ('s 't 're 've
 *      'm 'll 'd) and the letter runs ([^\r\n\p{L}\p{N}]?\p{L}+ or ?\p{L}+)
 *      can consume a letter; everything else (digits, punctuation runs,
 *      white space, including \s+(?!\S) and \s*[\r\n]+) consumes none, so
 *      no match contains both T[b-1] and T[b]: the match holding T[b-1]
 *      ends at b.  A match attempt reads T[b] only right after consuming
 *      the letter T[b-1] (a lookahead needs white space before it), where
 *      a letter or a contraction's next letter is required: T[b] fails
 *      that test exactly as the end of P's subject does.  So every attempt
 *      before b gives the same match on T and on P, P's pieces are T's
 *      pieces before b, and T's scan restarts at b (no lookbehind, \b, ^
 *      or \G in these patterns: scanning T[b..) alone is the same).
 *
 * Applying (*) at each boundary in turn, T's ids are the concatenation of
 * encode_text() over the chunks between its boundaries, and the ids before
 * a boundary b of T are encode(T[0..b)) whatever follows.  A cache entry
 * keyed by XXH3-128 of the sanitized text T[0..b) stores those ids; an
 * encode of another text U that has a boundary at b in U (checked on U)
 * with the same key reuses them, and encodes only U[b..).
 *
 * Memory: one ring of ids (entries are the ids of a text up to its last
 * boundary; old entries are overwritten) and an 8-way set-associative
 * index of boundaries -> (ring position, id count); an index slot whose
 * ring data was overwritten is dead.  Not thread-safe: one per worker.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#define XXH_STATIC_LINKING_ONLY  /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "tokenizer/llmd_tokenizer_int.h"


#define LLMD_TOK_CACHE_WAYS  8

typedef struct {
    uint64_t  k0;
    uint64_t  k1;
    uint64_t  pos;          /* logical ring position */
    uint32_t  n;            /* ids */
    uint32_t  used;
} llmd_tok_slot_t;

struct llmd_tok_cache_s {
    const llmd_tokenizer_t  *tok;
    size_t                   stride;
    uint32_t                *ring;
    uint64_t                 ring_cap;  /* ids */
    uint64_t                 head;      /* logical: next id written */
    llmd_tok_slot_t         *slots;
    size_t                   slot_mask;
    llmd_tok_cache_stats_t   stats;
};


/* Llama-3, Qwen2 (and Qwen3) Split patterns as in tokenizer.json. */
static const char  *llmd_tok_restart_patterns[] = {
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|"
    "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
    llmd_tok_gpt2_pattern,
    NULL
};


size_t
llmd_tok_cache_state_size(void)
{
    return sizeof(XXH3_state_t);
}


int
llmd_tok_split_is_restartable(const char *pattern)
{
    size_t  i;

    for (i = 0; llmd_tok_restart_patterns[i] != NULL; i++) {
        if (strcmp(pattern, llmd_tok_restart_patterns[i]) == 0) {
            return 1;
        }
    }
    return 0;
}


unsigned
llmd_tok_split_ascii_digits(const char *pattern)
{
    if (strcmp(pattern, llmd_tok_restart_patterns[0]) == 0) {
        return 3;
    }
    if (strcmp(pattern, llmd_tok_restart_patterns[1]) == 0) {
        return 1;
    }
    return 0;
}


llmd_tok_cache_t *
llmd_tok_cache_create(const llmd_tokenizer_t *tok, size_t bytes,
    size_t stride)
{
    llmd_tok_cache_t  *c;
    size_t             nslots;

    if (tok == NULL || bytes < LLMD_TOK_CACHE_MIN) {
        return NULL;
    }
    /* A fifth of the memory for the index (a boundary per ~64 ids). */
    nslots = LLMD_TOK_CACHE_WAYS;
    while (nslots * 2 * sizeof(llmd_tok_slot_t) <= bytes / 5) {
        nslots *= 2;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        return NULL;
    }
    c->tok = tok;
    c->stride = stride ? stride : LLMD_TOK_CACHE_STRIDE;
    c->slot_mask = nslots - 1;
    c->ring_cap = (bytes - nslots * sizeof(llmd_tok_slot_t))
                  / sizeof(uint32_t);
    c->slots = calloc(nslots, sizeof(llmd_tok_slot_t));
    c->ring = malloc(c->ring_cap * sizeof(uint32_t));
    if (c->slots == NULL || c->ring == NULL) {
        llmd_tok_cache_free(c);
        return NULL;
    }
    c->stats.bytes = nslots * sizeof(llmd_tok_slot_t)
                     + c->ring_cap * sizeof(uint32_t);
    return c;
}


void
llmd_tok_cache_free(llmd_tok_cache_t *c)
{
    if (c == NULL) {
        return;
    }
    free(c->slots);
    free(c->ring);
    free(c);
}


/* Every page of [p, p + len) written once, its bytes unchanged. */
static size_t
llmd_tok_cache_touch(void *p, size_t len, size_t page)
{
    volatile unsigned char  *b;
    uintptr_t                start, end, a;

    start = ((uintptr_t) p + page - 1) & ~((uintptr_t) page - 1);
    end = ((uintptr_t) p + len) & ~((uintptr_t) page - 1);
    if (end <= start) {
        return 0;
    }
#ifdef MADV_POPULATE_WRITE
    (void) madvise((void *) start, end - start, MADV_POPULATE_WRITE);
#endif
    /* the first byte of each page, also the partial pages at the ends */
    b = p;
    b[0] = b[0];
    for (a = start; a < end; a += page) {
        b = (volatile unsigned char *) a;
        *b = *b;
    }
    b = (volatile unsigned char *) p + len - 1;
    *b = *b;
    return len;
}


size_t
llmd_tok_cache_prefault(llmd_tok_cache_t *c)
{
    long    page;
    size_t  n;

    if (c == NULL) {
        return 0;
    }
    page = sysconf(_SC_PAGESIZE);
    if (page <= 0 || (page & (page - 1)) != 0) {
        page = 4096;
    }
    n = llmd_tok_cache_touch(c->slots,
                             (c->slot_mask + 1) * sizeof(llmd_tok_slot_t),
                             (size_t) page);
    n += llmd_tok_cache_touch(c->ring, c->ring_cap * sizeof(uint32_t),
                              (size_t) page);
    return n;
}


void
llmd_tok_cache_stats(const llmd_tok_cache_t *c, llmd_tok_cache_stats_t *st)
{
    if (c == NULL) {
        memset(st, 0, sizeof(*st));
        return;
    }
    *st = c->stats;
}


void
llmd_tok_cache_count(llmd_tok_cache_t *c, size_t reused, size_t encoded)
{
    c->stats.lookups++;
    c->stats.hits += reused > 0;
    c->stats.reused_ids += reused;
    c->stats.encoded_ids += encoded;
}


const llmd_tokenizer_t *
llmd_tok_cache_tokenizer(const llmd_tok_cache_t *c)
{
    return c->tok;
}


size_t
llmd_tok_cache_stride(const llmd_tok_cache_t *c)
{
    return c->stride;
}


/* Appends a boundary at b; its key comes later (llmd_tok_cache_lookup). */
static size_t
llmd_tok_cache_add(size_t b, llmd_tok_cand_t *cands, size_t n, size_t max)
{
    if (n == max) {
        return n;
    }
    cands[n].b = (uint32_t) b;
    cands[n].n = UINT32_MAX;    /* not known yet */
    cands[n].k0 = 0;
    cands[n].k1 = 0;
    return n + 1;
}


size_t
llmd_tok_cache_plan(const llmd_tok_cache_t *c, const unsigned char *p,
    size_t len, llmd_tok_cand_t *cands, size_t max)
{
    const llmd_tokenizer_t  *tok;
    const llmd_tok_added_t  *a;
    size_t                   pos, at, m, b, j, next, n, end;
    uint32_t                 idx;
    int                      inner;

    tok = c->tok;
    inner = tok->split != NULL && tok->split_restart
            && !tok->add_prefix_space;
    if (len > UINT32_MAX) {
        return 0;
    }
    n = 0;
    next = c->stride;
    pos = 0;

    for ( ;; ) {
        idx = llmd_tok_added_next(tok, p + pos, len - pos, &at);
        a = idx == LLMD_TOK_NONE ? NULL : &tok->added[idx];
        m = a == NULL ? len : pos + at;

        /* B: inside the segment [pos, m), b in (pos, m], b < len. */
        if (inner) {
            end = m < len ? m : len - 1;
            for (j = next > pos + 1 ? next : pos + 1; j <= end && len > 0;
                 j++)
            {
                if (llmd_tok_a_letter(p[j - 1]) && p[j] < 0x80
                    && !llmd_tok_a_letter(p[j]))
                {
                    n = llmd_tok_cache_add(j, cands, n, max);
                    next = j + c->stride;
                    j = next - 1;
                }
            }
        }
        if (a == NULL) {
            return n;
        }

        /* A: after the added token, unless it strips what follows. */
        b = m + a->content_len;
        if (!a->rstrip && b >= next) {
            n = llmd_tok_cache_add(b, cands, n, max);
            next = b + c->stride;
        }
        pos = b;
    }
}


static int
llmd_tok_slot_live(const llmd_tok_cache_t *c, const llmd_tok_slot_t *s)
{
    return s->used && s->pos + c->ring_cap >= c->head;
}


const uint32_t *
llmd_tok_cache_find(llmd_tok_cache_t *c, const llmd_tok_cand_t *cand,
    size_t *n)
{
    llmd_tok_slot_t  *s;
    size_t            i;

    for (i = 0; i < LLMD_TOK_CACHE_WAYS; i++) {
        s = &c->slots[(cand->k0 + i) & c->slot_mask];
        if (s->k0 == cand->k0 && s->k1 == cand->k1
            && llmd_tok_slot_live(c, s))
        {
            *n = s->n;
            return c->ring + s->pos % c->ring_cap;
        }
    }
    return NULL;
}


/*
 * The keys of the boundaries (XXH3-128 of the text before each) and the
 * longest cached one.  A streamed key costs a digest (~40 ns, as much as
 * hashing ~300 bytes), and only the boundaries from the hit on need keys
 * (to be looked up, and stored with the new entry): one pass streams the
 * text and keeps the hash state at every every-th boundary (8; more for
 * tiny strides), then the groups of boundaries are keyed from the last
 * one back, from their state, until a group holds a cached boundary.
 * Returns the index + 1 of the longest cached boundary (0: none); the keys
 * of it and of every later boundary are set.
 */
size_t
llmd_tok_cache_lookup(llmd_tok_cache_t *c, const unsigned char *p,
    llmd_tok_cand_t *cands, size_t n, size_t every, void *snaps,
    const uint32_t **hit, size_t *nhit)
{
    XXH3_state_t   *snap, st;
    XXH128_hash_t   h;
    size_t          i, g, first, last, hashed;

    *hit = NULL;
    *nhit = 0;
    if (n == 0) {
        return 0;
    }
    snap = snaps;

    /*
     * the state before each group's first boundary: the text between two
     * kept states in one update (a streamed hash does not depend on how
     * its input is cut; one call per boundary of ~256 bytes cost more in
     * calls and buffering than in hashing)
     */
    if (XXH3_128bits_reset(&st) == XXH_ERROR) {
        return 0;
    }
    hashed = 0;
    last = (n - 1) / every * every;
    for (i = 0; i <= last; i += every) {
        if (i > 0) {
            (void) XXH3_128bits_update(&st, p + hashed,
                                       cands[i - 1].b - hashed);
            hashed = cands[i - 1].b;
        }
        XXH3_copyState(&snap[i / every], &st);
    }

    for (g = (n - 1) / every + 1; g > 0; g--) {
        first = (g - 1) * every;
        last = first + every < n ? first + every : n;
        XXH3_copyState(&st, &snap[g - 1]);
        hashed = first ? cands[first - 1].b : 0;
        for (i = first; i < last; i++) {
            (void) XXH3_128bits_update(&st, p + hashed,
                                       cands[i].b - hashed);
            hashed = cands[i].b;
            h = XXH3_128bits_digest(&st);
            cands[i].k0 = h.low64;
            cands[i].k1 = h.high64;
        }
        for (i = last; i > first; i--) {
            *hit = llmd_tok_cache_find(c, &cands[i - 1], nhit);
            if (*hit != NULL) {
                return i;
            }
        }
    }
    return 0;
}


static void
llmd_tok_cache_index(llmd_tok_cache_t *c, const llmd_tok_cand_t *cand,
    uint64_t pos)
{
    llmd_tok_slot_t  *s, *victim;
    size_t            i;

    victim = NULL;
    for (i = 0; i < LLMD_TOK_CACHE_WAYS; i++) {
        s = &c->slots[(cand->k0 + i) & c->slot_mask];
        if (s->k0 == cand->k0 && s->k1 == cand->k1) {
            victim = s;
            break;
        }
        if (!llmd_tok_slot_live(c, s)) {
            if (victim == NULL || llmd_tok_slot_live(c, victim)) {
                victim = s;
            }
        } else if (victim == NULL
                   || (llmd_tok_slot_live(c, victim)
                       && s->pos < victim->pos))
        {
            victim = s;
        }
    }
    victim->k0 = cand->k0;
    victim->k1 = cand->k1;
    victim->pos = pos;
    victim->n = cand->n;
    victim->used = 1;
}


void
llmd_tok_cache_put(llmd_tok_cache_t *c, const uint32_t *ids, size_t n,
    const llmd_tok_cand_t *cands, size_t ncands)
{
    uint64_t  phys, pos;
    size_t    i;

    if (n == 0 || n > c->ring_cap) {
        return;
    }
    /* An entry never wraps: skip the ring's tail when it does not fit. */
    phys = c->head % c->ring_cap;
    if (phys + n > c->ring_cap) {
        c->head += c->ring_cap - phys;
    }
    pos = c->head;
    c->head += n;
    memcpy(c->ring + pos % c->ring_cap, ids, n * sizeof(uint32_t));
    c->stats.stored++;
    for (i = 0; i < ncands; i++) {
        if (cands[i].n != UINT32_MAX && cands[i].n <= n) {
            llmd_tok_cache_index(c, &cands[i], pos);
        }
    }
}
