/*
 * The direct KV-batch reader (llmd_kv_batch_decode) held to msgpack-c's
 * object tree (llmd_kv_batch_decode_tree, the reference): the same return
 * value, error message, batch info and events, field by field, on every
 * file of fuzz/corpus/kv (as a whole and as the fuzz target splits it),
 * and on LLMD_KV_DIFF_N (default 1,000,000) generated batches: vLLM-like
 * batches in both encodings with every field generation, random types in
 * every position, duplicate and unknown keys, all integer and string
 * widths, and a quarter of them mutated (bytes changed, cut, inserted).
 * It also checks that the direct reader took most well-formed batches
 * itself (llmd_kv_decoder_counts), or the comparison would prove little.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <cmocka.h>

#include <msgpack.h>

#include "kv/llmd_kv_events.h"
#include "test_data.h"
#include "kv_event_log.h"


static unsigned long  compared, accepted, rejected, events_seen;
static uint64_t       rs;


static void
compare(const void *buf, size_t len)
{
    int                    rc1, rc2;
    char                   e1[LLMD_ERRLEN], e2[LLMD_ERRLEN];
    static kv_event_log_t  l1, l2;
    llmd_kv_batch_info_t   i1, i2;

    l1.n = l2.n = 0;
    e1[0] = e2[0] = '\0';

    rc1 = llmd_kv_batch_decode(buf, len, kv_event_log_record, &l1, &i1, e1, sizeof(e1));
    kv_event_log_end(&l1);
    rc2 = llmd_kv_batch_decode_tree(buf, len, kv_event_log_record, &l2, &i2, e2,
                                    sizeof(e2));
    kv_event_log_end(&l2);

    if (rc1 != rc2 || strcmp(e1, e2) != 0 || l1.n != l2.n
        || (l1.n && memcmp(l1.p, l2.p, l1.n) != 0)
        || (rc1 == 0 && (i1.events != i2.events || i1.skipped != i2.skipped
                         || i1.dp_rank != i2.dp_rank
                         || memcmp(&i1.ts, &i2.ts, sizeof(double)) != 0)))
    {
        size_t  k;

        fprintf(stderr, "difference on %zu bytes: direct %d \"%s\" "
                "events %zu skipped %zu; tree %d \"%s\" events %zu "
                "skipped %zu\n", len, rc1, e1, i1.events, i1.skipped, rc2,
                e2, i2.events, i2.skipped);
        for (k = 0; k < len && k < 512; k++) {
            fprintf(stderr, "%02x", ((const unsigned char *) buf)[k]);
        }
        fprintf(stderr, "\n");
        fail();
    }

    compared++;
    if (rc1 == 0) {
        accepted++;
        events_seen += i1.events;
    } else {
        rejected++;
    }
}


/* fuzz/corpus/kv: the whole file, and the batch after the fuzz target's
   topic and sequence frames. */
static void
test_corpus(void **state)
{
    DIR            *d;
    FILE           *f;
    char            path[4096];
    size_t          n, off;
    unsigned        files;
    unsigned char  *buf;
    struct dirent  *de;

    (void) state;

    d = opendir(test_path("fuzz/corpus/kv"));
    assert_non_null(d);
    files = 0;
    buf = malloc(1 << 24);
    assert_non_null(buf);

    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.') {
            continue;
        }

        snprintf(path, sizeof(path), "%s/%s", test_path("fuzz/corpus/kv"),
                 de->d_name);
        f = fopen(path, "rb");
        assert_non_null(f);
        n = fread(buf, 1, 1 << 24, f);
        fclose(f);

        compare(buf, n);

        off = 0;
        if (off < n) {
            off += 1 + buf[off];
        }
        if (off < n) {
            off += 1 + (buf[off] & 15);
        }
        if (off <= n) {
            compare(buf + off, n - off);
        }

        files++;
    }

    closedir(d);
    free(buf);

    fprintf(stderr, "corpus: %u files\n", files);
    assert_true(files >= 40);
}


