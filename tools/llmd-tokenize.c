/*
 * llmd-tokenize: encodes text with a tokenizer.json, for the parity test
 * (t/040-tokenizer.t), the benchmark and by hand.
 *
 *   llmd-tokenize --tokenizer tokenizer.json [--config tokenizer_config.json]
 *                 [--add-special] [--jsonl | --hex]
 *                 [--cache BYTES [--stride N] [--warm] [--check]]
 *
 * Without --jsonl/--hex the whole of stdin is one text.  With --jsonl each
 * line is a JSON string; with --hex each line is the text's bytes in hex
 * (so that invalid UTF-8 can be given).  Prints one JSON array of ids per
 * text.
 *
 * --cache encodes through a prefix cache of BYTES (docs/tokenizer.md) that
 * lives for the whole run, remembering boundaries every N bytes (default
 * 256); --warm first encodes prefixes of each text cut at a few offsets
 * (also inside UTF-8 sequences and white-space runs) through the cache;
 * --check also encodes every text without the cache and fails on any
 * difference.  The cache's counters go to stderr at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>

#include "tokenizer/llmd_tokenizer.h"


#define MAX_INPUT  (512 * 1024 * 1024)


static void
usage(void)
{
    fprintf(stderr, "usage: llmd-tokenize --tokenizer tokenizer.json "
            "[--config tokenizer_config.json] [--add-special] "
            "[--jsonl | --hex] [--cache BYTES [--stride N] [--warm] "
            "[--check]]\n");
    exit(2);
}


typedef struct {
    const llmd_tokenizer_t  *tok;
    llmd_tok_cache_t        *cache;
    int                      warm;
    int                      check;
    unsigned                 flags;
    void                    *scratch;
    size_t                   scratch_cap;
    uint32_t                *ids;
    uint32_t                *ref;
    size_t                   ids_cap;
    unsigned long            checked;
} encoder_t;


static int
grow(encoder_t *e, size_t len)
{
    size_t  need;

    need = llmd_tokenizer_cached_scratch_size(e->tok, e->cache, len);
    if (need == 0) {
        fprintf(stderr, "llmd-tokenize: text too long\n");
        return -1;
    }
    if (need > e->scratch_cap) {
        free(e->scratch);
        e->scratch = malloc(need);
        e->scratch_cap = e->scratch ? need : 0;
    }
    need = llmd_tokenizer_max_ids(e->tok, len);
    if (need > e->ids_cap) {
        free(e->ids);
        free(e->ref);
        e->ids = malloc(need * sizeof(uint32_t));
        e->ref = malloc(need * sizeof(uint32_t));
        e->ids_cap = e->ids && e->ref ? need : 0;
    }
    if (e->scratch == NULL || e->ids_cap == 0) {
        fprintf(stderr, "llmd-tokenize: out of memory\n");
        return -1;
    }
    return 0;
}


/* Encodes (through the cache if any) into e->ids; --check compares. */
static long
encode(encoder_t *e, const char *text, size_t len)
{
    long  n, m;

    if (grow(e, len) != 0) {
        return -1;
    }
    n = llmd_tokenizer_encode_cached(e->tok, e->cache, text, len, e->flags,
                                     e->scratch, e->scratch_cap, e->ids,
                                     e->ids_cap);
    if (n < 0) {
        fprintf(stderr, "llmd-tokenize: encode failed: %ld\n", n);
        return -1;
    }
    if (e->check && e->cache != NULL) {
        m = llmd_tokenizer_encode(e->tok, text, len, e->flags, e->scratch,
                                  e->scratch_cap, e->ref, e->ids_cap);
        if (m != n || memcmp(e->ids, e->ref, n * sizeof(uint32_t)) != 0) {
            fprintf(stderr, "llmd-tokenize: the cached encoding of a text "
                    "of %zu bytes differs (%ld vs %ld ids)\n", len, n, m);
            return -1;
        }
        e->checked++;
    }
    return n;
}


static int
encode_print(encoder_t *e, const char *text, size_t len)
{
    size_t    i, k, cut;
    long      n;
    uint64_t  x;

    if (e->warm && e->cache != NULL && len > 1) {
        /* prefixes at fixed fractions and at pseudo-random offsets */
        x = len * 0x9e3779b97f4a7c15ull;
        for (k = 0; k < 8; k++) {
            if (k < 4) {
                cut = k == 3 ? len - 1 : len * (k + 1) / 4;
            } else {
                x = x * 6364136223846793005ull + 1442695040888963407ull;
                cut = (size_t) (x >> 33) % len;
            }
            if (encode(e, text, cut) < 0) {
                return -1;
            }
        }
    }
    n = encode(e, text, len);
    if (n < 0) {
        return -1;
    }
    putchar('[');
    for (i = 0; i < (size_t) n; i++) {
        printf(i ? ",%u" : "%u", (unsigned) e->ids[i]);
    }
    fputs("]\n", stdout);
    return 0;
}


static int
hex_value(int c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}


