/*
 * Encoding text to ids, the pipeline of the JavaScript reference
 * (@lenml/tokenizers): WHATWG UTF-8 decoding (invalid sequences become
 * U+FFFD), added tokens split out of the raw text, then per remaining
 * segment NFC normalization, the regex split, byte-level BPE, and finally
 * the post-processor's template ids.
 *
 * Encoding allocates nothing: every buffer is carved from the caller's
 * scratch, whose size grows linearly with the text (see scratch_size()).
 * Time is O(n log n) in the text length for any input; PCRE2 runs with a
 * match limit.
 */
#include <string.h>

#include <utf8proc.h>

#include "tokenizer/llmd_tokenizer_int.h"


/* Where each buffer lives in the scratch memory, for a text of len bytes. */
typedef struct {
    size_t  arena;      /* PCRE2's contexts and match data */
    size_t  clean;      /* the text after WHATWG decoding */
    size_t  cps;        /* NFC work: code points, re-encoded in place */
    size_t  prefixed;   /* a segment with the prefix space */
    size_t  bpe_work;
    size_t  bpe_out;    /* ids of one piece */
    size_t  total;
    size_t  cands;      /* cache boundaries (after total) */
    size_t  max_cands;
    size_t  snaps;      /* hash states of llmd_tok_cache_lookup() */
    size_t  cached_total;
    size_t  max_text;   /* longest normalized text the layout holds */
    size_t  max_cps;
} llmd_tok_layout_t;

/* A bump allocator handed to PCRE2; free() is a no-op. */
typedef struct {
    unsigned char  *base;
    size_t          used;
    size_t          size;
} llmd_tok_arena_t;

typedef struct {
    uint32_t       *ids;
    size_t          capacity;
    size_t          n;
    int             truncate;
    int             full;       /* an id did not fit */
} llmd_tok_out_t;

typedef struct {
    const llmd_tokenizer_t  *tok;
    llmd_tok_layout_t        layout;
    unsigned char           *scratch;
    pcre2_match_data        *match;
    pcre2_match_context     *mctx;
    llmd_tok_out_t           out;
} llmd_tok_encoder_t;


#define LLMD_TOK_ALIGN(n)  (((n) + 15) & ~(size_t) 15)


/* stride: the cache's (boundaries are at least that far apart), or 0 */
static int
llmd_tok_layout(const llmd_tokenizer_t *tok, size_t len, size_t stride,
    llmd_tok_layout_t *l)
{
    size_t  off;

    if (len > ((size_t) 1 << 32) / 64) {
        return -1;
    }
    l->max_text = LLMD_TOK_GROWTH * len + 1;
    l->max_cps = tok->normalizer == LLMD_TOK_NORM_NONE
                 ? 0 : LLMD_TOK_CP_PER_BYTE * l->max_text + 4;

    off = 0;
    l->arena = off;
    off += LLMD_TOK_PCRE2_ARENA;
    l->clean = off;
    off += LLMD_TOK_ALIGN(l->max_text);
    l->cps = off;
    off += LLMD_TOK_ALIGN(l->max_cps * sizeof(utf8proc_int32_t));
    l->prefixed = off;
    off += tok->add_prefix_space ? LLMD_TOK_ALIGN(l->max_text + 1) : 0;
    l->bpe_work = off;
    off += LLMD_TOK_ALIGN(llmd_tok_bpe_scratch(l->max_text + 1));
    l->bpe_out = off;
    off += LLMD_TOK_ALIGN((l->max_text + 1) * sizeof(uint32_t));
    l->total = off;
    l->cands = off;
    l->max_cands = stride ? l->max_text / stride + 2 : 0;
    off += LLMD_TOK_ALIGN(l->max_cands * sizeof(llmd_tok_cand_t));
    l->snaps = off;
    off += stride ? LLMD_TOK_ALIGN(llmd_tok_cache_snaps_size(l->max_cands))
                  : 0;
    l->cached_total = off;
    return 0;
}


