/*
 * vLLM KV-event batch decoder (see llmd_kv_events.h, docs/kv-events.md).
 *
 * Two passes over the payload:
 *   1. llmd_kv_prescan() walks the msgpack headers only and rejects, before
 *      msgpack-c allocates anything, a container that declares more
 *      elements than bytes remain, a str/bin/ext longer than the rest of
 *      the buffer, nesting deeper than LLMD_KV_MAX_DEPTH, reserved bytes and
 *      trailing bytes.  msgpack-c allocates an array's or map's element
 *      storage as soon as it reads the header, so without this check a
 *      5-byte "array32 of 2^32-1" would ask the zone for 64 GiB.  After it,
 *      the zone holds at most one msgpack_object (16 bytes; 32 per map
 *      pair) per payload byte.
 *   2. msgpack_unpack_next() builds the object tree, the batch shape is
 *      checked as a whole, and only then is every event converted into a
 *      scratch buffer and passed to the handler.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <msgpack.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "kv/llmd_kv_events.h"

#define LLMD_KV_MAX_DEPTH  24          /* below msgpack-c's own 32 */

/* Object tree of one batch: 16M objects (a real batch has ~30k). */
#define LLMD_KV_MAX_ZONE   (256u << 20)


typedef struct {
    uint64_t  *hashes;
    uint32_t  *tokens;
    size_t     hashes_cap;
    size_t     tokens_cap;
} llmd_kv_scratch_t;


/* The fields of one event, found by position (array) or by name (map). */
typedef struct {
    const msgpack_object  *hashes;
    const msgpack_object  *parent;
    const msgpack_object  *tokens;
    const msgpack_object  *block_size;
    const msgpack_object  *lora_id;
    const msgpack_object  *medium;
    const msgpack_object  *lora_name;
    const msgpack_object  *extra_keys;
    const msgpack_object  *spec_kind;
} llmd_kv_fields_t;


/*
 * Memory kept between batches: the zone's one chunk and the event scratch.
 * Returning them to malloc after every batch costs more than the decoding
 * (page faults and brk calls on each batch).  Per thread; a batch needing
 * more than LLMD_KV_KEEP_BYTES gets memory of its own, freed after it.
 */
#define LLMD_KV_KEEP_BYTES  (16u << 20)

static __thread msgpack_zone  *llmd_kv_cached_zone;
static __thread size_t         llmd_kv_cached_zone_size;
static __thread void          *llmd_kv_cached_scratch;
static __thread size_t         llmd_kv_cached_scratch_size;


static int llmd_kv_prescan(const unsigned char *p, size_t len,
    size_t *zone_bytes, const char **why);
static int llmd_kv_scan(const unsigned char *p, size_t len, size_t *ppos,
    int base, size_t count, size_t *zone_bytes, const char **why);

/* Total size of the msgpack scalars whose size the first byte tells (ints,
   nil, bool, floats, fixext); 0 for everything else.  Token ids are all
   such scalars, so the prescan skips them in a tight loop. */
static const uint8_t  llmd_kv_fixed[256] = {
    [0x00 ... 0x7f] = 1, [0xe0 ... 0xff] = 1,
    [0xc0] = 1, [0xc2] = 1, [0xc3] = 1,
    [0xcc] = 2, [0xd0] = 2, [0xcd] = 3, [0xd1] = 3,
    [0xca] = 5, [0xce] = 5, [0xd2] = 5,
    [0xcb] = 9, [0xcf] = 9, [0xd3] = 9,
    [0xd4] = 3, [0xd5] = 4, [0xd6] = 6, [0xd7] = 10, [0xd8] = 18
};
static msgpack_zone *llmd_kv_zone(size_t need);
static int llmd_kv_scratch(llmd_kv_scratch_t *sc, size_t nh, size_t nt);
static int llmd_kv_batch_fields(const msgpack_object *root,
    const msgpack_object **ts, const msgpack_object **events,
    const msgpack_object **rank, const char **why);
static int llmd_kv_event_fields(const msgpack_object *o,
    llmd_kv_event_type_t *type, llmd_kv_fields_t *f);
static int llmd_kv_event_decode(const msgpack_object *o,
    llmd_kv_scratch_t *sc, llmd_kv_event_t *ev);
