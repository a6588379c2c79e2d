/*
 * vLLM KV-event batches read directly from the msgpack bytes (the
 * decoder llmd_kv_batch_decode() of llmd_kv_events.h); the tree decoder
 * of llmd_kv_events.c is its reference and takes what it does not.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kv/llmd_kv_events.h"
#include "kv/llmd_kv_decode_int.h"


/*
 * The direct reader: llmd_kv_batch_decode() in one pass over the payload,
 * without an object tree.
 *
 * It reads the KV batch's shape only: at each value the header (type,
 * immediate value, length) with the prescan's checks (in bounds, no
 * reserved byte, no container with more elements than bytes remain, depth),
 * and everything it does not interpret through the prescan's own walk
 * (llmd_kv_scan). Block hashes and token ids are converted as they are
 * read, into buffers kept per thread; the other fields are remembered by
 * position and judged after the event, with the tree decoder's rules (last
 * key wins in a map, the same order of tests). Events are delivered only
 * once the whole payload has been walked, so a malformed batch delivers
 * nothing.
 *
 * Whatever it does not handle itself goes to the tree decoder
 * (llmd_kv_batch_decode_tree), which is also the reference: every anomaly
 * of the bytes, a batch of the wrong shape (for its error message), a
 * payload over LLMD_KV_DIRECT_MAX, lack of memory. t/unit/test_kv_diff.c
 * holds the two to the same results on every corpus input and a million
 * generated ones; fuzz/fuzz_kv.c aborts on any difference.
 */

/* Above this the tree decoder's "too many objects" limit could apply. */
#define LLMD_KV_DIRECT_MAX  (10u << 20)

typedef enum {
    LLMD_MP_NIL = 0,
    LLMD_MP_BOOL,
    LLMD_MP_POS,
    LLMD_MP_NEG,
    LLMD_MP_F32,
    LLMD_MP_F64,
    LLMD_MP_STR,
    LLMD_MP_BIN,
    LLMD_MP_EXT,
    LLMD_MP_ARRAY,
    LLMD_MP_MAP
} llmd_kv_mp_type_e;

/* One value as msgpack-c would type it (a signed encoding of a value
   >= 0 is a positive integer; float32 stays float32). */
typedef struct {
    llmd_kv_mp_type_e      type;
    uint64_t               u;      /* int bits; str/bin/ext length;
                                      array element or map pair count */
    double                 f;
    const unsigned char   *p;      /* str/bin/ext body */
} llmd_kv_mp_t;

typedef struct {
    const unsigned char   *buf;
    const unsigned char   *p;
    const unsigned char   *end;
} llmd_kv_rd_t;

/* What the walk learnt of one event's fields ("last wins" in a map). */
typedef struct {
    llmd_kv_event_type_t   type;
    int                    tag_ok;
    const unsigned char   *hashes;     /* positions, NULL when absent */
    const unsigned char   *parent;
    const unsigned char   *tokens;
    const unsigned char   *block_size;
    const unsigned char   *lora_id;
    const unsigned char   *medium;
    const unsigned char   *lora_name;
    const unsigned char   *extra_keys;
    const unsigned char   *spec_kind;
    /* block_hashes as read: an array of n; all elements valid hashes */
    int                    h_array, h_valid;
    size_t                 h_n, h_off;
    /* token_ids as read */
    int                    t_array, t_valid;
    size_t                 t_n, t_off;
} llmd_kv_rd_event_t;

/* Decoded events waiting for the end of the walk; pointers into the hash
   and token buffers are set at delivery (the buffers may move). */
typedef struct {
    llmd_kv_event_t        ev;
    size_t                 h_off;
    size_t                 t_off;
} llmd_kv_rd_out_t;

typedef struct {
    void                  *data;
    size_t                 cap;        /* bytes */
} llmd_kv_rd_buf_t;

static __thread llmd_kv_rd_buf_t  llmd_kv_rd_hashes;
static __thread llmd_kv_rd_buf_t  llmd_kv_rd_tokens;
static __thread llmd_kv_rd_buf_t  llmd_kv_rd_events;
static __thread size_t            llmd_kv_rd_direct;
static __thread size_t            llmd_kv_rd_fallback;

static void llmd_kv_rd_release(void);

/* Lengths and extraction of the token encodings read without a branch per
   kind: positive fixint, uint8, uint16, uint32 (0 = any other). */
static const uint8_t   llmd_kv_tok_len[256] = {
    [0x00 ... 0x7f] = 1, [0xcc] = 2, [0xcd] = 3, [0xce] = 5
};
static const uint8_t   llmd_kv_tok_shift[256] = {
    [0x00 ... 0x7f] = 56, [0xcc] = 48, [0xcd] = 40, [0xce] = 24
};
static const uint32_t  llmd_kv_tok_mask[256] = {
    [0x00 ... 0x7f] = 0xff, [0xcc] = 0xff, [0xcd] = 0xffff,
    [0xce] = 0xffffffff
};
/*
 * llmd_kv_tok_len[c] for the c it is not 0 for, computed: 1 for a
 * positive fixint (c < 0x80), else 1 + 2^(c & 3) (0xcc: 2, 0xcd: 3,
 * 0xce: 5).
 */
#define LLMD_KV_TOK_LEN(c)  (1 + (((size_t) (c) >> 7) << ((c) & 3)))


static uint64_t
llmd_kv_be(const unsigned char *p, unsigned n)
{
    unsigned  i;
    uint64_t  v;

    v = 0;
    for (i = 0; i < n; i++) {
        v = (v << 8) | p[i];
    }

    return v;
}


static uint64_t
llmd_kv_be64(const unsigned char *p)
{
    uint64_t  v;

    memcpy(&v, p, 8);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    v = __builtin_bswap64(v);
#endif
    return v;
}


/* Room for n more bytes after used; -1 when out of memory. */
static int
llmd_kv_rd_room(llmd_kv_rd_buf_t *b, size_t used, size_t n)
{
    void    *d;
    size_t   cap;

    /* allocated even for nothing: no arithmetic on a null pointer */
    if (b->data != NULL && b->cap - used >= n) {
        return 0;
    }

    cap = b->cap ? b->cap : 64u << 10;
    while (cap - used < n) {
        cap *= 2;
    }

    d = realloc(b->data, cap);
    if (d == NULL) {
        return -1;
    }

    b->data = d;
    b->cap = cap;

    return 0;
}