size_t
llmd_tokenizer_scratch_size(const llmd_tokenizer_t *tok, size_t text_len)
{
    llmd_tok_layout_t  l;

    if (tok == NULL || llmd_tok_layout(tok, text_len, 0, &l) != 0) {
        return 0;
    }
    return l.total;
}


size_t
llmd_tokenizer_cached_scratch_size(const llmd_tokenizer_t *tok,
    const llmd_tok_cache_t *cache, size_t text_len)
{
    llmd_tok_layout_t  l;

    if (cache == NULL) {
        return llmd_tokenizer_scratch_size(tok, text_len);
    }
    if (tok == NULL
        || llmd_tok_layout(tok, text_len, llmd_tok_cache_stride(cache), &l)
           != 0)
    {
        return 0;
    }
    return l.cached_total;
}


size_t
llmd_tokenizer_max_ids(const llmd_tokenizer_t *tok, size_t text_len)
{
    /* At most one id per byte of the sanitized, normalized text. */
    return LLMD_TOK_GROWTH * text_len + 1 + tok->n_prefix + tok->n_suffix;
}


static void *
llmd_tok_arena_alloc(size_t size, void *data)
{
    llmd_tok_arena_t  *a;
    void              *p;

    a = data;
    size = LLMD_TOK_ALIGN(size);
    if (size > a->size - a->used) {
        return NULL;
    }
    p = a->base + a->used;
    a->used += size;
    return p;
}


static void
llmd_tok_arena_free(void *p, void *data)
{
}


/*
 * WHATWG "UTF-8 decode" with replacement: each maximal invalid subpart
 * becomes U+FFFD, as TextDecoder does.  Returns the output length; out
 * holds 3 * len bytes.
 */
static size_t
llmd_tok_sanitize(const unsigned char *in, size_t len, unsigned char *out)
{
    size_t    i, n, start, need, seen;
    unsigned  lower, upper, b;

    n = 0;
    need = 0;
    seen = 0;
    start = 0;
    lower = 0x80;
    upper = 0xbf;
    for (i = 0; i < len; i++) {
        b = in[i];
        if (need == 0) {
            start = i;
            if (b < 0x80) {
                out[n++] = (unsigned char) b;
            } else if (b >= 0xc2 && b <= 0xdf) {
                need = 1;
            } else if (b >= 0xe0 && b <= 0xef) {
                lower = b == 0xe0 ? 0xa0 : 0x80;
                upper = b == 0xed ? 0x9f : 0xbf;
                need = 2;
            } else if (b >= 0xf0 && b <= 0xf4) {
                lower = b == 0xf0 ? 0x90 : 0x80;
                upper = b == 0xf4 ? 0x8f : 0xbf;
                need = 3;
            } else {
                memcpy(out + n, "\xef\xbf\xbd", 3);
                n += 3;
            }
            continue;
        }
        if (b < lower || b > upper) {
            /* The subpart so far is replaced; b starts anew. */
            need = 0;
            seen = 0;
            lower = 0x80;
            upper = 0xbf;
            memcpy(out + n, "\xef\xbf\xbd", 3);
            n += 3;
            i--;
            continue;
        }
        lower = 0x80;
        upper = 0xbf;
        if (++seen == need) {
            memcpy(out + n, in + start, need + 1);
            n += need + 1;
            need = 0;
            seen = 0;
        }
    }
    if (need != 0) {
        memcpy(out + n, "\xef\xbf\xbd", 3);
        n += 3;
    }
    return n;
}


static int
llmd_tok_emit(llmd_tok_out_t *out, const uint32_t *ids, size_t n)
{
    size_t  room;

    room = out->capacity - out->n;
    if (n > room) {
        memcpy(out->ids + out->n, ids, room * sizeof(uint32_t));
        out->n += room;
        out->full = 1;
        return -1;
    }
    memcpy(out->ids + out->n, ids, n * sizeof(uint32_t));
    out->n += n;
    return 0;
}