static int llmd_kv_hash(const msgpack_object *o, uint64_t *hash);
static int llmd_kv_str_is(const msgpack_object *o, const char *s);
static int llmd_kv_extra_keys(const llmd_kv_fields_t *f,
    llmd_kv_event_t *ev);
static int llmd_kv_spec_kind_indexed(const msgpack_object *o);
static void llmd_kv_rd_release(void);


int
llmd_kv_batch_decode_tree(const void *buf, size_t len,
    llmd_kv_event_handler_pt handler, void *data, llmd_kv_batch_info_t *info,
    char *err, size_t errlen)
{
    int                    rc;
    size_t                 off, i, zb;
    const char            *why;
    msgpack_zone          *zone;
    msgpack_object         root;
    llmd_kv_event_t        ev;
    llmd_kv_scratch_t      sc;
    llmd_kv_batch_info_t   dummy;
    const msgpack_object  *ts, *events, *rank, *o;

    if (info == NULL) {
        info = &dummy;
    }

    memset(info, 0, sizeof(llmd_kv_batch_info_t));
    info->dp_rank = -1;
    why = NULL;

    if (buf == NULL || len == 0) {
        why = "empty payload";
        goto failed;
    }

    if (len > LLMD_KV_MAX_PAYLOAD) {
        why = "payload larger than 64 MiB";
        goto failed;
    }

    if (llmd_kv_prescan(buf, len, &zb, &why) != 0) {
        goto failed;
    }

    zone = llmd_kv_zone(zb);
    if (zone == NULL) {
        why = "out of memory";
        goto failed;
    }

    off = 0;

    if (msgpack_unpack(buf, len, &off, zone, &root) != MSGPACK_UNPACK_SUCCESS)
    {
        why = "msgpack decoding failed";
        goto done;
    }

    if (llmd_kv_batch_fields(&root, &ts, &events, &rank, &why) != 0) {
        goto done;
    }

    info->ts = ts->type == MSGPACK_OBJECT_POSITIVE_INTEGER
               ? (double) ts->via.u64
               : ts->type == MSGPACK_OBJECT_NEGATIVE_INTEGER
               ? (double) ts->via.i64 : ts->via.f64;

    if (rank != NULL && rank->type == MSGPACK_OBJECT_POSITIVE_INTEGER
        && rank->via.u64 <= INT64_MAX)
    {
        info->dp_rank = (int64_t) rank->via.u64;
    }

    /* the scratch grows as events need it and is kept for later batches */
    memset(&sc, 0, sizeof(llmd_kv_scratch_t));

    for (i = 0; i < events->via.array.size; i++) {
        o = &events->via.array.ptr[i];

        rc = llmd_kv_event_decode(o, &sc, &ev);
        if (rc == -2) {
            why = "out of memory";
            goto done;
        }

        if (rc != 0) {
            info->skipped++;
            continue;
        }

        info->events++;

        if (handler) {
            handler(data, &ev);
        }
    }

    why = NULL;

done:

    if (zone == llmd_kv_cached_zone) {
        msgpack_zone_clear(zone);
    } else {
        msgpack_zone_free(zone);
    }

    if (why == NULL) {
        return 0;
    }

failed:

    if (err && errlen) {
        snprintf(err, errlen, "bad KV event batch: %s", why);
    }

    return -1;
}


int
llmd_kv_topic_parse(const char *topic, size_t len, const char **pod,
    size_t *pod_len, const char **model, size_t *model_len)
{
    const char  *a, *b;

    if (topic == NULL || len < 3 || memcmp(topic, "kv@", 3) != 0) {
        return -1;
    }

    a = topic + 2;
    b = memchr(a + 1, '@', len - 3);
    if (b == NULL) {
        return -1;
    }

    /* exactly three parts: no further '@' in the model */
    if (memchr(b + 1, '@', topic + len - (b + 1)) != NULL) {
        return -1;
    }

    *pod = a + 1;
    *pod_len = (size_t) (b - (a + 1));
    *model = b + 1;
    *model_len = (size_t) (topic + len - (b + 1));

    return 0;
}


int
llmd_kv_seq_parse(const void *frame, size_t len, uint64_t *seq)
{
    size_t                i;
    uint64_t              v;
    const unsigned char  *p;

    if (frame == NULL || len < 8) {
        return -1;
    }

    p = frame;
    v = 0;

    for (i = 0; i < 8; i++) {
        v = (v << 8) | p[i];
    }

    *seq = v;

    return 0;
}


