/*
 * llmd-chat-render: renders OpenAI chat messages with the native chat
 * template renderers (src/tokenizer/llmd_chat_*.c), for the parity test
 * t/045-chat-template.t and for looking at what a request becomes.
 *
 *   llmd-chat-render --config tokenizer_config.json
 *       [--no-generation-prompt] [--kwargs JSON]
 *   llmd-chat-render --config tokenizer_config.json --hash
 *
 * Reads one JSON array of messages per line on stdin; prints per line the
 * rendered prompt as a JSON string, or "ERROR <code> <message as JSON>".
 * --hash prints the family, the XXH64 and the length of the config's
 * chat_template (the key of the table of known templates).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "tokenizer/llmd_chat_template.h"


static int
print_hash(const char *path)
{
    FILE    *f;
    char    *buf = NULL, err[512];
    size_t   n = 0;
    cJSON   *root, *tpl;
    llmd_chat_template_t  *t;

    f = fopen(path, "rb");
    if (f == NULL) {
        perror(path);
        return 1;
    }
    if (getdelim(&buf, &n, '\0', f) < 0) {
        fprintf(stderr, "%s: empty\n", path);
        fclose(f);
        free(buf);
        return 1;
    }
    fclose(f);
    root = cJSON_Parse(buf);
    free(buf);
    tpl = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (!cJSON_IsString(tpl)) {
        fprintf(stderr, "%s: no chat_template string\n", path);
        cJSON_Delete(root);
        return 1;
    }
    t = llmd_chat_template_load(path, err, sizeof(err));
    printf("%s xxh64 0x%016llxULL len %zu\n",
           t ? llmd_chat_template_variant(t) : "unknown",
           (unsigned long long) XXH64(tpl->valuestring,
                                      strlen(tpl->valuestring), 0),
           strlen(tpl->valuestring));
    llmd_chat_template_free(t);
    cJSON_Delete(root);
    return 0;
}


static void
print_error(long rc, const char *msg)
{
    cJSON  *s = cJSON_CreateString(msg);
    char   *j = s ? cJSON_PrintUnformatted(s) : NULL;

    printf("ERROR %ld %s\n", rc, j ? j : "\"\"");
    free(j);
    cJSON_Delete(s);
}


int
main(int argc, char **argv)
{
    const char            *config = NULL, *kwargs_text = NULL;
    int                    gen = 1, hash = 0, i, status = 0;
    char                  *line = NULL, *buf, *grown, *j, err[512];
    size_t                 linecap = 0, cap = 65536, needed;
    ssize_t                len;
    long                   rc;
    cJSON                 *messages, *kwargs = NULL, *s;
    llmd_chat_template_t  *t;

    for (i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--config") == 0 && i + 1 < argc) {
            config = argv[++i];
        } else if (strcmp(argv[i], "--kwargs") == 0 && i + 1 < argc) {
            kwargs_text = argv[++i];
        } else if (strcmp(argv[i], "--no-generation-prompt") == 0) {
            gen = 0;
        } else if (strcmp(argv[i], "--hash") == 0) {
            hash = 1;
        } else {
            config = NULL;
            break;
        }
    }
    if (config == NULL) {
        fprintf(stderr, "usage: llmd-chat-render --config "
                "tokenizer_config.json [--no-generation-prompt] "
                "[--kwargs JSON] [--hash] < messages.jsonl\n");
        return 2;
    }
    if (hash) {
        return print_hash(config);
    }
    if (kwargs_text != NULL) {
        kwargs = cJSON_Parse(kwargs_text);
        if (kwargs == NULL) {
            fprintf(stderr, "--kwargs: not JSON\n");
            return 2;
        }
    }
    t = llmd_chat_template_load(config, err, sizeof(err));
    if (t == NULL) {
        fprintf(stderr, "llmd-chat-render: %s\n", err);
        cJSON_Delete(kwargs);
        return 1;
    }
    buf = malloc(cap);
    if (buf == NULL) {
        return 1;
    }

    while ((len = getline(&line, &linecap, stdin)) >= 0) {
        messages = cJSON_ParseWithLength(line, (size_t) len);
        if (messages == NULL) {
            print_error(LLMD_CHAT_ERR_INVALID, "not JSON");
            continue;
        }
        for (;;) {
            rc = llmd_chat_template_render_kw(t, messages, kwargs, gen, buf,
                                              cap, &needed, err,
                                              sizeof(err));
            if (rc != LLMD_CHAT_ERR_CAPACITY) {
                break;
            }
            grown = realloc(buf, needed + 1);
            if (grown == NULL) {
                status = 1;
                break;
            }
            buf = grown;
            cap = needed + 1;
        }
        cJSON_Delete(messages);
        if (rc < 0) {
            print_error(rc, err);
            continue;
        }
        buf[rc] = '\0';
        s = cJSON_CreateString(buf);
        j = s ? cJSON_PrintUnformatted(s) : NULL;
        if (j == NULL) {
            status = 1;
        } else {
            printf("%s\n", j);
        }
        free(j);
        cJSON_Delete(s);
    }
    free(line);
    free(buf);
    cJSON_Delete(kwargs);
    llmd_chat_template_free(t);
    return status;
}