/* One pre-tokenized piece: a whole-vocabulary hit or byte-pair merging. */
static int
llmd_tok_encode_piece(llmd_tok_encoder_t *enc, const unsigned char *p,
    size_t len)
{
    const llmd_tokenizer_t  *tok;
    uint32_t                 id, *ids;
    size_t                   n;

    tok = enc->tok;
    id = llmd_tok_hot_find(tok, p, len);
    if (id != LLMD_TOK_NONE) {
        return llmd_tok_emit(&enc->out, &id, 1);
    }
    if (len <= LLMD_TOK_SMALL_PIECE || tok->ignore_merges) {
        id = llmd_tok_vocab_find(tok, p, len);
        if (id != LLMD_TOK_NONE
            && (tok->ignore_merges || (tok->flags[id] & LLMD_TOK_F_SELF)))
        {
            return llmd_tok_emit(&enc->out, &id, 1);
        }
    }
    ids = (uint32_t *) (enc->scratch + enc->layout.bpe_out);
    n = llmd_tok_bpe(tok, p, len, enc->scratch + enc->layout.bpe_work, ids);
    return llmd_tok_emit(&enc->out, ids, n);
}


#define llmd_tok_a_other(c)   (!llmd_tok_a_letter(c) && !llmd_tok_a_digit(c) \
                               && !llmd_tok_a_space(c))
#define llmd_tok_a_nl(c)      ((c) == '\n' || (c) == '\r')


/*
 * The end of the run of ASCII letters from j in p[0..len): eight bytes at
 * a time while they are ASCII (the byte loop otherwise).  In a byte b <
 * 0x80, with x = b | 0x20, x + 0x1f has its top bit set when x >= 'a' and
 * x + 0x05 when x > 'z'; neither sum carries into the next byte.
 */
static size_t
llmd_tok_letters(const unsigned char *p, size_t len, size_t j)
{
    uint64_t  w, x, m;

    while (j + 8 <= len) {
        memcpy(&w, p + j, 8);
        if (w & 0x8080808080808080ULL) {
            break;
        }
        x = w | 0x2020202020202020ULL;
        m = ((x + 0x1f1f1f1f1f1f1f1fULL) & ~(x + 0x0505050505050505ULL)
             & 0x8080808080808080ULL)
            ^ 0x8080808080808080ULL;    /* the top bit of each non-letter */
        if (m != 0) {
            return j + ((size_t) __builtin_ctzll(m) >> 3);
        }
        j += 8;
    }
    while (j < len && llmd_tok_a_letter(p[j])) {
        j++;
    }
    return j;
}


/*
 * The match at i of Llama-3's (digits 3) or Qwen2's (digits 1) split
 * pattern over ASCII text, as PCRE2 finds it, alternative by alternative:
 *   (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ |
 *   \p{N}{1,digits} | ?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ |
 *   \s+(?!\S) | \s+
 * In ASCII \p{L} is [A-Za-z], \p{N} [0-9] and \s (rewritten to
 * ECMAScript's set) [\t\n\v\f\r ].  Every byte starts a match (a letter
 * the second alternative, a digit the third, white space the last, any
 * other byte the fourth), so the pieces tile the text.  Held to PCRE2 by
 * t/unit/test_tokenizer.c (test_split_ascii).
 */