/*
 * The value at r->p with the prescan's checks; -1 on anything the prescan
 * would refuse there. level: nesting level of the container holding the
 * value. A container is left at its first element, anything else is
 * passed.
 */
static int
llmd_kv_rd_val(llmd_kv_rd_t *r, int level, llmd_kv_mp_t *v)
{
    int64_t               s;
    size_t                left, hl, n, sz;
    unsigned              c, k;
    uint32_t              f32;
    float                 fl;
    uint64_t              f64;
    const unsigned char  *p;

    p = r->p;
    left = (size_t) (r->end - p);

    if (left == 0) {
        return -1;
    }

    c = *p++;
    left--;
    v->u = 0;
    v->p = p;

    sz = llmd_kv_fixed[c];
    if (sz) {
        if (sz - 1 > left) {
            return -1;
        }

        r->p = p + (sz - 1);

        if (c <= 0x7f) {
            v->type = LLMD_MP_POS;
            v->u = c;

        } else if (c >= 0xe0) {
            v->type = LLMD_MP_NEG;
            v->u = (uint64_t) (int64_t) (int8_t) c;

        } else if (c == 0xc0) {
            v->type = LLMD_MP_NIL;

        } else if (c == 0xc2 || c == 0xc3) {
            v->type = LLMD_MP_BOOL;
            v->u = c & 1;

        } else if (c >= 0xcc && c <= 0xcf) {
            v->type = LLMD_MP_POS;
            v->u = llmd_kv_be(p, 1u << (c - 0xcc));

        } else if (c >= 0xd0 && c <= 0xd3) {
            k = c - 0xd0;
            v->u = llmd_kv_be(p, 1u << k);
            s = k == 3 ? (int64_t) v->u
                : (int64_t) (v->u << (64 - (8u << k))) >> (64 - (8u << k));
            v->type = s < 0 ? LLMD_MP_NEG : LLMD_MP_POS;
            v->u = (uint64_t) s;

        } else if (c == 0xca) {
            f32 = (uint32_t) llmd_kv_be(p, 4);
            memcpy(&fl, &f32, 4);
            v->type = LLMD_MP_F32;
            v->f = fl;

        } else if (c == 0xcb) {
            f64 = llmd_kv_be(p, 8);
            memcpy(&v->f, &f64, 8);
            v->type = LLMD_MP_F64;

        } else {                                   /* fixext 0xd4-0xd8 */
            v->type = LLMD_MP_EXT;
            v->u = sz - 2;
            v->p = p + 1;
        }

        return 0;
    }

    /* str, bin, ext, array, map (0xc1 is reserved) */
    if (c >= 0x80 && c <= 0x8f) {
        v->type = LLMD_MP_MAP;
        v->u = c & 0x0f;
        hl = 0;

    } else if (c >= 0x90 && c <= 0x9f) {
        v->type = LLMD_MP_ARRAY;
        v->u = c & 0x0f;
        hl = 0;

    } else if (c >= 0xa0 && c <= 0xbf) {
        v->type = LLMD_MP_STR;
        v->u = c & 0x1f;
        hl = 0;

    } else {
        switch (c) {
        case 0xc4: case 0xc7: case 0xd9: hl = 1; break;
        case 0xc5: case 0xc8: case 0xda: case 0xdc: case 0xde: hl = 2; break;
        case 0xc6: case 0xc9: case 0xdb: case 0xdd: case 0xdf: hl = 4; break;
        default:
            return -1;
        }

        if (left < hl) {
            return -1;
        }

        v->u = llmd_kv_be(p, (unsigned) hl);
        p += hl;
        left -= hl;

        v->type = (c >= 0xc4 && c <= 0xc6) ? LLMD_MP_BIN
                  : (c >= 0xc7 && c <= 0xc9) ? LLMD_MP_EXT
                  : (c >= 0xd9 && c <= 0xdb) ? LLMD_MP_STR
                  : (c == 0xdc || c == 0xdd) ? LLMD_MP_ARRAY : LLMD_MP_MAP;
    }

    if (v->type == LLMD_MP_ARRAY || v->type == LLMD_MP_MAP) {
        n = v->type == LLMD_MP_MAP ? 2 * (size_t) v->u : (size_t) v->u;

        if (n > left || (n > 0 && level >= LLMD_KV_MAX_DEPTH)) {
            return -1;
        }

        r->p = p;
        return 0;
    }

    /* str, bin: the body; ext: a type byte and the body */
    sz = (size_t) v->u + (v->type == LLMD_MP_EXT);
    if (sz > left) {
        return -1;
    }

    v->p = p + (v->type == LLMD_MP_EXT);
    r->p = p + sz;

    return 0;
}


/* Passes count values, elements of a container at nesting level level,
   with the prescan's checks. */
static int
llmd_kv_rd_skip(llmd_kv_rd_t *r, int level, size_t count)
{
    size_t       pos, zb;
    const char  *why;

    pos = (size_t) (r->p - r->buf);
    zb = 0;

    if (llmd_kv_scan(r->buf, (size_t) (r->end - r->buf), &pos, level, count,
                     &zb, &why)
        != 0)
    {
        return -1;
    }

    r->p = r->buf + pos;

    return 0;
}


/* The rest of a value whose header rd_val() read (a container's
   elements; nothing for the others). */
static int
llmd_kv_rd_rest(llmd_kv_rd_t *r, int level, const llmd_kv_mp_t *v)
{
    if (v->type == LLMD_MP_ARRAY) {
        return llmd_kv_rd_skip(r, level + 1, (size_t) v->u);
    }

    if (v->type == LLMD_MP_MAP) {
        return llmd_kv_rd_skip(r, level + 1, 2 * (size_t) v->u);
    }

    return 0;
}


/* The value at a position the walk has checked already. */
static void
llmd_kv_rd_at(llmd_kv_rd_t *r, const unsigned char *at, int level,
    llmd_kv_mp_t *v)
{
    llmd_kv_rd_t  t;

    t = *r;
    t.p = at;

    if (llmd_kv_rd_val(&t, level, v) != 0) {
        v->type = LLMD_MP_NIL;
        v->u = 0;
    }
}