/* ---- generator ---- */

static uint64_t
rnd(void)
{
    rs ^= rs >> 12;
    rs ^= rs << 25;
    rs ^= rs >> 27;
    return rs * 2685821657736338717ULL;
}


static unsigned
pick(unsigned n)
{
    return (unsigned) (rnd() % n);
}


static void
raw(msgpack_sbuffer *sb, const void *d, size_t n)
{
    msgpack_sbuffer_write(sb, d, n);
}


static void
be(msgpack_sbuffer *sb, uint64_t v, unsigned n)
{
    unsigned char  b[8];
    unsigned       i;

    for (i = 0; i < n; i++) {
        b[i] = (unsigned char) (v >> (8 * (n - 1 - i)));
    }
    raw(sb, b, n);
}


/* A container or string header in any width that can hold n. */
static void
hdr(msgpack_sbuffer *sb, int kind, uint32_t n)
{
    /* kind 0 array, 1 map, 2 str, 3 bin */
    static const unsigned char  fix[] = { 0x90, 0x80, 0xa0, 0 };
    static const unsigned char  w8[] = { 0, 0, 0xd9, 0xc4 };
    static const unsigned char  w16[] = { 0xdc, 0xde, 0xda, 0xc5 };
    static const unsigned char  w32[] = { 0xdd, 0xdf, 0xdb, 0xc6 };
    unsigned                    c;

    c = pick(8);

    if (fix[kind] && n < (kind == 2 ? 32u : 16u) && c < 5) {
        unsigned char  b = (unsigned char) (fix[kind] | n);
        raw(sb, &b, 1);
    } else if (w8[kind] && n < 256 && c < 6) {
        raw(sb, &w8[kind], 1);
        be(sb, n, 1);
    } else if (n < 65536 && c < 7) {
        raw(sb, &w16[kind], 1);
        be(sb, n, 2);
    } else {
        raw(sb, &w32[kind], 1);
        be(sb, n, 4);
    }
}


static void
str(msgpack_sbuffer *sb, const char *s)
{
    hdr(sb, 2, (uint32_t) strlen(s));
    raw(sb, s, strlen(s));
}


/* An unsigned integer in any encoding that can hold it (signed ones too
   when the value fits). */
static void
uint_any(msgpack_sbuffer *sb, uint64_t v)
{
    unsigned char  c;

    for ( ;; ) {
        switch (pick(9)) {
        case 0: if (v < 128) { c = (unsigned char) v; raw(sb, &c, 1); return; }
                break;
        case 1: if (v < 256) { c = 0xcc; raw(sb, &c, 1); be(sb, v, 1); return; }
                break;
        case 2: if (v < 65536) { c = 0xcd; raw(sb, &c, 1); be(sb, v, 2);
                                 return; }
                break;
        case 3: if (v < 1ULL << 32) { c = 0xce; raw(sb, &c, 1); be(sb, v, 4);
                                      return; }
                break;
        case 4: c = 0xcf; raw(sb, &c, 1); be(sb, v, 8); return;
        case 5: if (v < 128) { c = 0xd0; raw(sb, &c, 1); be(sb, v, 1);
                               return; }
                break;
        case 6: if (v < 32768) { c = 0xd1; raw(sb, &c, 1); be(sb, v, 2);
                                 return; }
                break;
        case 7: if (v < 1ULL << 31) { c = 0xd2; raw(sb, &c, 1); be(sb, v, 4);
                                      return; }
                break;
        default: if (v < 1ULL << 63) { c = 0xd3; raw(sb, &c, 1);
                                       be(sb, v, 8); return; }
        }
    }
}


static void gen_any(msgpack_sbuffer *sb, msgpack_packer *pk, int depth);