/*
 * A header-only walk of one msgpack object (and its children) that bounds
 * what msgpack-c will allocate; see the top of this file.  This is not a
 * decoder: values are never read, only their extents.
 */
static int
llmd_kv_prescan(const unsigned char *p, size_t len, size_t *zone_bytes,
    const char **why)
{
    size_t  pos, zb;

    pos = 0;
    zb = 0;

    if (llmd_kv_scan(p, len, &pos, 0, 1, &zb, why) != 0) {
        return -1;
    }

    if (pos != len) {
        *why = "trailing bytes after the batch";
        return -1;
    }

    if (zb > LLMD_KV_MAX_ZONE) {
        *why = "too many objects";
        return -1;
    }

    *zone_bytes = zb;

    return 0;
}


/*
 * The walk of the prescan over count values from *ppos that are elements
 * of a container at nesting level base (0: the batch itself); adds to *zb
 * what msgpack-c would take from the zone for them; *ppos gets their end.
 */
static int
llmd_kv_scan(const unsigned char *p, size_t len, size_t *ppos, int base,
    size_t count, size_t *zone_bytes, const char **why)
{
    int       depth;
    size_t    pos, n, skip, need[LLMD_KV_MAX_DEPTH + 1], zb;
    unsigned  c;

    zb = *zone_bytes;
    depth = base;
    need[base] = count;
    pos = *ppos;

    for ( ;; ) {
        while (need[depth] == 0) {
            if (depth == base) {
                goto done;
            }
            depth--;
        }

        /* fast path: a run of fixed-size scalars */
        n = need[depth];
        while (n > 0 && pos < len && (skip = llmd_kv_fixed[p[pos]]) != 0) {
            if (skip > len - pos) {
                *why = "truncated";
                return -1;
            }
            pos += skip;
            n--;
        }
        need[depth] = n;

        if (n == 0) {
            continue;
        }

        need[depth]--;

        if (pos >= len) {
            *why = "truncated";
            return -1;
        }

        c = p[pos++];
        n = 0;           /* container elements */
        skip = 0;        /* payload bytes */

        if (c <= 0x7f || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3) {
            /* fixint, nil, bool */

        } else if (c >= 0x80 && c <= 0x8f) {
            n = 2 * (size_t) (c & 0x0f);

        } else if (c >= 0x90 && c <= 0x9f) {
            n = c & 0x0f;

        } else if (c >= 0xa0 && c <= 0xbf) {
            skip = c & 0x1f;

        } else {
            size_t  hl, v, i;

            switch (c) {
            case 0xc4: case 0xc7: case 0xd9: hl = 1; break;    /* 8-bit len */
            case 0xc5: case 0xc8: case 0xda:
            case 0xdc: case 0xde: hl = 2; break;               /* 16-bit */
            case 0xc6: case 0xc9: case 0xdb:
            case 0xdd: case 0xdf: hl = 4; break;               /* 32-bit */
            case 0xcc: case 0xd0: skip = 1; hl = 0; break;
            case 0xcd: case 0xd1: skip = 2; hl = 0; break;
            case 0xca: case 0xce: case 0xd2: skip = 4; hl = 0; break;
            case 0xcb: case 0xcf: case 0xd3: skip = 8; hl = 0; break;
            case 0xd4: skip = 2; hl = 0; break;                /* fixext */
            case 0xd5: skip = 3; hl = 0; break;
            case 0xd6: skip = 5; hl = 0; break;
            case 0xd7: skip = 9; hl = 0; break;
            case 0xd8: skip = 17; hl = 0; break;
            default:
                *why = "reserved msgpack byte";
                return -1;
            }

            if (hl) {
                if (len - pos < hl) {
                    *why = "truncated";
                    return -1;
                }

                v = 0;
                for (i = 0; i < hl; i++) {
                    v = (v << 8) | p[pos + i];
                }
                pos += hl;

                switch (c) {
                case 0xdc: case 0xdd: n = v; break;
                case 0xde: case 0xdf: n = 2 * v; break;
                case 0xc7: case 0xc8: case 0xc9: skip = v + 1; break;
                default: skip = v;
                }
            }
        }

        if (skip > len - pos) {
            *why = "string, binary or number longer than the payload";
            return -1;
        }

        pos += skip;

        if (n == 0) {
            continue;
        }

        /* every element takes at least one byte */
        if (n > len - pos) {
            *why = "container declares more elements than bytes remain";
            return -1;
        }

        if (depth == LLMD_KV_MAX_DEPTH) {
            *why = "nesting too deep";
            return -1;
        }

        /* what msgpack-c will take from the zone for the elements (a map
           pair is one msgpack_object_kv, twice an object) */
        zb += n * sizeof(msgpack_object) + 8;
        need[++depth] = n;
    }

done:

    *ppos = pos;
    *zone_bytes = zb;

    return 0;
}