static int
llmd_kv_rd_str_is(const llmd_kv_mp_t *v, const char *s, size_t n)
{
    return v->type == LLMD_MP_STR && v->u == n && memcmp(v->p, s, n) == 0;
}


/* Engine hash normalisation, as llmd_kv_hash(). */
static int
llmd_kv_rd_hash(const llmd_kv_mp_t *v, uint64_t *hash)
{
    uint64_t  from;

    switch (v->type) {

    case LLMD_MP_POS:
    case LLMD_MP_NEG:
        *hash = v->u;
        return 0;

    case LLMD_MP_BIN:
        if (v->u == 0) {
            return -1;
        }
        from = v->u > 8 ? v->u - 8 : 0;
        *hash = llmd_kv_be(v->p + from, (unsigned) (v->u - from));
        return 0;

    default:
        return -1;
    }
}


/* block_hashes at r->p (an element at level 3): converted into the hash
   buffer after *used. */
static int
llmd_kv_rd_hashes_field(llmd_kv_rd_t *r, llmd_kv_rd_event_t *e,
    size_t *used)
{
    size_t         i;
    uint64_t      *out;
    llmd_kv_mp_t   v, x;

    e->hashes = r->p;
    e->h_array = 0;
    e->h_valid = 0;

    if (llmd_kv_rd_val(r, 3, &v) != 0) {
        return -1;
    }

    if (v.type != LLMD_MP_ARRAY || v.u > LLMD_KV_MAX_HASHES) {
        return llmd_kv_rd_rest(r, 3, &v);
    }

    if (llmd_kv_rd_room(&llmd_kv_rd_hashes, *used * 8, v.u * 8) != 0) {
        return -1;
    }

    e->h_array = 1;
    e->h_valid = 1;
    e->h_n = (size_t) v.u;
    e->h_off = *used;
    out = (uint64_t *) llmd_kv_rd_hashes.data + *used;

    for (i = 0; i < v.u; i++) {
        if (r->end - r->p >= 9 && *r->p == 0xcf) {
            /* the usual: a full 64-bit unsigned hash */
            out[i] = llmd_kv_be64(r->p + 1);
            r->p += 9;
            continue;
        }

        if (llmd_kv_rd_val(r, 4, &x) != 0 || llmd_kv_rd_rest(r, 4, &x) != 0) {
            return -1;
        }

        if (llmd_kv_rd_hash(&x, &out[i]) != 0) {
            e->h_valid = 0;
        }
    }

    *used += e->h_n;

    return 0;
}


#if !defined(__SSE2__)

/*
 * Two tokens of the usual encodings (positive fixint, uint8, uint16,
 * uint32) at p, 16 readable bytes: into o[0] and o[1], p passed; returns
 * the first one's length, 0 (nothing done) when either has another
 * encoding. The length of each is computed from its first byte (see
 * LLMD_KV_TOK_LEN), not looked up: the position of the next token waits
 * for it.
 */
static inline size_t
llmd_kv_tok2(const unsigned char **pp, uint32_t *o)
{
    size_t                l;
    unsigned              c, c1;
    uint64_t              w;
    const unsigned char  *p;

    p = *pp;
    w = llmd_kv_be64(p);
    c = (unsigned) (w >> 56);
    l = LLMD_KV_TOK_LEN(c);
    /* (l is 9 for 0xcf, which the check refuses) */
    c1 = (unsigned) (w >> ((56 - 8 * l) & 63)) & 0xff;

    if (!(llmd_kv_tok_len[c] & llmd_kv_tok_len[c1])) {
        return 0;
    }

    o[0] = (uint32_t) (w >> llmd_kv_tok_shift[c]) & llmd_kv_tok_mask[c];
    o[1] = (uint32_t) (llmd_kv_be64(p + l) >> llmd_kv_tok_shift[c1])
           & llmd_kv_tok_mask[c1];
    *pp = p + l + LLMD_KV_TOK_LEN(c1);

    return l;
}


/*
 * Tokens per part of the two-chain reader (llmd_kv_tok_two), and its
 * estimate of the bytes per token (x 256) from the tokens it read last.
 */
#define LLMD_KV_TOK_PART  64

static __thread size_t  llmd_kv_tok_avg = 4 << 8;

/*
 * Reading token ids is a chain: where a token starts is known only once
 * the one before it is read, so the CPU waits on each. Two chains go at
 * once here, per part of LLMD_KV_TOK_PART tokens: A reads the first half
 * into out, B reads from a guess of where the second half starts (A's
 * bytes per token so far) into a buffer of its own, with the position of
 * each token it reads. B's guess may fall inside a token, and then what
 * it reads is wrong until it lands on a token's start by chance: B's
 * tokens are taken only from a position that A itself reaches (a token
 * start; from there both read the same bytes the same way). A goes on
 * token by token until it reaches one of B's positions or passes them all
 * (then it simply reads on). Both read only the encodings the one-chain
 * loops read (llmd_kv_tok2) and within the same bounds: where B meets
 * another encoding it starts again a byte on (it is not on a token start,
 * or A will stop there too); where A does, it returns to the caller
 * (which reads the rest as before).
 *
 * Returns the tokens read into out (at most n) and the position after
 * them in *pp.
 */