static void
gen_scalar(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    static const char  *words[] = { "", "GPU", "cpu", "CPU", "type",
        "BlockStored", "BlockRemoved", "AllBlocksCleared", "ts", "events",
        "lora-a", "salt-1", "full_attention", "sliding_window",
        "token_ids", "block_hashes", "medium", "x\xff\x00y" };
    unsigned char       b[20];
    unsigned            n;

    switch (pick(12)) {
    case 0: msgpack_pack_nil(pk); break;
    case 1: if (pick(2)) msgpack_pack_true(pk); else msgpack_pack_false(pk);
            break;
    case 2: uint_any(sb, rnd() >> pick(64)); break;
    case 3: msgpack_pack_int64(pk, -(int64_t) (rnd() >> (1 + pick(63))) - 1);
            break;
    case 4: b[0] = (unsigned char) (0xe0 | pick(32)); raw(sb, b, 1); break;
    case 5: msgpack_pack_float(pk, (float) (rnd() % 1000) / 3); break;
    case 6: msgpack_pack_double(pk, (double) rnd() / 7); break;
    case 7: str(sb, words[pick(sizeof(words) / sizeof(words[0]))]); break;
    case 8:
        n = pick(13);
        hdr(sb, 3, n);
        for (unsigned i = 0; i < n; i++) { b[i] = (unsigned char) rnd(); }
        raw(sb, b, n);
        break;
    case 9:
        /* ext: fixext or ext8 */
        n = pick(2);
        if (n) {
            b[0] = (unsigned char) (0xd4 + pick(5));
            b[1] = (unsigned char) rnd();
            raw(sb, b, 2);
            n = 1u << (b[0] - 0xd4);
            for (unsigned i = 0; i < n; i++) { b[i] = (unsigned char) rnd(); }
            raw(sb, b, n);
        } else {
            n = pick(6);
            b[0] = 0xc7; b[1] = (unsigned char) n; b[2] = 7;
            raw(sb, b, 3);
            for (unsigned i = 0; i < n; i++) { b[i] = (unsigned char) rnd(); }
            raw(sb, b, n);
        }
        break;
    case 10: {
        /* a 16/32-bit signed negative */
        int64_t  v = -(int64_t) pick(70000) - 1;
        if (v >= -32768) { b[0] = 0xd1; raw(sb, b, 1); be(sb, (uint64_t) v, 2); }
        else { b[0] = 0xd2; raw(sb, b, 1); be(sb, (uint64_t) v, 4); }
        break;
    }
    default: uint_any(sb, pick(200000)); break;
    }
}


static void
gen_any(msgpack_sbuffer *sb, msgpack_packer *pk, int depth)
{
    unsigned  n, i;

    if (depth > 4 || pick(3)) {
        gen_scalar(sb, pk);
        return;
    }

    n = pick(5);

    if (pick(2)) {
        hdr(sb, 0, n);
        for (i = 0; i < n; i++) {
            gen_any(sb, pk, depth + 1);
        }
    } else {
        hdr(sb, 1, n);
        for (i = 0; i < 2 * n; i++) {
            gen_any(sb, pk, depth + 1);
        }
    }
}


static void
gen_hash(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    unsigned char  b[12];
    unsigned       n, i;

    switch (pick(10)) {
    case 0: msgpack_pack_int64(pk, -(int64_t) (rnd() >> 2) - 1); break;
    case 1:
        n = pick(12);
        hdr(sb, 3, n);
        for (i = 0; i < n; i++) { b[i] = (unsigned char) rnd(); }
        raw(sb, b, n);
        break;
    case 2: if (pick(4) == 0) { gen_any(sb, pk, 3); break; }
            /* fall through */
    case 3: uint_any(sb, rnd() >> pick(64)); break;
    default: b[0] = 0xcf; raw(sb, b, 1); be(sb, rnd(), 8); break;
    }
}


