/*
 * The request as the chat renderers read it (llmd_chat_int.h): what vLLM
 * or the template would refuse in the messages (LLMD_CHAT_ERR_INVALID),
 * what the renderers cannot reproduce (LLMD_CHAT_ERR_UNSUPPORTED), and the
 * chat_template_kwargs they understand.
 */
#include <string.h>

#include "tokenizer/llmd_chat_int.h"


static int llmd_chat_check_part(const cJSON *part, size_t m, size_t p,
    char *err, size_t errlen);
static int llmd_chat_has_tool_calls(const cJSON *msg, int *n);


static int
llmd_chat_check_part(const cJSON *part, size_t m, size_t p, char *err,
    size_t errlen)
{
    const cJSON  *type, *v;
    const char   *key;

    if (cJSON_IsString(part)) {
        return 0;
    }
    if (!cJSON_IsObject(part)) {
        llmd_chat_error(err, errlen, "messages[%zu].content[%zu] is not an "
                        "object", m, p);
        return -1;
    }
    type = cJSON_GetObjectItemCaseSensitive(part, "type");
    if (!cJSON_IsString(type)) {
        llmd_chat_error(err, errlen, "messages[%zu].content[%zu] has no "
                        "type", m, p);
        return -1;
    }
    if (llmd_chat_is_text_type(type->valuestring, &key)) {
        v = cJSON_GetObjectItemCaseSensitive(part, key);
        if (v != NULL && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
            llmd_chat_error(err, errlen, "messages[%zu].content[%zu].%s is "
                            "not a string", m, p, key);
            return -1;
        }
    }
    return 0;
}

/* A tool_calls value vLLM keeps (not null); *n is its length. */
static int
llmd_chat_has_tool_calls(const cJSON *msg, int *n)
{
    const cJSON  *tc = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");

    if (tc == NULL || cJSON_IsNull(tc)) {
        return 0;
    }
    *n = cJSON_GetArraySize(tc);
    return 1;
}


/* Checks the messages and counts them (c->count). */
long
llmd_chat_validate(llmd_chat_ctx_t *c)
{
    const cJSON  *msg, *role, *content, *part, *v;
    size_t        m, p;
    int           n;

    if (!cJSON_IsArray(c->messages)) {
        llmd_chat_error(c->err, c->errlen, "messages must be an array");
        return LLMD_CHAT_ERR_INVALID;
    }
    m = 0;
    cJSON_ArrayForEach(msg, c->messages) {
        if (!cJSON_IsObject(msg)) {
            llmd_chat_error(c->err, c->errlen, "messages[%zu] is not an "
                            "object", m);
            return LLMD_CHAT_ERR_INVALID;
        }
        role = cJSON_GetObjectItemCaseSensitive(msg, "role");
        if (!cJSON_IsString(role)) {
            llmd_chat_error(c->err, c->errlen, "messages[%zu].role is not a "
                            "string", m);
            return LLMD_CHAT_ERR_INVALID;
        }
        content = llmd_chat_content(msg);
        if (cJSON_IsArray(content)) {
            p = 0;
            cJSON_ArrayForEach(part, content) {
                if (llmd_chat_check_part(part, m, p, c->err, c->errlen)
                    != 0)
                {
                    return LLMD_CHAT_ERR_INVALID;
                }
                p++;
            }
        } else if (content != NULL && !cJSON_IsNull(content)
                   && !cJSON_IsString(content))
        {
            llmd_chat_error(c->err, c->errlen, "messages[%zu].content is "
                            "neither a string nor an array", m);
            return LLMD_CHAT_ERR_INVALID;
        }
        if (strcmp(role->valuestring, "assistant") == 0) {
            v = cJSON_GetObjectItemCaseSensitive(msg, "reasoning");
            if (v != NULL && !cJSON_IsNull(v) && !cJSON_IsString(v)) {
                llmd_chat_error(c->err, c->errlen, "messages[%zu].reasoning "
                                "is not a string", m);
                return LLMD_CHAT_ERR_INVALID;
            }
            v = cJSON_GetObjectItemCaseSensitive(msg, "tool_calls");
            if (v != NULL && !cJSON_IsNull(v) && !cJSON_IsArray(v)) {
                llmd_chat_error(c->err, c->errlen, "messages[%zu].tool_calls "
                                "is not an array", m);
                return LLMD_CHAT_ERR_INVALID;
            }
            /* the plain Llama-3 template ignores tool calls */
            if (c->t->kind != LLMD_CHAT_LLAMA3
                && llmd_chat_has_tool_calls(msg, &n)
                && (n > 0 || c->t->kind == LLMD_CHAT_LLAMA31))
            {
                llmd_chat_error(c->err, c->errlen, "messages[%zu]: tool "
                                "calls are not rendered by the %s renderer",
                                m, c->t->variant);
                return LLMD_CHAT_ERR_UNSUPPORTED;
            }
        }
        m++;
    }
    c->count = m;
    if (m == 0 && c->t->kind != LLMD_CHAT_LLAMA3) {
        /* the template reads messages[0].role: an undefined error */
        llmd_chat_error(c->err, c->errlen, "messages must not be empty");
        return LLMD_CHAT_ERR_INVALID;
    }
    return 0;
}

/* Reads chat_template_kwargs (NULL: the defaults) into c. */
long
llmd_chat_kwargs(llmd_chat_ctx_t *c, const cJSON *kwargs)
{
    static const char  *tool_vars[] = {
        "tools", "custom_tools", "builtin_tools", "tools_in_user_message"
    };
    const cJSON        *v;
    size_t              i;

    c->thinking_off = 0;
    c->date_string = "26 Jul 2024";
    if (kwargs == NULL || cJSON_IsNull(kwargs)) {
        return 0;
    }
    if (!cJSON_IsObject(kwargs)) {
        llmd_chat_error(c->err, c->errlen, "chat_template_kwargs is not an "
                        "object");
        return LLMD_CHAT_ERR_INVALID;
    }
    for (i = 0; i < sizeof(tool_vars) / sizeof(tool_vars[0]); i++) {
        v = cJSON_GetObjectItemCaseSensitive(kwargs, tool_vars[i]);
        if (v != NULL && !cJSON_IsNull(v)) {
            llmd_chat_error(c->err, c->errlen, "chat_template_kwargs.%s is "
                            "not supported", tool_vars[i]);
            return LLMD_CHAT_ERR_UNSUPPORTED;
        }
    }
    /* Jinja's "is false" holds for the boolean false only */
    v = cJSON_GetObjectItemCaseSensitive(kwargs, "enable_thinking");
    c->thinking_off = cJSON_IsFalse(v);
    v = cJSON_GetObjectItemCaseSensitive(kwargs, "date_string");
    if (c->t->kind == LLMD_CHAT_LLAMA31 && v != NULL) {
        if (!cJSON_IsString(v)) {
            llmd_chat_error(c->err, c->errlen, "chat_template_kwargs."
                            "date_string is not a string");
            return LLMD_CHAT_ERR_UNSUPPORTED;
        }
        c->date_string = v->valuestring;
    }
    return 0;
}