static size_t
llmd_kv_tok_two(const unsigned char **pp, const unsigned char *safe2,
    uint32_t *out, size_t n)
{
    int                   balive;
    size_t                i, k, m, kb, j, take, l;
    uint16_t              bp[LLMD_KV_TOK_PART / 2 + 1];
    uint32_t              bv[LLMD_KV_TOK_PART / 2];
    const unsigned char  *a, *a0, *b, *g;

    a = *pp;
    i = 0;
    m = LLMD_KV_TOK_PART / 2;

    while (n - i >= LLMD_KV_TOK_PART) {
        a0 = a;
        g = a + ((m * llmd_kv_tok_avg) >> 8);

        if (g >= safe2) {
            break;
        }

        b = g;
        kb = 0;
        balive = 1;

        for (k = 0; k < m; k += 2) {
            /* a batch waited in a queue: its bytes are rarely cached */
            __builtin_prefetch((const void *) ((uintptr_t) b + 512));

            if (a >= safe2 || llmd_kv_tok2(&a, &out[i + k]) == 0) {
                *pp = a;
                return i + k;
            }

            if (balive) {
                bp[kb] = (uint16_t) (b - g);

                if (b < safe2 && (l = llmd_kv_tok2(&b, &bv[kb])) != 0) {
                    bp[kb + 1] = (uint16_t) (bp[kb] + l);
                    kb += 2;

                } else if (b < safe2) {
                    /* B is not on a token start: again from the next byte */
                    g = b + 1;
                    b = g;
                    kb = 0;

                } else {
                    balive = 0;
                }
            }
        }

        i += m;
        bp[kb] = (uint16_t) (b - g);     /* after B's last token */

        /* the next guess: bytes per token of A's half */
        llmd_kv_tok_avg = ((size_t) (a - a0) << 8) / m;

        /* A token by token until it meets B's chain or passes it */
        j = 0;

        for ( ;; ) {
            if (j == kb) {
                break;                  /* no meeting: B's work is lost */
            }

            if (g + bp[j] < a) {
                j++;
                continue;
            }

            if (g + bp[j] == a) {
                take = kb - j < n - i ? kb - j : n - i;
                memcpy(&out[i], &bv[j], take * sizeof(uint32_t));
                i += take;
                a = g + bp[j + take];
                break;
            }

            if (i == n || a >= safe2 || !llmd_kv_tok_len[*a]) {
                *pp = a;
                return i;
            }

            out[i++] = (uint32_t) (llmd_kv_be64(a) >> llmd_kv_tok_shift[*a])
                       & llmd_kv_tok_mask[*a];
            a += llmd_kv_tok_len[*a];
        }
    }

    *pp = a;

    return i;
}
#endif


#if defined(__SSE2__)

/*
 * Masks of one bit per byte of the 64 at b (64 readable bytes): hi, the
 * byte is 0x80 or more (so not a positive fixint); m1, it is 0xcc, 0xcd or
 * 0xce (uint8, uint16, uint32: 2 bytes or more); m2, 0xcd or 0xce (3 or
 * more); m4, 0xce (5).
 */
static inline void
llmd_kv_tok_masks(const unsigned char *b, uint64_t *hi, uint64_t *m1,
    uint64_t *m2, uint64_t *m4)
{
    int       k;
    uint64_t  h, cc, cd, ce;
    __m128i   x;

    h = cc = cd = ce = 0;

    for (k = 0; k < 4; k++) {
        x = _mm_loadu_si128((const __m128i *) (b + 16 * k));
        h |= (uint64_t) (uint32_t) _mm_movemask_epi8(x) << (16 * k);
        cc |= (uint64_t) (uint32_t) _mm_movemask_epi8(
                  _mm_cmpeq_epi8(x, _mm_set1_epi8((char) 0xcc))) << (16 * k);
        cd |= (uint64_t) (uint32_t) _mm_movemask_epi8(
                  _mm_cmpeq_epi8(x, _mm_set1_epi8((char) 0xcd))) << (16 * k);
        ce |= (uint64_t) (uint32_t) _mm_movemask_epi8(
                  _mm_cmpeq_epi8(x, _mm_set1_epi8((char) 0xce))) << (16 * k);
    }

    *hi = h;
    *m4 = ce;
    *m2 = cd | ce;
    *m1 = cc | cd | ce;
}


/*
 * Token ids of the four encodings vLLM's arrays are made of (positive
 * fixint, uint8 0xcc, uint16 0xcd, uint32 0xce: real text has many ids
 * below 256, punctuation, digits and bytes) without a wait on memory from
 * one token to the next: for the 64 bytes at b, masks of one bit per byte
 * are made first (SSE2, llmd_kv_tok_masks). The chain from a token to the
 * next is then a few operations on the masks in registers (its length is
 * 1 + its m1 bit + its m2 bit + 2 x its m4 bit); its value is one 8-byte
 * big-endian load beside it, shifted and masked by the same bits. Up to
 * twelve tokens are read in one straight run with no branch on their
 * lengths (at most 5 bytes each, the twelfth starts at byte 55 at most
 * and its load ends at 62); near the end of the array, or when one of the
 * twelve has another encoding, one at a time while a token starts at 56
 * or below. Then b moves on to the next token and the masks are made
 * again. On a token of another encoding the reader stops (the caller
 * reads it), and with fewer than 64 bytes left. Returns the tokens read
 * into out (at most n) and the position after them in *pp: always a token
 * start the one-chain loops reach.
 */
static size_t
llmd_kv_tok_sse2(const unsigned char **pp, const unsigned char *end,
    uint32_t *out, size_t n)
{
    size_t                i, pos, b1, b2, b4, l;
    uint64_t              w, hi, m1, m2, m4, no, bad;
    const unsigned char  *b;

    b = *pp;
    i = 0;

    while (i < n && end - b >= 64) {
        /* a batch waited in a queue: its bytes are rarely cached */
        __builtin_prefetch(b + 512);

        llmd_kv_tok_masks(b, &hi, &m1, &m2, &m4);
        /* neither a positive fixint nor uint8/16/32 */
        no = hi & ~m1;
        pos = 0;

#define LLMD_KV_TOK_SSE2_ONE(k)                                               \
            b1 = (m1 >> pos) & 1;                                             \
            b2 = (m2 >> pos) & 1;                                             \
            b4 = (m4 >> pos) & 1;                                             \
            l = 1 + b1 + b2 + 2 * b4;                                         \
            memcpy(&w, b + pos, 8);                                           \
            w = __builtin_bswap64(w);                                         \
            out[i + (k)] = (uint32_t) (w >> (64 - 8 * l))                     \
                           & (0xffffffffu >> (24 - 8 * b2 - 16 * b4));        \
            pos += l

        if (n - i >= 12) {
            bad = 0;

#define LLMD_KV_TOK_SSE2_CHECKED(k)                                           \
            bad |= no >> pos;                                                 \
            LLMD_KV_TOK_SSE2_ONE(k)

            LLMD_KV_TOK_SSE2_CHECKED(0);
            LLMD_KV_TOK_SSE2_CHECKED(1);
            LLMD_KV_TOK_SSE2_CHECKED(2);
            LLMD_KV_TOK_SSE2_CHECKED(3);
            LLMD_KV_TOK_SSE2_CHECKED(4);
            LLMD_KV_TOK_SSE2_CHECKED(5);
            LLMD_KV_TOK_SSE2_CHECKED(6);
            LLMD_KV_TOK_SSE2_CHECKED(7);
            LLMD_KV_TOK_SSE2_CHECKED(8);
            LLMD_KV_TOK_SSE2_CHECKED(9);
            LLMD_KV_TOK_SSE2_CHECKED(10);
            LLMD_KV_TOK_SSE2_CHECKED(11);

#undef LLMD_KV_TOK_SSE2_CHECKED

            if (!(bad & 1)) {
                i += 12;
                b += pos;
                continue;
            }

            /* one of them has another encoding: one by one below from
               the first (what was written is written again) */
            pos = 0;
        }

        /* one at a time while 8 bytes can be loaded */
        while (pos <= 56 && i < n) {
            if ((no >> pos) & 1) {
                *pp = b + pos;
                return i;
            }

            LLMD_KV_TOK_SSE2_ONE(0);
            i++;
        }

#undef LLMD_KV_TOK_SSE2_ONE

        b += pos;
    }

    *pp = b;

    return i;
}