static void
gen_field(msgpack_sbuffer *sb, msgpack_packer *pk, int field, int nblocks)
{
    unsigned  i, n, range, odd;

    if (pick(12) == 0) {
        gen_any(sb, pk, 3);
        return;
    }

    switch (field) {

    case 1:                                       /* block_hashes */
        n = nblocks;
        hdr(sb, 0, n);
        for (i = 0; i < n; i++) {
            gen_hash(sb, pk);
        }
        break;

    case 2:                                       /* parent */
        if (pick(2)) msgpack_pack_nil(pk); else gen_hash(sb, pk);
        break;

    case 3:                                       /* token_ids */
        if (pick(10) == 0) { msgpack_pack_nil(pk); break; }
        n = pick(4) ? (unsigned) nblocks * (pick(3) ? 4 : 16) : pick(70);
        /* long arrays: the two-chain reader (parts of 64 tokens); ids
           of one length, of two, or all, and often no odd encoding */
        if (pick(5) == 0) {
            n = 100 + pick(600);
            range = pick(5);
            odd = pick(3) ? 0 : 1 + pick(100);
        } else {
            range = 0;
            odd = 300;
        }
        hdr(sb, 0, n);
        for (i = 0; i < n; i++) {
            if (odd && pick(odd) == 0) {
                if (pick(2)) gen_scalar(sb, pk);
                else uint_any(sb, pick(3) ? pick(151936) : rnd() >> pick(64));
            } else if (pick(4) || odd == 0) {
                msgpack_pack_uint32(pk, (uint32_t)
                    (range == 1 ? pick(128) : range == 2 ? pick(65536)
                     : range == 3 ? (pick(2) ? pick(256) : 65536 + pick(86400))
                     : range == 4 ? 256 + pick(65280) : pick(151936)));
            } else {
                uint_any(sb, pick(3) ? pick(151936) : rnd() >> pick(64));
            }
        }
        break;

    case 4:                                       /* block_size */
        if (pick(3) == 0) msgpack_pack_nil(pk);
        else uint_any(sb, pick(8) ? (pick(2) ? 4 : 16) : rnd() >> pick(64));
        break;

    case 5:                                       /* lora_id */
        if (pick(2)) msgpack_pack_nil(pk); else uint_any(sb, pick(5));
        break;

    case 6:                                       /* medium */
        switch (pick(5)) {
        case 0: msgpack_pack_nil(pk); break;
        case 1: str(sb, "cpu"); break;
        case 2: str(sb, "CPU"); break;
        case 3: str(sb, "cpX"); break;
        default: str(sb, "GPU");
        }
        break;

    case 7:                                       /* lora_name */
        switch (pick(4)) {
        case 0: msgpack_pack_nil(pk); break;
        case 1: str(sb, ""); break;
        default: str(sb, pick(2) ? "lora-a" : "lora-b");
        }
        break;

    case 8:                                       /* extra_keys */
        if (pick(3) == 0) { msgpack_pack_nil(pk); break; }
        n = pick(4);
        hdr(sb, 0, n);
        for (i = 0; i < n; i++) {
            unsigned  k, m;

            if (pick(3) == 0) {
                msgpack_pack_nil(pk);
                continue;
            }
            if (pick(10) == 0) {
                gen_scalar(sb, pk);
                continue;
            }
            m = pick(4);
            hdr(sb, 0, m);
            for (k = 0; k < m; k++) {
                switch (pick(6)) {
                case 0: str(sb, "lora-a"); break;
                case 1: str(sb, pick(2) ? "salt-1" : "salt-2"); break;
                case 2: uint_any(sb, pick(5)); break;
                case 3: msgpack_pack_array(pk, 2); str(sb, "mm");
                        uint_any(sb, pick(9)); break;
                default: gen_scalar(sb, pk);
                }
            }
        }
        break;

    case 10:                                      /* kv_cache_spec_kind */
        switch (pick(5)) {
        case 0: msgpack_pack_nil(pk); break;
        case 1: str(sb, "full_attention"); break;
        case 2: str(sb, "mla_attention"); break;
        case 3: str(sb, "sink_full_attention"); break;
        default: str(sb, "sliding_window");
        }
        break;

    default:
        gen_scalar(sb, pk);
    }
}