size_t
llmd_tok_split_ascii(unsigned digits, const unsigned char *p, size_t len,
    size_t i)
{
    size_t         j, k;
    unsigned char  c, d, e;

    c = p[i];

    /* the contractions, any case */
    if (c == '\'' && i + 1 < len) {
        d = p[i + 1] | 0x20;
        if (d == 's' || d == 't' || d == 'm' || d == 'd') {
            return i + 2;
        }
        if (i + 2 < len) {
            e = p[i + 2] | 0x20;
            if ((d == 'r' && e == 'e') || (d == 'v' && e == 'e')
                || (d == 'l' && e == 'l'))
            {
                return i + 3;
            }
        }
    }

    /* [^\r\n\p{L}\p{N}]?\p{L}+ */
    j = i;
    if (!llmd_tok_a_letter(c) && !llmd_tok_a_digit(c) && !llmd_tok_a_nl(c)
        && i + 1 < len && llmd_tok_a_letter(p[i + 1]))
    {
        j = i + 1;
    }
    if (llmd_tok_a_letter(p[j])) {
        return llmd_tok_letters(p, len, j + 1);
    }

    /* \p{N}{1,digits} */
    if (llmd_tok_a_digit(c)) {
        for (j = i; j < len && j - i < digits && llmd_tok_a_digit(p[j]); j++)
        {
            /* void */
        }
        return j;
    }

    /*  ?[^\s\p{L}\p{N}]+[\r\n]* */
    j = i;
    if (c == ' ' && i + 1 < len && llmd_tok_a_other(p[i + 1])) {
        j = i + 1;
    }
    if (llmd_tok_a_other(p[j])) {
        while (j < len && llmd_tok_a_other(p[j])) {
            j++;
        }
        while (j < len && llmd_tok_a_nl(p[j])) {
            j++;
        }
        return j;
    }

    /* white space from i to j */
    for (j = i; j < len && llmd_tok_a_space(p[j]); j++) {
        /* void */
    }

    /* \s*[\r\n]+: up to the run's last line break */
    for (k = j; k > i; k--) {
        if (llmd_tok_a_nl(p[k - 1])) {
            return k;
        }
    }

    /* \s+(?!\S): the run, but for its last byte unless it ends the text */
    if (j == len || j - i == 1) {
        return j;                       /* (or \s+ for a single byte) */
    }
    return j - 1;
}


/* The length of p[0..len)'s ASCII start, four words, then a word, at a
   time. */
static size_t
llmd_tok_ascii_prefix(const unsigned char *p, size_t len)
{
    size_t    i;
    uint64_t  w, w1, w2, w3;

    for (i = 0; i + 32 <= len; i += 32) {
        memcpy(&w, p + i, 8);
        memcpy(&w1, p + i + 8, 8);
        memcpy(&w2, p + i + 16, 8);
        memcpy(&w3, p + i + 24, 8);
        if ((w | w1 | w2 | w3) & 0x8080808080808080ULL) {
            break;
        }
    }
    for ( /* void */ ; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        if (w & 0x8080808080808080ULL) {
            break;
        }
    }
    while (i < len && p[i] < 0x80) {
        i++;
    }
    return i;
}


/* Splits a normalized segment with the pre-tokenizer's regex. */
static long
llmd_tok_encode_pieces(llmd_tok_encoder_t *enc, const unsigned char *p,
    size_t len)
{
    const llmd_tokenizer_t  *tok;
    PCRE2_SIZE              *ov;
    size_t                   start, gap;
    int                      rc;

    tok = enc->tok;
    if (tok->split == NULL) {
        return llmd_tok_encode_piece(enc, p, len) == 0
               ? 0 : LLMD_TOK_ERR_CAPACITY;
    }

    if (tok->split_ascii_digits && llmd_tok_ascii_prefix(p, len) == len) {
        for (start = 0; start < len; start = gap) {
            gap = llmd_tok_split_ascii(tok->split_ascii_digits, p, len,
                                       start);
            if (llmd_tok_encode_piece(enc, p + start, gap - start) != 0) {
                return LLMD_TOK_ERR_CAPACITY;
            }
        }
        return 0;
    }

    ov = pcre2_get_ovector_pointer(enc->match);
    start = 0;
    gap = 0;
    while (start < len) {
        rc = pcre2_match(tok->split, p, len, start, PCRE2_NO_UTF_CHECK,
                         enc->match, enc->mctx);
        if (rc == PCRE2_ERROR_NOMATCH) {
            break;
        }
        if (rc < 0) {
            return LLMD_TOK_ERR_LIMIT;
        }
        if (ov[1] == ov[0]) {
            /* An empty match only moves the search on by a code point. */
            start = ov[0] + 1;
            while (start < len && (p[start] & 0xc0) == 0x80) {
                start++;
            }
            continue;
        }
        /* Text between matches is a piece of its own ("Isolated"). */
        if (ov[0] > gap
            && llmd_tok_encode_piece(enc, p + gap, ov[0] - gap) != 0)
        {
            return LLMD_TOK_ERR_CAPACITY;
        }
        if (llmd_tok_encode_piece(enc, p + ov[0], ov[1] - ov[0]) != 0) {
            return LLMD_TOK_ERR_CAPACITY;
        }
        gap = ov[1];
        start = ov[1];
    }
    if (gap < len && llmd_tok_encode_piece(enc, p + gap, len - gap) != 0) {
        return LLMD_TOK_ERR_CAPACITY;
    }
    return 0;
}