#endif


/* token_ids at r->p: converted into the token buffer after *used. */
static int
llmd_kv_rd_tokens_field(llmd_kv_rd_t *r, llmd_kv_rd_event_t *e,
    size_t *used)
{
    size_t                i, n, l;
    unsigned              c, c1;
    uint32_t             *out;
    uint64_t              w;
    llmd_kv_mp_t          v, x;
    const unsigned char  *p, *safe, *safe2;

    e->tokens = r->p;
    e->t_array = 0;
    e->t_valid = 0;

    if (llmd_kv_rd_val(r, 3, &v) != 0) {
        return -1;
    }

    if (v.type != LLMD_MP_ARRAY || v.u > LLMD_KV_MAX_TOKENS) {
        e->t_n = (size_t) v.u;
        return llmd_kv_rd_rest(r, 3, &v);
    }

    n = (size_t) v.u;

    if (llmd_kv_rd_room(&llmd_kv_rd_tokens, *used * 4, n * 4) != 0) {
        return -1;
    }

    e->t_array = 1;
    e->t_valid = 1;
    e->t_n = n;
    e->t_off = *used;
    out = (uint32_t *) llmd_kv_rd_tokens.data + *used;

    p = r->p;
    safe = r->end - r->p >= 8 ? r->end - 8 : r->p;
    safe2 = r->end - r->p >= 16 ? r->end - 16 : r->p;
#if !defined(__SSE2__)
    i = n >= LLMD_KV_TOK_PART ? llmd_kv_tok_two(&p, safe2, out, n) : 0;
#else
    i = 0;
#endif

    for ( ;; ) {
#if defined(__SSE2__)
        i += llmd_kv_tok_sse2(&p, r->end, out + i, n - i);

        /* it stopped on another encoding with 64 bytes left: that token
           here, and on with the SSE2 reader */
        if (i < n && r->end - p >= 64 && llmd_kv_tok_len[*p]) {
            c = *p;
            out[i++] = (uint32_t) (llmd_kv_be64(p) >> llmd_kv_tok_shift[c])
                       & llmd_kv_tok_mask[c];
            p += llmd_kv_tok_len[c];
            continue;
        }
#endif

        /*
         * fastest: two tokens per 8-byte word, 16 readable bytes. The
         * length of each is computed from its first byte (see
         * LLMD_KV_TOK_LEN), not looked up: the position of the next token
         * waits for it.
         */
        while (i + 1 < n && p < safe2) {
            w = llmd_kv_be64(p);
            c = (unsigned) (w >> 56);
            l = LLMD_KV_TOK_LEN(c);
            /* (l is 9 for 0xcf, which the check refuses) */
            c1 = (unsigned) (w >> ((56 - 8 * l) & 63)) & 0xff;

            if (!(llmd_kv_tok_len[c] & llmd_kv_tok_len[c1])) {
                break;
            }

            /* a batch waited in a queue: its bytes are rarely cached */
            __builtin_prefetch((const void *) ((uintptr_t) p + 512));

            out[i] = (uint32_t) (w >> llmd_kv_tok_shift[c])
                     & llmd_kv_tok_mask[c];
            out[i + 1] = (uint32_t) (llmd_kv_be64(p + l)
                                     >> llmd_kv_tok_shift[c1])
                         & llmd_kv_tok_mask[c1];
            p += l + LLMD_KV_TOK_LEN(c1);
            i += 2;
        }

        /* fast: 8 readable bytes, an unsigned encoding of at most 32 bits */
        while (i < n && p < safe && llmd_kv_tok_len[*p]) {
            c = *p;
            out[i++] = (uint32_t) (llmd_kv_be64(p) >> llmd_kv_tok_shift[c])
                       & llmd_kv_tok_mask[c];
            p += llmd_kv_tok_len[c];
        }

        if (i == n) {
            break;
        }

        r->p = p;

        if (llmd_kv_rd_val(r, 4, &x) != 0 || llmd_kv_rd_rest(r, 4, &x) != 0) {
            return -1;
        }

        if (x.type != LLMD_MP_POS || x.u > UINT32_MAX) {
            e->t_valid = 0;
        }

        out[i++] = (uint32_t) x.u;
        p = r->p;
    }

    r->p = p;
    *used += n;

    return 0;
}