/* Decodes a hex line in place; returns the byte count or -1. */
static long
unhex(char *line, size_t len)
{
    size_t  i;
    int     hi, lo;

    if (len % 2 != 0) {
        return -1;
    }
    for (i = 0; i < len; i += 2) {
        hi = hex_value((unsigned char) line[i]);
        lo = hex_value((unsigned char) line[i + 1]);
        if (hi < 0 || lo < 0) {
            return -1;
        }
        line[i / 2] = (char) (hi * 16 + lo);
    }
    return (long) (len / 2);
}


int
main(int argc, char **argv)
{
    const char              *path, *config;
    char                    *input, *line, *nl, err[256];
    int                      i, mode, rc;
    unsigned                 flags;
    size_t                   len, cap, n, line_len, cache_bytes, stride;
    long                     m;
    cJSON                   *json;
    encoder_t                e;
    llmd_tokenizer_t        *tok;
    llmd_tok_cache_stats_t   st;

    path = NULL;
    config = NULL;
    flags = 0;
    mode = 0;
    cache_bytes = 0;
    stride = 0;
    memset(&e, 0, sizeof(e));
    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--tokenizer") == 0 && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--add-special") == 0) {
            flags |= LLMD_TOK_ADD_SPECIAL_TOKENS;
        } else if (strcmp(argv[i], "--jsonl") == 0) {
            mode = 1;
        } else if (strcmp(argv[i], "--hex") == 0) {
            mode = 2;
        } else if (strcmp(argv[i], "--cache") == 0 && i + 1 < argc) {
            cache_bytes = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--stride") == 0 && i + 1 < argc) {
            stride = strtoul(argv[++i], NULL, 10);
        } else if (strcmp(argv[i], "--warm") == 0) {
            e.warm = 1;
        } else if (strcmp(argv[i], "--check") == 0) {
            e.check = 1;
        } else {
            usage();
        }
    }
    if (path == NULL) {
        usage();
    }

    tok = llmd_tokenizer_load(path, config, err, sizeof(err));
    if (tok == NULL) {
        fprintf(stderr, "llmd-tokenize: %s\n", err);
        return 1;
    }
    e.tok = tok;
    e.flags = flags;
    if (cache_bytes) {
        e.cache = llmd_tok_cache_create(tok, cache_bytes, stride);
        if (e.cache == NULL) {
            fprintf(stderr, "llmd-tokenize: no cache of %zu bytes\n",
                    cache_bytes);
            return 1;
        }
    }

    cap = 1 << 16;
    len = 0;
    input = malloc(cap + 1);
    while (input != NULL) {
        n = fread(input + len, 1, cap - len, stdin);
        len += n;
        if (len < cap) {
            break;
        }
        if (cap >= MAX_INPUT) {
            fprintf(stderr, "llmd-tokenize: input too large\n");
            return 1;
        }
        cap *= 2;
        line = realloc(input, cap + 1);
        if (line == NULL) {
            free(input);
        }
        input = line;
    }
    if (input == NULL || ferror(stdin)) {
        fprintf(stderr, "llmd-tokenize: cannot read stdin\n");
        return 1;
    }
    input[len] = '\0';

    rc = 0;
    if (mode == 0) {
        rc = encode_print(&e, input, len);
    }
    for (line = input; mode != 0 && rc == 0 && line < input + len;
         line = nl + 1)
    {
        nl = memchr(line, '\n', input + len - line);
        if (nl == NULL) {
            nl = input + len;
        }
        line_len = nl - line;
        *nl = '\0';
        if (mode == 2) {
            m = unhex(line, line_len);
            if (m < 0) {
                fprintf(stderr, "llmd-tokenize: bad hex line\n");
                rc = -1;
                break;
            }
            rc = encode_print(&e, line, (size_t) m);
            continue;
        }
        json = cJSON_ParseWithLength(line, line_len);
        if (!cJSON_IsString(json)) {
            fprintf(stderr, "llmd-tokenize: a line is not a JSON string\n");
            cJSON_Delete(json);
            rc = -1;
            break;
        }
        rc = encode_print(&e, json->valuestring, strlen(json->valuestring));
        cJSON_Delete(json);
    }

    if (e.cache != NULL) {
        llmd_tok_cache_stats(e.cache, &st);
        fprintf(stderr, "cache: %lu lookups, %lu hits, %lu ids reused, "
                "%lu ids encoded, %lu entries stored, %lu bytes, "
                "%lu encodings checked\n", (unsigned long) st.lookups,
                (unsigned long) st.hits, (unsigned long) st.reused_ids,
                (unsigned long) st.encoded_ids, (unsigned long) st.stored,
                (unsigned long) st.bytes, e.checked);
        llmd_tok_cache_free(e.cache);
    }
    free(e.scratch);
    free(e.ids);
    free(e.ref);
    free(input);
    llmd_tokenizer_free(tok);
    if (fflush(stdout) != 0) {
        return 1;
    }
    (void) errno;
    return rc == 0 ? 0 : 1;
}