static const char  *field_names[] = { "type", "block_hashes",
    "parent_block_hash", "token_ids", "block_size", "lora_id", "medium",
    "lora_name", "extra_keys", "group_idx", "kv_cache_spec_kind", "zz" };


static void
gen_tag(msgpack_sbuffer *sb, msgpack_packer *pk, int *kind)
{
    *kind = pick(20) == 0 ? 3 : (pick(10) < 7 ? 0 : 1 + pick(2));

    switch (*kind) {
    case 0: str(sb, "BlockStored"); break;
    case 1: str(sb, "BlockRemoved"); break;
    case 2: str(sb, "AllBlocksCleared"); break;
    default:
        if (pick(2)) str(sb, "BlockStoredX"); else gen_scalar(sb, pk);
    }
}


static void
gen_event(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    int       kind, nblocks;
    unsigned  n, i, f;

    nblocks = (int) pick(5);

    switch (pick(10)) {

    case 0:
        gen_any(sb, pk, 2);
        return;

    case 1: case 2: case 3:
        /* map form: some keys, any order, sometimes twice, unknown ones */
        n = pick(12);
        hdr(sb, 1, n);
        for (i = 0; i < n; i++) {
            f = i == 0 && pick(4) ? 0 : pick(12);
            if (pick(30) == 0) {
                gen_scalar(sb, pk);             /* a key of another type */
            } else {
                str(sb, field_names[f]);
            }
            if (f == 0) {
                gen_tag(sb, pk, &kind);
            } else {
                gen_field(sb, pk, (int) f, nblocks);
            }
        }
        return;

    default:
        /* array form: a field generation of 1 to 12 elements */
        n = pick(8) ? 6 + pick(7) : pick(6);
        hdr(sb, 0, n);
        if (n == 0) {
            return;
        }
        gen_tag(sb, pk, &kind);
        for (i = 1; i < n; i++) {
            f = kind == 1 ? (i == 1 ? 1 : i == 2 ? 6 : 11) : i;
            gen_field(sb, pk, (int) f, nblocks);
        }
    }
}


static void
gen_batch(msgpack_sbuffer *sb, msgpack_packer *pk)
{
    unsigned  n, i, nev, k;

    nev = pick(6);

    switch (pick(20)) {

    case 0:
        gen_any(sb, pk, 0);
        return;

    case 1: case 2: case 3: case 4:
        /* map form */
        n = pick(5);
        hdr(sb, 1, n);
        for (i = 0; i < n; i++) {
            k = pick(5);
            str(sb, k == 0 ? "ts" : k == 1 ? "data_parallel_rank"
                    : k == 2 ? "zz" : "events");
            if (k == 0) {
                if (pick(10)) msgpack_pack_double(pk, 1.5); else gen_scalar(sb, pk);
            } else if (k == 1 || k == 2) {
                gen_scalar(sb, pk);
            } else if (pick(15) == 0) {
                gen_scalar(sb, pk);
            } else {
                hdr(sb, 0, nev);
                for (k = 0; k < nev; k++) {
                    gen_event(sb, pk);
                }
            }
        }
        return;

    default:
        n = pick(10) ? 3 : pick(6);
        hdr(sb, 0, n);
        for (i = 0; i < n; i++) {
            if (i == 0) {
                switch (pick(8)) {
                case 0: gen_scalar(sb, pk); break;
                case 1: uint_any(sb, pick(100)); break;
                case 2: msgpack_pack_float(pk, 2.5f); break;
                default: msgpack_pack_double(pk, 1760000000.25);
                }
            } else if (i == 1) {
                if (pick(20) == 0) {
                    gen_any(sb, pk, 1);
                    continue;
                }
                hdr(sb, 0, nev);
                for (k = 0; k < nev; k++) {
                    gen_event(sb, pk);
                }
            } else if (i == 2 && pick(4)) {
                if (pick(2)) msgpack_pack_nil(pk); else uint_any(sb, pick(3));
            } else {
                gen_scalar(sb, pk);
            }
        }
    }
}