/* extra_keys, as llmd_kv_extra_keys(), over checked bytes. */
static int
llmd_kv_rd_extra_keys(llmd_kv_rd_t *r, const llmd_kv_rd_event_t *e,
    llmd_kv_event_t *ev)
{
    uint64_t      b, i;
    llmd_kv_rd_t  t;
    llmd_kv_mp_t  ek, entry, x, id;

    if (e->extra_keys == NULL) {
        return 0;
    }

    t = *r;
    t.p = e->extra_keys;

    if (llmd_kv_rd_val(&t, 3, &ek) != 0) {
        return -1;
    }

    if (ek.type == LLMD_MP_NIL) {
        return 0;
    }

    if (ek.type != LLMD_MP_ARRAY) {
        return -1;
    }

    id.type = LLMD_MP_NIL;
    if (e->lora_id != NULL) {
        llmd_kv_rd_at(r, e->lora_id, 3, &id);
    }

    for (b = 0; b < ek.u; b++) {
        if (llmd_kv_rd_val(&t, 4, &entry) != 0) {
            return -1;
        }

        if (entry.type == LLMD_MP_NIL) {
            continue;
        }

        if (entry.type != LLMD_MP_ARRAY) {
            ev->extra_unsupported = 1;
            if (llmd_kv_rd_rest(&t, 4, &entry) != 0) {
                return -1;
            }
            continue;
        }

        for (i = 0; i < entry.u; i++) {
            if (llmd_kv_rd_val(&t, 5, &x) != 0
                || llmd_kv_rd_rest(&t, 5, &x) != 0)
            {
                return -1;
            }

            if (x.type == LLMD_MP_STR && ev->lora_name != NULL
                && x.u == ev->lora_name_len
                && memcmp(x.p, ev->lora_name, ev->lora_name_len) == 0)
            {
                continue;
            }

            if (x.type == LLMD_MP_POS && id.type == LLMD_MP_POS
                && x.u == id.u)
            {
                continue;
            }

            if (x.type == LLMD_MP_STR && b == 0 && !ev->has_parent
                && ev->salt == NULL)
            {
                ev->salt = (const char *) x.p;
                ev->salt_len = (size_t) x.u;
                continue;
            }

            ev->extra_unsupported = 1;
        }
    }

    return 0;
}


/*
 * The tree decoder's llmd_kv_event_decode() on what the walk learnt:
 * 0 deliver, 1 skip, -1 give up (the tree decoder takes the batch).
 */
static int
llmd_kv_rd_judge(llmd_kv_rd_t *r, llmd_kv_rd_event_t *e, llmd_kv_event_t *ev)
{
    llmd_kv_mp_t  v;

    memset(ev, 0, sizeof(llmd_kv_event_t));

    if (!e->tag_ok) {
        return 1;
    }

    ev->type = e->type;

    if (e->type == LLMD_KV_ALL_CLEARED) {
        return 0;
    }

    if (e->type != LLMD_KV_BLOCK_STORED) {
        /* BlockRemoved has only hashes and medium */
        e->parent = e->tokens = e->block_size = e->lora_id = NULL;
        e->lora_name = e->extra_keys = e->spec_kind = NULL;
    }

    if (e->hashes == NULL || !e->h_array) {
        return 1;
    }

    if (e->tokens != NULL && e->t_array == 0) {
        llmd_kv_rd_at(r, e->tokens, 3, &v);
        if (v.type == LLMD_MP_ARRAY) {
            return 1;               /* an array over LLMD_KV_MAX_TOKENS */
        }
    }

    if (!e->h_valid) {
        return 1;
    }

    ev->nhashes = e->h_n;

    if (e->medium != NULL) {
        llmd_kv_rd_at(r, e->medium, 3, &v);

        if (v.type != LLMD_MP_NIL) {
            if (v.type != LLMD_MP_STR) {
                return 1;
            }

            ev->cpu = v.u == 3
                      && strncasecmp((const char *) v.p, "cpu", 3) == 0;
        }
    }

    if (e->type == LLMD_KV_BLOCK_REMOVED) {
        return 0;
    }

    if (e->parent != NULL) {
        llmd_kv_rd_at(r, e->parent, 3, &v);

        if (v.type != LLMD_MP_NIL) {
            if (llmd_kv_rd_hash(&v, &ev->parent) != 0) {
                return 1;
            }
            ev->has_parent = 1;
        }
    }

    if (e->tokens != NULL) {
        llmd_kv_rd_at(r, e->tokens, 3, &v);

        if (v.type != LLMD_MP_NIL) {
            if (!e->t_array || !e->t_valid) {
                return 1;
            }
            ev->ntokens = e->t_n;
        }
    }

    if (e->block_size != NULL) {
        llmd_kv_rd_at(r, e->block_size, 3, &v);

        if (v.type != LLMD_MP_NIL) {
            if (v.type != LLMD_MP_POS || v.u > UINT32_MAX) {
                return 1;
            }
            ev->block_size = (uint32_t) v.u;
        }
    }

    if (e->lora_name != NULL) {
        llmd_kv_rd_at(r, e->lora_name, 3, &v);

        if (v.type != LLMD_MP_NIL) {
            if (v.type != LLMD_MP_STR) {
                return 1;
            }

            if (v.u > 0) {
                ev->lora_name = (const char *) v.p;
                ev->lora_name_len = (size_t) v.u;
            }
        }
    }

    if (e->spec_kind != NULL) {
        llmd_kv_rd_at(r, e->spec_kind, 3, &v);

        if (v.type != LLMD_MP_NIL
            && !llmd_kv_rd_str_is(&v, "full_attention", 14)
            && !llmd_kv_rd_str_is(&v, "mla_attention", 13)
            && !llmd_kv_rd_str_is(&v, "sink_full_attention", 19))
        {
            return 1;
        }
    }

    return llmd_kv_rd_extra_keys(r, e, ev) == 0 ? 0 : 1;
}


/* The tag of an event (a value at level 3). */
static void
llmd_kv_rd_tag(const llmd_kv_mp_t *tag, llmd_kv_rd_event_t *e)
{
    e->tag_ok = 1;

    if (llmd_kv_rd_str_is(tag, "BlockStored", 11)) {
        e->type = LLMD_KV_BLOCK_STORED;
    } else if (llmd_kv_rd_str_is(tag, "BlockRemoved", 12)) {
        e->type = LLMD_KV_BLOCK_REMOVED;
    } else if (llmd_kv_rd_str_is(tag, "AllBlocksCleared", 16)) {
        e->type = LLMD_KV_ALL_CLEARED;
    } else {
        e->tag_ok = 0;
    }
}


/*
 * One event (an element of the events array, level 2) walked and judged;
 * *deliver: whether it is one. -1: give up.
 */
