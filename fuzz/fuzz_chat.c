/*
 * Fuzz target: chat templates (tokenizer/llmd_chat_template.h).  The input
 * is parsed as JSON: an object gives "messages", "chat_template_kwargs"
 * and "add_generation_prompt" as a chat request does, any other value is
 * the messages; they are rendered (llmd_chat_template_render_kw) with
 * every template of t/data/chat/ (its .json files), loaded once.  The raw
 * input is also loaded as a tokenizer_config.json
 * (llmd_chat_template_load_json) and, when recognised, renders too.
 * Each rendering is done into a small buffer, then into exactly the room
 * it needs.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tokenizer/llmd_chat_template.h"
#include "fuzz_common.h"


#define FUZZ_TEMPLATES  8
#define FUZZ_SMALL      256


static int fuzz_chat_json_file(const struct dirent *d);
static void fuzz_chat_render(const llmd_chat_template_t *t,
    const cJSON *messages, const cJSON *kwargs, int gen);


static llmd_chat_template_t  *templates[FUZZ_TEMPLATES];
static size_t                 ntemplates;


int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
    int              i, n;
    char             dir[4096], name[512], err[512];
    struct dirent  **names;

    snprintf(dir, sizeof(dir), "%s", fuzz_data_path("chat"));

    /* sorted, so that every run renders in the same order */
    n = scandir(dir, &names, fuzz_chat_json_file, alphasort);
    if (n <= 0 || n > FUZZ_TEMPLATES) {
        fuzz_fail(__FILE__, __LINE__, "t/data/chat: 1 to 8 templates");
    }

    for (i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "chat/%s", names[i]->d_name);
        templates[ntemplates] = llmd_chat_template_load(fuzz_data_path(name),
                                                        err, sizeof(err));
        if (templates[ntemplates] == NULL) {
            fuzz_fail(__FILE__, __LINE__, err);
        }

        ntemplates++;
        free(names[i]);
    }

    free(names);

    return 0;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int                    gen;
    char                   err[512];
    size_t                 i;
    cJSON                 *root;
    const cJSON           *messages, *kwargs;
    llmd_chat_template_t  *own;

    err[0] = '\0';
    own = llmd_chat_template_load_json((const char *) data, size, err,
                                       sizeof(err));
    FUZZ_CHECK(own != NULL || err[0] != '\0');

    root = cJSON_ParseWithLength((const char *) data, size);

    messages = root;
    kwargs = NULL;
    gen = 1;

    if (cJSON_IsObject(root)) {
        messages = cJSON_GetObjectItemCaseSensitive(root, "messages");
        kwargs = cJSON_GetObjectItemCaseSensitive(root,
                                                  "chat_template_kwargs");
        gen = !cJSON_IsFalse(cJSON_GetObjectItemCaseSensitive(root,
                                               "add_generation_prompt"));
    }

    for (i = 0; i < ntemplates; i++) {
        fuzz_chat_render(templates[i], messages, kwargs, gen);
    }

    if (own != NULL) {
        fuzz_chat_render(own, messages, kwargs, gen);
        llmd_chat_template_free(own);
    }

    cJSON_Delete(root);

    return 0;
}


static int
fuzz_chat_json_file(const struct dirent *d)
{
    size_t  len;

    len = strlen(d->d_name);
    return len > 5 && strcmp(d->d_name + len - 5, ".json") == 0;
}


static void
fuzz_chat_render(const llmd_chat_template_t *t, const cJSON *messages,
    const cJSON *kwargs, int gen)
{
    long     rc, rc2;
    char    *small, *exact, err[512];
    size_t   needed, len;

    /* heap blocks of their exact size: ASan sees a write past them */
    small = malloc(FUZZ_SMALL);
    FUZZ_CHECK(small != NULL);

    err[0] = '\0';
    needed = 0;
    rc = llmd_chat_template_render_kw(t, messages, kwargs, gen, small,
                                      FUZZ_SMALL, &needed, err, sizeof(err));

    if (rc == LLMD_CHAT_ERR_INVALID || rc == LLMD_CHAT_ERR_UNSUPPORTED) {
        FUZZ_CHECK(err[0] != '\0');
        free(small);
        return;
    }

    if (rc >= 0) {
        FUZZ_CHECK((size_t) rc == needed && rc <= FUZZ_SMALL);
        /* the text has no NUL of its own, and one follows it if room */
        FUZZ_CHECK(memchr(small, '\0', rc) == NULL);
        FUZZ_CHECK(rc == FUZZ_SMALL || small[rc] == '\0');
        len = rc;

    } else {
        FUZZ_CHECK(rc == LLMD_CHAT_ERR_CAPACITY && needed > FUZZ_SMALL);
        len = needed;
    }

    exact = malloc(len ? len : 1);
    FUZZ_CHECK(exact != NULL);

    rc2 = llmd_chat_template_render_kw(t, messages, kwargs, gen, exact, len,
                                       &needed, err, sizeof(err));
    FUZZ_CHECK(rc2 >= 0 && (size_t) rc2 == len && needed == len);

    if (rc >= 0) {
        FUZZ_CHECK(memcmp(small, exact, len) == 0);
    }

    free(exact);
    free(small);
}
