/*
 * vLLM KV-event batches decoded through msgpack-c's object tree (see
 * llmd_kv_events.h, docs/kv-events.md): the reference of the direct
 * reader (llmd_kv_reader.c), which hands it what it does not take itself.
 * Also the frames' topic and sequence number.
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

#include "kv/llmd_kv_events.h"
#include "kv/llmd_kv_decode_int.h"

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
 * Memory kept between batches: the zone's one chunk and the event scratch
 * (LLMD_KV_KEEP_BYTES, llmd_kv_decode_int.h).
 */
static __thread msgpack_zone  *llmd_kv_cached_zone;
static __thread size_t         llmd_kv_cached_zone_size;
static __thread void          *llmd_kv_cached_scratch;
static __thread size_t         llmd_kv_cached_scratch_size;


static int llmd_kv_prescan(const unsigned char *p, size_t len,
    size_t *zone_bytes, const char **why);

const uint8_t  llmd_kv_fixed[256] = {
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
int
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


/* The tree decoder's part of llmd_kv_decoder_release (llmd_kv_reader.c). */
void
llmd_kv_tree_release(void)
{
    if (llmd_kv_cached_zone) {
        msgpack_zone_free(llmd_kv_cached_zone);
        llmd_kv_cached_zone = NULL;
        llmd_kv_cached_zone_size = 0;
    }

    free(llmd_kv_cached_scratch);
    llmd_kv_cached_scratch = NULL;
    llmd_kv_cached_scratch_size = 0;
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