static int
llmd_kv_rd_event(llmd_kv_rd_t *r, llmd_kv_rd_event_t *e, size_t *hused,
    size_t *tused, int *deliver, llmd_kv_event_t *ev)
{
    int                   found;
    size_t                i, n;
    llmd_kv_mp_t          v, k, tag;
    const unsigned char  *at, *tag_at;

    memset(e, 0, sizeof(llmd_kv_rd_event_t));
    *deliver = 0;
    tag_at = NULL;

    if (llmd_kv_rd_val(r, 2, &v) != 0) {
        return -1;
    }

    if (v.type == LLMD_MP_ARRAY) {
        n = (size_t) v.u;

        if (n == 0) {
            return 0;
        }

        if (llmd_kv_rd_val(r, 3, &tag) != 0
            || llmd_kv_rd_rest(r, 3, &tag) != 0)
        {
            return -1;
        }

        llmd_kv_rd_tag(&tag, e);

        if (!e->tag_ok || e->type == LLMD_KV_ALL_CLEARED) {
            if (llmd_kv_rd_skip(r, 3, n - 1) != 0) {
                return -1;
            }

            if (e->tag_ok) {
                memset(ev, 0, sizeof(llmd_kv_event_t));
                ev->type = LLMD_KV_ALL_CLEARED;
                *deliver = 1;
            }

            return 0;
        }

        for (i = 1; i < n; i++) {
            at = r->p;

            if (i == 1) {
                if (llmd_kv_rd_hashes_field(r, e, hused) != 0) {
                    return -1;
                }
                continue;
            }

            if (i == 3 && e->type == LLMD_KV_BLOCK_STORED) {
                if (llmd_kv_rd_tokens_field(r, e, tused) != 0) {
                    return -1;
                }
                continue;
            }

            if (e->type == LLMD_KV_BLOCK_STORED) {
                switch (i) {
                case 2: e->parent = at; break;
                case 4: e->block_size = at; break;
                case 5: e->lora_id = at; break;
                case 6: e->medium = at; break;
                case 7: e->lora_name = at; break;
                case 8: e->extra_keys = at; break;
                case 10: e->spec_kind = at; break;
                }

            } else if (i == 2) {
                e->medium = at;
            }

            if (llmd_kv_rd_skip(r, 3, 1) != 0) {
                return -1;
            }
        }

    } else if (v.type == LLMD_MP_MAP) {
        n = (size_t) v.u;
        found = 0;

        for (i = 0; i < n; i++) {
            if (llmd_kv_rd_val(r, 3, &k) != 0
                || llmd_kv_rd_rest(r, 3, &k) != 0)
            {
                return -1;
            }

            at = r->p;

            if (k.type == LLMD_MP_STR && k.u == 12
                && memcmp(k.p, "block_hashes", 12) == 0)
            {
                if (llmd_kv_rd_hashes_field(r, e, hused) != 0) {
                    return -1;
                }
                continue;
            }

            if (k.type == LLMD_MP_STR && k.u == 9
                && memcmp(k.p, "token_ids", 9) == 0)
            {
                if (llmd_kv_rd_tokens_field(r, e, tused) != 0) {
                    return -1;
                }
                continue;
            }

            if (k.type == LLMD_MP_STR) {
                switch (k.u) {
                case 4:
                    if (!found && memcmp(k.p, "type", 4) == 0) {
                        found = 1;
                        tag_at = at;
                    }
                    break;
                case 6:
                    if (memcmp(k.p, "medium", 6) == 0) {
                        e->medium = at;
                    }
                    break;
                case 7:
                    if (memcmp(k.p, "lora_id", 7) == 0) {
                        e->lora_id = at;
                    }
                    break;
                case 9:
                    if (memcmp(k.p, "lora_name", 9) == 0) {
                        e->lora_name = at;
                    }
                    break;
                case 10:
                    if (memcmp(k.p, "block_size", 10) == 0) {
                        e->block_size = at;
                    } else if (memcmp(k.p, "extra_keys", 10) == 0) {
                        e->extra_keys = at;
                    }
                    break;
                case 17:
                    if (memcmp(k.p, "parent_block_hash", 17) == 0) {
                        e->parent = at;
                    }
                    break;
                case 18:
                    if (memcmp(k.p, "kv_cache_spec_kind", 18) == 0) {
                        e->spec_kind = at;
                    }
                    break;
                }
            }

            if (llmd_kv_rd_skip(r, 3, 1) != 0) {
                return -1;
            }
        }

        if (tag_at != NULL) {
            /* read once the walk has checked it */
            llmd_kv_rd_at(r, tag_at, 3, &tag);
            llmd_kv_rd_tag(&tag, e);
        }

    } else {
        /* a scalar or string: rd_val passed it */
        return 0;
    }

    *deliver = llmd_kv_rd_judge(r, e, ev) == 0;

    return 0;
}