static void
mutate(msgpack_sbuffer *sb)
{
    size_t         at;
    unsigned char  b;

    if (sb->size == 0) {
        return;
    }

    at = rnd() % sb->size;

    switch (pick(4)) {
    case 0:
        sb->data[at] = (char) rnd();
        break;
    case 1:
        sb->size = at;                                /* cut */
        break;
    case 2:
        b = (unsigned char) rnd();
        msgpack_sbuffer_write(sb, (const char *) &b, 1);
        memmove(sb->data + at + 1, sb->data + at, sb->size - at - 1);
        sb->data[at] = (char) b;
        break;
    default:
        sb->data[at] = (char) (sb->data[at] ^ (1 << pick(8)));
    }
}


static void
test_generated(void **state)
{
    const char       *env;
    unsigned long     n, i, acc0, direct0, tree0;
    size_t            direct, tree;
    msgpack_sbuffer   sb;
    msgpack_packer    pk;

    (void) state;

    env = getenv("LLMD_KV_DIFF_N");
    n = env ? strtoul(env, NULL, 10) : 1000000;

#if defined(__SANITIZE_ADDRESS__)
    if (env == NULL) {
        n = 100000;
    }
#endif

    rs = env && getenv("LLMD_KV_DIFF_SEED")
         ? strtoull(getenv("LLMD_KV_DIFF_SEED"), NULL, 10) : 0x5eed;
    if (rs == 0) {
        rs = 1;
    }

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

    acc0 = accepted;
    compared = rejected = events_seen = 0;
    llmd_kv_decoder_counts(&direct, &tree);
    direct0 = direct;
    tree0 = tree;

    for (i = 0; i < n; i++) {
        sb.size = 0;
        gen_batch(&sb, &pk);

        if (pick(4) == 0) {
            mutate(&sb);
            if (pick(3) == 0) {
                mutate(&sb);
            }
        }

        compare(sb.data, sb.size);
    }

    llmd_kv_decoder_counts(&direct, &tree);

    fprintf(stderr, "generated: %lu batches, %lu accepted (%lu events), "
            "%lu rejected; direct reader %lu, tree fallback %lu\n", n,
            accepted - acc0, events_seen, rejected,
            (unsigned long) (direct - direct0),
            (unsigned long) (tree - tree0));

    /* the mix exercises both outcomes, and the direct reader does most */
    assert_true(accepted - acc0 > n / 4);
    assert_true(rejected > n / 10);
    assert_true(direct - direct0 > accepted - acc0 - (accepted - acc0) / 4);

    msgpack_sbuffer_destroy(&sb);
}


/* Realistic vLLM batches: the direct reader must take them all. */
static void
test_vllm_batches_direct(void **state)
{
    int               e, k;
    size_t            direct0, tree0, direct, tree;
    msgpack_sbuffer   sb;
    msgpack_packer    pk;

    (void) state;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);

    msgpack_pack_array(&pk, 3);
    msgpack_pack_double(&pk, 1760000000.5);
    msgpack_pack_array(&pk, 50);
    for (e = 0; e < 50; e++) {
        msgpack_pack_array(&pk, 9);
        str(&sb, "BlockStored");
        msgpack_pack_array(&pk, 4);
        for (k = 0; k < 4; k++) {
            msgpack_pack_uint64(&pk, rnd());
        }
        if (e % 2) msgpack_pack_uint64(&pk, rnd()); else msgpack_pack_nil(&pk);
        msgpack_pack_array(&pk, 256);
        for (k = 0; k < 256; k++) {
            msgpack_pack_uint32(&pk, (uint32_t) pick(151936));
        }
        msgpack_pack_uint32(&pk, 64);
        msgpack_pack_nil(&pk);
        str(&sb, "GPU");
        msgpack_pack_nil(&pk);
        msgpack_pack_nil(&pk);
    }
    msgpack_pack_int(&pk, 0);

    llmd_kv_decoder_counts(&direct0, &tree0);
    compare(sb.data, sb.size);
    llmd_kv_decoder_counts(&direct, &tree);
    assert_int_equal(direct - direct0, 1);
    /* compare() also ran the tree decoder once itself */
    assert_int_equal(tree - tree0, 0);

    msgpack_sbuffer_destroy(&sb);
}


