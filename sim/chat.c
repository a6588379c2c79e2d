/*
 * Chat messages to prompt text with the project's chat templates
 * (src/tokenizer/llmd_chat_template.h), the renderers the balancer's
 * precise routing uses, so that both tokenize a chat request alike.
 *
 * With --tokenizer and a tokenizer_config.json whose template is known,
 * requests are rendered with that template.  Otherwise, and for what it
 * cannot render (request tools, tool calls, tool kwargs), the simple
 * rendering is the Llama-3 Instruct template (bos "<|begin_of_text|>",
 * no kwargs), which refuses an empty message list.
 */
#include <stdio.h>
#include <string.h>

#include <cJSON.h>

#include "sim.h"
#include "tokenizer/llmd_chat_template.h"


static long sim_chat_render_with(const llmd_chat_template_t *t,
    const cJSON *messages, const cJSON *kwargs, int add_generation_prompt,
    sim_buf_t *out, char *err, size_t errlen);
static int sim_chat_result(long n);


static llmd_chat_template_t  *sim_chat_model;     /* NULL: none or unknown */
static llmd_chat_template_t  *sim_chat_simple;


int
sim_chat_init(const char *config_path, char *err, size_t errlen)
{
    char  why[512];

    llmd_chat_template_free(sim_chat_model);
    sim_chat_model = NULL;

    if (sim_chat_simple == NULL) {
        sim_chat_simple = llmd_chat_template_builtin("llama3",
                                                     "<|begin_of_text|>",
                                                     err, errlen);
        if (sim_chat_simple == NULL) {
            return -1;
        }
    }

    if (config_path == NULL || config_path[0] == '\0') {
        return 0;
    }

    sim_chat_model = llmd_chat_template_load(config_path, why, sizeof(why));
    if (sim_chat_model == NULL) {
        /* as the balancer does: go on, without that template */
        sim_log("chat template: %s; chat requests use the simple rendering",
                why);
    }

    return 0;
}


const char *
sim_chat_template_name(void)
{
    return sim_chat_model ? llmd_chat_template_variant(sim_chat_model)
                          : "simple (llama3)";
}


int
sim_chat_render(const cJSON *request, sim_buf_t *out, char *err,
    size_t errlen)
{
    const cJSON  *messages, *tools, *kwargs;
    long          n;
    int           gen_prompt;

    messages = cJSON_GetObjectItemCaseSensitive(request, "messages");
    tools = cJSON_GetObjectItemCaseSensitive(request, "tools");
    kwargs = cJSON_GetObjectItemCaseSensitive(request, "chat_template_kwargs");
    gen_prompt = !cJSON_IsFalse(
        cJSON_GetObjectItemCaseSensitive(request, "add_generation_prompt"));

    /* the templates do not render tool definitions */
    if (sim_chat_model != NULL && (tools == NULL || cJSON_IsNull(tools))) {
        n = sim_chat_render_with(sim_chat_model, messages, kwargs, gen_prompt,
                                 out, err, errlen);
        if (n != LLMD_CHAT_ERR_UNSUPPORTED) {
            return sim_chat_result(n);
        }
    }

    if (!cJSON_IsArray(messages) || cJSON_GetArraySize(messages) == 0) {
        snprintf(err, errlen, "'messages' must be a non-empty list");
        return SIM_CHAT_BAD_REQUEST;
    }

    n = sim_chat_render_with(sim_chat_simple, messages, NULL, gen_prompt, out,
                             err, errlen);
    return sim_chat_result(n);
}


/*
 * Renders into out (replacing its contents), growing it to the size the
 * template reports; returns what llmd_chat_template_render_kw() returns,
 * LLMD_CHAT_ERR_CAPACITY when out cannot grow.
 */
static long
sim_chat_render_with(const llmd_chat_template_t *t, const cJSON *messages,
    const cJSON *kwargs, int add_generation_prompt, sim_buf_t *out,
    char *err, size_t errlen)
{
    size_t  needed;
    long    n;

    out->len = 0;

    for ( ;; ) {
        n = llmd_chat_template_render_kw(t, messages, kwargs,
                                         add_generation_prompt, out->data,
                                         out->cap, &needed, err, errlen);
        if (n != LLMD_CHAT_ERR_CAPACITY) {
            break;
        }

        if (sim_buf_reserve(out, needed + 1) != 0) {
            snprintf(err, errlen, "out of memory");
            return LLMD_CHAT_ERR_CAPACITY;
        }
    }

    if (n >= 0) {
        out->len = (size_t) n;
    }

    return n;
}


static int
sim_chat_result(long n)
{
    if (n >= 0) {
        return 0;
    }

    return n == LLMD_CHAT_ERR_CAPACITY ? SIM_CHAT_NO_MEMORY
                                       : SIM_CHAT_BAD_REQUEST;
}