/* 1: the walk cannot take this batch, the tree decoder does. */
static int
llmd_kv_rd_batch(const unsigned char *buf, size_t len,
    llmd_kv_batch_info_t *info, size_t *nout)
{
    int                   deliver;
    size_t                i, j, n, hused, tused, used, have_events;
    llmd_kv_rd_t          r;
    llmd_kv_mp_t          root, k, tv, ea, rv;
    llmd_kv_event_t       ev;
    llmd_kv_rd_out_t     *out;
    llmd_kv_rd_event_t    e;
    const unsigned char  *t, *rk, *at;

    out = NULL;

    r.buf = buf;
    r.p = buf;
    r.end = buf + len;

    hused = tused = used = 0;
    have_events = 0;
    t = rk = NULL;

    if (llmd_kv_rd_val(&r, 0, &root) != 0) {
        return 1;
    }

    if (root.type == LLMD_MP_ARRAY) {
        if (root.u < 2) {
            return 1;
        }

        t = r.p;
        if (llmd_kv_rd_skip(&r, 1, 1) != 0) {
            return 1;
        }

    } else if (root.type != LLMD_MP_MAP) {
        return 1;
    }

    n = root.type == LLMD_MP_ARRAY ? 1 : (size_t) root.u;

    for (i = 0; i < n; i++) {
        if (root.type == LLMD_MP_MAP) {
            /* key, then its value: last wins, as in the tree decoder */
            if (llmd_kv_rd_val(&r, 1, &k) != 0
                || llmd_kv_rd_rest(&r, 1, &k) != 0)
            {
                return 1;
            }

            at = r.p;

            if (llmd_kv_rd_str_is(&k, "ts", 2)) {
                t = at;
            } else if (llmd_kv_rd_str_is(&k, "data_parallel_rank", 18)) {
                rk = at;
            }

            if (!llmd_kv_rd_str_is(&k, "events", 6)) {
                if (llmd_kv_rd_skip(&r, 1, 1) != 0) {
                    return 1;
                }
                continue;
            }
        }

        /* the events array: each event walked, judged and kept */
        have_events = 1;
        hused = tused = used = 0;
        info->skipped = 0;

        if (llmd_kv_rd_val(&r, 1, &ea) != 0) {
            return 1;
        }

        if (ea.type != LLMD_MP_ARRAY) {
            if (llmd_kv_rd_rest(&r, 1, &ea) != 0) {
                return 1;
            }
            have_events = 2;          /* not an array */
            continue;
        }

        for (j = 0; j < ea.u; j++) {
            if (llmd_kv_rd_event(&r, &e, &hused, &tused, &deliver, &ev)
                != 0)
            {
                return 1;
            }

            if (!deliver) {
                info->skipped++;
                continue;
            }

            /* grown by delivered events only (each takes >= 14 bytes) */
            if (llmd_kv_rd_room(&llmd_kv_rd_events,
                                used * sizeof(llmd_kv_rd_out_t),
                                sizeof(llmd_kv_rd_out_t))
                != 0)
            {
                return 1;
            }

            out = llmd_kv_rd_events.data;
            out[used].ev = ev;
            out[used].h_off = e.h_off;
            out[used].t_off = e.t_off;
            used++;
        }

        info->events = used;
    }

    if (root.type == LLMD_MP_ARRAY && root.u > 2) {
        rk = r.p;
        if (llmd_kv_rd_skip(&r, 1, (size_t) root.u - 2) != 0) {
            return 1;
        }
    }

    if (r.p != r.end || t == NULL || have_events != 1) {
        /* trailing bytes, or a shape error: the tree decoder says which */
        return 1;
    }

    llmd_kv_rd_at(&r, t, 1, &tv);

    if (tv.type != LLMD_MP_F64 && tv.type != LLMD_MP_F32
        && tv.type != LLMD_MP_POS && tv.type != LLMD_MP_NEG)
    {
        return 1;
    }

    rv.type = LLMD_MP_NIL;

    if (rk != NULL) {
        llmd_kv_rd_at(&r, rk, 1, &rv);

        if (rv.type != LLMD_MP_NIL && rv.type != LLMD_MP_POS
            && rv.type != LLMD_MP_NEG)
        {
            return 1;
        }
    }

    info->ts = tv.type == LLMD_MP_POS ? (double) tv.u
               : tv.type == LLMD_MP_NEG ? (double) (int64_t) tv.u : tv.f;

    if (rv.type == LLMD_MP_POS && rv.u <= INT64_MAX) {
        info->dp_rank = (int64_t) rv.u;
    }

    *nout = used;

    return 0;
}


/* Delivered event: its pointers into the hash and token buffers. */
static void
llmd_kv_rd_deliver(const llmd_kv_rd_out_t *out, llmd_kv_event_t *ev)
{
    *ev = out->ev;

    if (ev->nhashes) {
        ev->hashes = (const uint64_t *) llmd_kv_rd_hashes.data + out->h_off;
    }

    if (ev->ntokens) {
        ev->tokens = (const uint32_t *) llmd_kv_rd_tokens.data + out->t_off;
    }

    ev->next = NULL;
}


int
llmd_kv_batch_decode(const void *buf, size_t len,
    llmd_kv_event_handler_pt handler, void *data, llmd_kv_batch_info_t *info,
    char *err, size_t errlen)
{
    size_t                 i, n;
    llmd_kv_event_t        ev[2];
    llmd_kv_rd_out_t      *out;
    llmd_kv_batch_info_t   dummy;

    if (info == NULL) {
        info = &dummy;
    }

    if (buf == NULL || len == 0 || len > LLMD_KV_DIRECT_MAX) {
        llmd_kv_rd_fallback++;
        return llmd_kv_batch_decode_tree(buf, len, handler, data, info, err,
                                         errlen);
    }

    memset(info, 0, sizeof(llmd_kv_batch_info_t));
    info->dp_rank = -1;
    n = 0;

    if (llmd_kv_rd_batch(buf, len, info, &n) != 0) {
        llmd_kv_rd_fallback++;
        return llmd_kv_batch_decode_tree(buf, len, handler, data, info, err,
                                         errlen);
    }

    llmd_kv_rd_direct++;

    out = llmd_kv_rd_events.data;

    if (n) {
        llmd_kv_rd_deliver(&out[0], &ev[0]);
    }

    for (i = 0; i < n; i++) {
        /* the next event is ready too: the handler may prefetch for it */
        if (i + 1 < n) {
            llmd_kv_rd_deliver(&out[i + 1], &ev[(i + 1) & 1]);
            ev[i & 1].next = &ev[(i + 1) & 1];
        }

        if (handler) {
            handler(data, &ev[i & 1]);
        }
    }

    /* keep what a usual batch needs, not what a huge one took */
    if (llmd_kv_rd_hashes.cap > LLMD_KV_KEEP_BYTES
        || llmd_kv_rd_tokens.cap > LLMD_KV_KEEP_BYTES
        || llmd_kv_rd_events.cap > LLMD_KV_KEEP_BYTES)
    {
        llmd_kv_rd_release();
    }

    return 0;
}


void
llmd_kv_decoder_release(void)
{
    llmd_kv_tree_release();
    llmd_kv_rd_release();
}


static void
llmd_kv_rd_release(void)
{
    free(llmd_kv_rd_hashes.data);
    free(llmd_kv_rd_tokens.data);
    free(llmd_kv_rd_events.data);
    memset(&llmd_kv_rd_hashes, 0, sizeof(llmd_kv_rd_buf_t));
    memset(&llmd_kv_rd_tokens, 0, sizeof(llmd_kv_rd_buf_t));
    memset(&llmd_kv_rd_events, 0, sizeof(llmd_kv_rd_buf_t));
}


void
llmd_kv_decoder_counts(size_t *direct, size_t *tree)
{
    *direct = llmd_kv_rd_direct;
    *tree = llmd_kv_rd_fallback;
}
