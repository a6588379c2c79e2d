/*
 * Native renderers of the Hugging Face chat templates vLLM applies to the
 * `messages` of /v1/chat/completions before tokenizing (Jinja template from
 * tokenizer_config.json's `chat_template`).  Only known template families
 * are supported; the family is recognised from the template text and an
 * unknown template is rejected at load time so that the caller can fall
 * back (e.g. to approximate prefix routing).  See docs/chat-templates.md.
 *
 * Life cycle: llmd_chat_template_load() once; the result is immutable and
 * may be used from any number of threads/processes.  Rendering allocates
 * nothing: the caller passes the output buffer.
 */
#ifndef LLMD_CHAT_TEMPLATE_H
#define LLMD_CHAT_TEMPLATE_H

#include <stddef.h>
#include <cJSON.h>

typedef struct llmd_chat_template_s  llmd_chat_template_t;

/* Negative results of llmd_chat_template_render(). */
#define LLMD_CHAT_ERR_INVALID   -1   /* bad messages; message in err */
#define LLMD_CHAT_ERR_CAPACITY  -2   /* out too small; *needed is set */
#define LLMD_CHAT_ERR_UNSUPPORTED -3 /* valid, but this renderer cannot
                                        render it (tool calls ...): the
                                        caller falls back */

/*
 * Loads tokenizer_config.json (path); NULL with a message in err if the file
 * is unreadable, not JSON, has no chat_template, or the template family is
 * unknown.
 */
llmd_chat_template_t *llmd_chat_template_load(const char *config_path,
    char *err, size_t errlen);

/* Same from the text of a tokenizer_config.json already in memory. */
llmd_chat_template_t *llmd_chat_template_load_json(const char *json,
    size_t len, char *err, size_t errlen);

/*
 * One of the known templates by its variant name ("qwen3", "llama3",
 * "llama3.1"), for a caller without a tokenizer_config.json: bos_token is
 * what the config would give (NULL: none).  vllm-sim renders with the
 * "llama3" one when its tokenizer has no chat template.
 */
llmd_chat_template_t *llmd_chat_template_builtin(const char *variant,
    const char *bos_token, char *err, size_t errlen);

void llmd_chat_template_free(llmd_chat_template_t *t);

/* "qwen3" or "llama3". */
const char *llmd_chat_template_family(const llmd_chat_template_t *t);

/*
 * The exact template recognised: "qwen3" (Qwen3 hybrid-thinking),
 * "llama3" (Llama-3 Instruct), "llama3.1" (Llama-3.1 Instruct with its
 * default system message).
 */
const char *llmd_chat_template_variant(const llmd_chat_template_t *t);

/*
 * Renders a cJSON array of OpenAI messages into out (not NUL-terminated
 * unless room is left; a NUL is written after the text when
 * cap > bytes written).  Each message is an object with "role" (string)
 * and "content": a string, null/absent (rendered as the template renders
 * an empty/none content), or an array of parts of which only
 * {"type":"text","text":...} parts are used, joined with "\n" as vLLM's
 * text-only content format does.  "name", "tool_calls" and tool messages:
 * see docs/chat-templates.md.
 *
 * Returns the bytes written; LLMD_CHAT_ERR_INVALID (-1) with a message in
 * err (e.g. "messages must be an array": vLLM would reject the request or
 * the template would fail); LLMD_CHAT_ERR_CAPACITY (-2) with *needed set
 * to the bytes the full rendering takes (needed may be NULL); or
 * LLMD_CHAT_ERR_UNSUPPORTED (-3) with a message in err.
 */
long llmd_chat_template_render(const llmd_chat_template_t *t,
    const cJSON *messages, int add_generation_prompt, char *out, size_t cap,
    size_t *needed, char *err, size_t errlen);

/*
 * The same with the request's "chat_template_kwargs" (a cJSON object or
 * NULL), which vLLM passes to the template as variables.  Understood:
 * "enable_thinking" (qwen3: false appends an empty think block to the
 * generation prompt) and "date_string" (llama3.1); the tool variables
 * ("tools", "custom_tools", "builtin_tools", "tools_in_user_message") give
 * LLMD_CHAT_ERR_UNSUPPORTED; other keys are ignored as the templates do.
 * llmd_chat_template_render() is this with kwargs NULL.  The request's
 * "tools" are not rendered: a caller must fall back when a request has
 * non-null "tools".
 */
long llmd_chat_template_render_kw(const llmd_chat_template_t *t,
    const cJSON *messages, const cJSON *kwargs, int add_generation_prompt,
    char *out, size_t cap, size_t *needed, char *err, size_t errlen);

/*
 * Messages that are each exactly a string role and a string content
 * (NUL-terminated), e.g. read by a request body scanner without a JSON
 * tree: rendered as llmd_chat_template_render() renders the cJSON array
 * [{"role": role, "content": content}, ...] (kwargs NULL).  scratch holds
 * that array's items: llmd_chat_msgs_scratch_size(n) bytes, suitably
 * aligned for a pointer (malloc'ed memory is); nothing is allocated.
 */
typedef struct {
    const char  *role;
    const char  *content;
} llmd_chat_msg_t;

size_t llmd_chat_msgs_scratch_size(size_t n);

long llmd_chat_template_render_msgs(const llmd_chat_template_t *t,
    const llmd_chat_msg_t *msgs, size_t n, int add_generation_prompt,
    void *scratch, size_t scratch_size, char *out, size_t cap,
    size_t *needed, char *err, size_t errlen);

#endif /* LLMD_CHAT_TEMPLATE_H */
