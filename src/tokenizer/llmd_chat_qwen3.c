/*
 * The Qwen3 hybrid-thinking template (docs/chat-templates.md): ChatML turns,
 * tool responses folded into user turns, and the thoughts of assistant
 * turns after the last real user query, from `reasoning` or from
 * <think>...</think> in the content.
 */
#include <string.h>

#include "tokenizer/llmd_chat_int.h"


static void llmd_chat_qwen3_assistant(llmd_chat_ctx_t *c, const cJSON *msg,
    int after, int last, llmd_chat_out_t *w);


static void
llmd_chat_qwen3_assistant(llmd_chat_ctx_t *c, const cJSON *msg, int after,
    int last, llmd_chat_out_t *w)
{
    llmd_chat_text_t   content, reasoning, *rv;
    const cJSON       *r;
    size_t             ca, cb, ra, rb, close, open;

    llmd_chat_text_init(&content, llmd_chat_content(msg));
    ca = 0;
    cb = content.len;
    rv = &reasoning;
    ra = rb = 0;
    llmd_chat_text_init_str(&reasoning, "");

    r = cJSON_GetObjectItemCaseSensitive(msg, "reasoning");
    if (cJSON_IsString(r)) {
        /* vLLM passes it as reasoning_content: content stays whole */
        llmd_chat_text_init_str(&reasoning, r->valuestring);
        rb = reasoning.len;
    } else {
        close = llmd_chat_text_find(&content, 0, content.len, "</think>");
        if (close != LLMD_CHAT_NPOS) {
            /* content.split('</think>')[-1].lstrip('\n') */
            ca = llmd_chat_text_rfind(&content, 0, content.len, "</think>")
                 + sizeof("</think>") - 1;
            ca = llmd_chat_text_lstrip_nl(&content, ca, cb);
            /* split('</think>')[0].rstrip('\n').split('<think>')[-1]
             * .lstrip('\n') */
            rb = llmd_chat_text_rstrip_nl(&content, 0, close);
            open = llmd_chat_text_rfind(&content, 0, rb, "<think>");
            ra = open == LLMD_CHAT_NPOS ? 0 : open + sizeof("<think>") - 1;
            ra = llmd_chat_text_lstrip_nl(&content, ra, rb);
            rv = &content;
        }
    }

    llmd_chat_puts(w, "<|im_start|>assistant\n");
    if (after && (last || rb > ra)) {
        /* reasoning_content.strip('\n'), content.lstrip('\n') */
        ra = llmd_chat_text_lstrip_nl(rv, ra, rb);
        rb = llmd_chat_text_rstrip_nl(rv, ra, rb);
        llmd_chat_puts(w, "<think>\n");
        llmd_chat_text_emit(rv, ra, rb, w);
        llmd_chat_puts(w, "\n</think>\n\n");
        ca = llmd_chat_text_lstrip_nl(&content, ca, cb);
    }
    llmd_chat_text_emit(&content, ca, cb, w);
    llmd_chat_puts(w, "<|im_end|>\n");
}


void
llmd_chat_render_qwen3(llmd_chat_ctx_t *c, llmd_chat_out_t *w)
{
    const cJSON       *first, *msg, *prev;
    llmd_chat_text_t   text;
    size_t             index, last_query;

    first = c->messages->child;
    if (llmd_chat_role_is(first, "system")) {
        llmd_chat_puts(w, "<|im_start|>system\n");
        llmd_chat_text_init(&text, llmd_chat_content(first));
        llmd_chat_emit_all(&text, w);
        llmd_chat_puts(w, "<|im_end|>\n");
    }

    /* the last user message that is not only a tool response */
    last_query = c->count - 1;
    index = c->count;
    msg = first->prev;                  /* the last message */
    for (;;) {
        index--;
        if (llmd_chat_role_is(msg, "user")) {
            llmd_chat_text_init(&text, llmd_chat_content(msg));
            if (!(llmd_chat_text_match(&text, 0, "<tool_response>", 15)
                  && text.len >= 16
                  && llmd_chat_text_match(&text, text.len - 16,
                                          "</tool_response>", 16)))
            {
                last_query = index;
                break;
            }
        }
        if (msg == first) {
            break;
        }
        msg = msg->prev;
    }

    index = 0;
    cJSON_ArrayForEach(msg, c->messages) {
        if (llmd_chat_role_is(msg, "user")
            || (llmd_chat_role_is(msg, "system") && index > 0))
        {
            llmd_chat_puts(w, "<|im_start|>");
            llmd_chat_put(w, llmd_chat_role(msg), strlen(llmd_chat_role(msg)));
            llmd_chat_puts(w, "\n");
            llmd_chat_text_init(&text, llmd_chat_content(msg));
            llmd_chat_emit_all(&text, w);
            llmd_chat_puts(w, "<|im_end|>\n");

        } else if (llmd_chat_role_is(msg, "assistant")) {
            llmd_chat_qwen3_assistant(c, msg, index > last_query,
                                      msg->next == NULL, w);

        } else if (llmd_chat_role_is(msg, "tool")) {
            prev = index > 0 ? msg->prev : NULL;
            if (prev == NULL || !llmd_chat_role_is(prev, "tool")) {
                llmd_chat_puts(w, "<|im_start|>user");
            }
            llmd_chat_puts(w, "\n<tool_response>\n");
            llmd_chat_text_init(&text, llmd_chat_content(msg));
            llmd_chat_emit_all(&text, w);
            llmd_chat_puts(w, "\n</tool_response>");
            if (msg->next == NULL || !llmd_chat_role_is(msg->next, "tool")) {
                llmd_chat_puts(w, "<|im_end|>\n");
            }
        }
        /* any other role renders nothing in this template */
        index++;
    }

    if (c->add_generation_prompt) {
        llmd_chat_puts(w, "<|im_start|>assistant\n");
        if (c->thinking_off) {
            llmd_chat_puts(w, "<think>\n\n</think>\n\n");
        }
    }
}
