/*
 * llmd-tokenize: encodes text with a tokenizer.json, for the parity test
 * (t/040-tokenizer.t), the benchmark and by hand.
 *
 *   llmd-tokenize --tokenizer tokenizer.json [--config tokenizer_config.json]
 *                 [--add-special] [--jsonl | --hex]
 *
 * Without --jsonl/--hex the whole of stdin is one text.  With --jsonl each
 * line is a JSON string; with --hex each line is the text's bytes in hex
 * (so that invalid UTF-8 can be given).  Prints one JSON array of ids per
 * text.
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
            "[--jsonl | --hex]\n");
    exit(2);
}


static int
encode_print(const llmd_tokenizer_t *tok, const char *text, size_t len,
    unsigned flags, void **scratch, size_t *scratch_cap, uint32_t **ids,
    size_t *ids_cap)
{
    size_t  need, i;
    long    n;

    need = llmd_tokenizer_scratch_size(tok, len);
    if (need == 0) {
        fprintf(stderr, "llmd-tokenize: text too long\n");
        return -1;
    }
    if (need > *scratch_cap) {
        free(*scratch);
        *scratch = malloc(need);
        *scratch_cap = *scratch ? need : 0;
    }
    need = llmd_tokenizer_max_ids(tok, len);
    if (need > *ids_cap) {
        free(*ids);
        *ids = malloc(need * sizeof(uint32_t));
        *ids_cap = *ids ? need : 0;
    }
    if (*scratch == NULL || *ids == NULL) {
        fprintf(stderr, "llmd-tokenize: out of memory\n");
        return -1;
    }
    n = llmd_tokenizer_encode(tok, text, len, flags, *scratch, *scratch_cap,
                              *ids, *ids_cap);
    if (n < 0) {
        fprintf(stderr, "llmd-tokenize: encode failed: %ld\n", n);
        return -1;
    }
    putchar('[');
    for (i = 0; i < (size_t) n; i++) {
        printf(i ? ",%u" : "%u", (unsigned) (*ids)[i]);
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
    const char        *path, *config;
    char              *input, *line, *nl, err[256];
    int                i, mode, rc;
    unsigned           flags;
    size_t             len, cap, n, scratch_cap, ids_cap, line_len;
    long               m;
    void              *scratch;
    uint32_t          *ids;
    cJSON             *json;
    llmd_tokenizer_t  *tok;

    path = NULL;
    config = NULL;
    flags = 0;
    mode = 0;
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

    scratch = NULL;
    ids = NULL;
    scratch_cap = 0;
    ids_cap = 0;
    rc = 0;
    if (mode == 0) {
        rc = encode_print(tok, input, len, flags, &scratch, &scratch_cap,
                          &ids, &ids_cap);
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
            rc = encode_print(tok, line, (size_t) m, flags, &scratch,
                              &scratch_cap, &ids, &ids_cap);
            continue;
        }
        json = cJSON_ParseWithLength(line, line_len);
        if (!cJSON_IsString(json)) {
            fprintf(stderr, "llmd-tokenize: a line is not a JSON string\n");
            cJSON_Delete(json);
            rc = -1;
            break;
        }
        rc = encode_print(tok, json->valuestring, strlen(json->valuestring),
                          flags, &scratch, &scratch_cap, &ids, &ids_cap);
        cJSON_Delete(json);
    }

    free(scratch);
    free(ids);
    free(input);
    llmd_tokenizer_free(tok);
    if (fflush(stdout) != 0) {
        return 1;
    }
    (void) errno;
    return rc == 0 ? 0 : 1;
}