/* Whether NFC may change p: only code points from U+0300 on can. */
static int
llmd_tok_nfc_stable(const unsigned char *p, size_t len)
{
    size_t  i;

    for (i = 0; i < len; i++) {
        if (p[i] >= 0xcc) {
            return 0;
        }
    }
    return 1;
}


/* A segment of text between added tokens. */
static long
llmd_tok_encode_segment(llmd_tok_encoder_t *enc, const unsigned char *p,
    size_t len)
{
    const llmd_tokenizer_t  *tok;
    utf8proc_int32_t        *cps;
    utf8proc_ssize_t         n;
    unsigned char           *buf;

    tok = enc->tok;
    if (tok->normalizer == LLMD_TOK_NORM_NFC && !llmd_tok_nfc_stable(p, len))
    {
        cps = (utf8proc_int32_t *) (enc->scratch + enc->layout.cps);
        n = utf8proc_decompose_custom(p, (utf8proc_ssize_t) len, cps,
                                      (utf8proc_ssize_t) enc->layout.max_cps,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE,
                                      NULL, NULL);
        if (n < 0 || (size_t) n > enc->layout.max_cps) {
            return LLMD_TOK_ERR_LIMIT;
        }
        n = utf8proc_reencode(cps, n, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
        if (n < 0 || (size_t) n > enc->layout.max_text) {
            return LLMD_TOK_ERR_LIMIT;
        }
        p = (const unsigned char *) cps;
        len = (size_t) n;
    }
    if (len == 0) {
        return 0;
    }

    if (tok->add_prefix_space && p[0] != ' ') {
        if (len + 1 > enc->layout.max_text + 1) {
            return LLMD_TOK_ERR_LIMIT;
        }
        buf = enc->scratch + enc->layout.prefixed;
        buf[0] = ' ';
        memmove(buf + 1, p, len);
        p = buf;
        len++;
    }
    return llmd_tok_encode_pieces(enc, p, len);
}


/* The text between added tokens and the added tokens themselves. */
static long
llmd_tok_encode_text(llmd_tok_encoder_t *enc, const unsigned char *p,
    size_t len)
{
    const llmd_tokenizer_t  *tok;
    const llmd_tok_added_t  *a, *prev;
    size_t                   at, pos, start, end;
    uint32_t                 idx;
    long                     rc;

    tok = enc->tok;
    prev = NULL;
    pos = 0;
    for ( ;; ) {
        idx = llmd_tok_added_next(tok, p + pos, len - pos, &at);
        a = idx == LLMD_TOK_NONE ? NULL : &tok->added[idx];
        end = a == NULL ? len : pos + at;

        /* rstrip of the token before, lstrip of the token after. */
        start = pos;
        if (prev != NULL && prev->rstrip) {
            start += llmd_tok_space_prefix(p + start, end - start);
        }
        if (a != NULL && a->lstrip) {
            end -= llmd_tok_space_suffix(p + start, end - start);
        }
        if (end > start) {
            rc = llmd_tok_encode_segment(enc, p + start, end - start);
            if (rc != 0) {
                return rc;
            }
        }
        if (a == NULL) {
            return 0;
        }
        if (llmd_tok_emit(&enc->out, &a->id, 1) != 0) {
            return LLMD_TOK_ERR_CAPACITY;
        }
        pos += at + a->content_len;
        prev = a;
    }
}


/* Sets up enc; the PCRE2 match data lives in the scratch. */
static long
llmd_tok_encoder_init(llmd_tok_encoder_t *enc, const llmd_tokenizer_t *tok,
    size_t len, unsigned flags, void *scratch, uint32_t *ids,
    size_t capacity)
{
    llmd_tok_arena_t        *arena;
    pcre2_general_context   *gctx;

    enc->tok = tok;
    enc->scratch = scratch;
    enc->out.ids = ids;
    enc->out.capacity = capacity;
    enc->out.n = 0;
    enc->out.truncate = (flags & LLMD_TOK_TRUNCATE) != 0;
    enc->out.full = 0;
    enc->match = NULL;
    enc->mctx = NULL;

    if (tok->split != NULL) {
        /* The arena's first bytes hold its own bookkeeping. */
        arena = (llmd_tok_arena_t *) (enc->scratch + enc->layout.arena);
        arena->base = enc->scratch + enc->layout.arena;
        arena->used = LLMD_TOK_ALIGN(sizeof(llmd_tok_arena_t));
        arena->size = LLMD_TOK_PCRE2_ARENA;
        gctx = pcre2_general_context_create(llmd_tok_arena_alloc,
                                            llmd_tok_arena_free, arena);
        enc->mctx = gctx ? pcre2_match_context_create(gctx) : NULL;
        enc->match = gctx ? pcre2_match_data_create(1, gctx) : NULL;
        if (enc->mctx == NULL || enc->match == NULL) {
            return LLMD_TOK_ERR_SCRATCH;
        }
        pcre2_set_match_limit(enc->mctx, LLMD_TOK_MATCH_LIMIT);
        pcre2_set_heap_limit(enc->mctx, LLMD_TOK_PCRE2_ARENA / 1024 / 2);
    }
    return 0;
}


/* The text as the reference sees it: valid UTF-8 (maybe in the scratch). */
static const unsigned char *
llmd_tok_clean(llmd_tok_encoder_t *enc, const char *text, size_t *len)
{
    const unsigned char  *p;
    unsigned char        *clean;
    size_t                i, n;

    p = (const unsigned char *) text;

    /* an ASCII start is its own decoding */
    i = llmd_tok_ascii_prefix(p, *len);
    if (i == *len) {
        return p;
    }

    clean = enc->scratch + enc->layout.clean;
    n = llmd_tok_sanitize(p + i, *len - i, clean + i);
    if (n != *len - i || memcmp(clean + i, p + i, n) != 0) {
        memcpy(clean, p, i);
        *len = i + n;
        return clean;
    }
    return p;
}


static long
llmd_tok_result(llmd_tok_encoder_t *enc, long rc)
{
    if (enc->out.full) {
        return enc->out.truncate ? (long) enc->out.n : LLMD_TOK_ERR_CAPACITY;
    }
    if (rc < 0 && rc != -1) {
        return rc;
    }
    return (long) enc->out.n;
}


long
llmd_tokenizer_encode(const llmd_tokenizer_t *tok, const char *text,
    size_t len, unsigned flags, void *scratch, size_t scratch_size,
    uint32_t *ids, size_t capacity)
{
    llmd_tok_encoder_t       enc;
    const unsigned char     *p;
    long                     rc;

    if (tok == NULL || (text == NULL && len > 0) || scratch == NULL
        || (ids == NULL && capacity > 0))
    {
        return LLMD_TOK_ERR_INVALID;
    }
    if (llmd_tok_layout(tok, len, 0, &enc.layout) != 0) {
        return LLMD_TOK_ERR_INVALID;
    }
    if (scratch_size < enc.layout.total) {
        return LLMD_TOK_ERR_SCRATCH;
    }
    rc = llmd_tok_encoder_init(&enc, tok, len, flags, scratch, ids,
                               capacity);
    if (rc != 0) {
        return rc;
    }
    p = llmd_tok_clean(&enc, text, &len);

    if (flags & LLMD_TOK_ADD_SPECIAL_TOKENS) {
        rc = llmd_tok_emit(&enc.out, tok->prefix_ids, tok->n_prefix);
    }
    if (rc == 0) {
        rc = llmd_tok_encode_text(&enc, p, len);
    }
    if (rc == 0 && (flags & LLMD_TOK_ADD_SPECIAL_TOKENS)) {
        rc = llmd_tok_emit(&enc.out, tok->suffix_ids, tok->n_suffix);
    }
    return llmd_tok_result(&enc, rc);
}


/*
 * Through the prefix cache (llmd_tokenizer_cache.c): the ids before the
 * longest remembered boundary come from the cache, the text after it is
 * encoded chunk by chunk between boundaries, so that the ids before every
 * boundary are known and stored for the next texts.
 */
long
llmd_tokenizer_encode_cached(const llmd_tokenizer_t *tok,
    llmd_tok_cache_t *cache, const char *text, size_t len, unsigned flags,
    void *scratch, size_t scratch_size, uint32_t *ids, size_t capacity)
{
    llmd_tok_encoder_t       enc;
    llmd_tok_cand_t         *cands;
    const unsigned char     *p;
    const uint32_t          *hit;
    unsigned char           *snaps;
    size_t                   ncands, i, k, nhit, base, from, done, last;
    long                     rc;

    if (cache == NULL) {
        return llmd_tokenizer_encode(tok, text, len, flags, scratch,
                                     scratch_size, ids, capacity);
    }
    if (tok == NULL || llmd_tok_cache_tokenizer(cache) != tok
        || (text == NULL && len > 0) || scratch == NULL
        || (ids == NULL && capacity > 0))
    {
        return LLMD_TOK_ERR_INVALID;
    }
    if (llmd_tok_layout(tok, len, llmd_tok_cache_stride(cache),
                        &enc.layout)
        != 0)
    {
        return LLMD_TOK_ERR_INVALID;
    }
    if (scratch_size < enc.layout.cached_total) {
        return LLMD_TOK_ERR_SCRATCH;
    }
    rc = llmd_tok_encoder_init(&enc, tok, len, flags, scratch, ids,
                               capacity);
    if (rc != 0) {
        return rc;
    }
    p = llmd_tok_clean(&enc, text, &len);

    cands = (llmd_tok_cand_t *) (enc.scratch + enc.layout.cands);
    ncands = llmd_tok_cache_plan(cache, p, len, cands, enc.layout.max_cands);

    /* the longest boundary prefix that is cached (the hash states are
       64-byte aligned) */
    snaps = enc.scratch + enc.layout.snaps;
    snaps += (64 - ((uintptr_t) snaps & 63)) & 63;
    k = llmd_tok_cache_lookup(cache, p, cands, ncands,
                              llmd_tok_cache_snap_every(enc.layout.max_cands),
                              snaps, &hit, &nhit);

    if (flags & LLMD_TOK_ADD_SPECIAL_TOKENS) {
        rc = llmd_tok_emit(&enc.out, tok->prefix_ids, tok->n_prefix);
    }
    base = enc.out.n;
    from = 0;
    if (rc == 0 && hit != NULL) {
        rc = llmd_tok_emit(&enc.out, hit, nhit);
        from = cands[k - 1].b;
        cands[k - 1].n = (uint32_t) nhit;
    }
    done = enc.out.n;

    /* the rest, one chunk per boundary; a boundary's id count is known
       once its chunk is encoded whole */
    for (i = k; rc == 0 && i <= ncands; i++) {
        if (i < ncands) {
            rc = llmd_tok_encode_text(&enc, p + from, cands[i].b - from);
            from = cands[i].b;
            if (rc == 0 && !enc.out.full) {
                cands[i].n = (uint32_t) (enc.out.n - base);
            }
        } else {
            rc = llmd_tok_encode_text(&enc, p + from, len - from);
        }
    }
    llmd_tok_cache_count(cache, done - base, enc.out.n - done);

    /* a new entry (the ids up to the last boundary known) unless the hit
       was the text's last boundary; it also refreshes the hit one */
    if (k < ncands) {
        last = 0;
        for (i = k; i < ncands; i++) {
            if (cands[i].n != UINT32_MAX) {
                last = cands[i].n;
            }
        }
        llmd_tok_cache_put(cache, enc.out.ids + base, last,
                           cands + (k ? k - 1 : 0), ncands - (k ? k - 1 : 0));
    }

    if (rc == 0 && (flags & LLMD_TOK_ADD_SPECIAL_TOKENS)) {
        rc = llmd_tok_emit(&enc.out, tok->suffix_ids, tok->n_suffix);
    }
    return llmd_tok_result(&enc, rc);
}
