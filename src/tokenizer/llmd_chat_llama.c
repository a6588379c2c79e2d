/*
 * The Llama-3 Instruct and Llama-3.1 Instruct templates
 * (docs/chat-templates.md): header-delimited turns with trimmed contents;
 * Llama-3.1 adds its default system message with the dates, and renders
 * tool results as JSON strings in ipython turns.
 */
#include <string.h>

#include "tokenizer/llmd_chat_int.h"


static void llmd_chat_llama_turn(const char *role, llmd_chat_text_t *text,
    llmd_chat_out_t *w);


static void
llmd_chat_llama_turn(const char *role, llmd_chat_text_t *text,
    llmd_chat_out_t *w)
{
    size_t  a = 0, b = text->len;

    llmd_chat_puts(w, "<|start_header_id|>");
    llmd_chat_put(w, role, strlen(role));
    llmd_chat_puts(w, "<|end_header_id|>\n\n");
    llmd_chat_text_trim(text, &a, &b);
    llmd_chat_text_emit(text, a, b, w);
    llmd_chat_puts(w, "<|eot_id|>");
}


void
llmd_chat_render_llama3(llmd_chat_ctx_t *c, llmd_chat_out_t *w)
{
    const cJSON       *msg;
    llmd_chat_text_t   text;

    cJSON_ArrayForEach(msg, c->messages) {
        if (msg == c->messages->child) {
            llmd_chat_put(w, c->t->bos, c->t->bos_len);
        }
        llmd_chat_text_init(&text, llmd_chat_content(msg));
        llmd_chat_llama_turn(llmd_chat_role(msg), &text, w);
    }
    if (c->add_generation_prompt) {
        llmd_chat_puts(w, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    }
}


void
llmd_chat_render_llama31(llmd_chat_ctx_t *c, llmd_chat_out_t *w)
{
    const cJSON       *msg;
    const char        *role;
    llmd_chat_text_t   text;
    size_t             a, b;

    llmd_chat_put(w, c->t->bos, c->t->bos_len);
    msg = c->messages->child;
    llmd_chat_puts(w, "<|start_header_id|>system<|end_header_id|>\n\n"
                   "Cutting Knowledge Date: December 2023\nToday Date: ");
    llmd_chat_put(w, c->date_string, strlen(c->date_string));
    llmd_chat_puts(w, "\n\n");
    if (llmd_chat_role_is(msg, "system")) {
        llmd_chat_text_init(&text, llmd_chat_content(msg));
        a = 0;
        b = text.len;
        llmd_chat_text_trim(&text, &a, &b);
        llmd_chat_text_emit(&text, a, b, w);
        msg = msg->next;
    }
    llmd_chat_puts(w, "<|eot_id|>");

    for (; msg != NULL; msg = msg->next) {
        role = llmd_chat_role(msg);
        llmd_chat_text_init(&text, llmd_chat_content(msg));
        if (strcmp(role, "tool") == 0 || strcmp(role, "ipython") == 0) {
            /* a string "is iterable" in Jinja: it goes through tojson */
            llmd_chat_puts(w, "<|start_header_id|>ipython<|end_header_id|>"
                           "\n\n");
            llmd_chat_text_emit_json(&text, 0, text.len, w);
            llmd_chat_puts(w, "<|eot_id|>");
        } else {
            llmd_chat_llama_turn(role, &text, w);
        }
    }
    if (c->add_generation_prompt) {
        llmd_chat_puts(w, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    }
}