static int
llmd_kv_batch_fields(const msgpack_object *root, const msgpack_object **ts,
    const msgpack_object **events, const msgpack_object **rank,
    const char **why)
{
    uint32_t               i;
    const msgpack_object  *t, *e, *r;
    msgpack_object_kv     *kv;

    t = e = r = NULL;

    if (root->type == MSGPACK_OBJECT_ARRAY) {
        if (root->via.array.size < 2) {
            *why = "batch array shorter than 2";
            return -1;
        }

        t = &root->via.array.ptr[0];
        e = &root->via.array.ptr[1];
        if (root->via.array.size > 2) {
            r = &root->via.array.ptr[2];
        }

    } else if (root->type == MSGPACK_OBJECT_MAP) {
        for (i = 0; i < root->via.map.size; i++) {
            kv = &root->via.map.ptr[i];

            if (llmd_kv_str_is(&kv->key, "ts")) {
                t = &kv->val;
            } else if (llmd_kv_str_is(&kv->key, "events")) {
                e = &kv->val;
            } else if (llmd_kv_str_is(&kv->key, "data_parallel_rank")) {
                r = &kv->val;
            }
        }

        if (t == NULL || e == NULL) {
            *why = "batch map without ts or events";
            return -1;
        }

    } else {
        *why = "batch is neither an array nor a map";
        return -1;
    }

    if (t->type != MSGPACK_OBJECT_FLOAT64
        && t->type != MSGPACK_OBJECT_FLOAT32
        && t->type != MSGPACK_OBJECT_POSITIVE_INTEGER
        && t->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
    {
        *why = "ts is not a number";
        return -1;
    }

    if (e->type != MSGPACK_OBJECT_ARRAY) {
        *why = "events is not an array";
        return -1;
    }

    if (r != NULL && r->type != MSGPACK_OBJECT_NIL
        && r->type != MSGPACK_OBJECT_POSITIVE_INTEGER
        && r->type != MSGPACK_OBJECT_NEGATIVE_INTEGER)
    {
        *why = "data_parallel_rank is not an integer";
        return -1;
    }

    *ts = t;
    *events = e;
    *rank = r;

    return 0;
}


/* The event's type and its fields (NULL when absent); -1 if the event is
   not an array or map with a known tag. */
static int
llmd_kv_event_fields(const msgpack_object *o, llmd_kv_event_type_t *type,
    llmd_kv_fields_t *f)
{
    uint32_t               i, n;
    const char            *k;
    const msgpack_object  *tag, *a;
    msgpack_object_kv     *kv;

    memset(f, 0, sizeof(llmd_kv_fields_t));
    tag = NULL;

    if (o->type == MSGPACK_OBJECT_MAP) {
        for (i = 0; i < o->via.map.size; i++) {
            if (llmd_kv_str_is(&o->via.map.ptr[i].key, "type")) {
                tag = &o->via.map.ptr[i].val;
                break;
            }
        }

    } else if (o->type == MSGPACK_OBJECT_ARRAY && o->via.array.size > 0) {
        tag = &o->via.array.ptr[0];
    }

    if (tag == NULL) {
        return -1;
    }

    if (llmd_kv_str_is(tag, "BlockStored")) {
        *type = LLMD_KV_BLOCK_STORED;
    } else if (llmd_kv_str_is(tag, "BlockRemoved")) {
        *type = LLMD_KV_BLOCK_REMOVED;
    } else if (llmd_kv_str_is(tag, "AllBlocksCleared")) {
        *type = LLMD_KV_ALL_CLEARED;
    } else {
        return -1;
    }

    if (o->type == MSGPACK_OBJECT_ARRAY) {
        a = o->via.array.ptr;
        n = o->via.array.size;

        if (*type == LLMD_KV_BLOCK_STORED) {
            /* positions by field generation, see the spec's table 2.3 */
            f->hashes = n > 1 ? &a[1] : NULL;
            f->parent = n > 2 ? &a[2] : NULL;
            f->tokens = n > 3 ? &a[3] : NULL;
            f->block_size = n > 4 ? &a[4] : NULL;
            f->lora_id = n > 5 ? &a[5] : NULL;
            f->medium = n > 6 ? &a[6] : NULL;
            f->lora_name = n > 7 ? &a[7] : NULL;
            f->extra_keys = n > 8 ? &a[8] : NULL;
            f->spec_kind = n > 10 ? &a[10] : NULL;

        } else if (*type == LLMD_KV_BLOCK_REMOVED) {
            f->hashes = n > 1 ? &a[1] : NULL;
            f->medium = n > 2 ? &a[2] : NULL;
        }

        return 0;
    }

    for (i = 0; i < o->via.map.size; i++) {
        kv = &o->via.map.ptr[i];

        if (kv->key.type != MSGPACK_OBJECT_STR) {
            continue;
        }

        k = kv->key.via.str.ptr;

        /* by length first: most keys are then told by one memcmp */
        switch (kv->key.via.str.size) {

        case 6:
            if (memcmp(k, "medium", 6) == 0) {
                f->medium = &kv->val;
            }
            break;

        case 7:
            if (memcmp(k, "lora_id", 7) == 0) {
                f->lora_id = &kv->val;
            }
            break;

        case 9:
            if (memcmp(k, "token_ids", 9) == 0) {
                f->tokens = &kv->val;
            } else if (memcmp(k, "lora_name", 9) == 0) {
                f->lora_name = &kv->val;
            }
            break;

        case 10:
            if (memcmp(k, "block_size", 10) == 0) {
                f->block_size = &kv->val;
            } else if (memcmp(k, "extra_keys", 10) == 0) {
                f->extra_keys = &kv->val;
            }
            break;

        case 12:
            if (memcmp(k, "block_hashes", 12) == 0) {
                f->hashes = &kv->val;
            }
            break;

        case 17:
            if (memcmp(k, "parent_block_hash", 17) == 0) {
                f->parent = &kv->val;
            }
            break;

        case 18:
            if (memcmp(k, "kv_cache_spec_kind", 18) == 0) {
                f->spec_kind = &kv->val;
            }
            break;
        }
    }

    /* BlockRemoved has only hashes and medium */
    if (*type != LLMD_KV_BLOCK_STORED) {
        f->parent = f->tokens = f->block_size = f->lora_id = NULL;
        f->lora_name = f->extra_keys = f->spec_kind = NULL;
    }

    return 0;
}


void
llmd_kv_decoder_release(void)
{
    if (llmd_kv_cached_zone) {
        msgpack_zone_free(llmd_kv_cached_zone);
        llmd_kv_cached_zone = NULL;
        llmd_kv_cached_zone_size = 0;
    }

    free(llmd_kv_cached_scratch);
    llmd_kv_cached_scratch = NULL;
    llmd_kv_cached_scratch_size = 0;

    llmd_kv_rd_release();
}


/*
 * A zone whose first chunk holds the whole object tree (need bytes, from
 * the prescan), so that msgpack_zone_clear() keeps it for the next batch.
 */
static msgpack_zone *
llmd_kv_zone(size_t need)
{
    need += 4096;

    if (need > LLMD_KV_KEEP_BYTES) {
        return msgpack_zone_new(need);
    }

    if (llmd_kv_cached_zone != NULL && llmd_kv_cached_zone_size >= need) {
        return llmd_kv_cached_zone;
    }

    if (llmd_kv_cached_zone != NULL) {
        msgpack_zone_free(llmd_kv_cached_zone);
    }

    /* grow in steps, not to the byte */
    if (need < (256u << 10)) {
        need = 256u << 10;
    }
    need = need + need / 2 > LLMD_KV_KEEP_BYTES
           ? LLMD_KV_KEEP_BYTES : need + need / 2;

    llmd_kv_cached_zone = msgpack_zone_new(need);
    llmd_kv_cached_zone_size = llmd_kv_cached_zone ? need : 0;

    return llmd_kv_cached_zone;
}


/* Room for nh hashes and nt tokens (the largest event allowed needs
   4.5 MiB); kept between batches. */
static int
llmd_kv_scratch(llmd_kv_scratch_t *sc, size_t nh, size_t nt)
{
    size_t  need;

    if (nh < sc->hashes_cap) {
        nh = sc->hashes_cap;
    }
    if (nt < sc->tokens_cap) {
        nt = sc->tokens_cap;
    }

    need = nh * sizeof(uint64_t) + nt * sizeof(uint32_t) + 8;

    if (need > llmd_kv_cached_scratch_size) {
        free(llmd_kv_cached_scratch);
        llmd_kv_cached_scratch_size = 0;

        if (need < (64u << 10)) {
            need = 64u << 10;
        }

        llmd_kv_cached_scratch = malloc(need);
        if (llmd_kv_cached_scratch == NULL) {
            return -1;
        }

        llmd_kv_cached_scratch_size = need;
    }

    /* the tokens get all the room after the hashes */
    sc->hashes = llmd_kv_cached_scratch;
    sc->tokens = (uint32_t *) (sc->hashes + nh);
    sc->hashes_cap = nh;
    sc->tokens_cap = (llmd_kv_cached_scratch_size - nh * sizeof(uint64_t)
                      - 8) / sizeof(uint32_t);

    return 0;
}


/* Fills ev from one event object; -1 if it is to be skipped, -2 when out
   of memory. */
static int
llmd_kv_event_decode(const msgpack_object *o, llmd_kv_scratch_t *sc,
    llmd_kv_event_t *ev)
{
    int                    bad;
    uint32_t               i, n, nt;
    llmd_kv_fields_t       f;
    const msgpack_object  *t;

    memset(ev, 0, sizeof(llmd_kv_event_t));

    if (llmd_kv_event_fields(o, &ev->type, &f) != 0) {
        return -1;
    }

    if (ev->type == LLMD_KV_ALL_CLEARED) {
        return 0;
    }

    /* block_hashes: required */
    if (f.hashes == NULL || f.hashes->type != MSGPACK_OBJECT_ARRAY) {
        return -1;
    }

    n = f.hashes->via.array.size;
    if (n > LLMD_KV_MAX_HASHES) {
        return -1;
    }

    nt = 0;
    if (f.tokens != NULL && f.tokens->type == MSGPACK_OBJECT_ARRAY
        && ev->type == LLMD_KV_BLOCK_STORED)
    {
        nt = f.tokens->via.array.size;
        if (nt > LLMD_KV_MAX_TOKENS) {
            return -1;
        }
    }

    if ((n > sc->hashes_cap || nt > sc->tokens_cap)
        && llmd_kv_scratch(sc, n, nt) != 0)
    {
        return -2;
    }

    for (i = 0; i < n; i++) {
        if (llmd_kv_hash(&f.hashes->via.array.ptr[i], &sc->hashes[i]) != 0) {
            return -1;
        }
    }

    ev->hashes = sc->hashes;
    ev->nhashes = n;

    if (f.medium != NULL && f.medium->type != MSGPACK_OBJECT_NIL) {
        if (f.medium->type != MSGPACK_OBJECT_STR) {
            return -1;
        }

        ev->cpu = f.medium->via.str.size == 3
                  && strncasecmp(f.medium->via.str.ptr, "cpu", 3) == 0;
    }

    if (ev->type == LLMD_KV_BLOCK_REMOVED) {
        return 0;
    }

    /* BlockStored */

    if (f.parent != NULL && f.parent->type != MSGPACK_OBJECT_NIL) {
        if (llmd_kv_hash(f.parent, &ev->parent) != 0) {
            return -1;
        }
        ev->has_parent = 1;
    }

    if (f.tokens != NULL && f.tokens->type != MSGPACK_OBJECT_NIL) {
        if (f.tokens->type != MSGPACK_OBJECT_ARRAY) {
            return -1;
        }

        n = f.tokens->via.array.size;
        bad = 0;

        /* branch-free: one test for the whole array */
        for (i = 0; i < n; i++) {
            t = &f.tokens->via.array.ptr[i];
            bad |= (t->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                   | (t->via.u64 > UINT32_MAX);
            sc->tokens[i] = (uint32_t) t->via.u64;
        }

        if (bad) {
            return -1;
        }

        ev->tokens = sc->tokens;
        ev->ntokens = n;
    }

    if (f.block_size != NULL && f.block_size->type != MSGPACK_OBJECT_NIL) {
        if (f.block_size->type != MSGPACK_OBJECT_POSITIVE_INTEGER
            || f.block_size->via.u64 > UINT32_MAX)
        {
            return -1;
        }
        ev->block_size = (uint32_t) f.block_size->via.u64;
    }

    if (f.lora_name != NULL && f.lora_name->type != MSGPACK_OBJECT_NIL) {
        if (f.lora_name->type != MSGPACK_OBJECT_STR) {
            return -1;
        }

        /* an empty name means no LoRA, as in llm-d */
        if (f.lora_name->via.str.size > 0) {
            ev->lora_name = f.lora_name->via.str.ptr;
            ev->lora_name_len = f.lora_name->via.str.size;
        }
    }

    if (!llmd_kv_spec_kind_indexed(f.spec_kind)) {
        return -1;
    }

    return llmd_kv_extra_keys(&f, ev);
}


/* Engine hash normalisation (spec 2.4): uint as is, int cast, bin = last
   8 bytes big-endian, zero-padded on the left. */
static int
llmd_kv_hash(const msgpack_object *o, uint64_t *hash)
{
    uint32_t              i, from;
    uint64_t              v;
    const unsigned char  *p;

    switch (o->type) {

    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *hash = o->via.u64;
        return 0;

    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *hash = (uint64_t) o->via.i64;
        return 0;

    case MSGPACK_OBJECT_BIN:
        if (o->via.bin.size == 0) {
            return -1;
        }

        p = (const unsigned char *) o->via.bin.ptr;
        from = o->via.bin.size > 8 ? o->via.bin.size - 8 : 0;
        v = 0;

        for (i = from; i < o->via.bin.size; i++) {
            v = (v << 8) | p[i];
        }

        *hash = v;
        return 0;

    default:
        return -1;
    }
}


static int
llmd_kv_str_is(const msgpack_object *o, const char *s)
{
    size_t  n;

    n = strlen(s);

    return o->type == MSGPACK_OBJECT_STR && o->via.str.size == n
           && memcmp(o->via.str.ptr, s, n) == 0;
}


/*
 * llm-d indexes HMA group events only for full-attention-like groups;
 * other groups (sliding window, mamba, ...) hash different token spans.
 */
static int
llmd_kv_spec_kind_indexed(const msgpack_object *o)
{
    if (o == NULL || o->type == MSGPACK_OBJECT_NIL) {
        return 1;
    }

    return llmd_kv_str_is(o, "full_attention")
           || llmd_kv_str_is(o, "mla_attention")
           || llmd_kv_str_is(o, "sink_full_attention");
}


/*
 * extra_keys: one entry per block, nil or an array of the vLLM hash extra
 * keys (LoRA name or id, multimodal ids, cache salt, embeds digest).  The
 * LoRA name is already part of the root key; a single other string on the
 * first block of a prompt (parent nil) is the request's cache_salt and is
 * passed on; anything else (multimodal, embeds) cannot be keyed from text
 * tokens, so the event is flagged and the index does not store it.
 */
static int
llmd_kv_extra_keys(const llmd_kv_fields_t *f, llmd_kv_event_t *ev)
{
    uint32_t               b, i;
    const msgpack_object  *entry, *x;

    if (f->extra_keys == NULL || f->extra_keys->type == MSGPACK_OBJECT_NIL) {
        return 0;
    }

    if (f->extra_keys->type != MSGPACK_OBJECT_ARRAY) {
        return -1;
    }

    for (b = 0; b < f->extra_keys->via.array.size; b++) {
        entry = &f->extra_keys->via.array.ptr[b];

        if (entry->type == MSGPACK_OBJECT_NIL) {
            continue;
        }

        if (entry->type != MSGPACK_OBJECT_ARRAY) {
            ev->extra_unsupported = 1;
            continue;
        }

        for (i = 0; i < entry->via.array.size; i++) {
            x = &entry->via.array.ptr[i];

            if (x->type == MSGPACK_OBJECT_STR && ev->lora_name != NULL
                && x->via.str.size == ev->lora_name_len
                && memcmp(x->via.str.ptr, ev->lora_name,
                          ev->lora_name_len) == 0)
            {
                continue;
            }

            if (x->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                && f->lora_id != NULL
                && f->lora_id->type == MSGPACK_OBJECT_POSITIVE_INTEGER
                && x->via.u64 == f->lora_id->via.u64)
            {
                continue;
            }

            if (x->type == MSGPACK_OBJECT_STR && b == 0 && !ev->has_parent
                && ev->salt == NULL)
            {
                ev->salt = x->via.str.ptr;
                ev->salt_len = x->via.str.size;
                continue;
            }

            ev->extra_unsupported = 1;
        }
    }

    return 0;
}



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

/* bit i: byte b[i] == c, for i < 64 (64 readable bytes) */
static inline uint64_t
llmd_kv_bytes_eq(const unsigned char *b, __m128i c)
{
    int       k;
    uint64_t  m;
    __m128i   x;

    m = 0;

    for (k = 0; k < 4; k++) {
        x = _mm_loadu_si128((const __m128i *) (b + 16 * k));
        m |= (uint64_t) (uint32_t) _mm_movemask_epi8(_mm_cmpeq_epi8(x, c))
             << (16 * k);
    }

    return m;
}


/*
 * Token ids of the two encodings vLLM's arrays are made of (uint16 0xcd,
 * uint32 0xce) without a wait on memory from one token to the next: for
 * the 64 bytes at b, two masks of one bit per byte (the byte is 0xce; it
 * is neither 0xcd nor 0xce) are made first (SSE2). The chain from a token
 * to the next is then a few operations on the masks in registers (length
 * 3 + 2 x its 0xce bit); the values are read beside it. A token starting
 * at pos < 60 has all its bytes within the 64; then b moves on to the
 * next token and the masks are made again. On a token of another encoding
 * the reader stops (the caller reads it), and with fewer than 64 bytes
 * left. Returns the tokens read into out (at most n) and the position
 * after them in *pp: always a token start the one-chain loops reach.
 */
static size_t
llmd_kv_tok_sse2(const unsigned char **pp, const unsigned char *end,
    uint32_t *out, size_t n)
{
    size_t                i, pos, pos0, d;
    uint32_t              v;
    uint64_t              ce2, no, bad;
    const unsigned char  *b;

    b = *pp;
    i = 0;

    while (i < n && end - b >= 64) {
        /* a batch waited in a queue: its bytes are rarely cached */
        __builtin_prefetch(b + 512);

        ce2 = llmd_kv_bytes_eq(b, _mm_set1_epi8((char) 0xce));
        no = ~(ce2 | llmd_kv_bytes_eq(b, _mm_set1_epi8((char) 0xcd)));
        /* bit i + 1: b[i] is 0xce, so (ce2 >> pos) & 2 is the length
           beyond 3 (bit 63 is never needed: pos < 60) */
        ce2 <<= 1;
        pos = 0;

        /* four at a time while the fourth starts below 60 */
        while (pos < 45 && n - i >= 4) {
            pos0 = pos;

#define LLMD_KV_TOK_SSE2_ONE(k)                                               \
            bad |= no >> pos;                                                 \
            d = (ce2 >> pos) & 2;                                             \
            memcpy(&v, b + pos + 1, 4);                                       \
            out[i + k] = __builtin_bswap32(v) >> (16 - (d << 3));             \
            pos += 3 + d

            bad = 0;
            LLMD_KV_TOK_SSE2_ONE(0);
            LLMD_KV_TOK_SSE2_ONE(1);
            LLMD_KV_TOK_SSE2_ONE(2);
            LLMD_KV_TOK_SSE2_ONE(3);

#undef LLMD_KV_TOK_SSE2_ONE

            if (bad & 1) {
                /* one of the four has another encoding: one by one below
                   from the first (what was written is written again) */
                pos = pos0;
                break;
            }

            i += 4;
        }

        /* one at a time up to the end of the 64 bytes */
        while (pos < 60 && i < n) {
            if ((no >> pos) & 1) {
                *pp = b + pos;
                return i;
            }

            d = (ce2 >> pos) & 2;
            memcpy(&v, b + pos + 1, 4);
            out[i++] = __builtin_bswap32(v) >> (16 - (d << 3));
            pos += 3 + d;
        }

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