/*
 * The SSE2 token reader works on 64-byte windows: one id of another
 * encoding (fixint, uint8, uint64, negative, nil) at every position of
 * the first 200 of 300 ids, and arrays of 1-500 ids of uint16 and uint32;
 * with no event after the array's (its last ids are the scalar loops'),
 * or one of 0-39 ids (the array ends inside a window). Each batch is read
 * by both decoders; the direct reader must take them all.
 */
static void
test_token_positions(void **state)
{
    unsigned          odd, pos, n, k, tail;
    size_t            direct0, tree0, direct, tree;
    msgpack_sbuffer   sb;
    msgpack_packer    pk;

    (void) state;

    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    llmd_kv_decoder_counts(&direct0, &tree0);

    for (odd = 0; odd < 6; odd++) {
        for (pos = 0; pos < 200; pos++) {
            for (tail = 0; tail < 3; tail++) {
                n = odd == 5 ? 1 + pos + 150 * tail : 300;
                sb.size = 0;
                msgpack_pack_array(&pk, 3);
                msgpack_pack_double(&pk, 1760000000.5);
                msgpack_pack_array(&pk, tail ? 2 : 1);
                msgpack_pack_array(&pk, 7);
                str(&sb, "BlockStored");
                msgpack_pack_array(&pk, 1);
                msgpack_pack_uint64(&pk, rnd());
                msgpack_pack_nil(&pk);
                msgpack_pack_array(&pk, n);
                for (k = 0; k < n; k++) {
                    if (k != pos || odd == 5) {
                        msgpack_pack_uint32(&pk, (uint32_t)
                            (tail == 1 ? 256 + pick(65280)
                                       : tail == 2 ? 65536 + pick(86400)
                                                   : pick(151936)));
                        continue;
                    }
                    switch (odd) {
                    case 0: msgpack_pack_uint32(&pk, pick(128)); break;
                    case 1: msgpack_pack_uint32(&pk, 128 + pick(128)); break;
                    case 2: raw(&sb, "\xcf\0\0\0\0\0\0\x01\x02", 9);
                            break;
                    case 3: msgpack_pack_int32(&pk, -1 - (int) pick(9));
                            break;
                    default: msgpack_pack_nil(&pk);
                    }
                }
                /* block_size as uint16 or uint32: a reader going on past
                   the array would take it for an id */
                if (pos % 2) {
                    raw(&sb, "\xcd\0\x40", 3);
                } else {
                    raw(&sb, "\xce\0\0\0\x40", 5);
                }
                msgpack_pack_nil(&pk);
                str(&sb, "GPU");
                if (tail) {
                    msgpack_pack_array(&pk, 7);
                    str(&sb, "BlockStored");
                    msgpack_pack_array(&pk, 1);
                    msgpack_pack_uint64(&pk, rnd());
                    msgpack_pack_nil(&pk);
                    msgpack_pack_array(&pk, pos % 40);
                    for (k = 0; k < pos % 40; k++) {
                        msgpack_pack_uint32(&pk, (uint32_t) pick(151936));
                    }
                    msgpack_pack_uint32(&pk, 64);
                    msgpack_pack_nil(&pk);
                    str(&sb, "GPU");
                }
                msgpack_pack_int(&pk, 0);
                compare(sb.data, sb.size);
            }
        }
    }

    llmd_kv_decoder_counts(&direct, &tree);
    assert_int_equal(direct - direct0, 6 * 200 * 3);

    msgpack_sbuffer_destroy(&sb);
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vllm_batches_direct),
        cmocka_unit_test(test_token_positions),
        cmocka_unit_test(test_corpus),
        cmocka_unit_test(test_generated),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
