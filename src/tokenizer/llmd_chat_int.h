/*
 * Internals of the native chat template renderers, shared by their files:
 *   llmd_chat_template.c  loading, recognising the template, dispatch
 *   llmd_chat_validate.c  what vLLM or the template would refuse, and
 *                         chat_template_kwargs
 *   llmd_chat_text.c      the text view over a message's content
 *   llmd_chat_qwen3.c     the Qwen3 renderer
 *   llmd_chat_llama.c     the Llama-3 and Llama-3.1 renderers
 * Calls only go down that list (dispatch -> renderers/validation -> text).
 */
#ifndef LLMD_CHAT_INT_H
#define LLMD_CHAT_INT_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "tokenizer/llmd_chat_template.h"

#define LLMD_CHAT_MAX_TOKEN    256
#define LLMD_CHAT_NPOS         ((size_t) -1)

typedef enum {
    LLMD_CHAT_QWEN3,
    LLMD_CHAT_LLAMA3,
    LLMD_CHAT_LLAMA31
} llmd_chat_kind_e;

struct llmd_chat_template_s {
    llmd_chat_kind_e  kind;
    const char       *family;
    const char       *variant;
    size_t            bos_len;
    char              bos[LLMD_CHAT_MAX_TOKEN + 1];
};


/* One rendering: the request as the renderers read it. */
typedef struct {
    const llmd_chat_template_t  *t;
    const cJSON                 *messages;
    size_t                       count;
    int                          add_generation_prompt;
    int                          thinking_off;    /* enable_thinking false */
    const char                  *date_string;
    char                        *err;
    size_t                       errlen;
} llmd_chat_ctx_t;


/* Output: counts every byte, stores those that fit. */
typedef struct {
    char    *out;
    size_t   cap;
    size_t   len;
} llmd_chat_out_t;


/*
 * A message's content as vLLM passes it to the template: either one string,
 * or the parts array whose contributing texts are joined with "\n".  The
 * cursor (cur, cur_start, cur_len) makes sequential access in either
 * direction O(1); positions are byte offsets in the joined text.
 */
typedef struct {
    const char   *str;          /* the text when parts == NULL */
    const cJSON  *parts;
    size_t        len;
    const cJSON  *cur;
    const char   *cur_text;
    size_t        cur_start;
    size_t        cur_len;
} llmd_chat_text_t;


/* Small helpers every file uses, inline so that no file calls back up. */

static inline void
llmd_chat_error(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static inline void
llmd_chat_error(char *err, size_t errlen, const char *fmt, ...)
{
    va_list  ap;

    if (err == NULL || errlen == 0) {
        return;
    }
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}


static inline void
llmd_chat_put(llmd_chat_out_t *w, const char *s, size_t n)
{
    size_t  room;

    if (w->len < w->cap) {
        room = w->cap - w->len;
        memcpy(w->out + w->len, s, n < room ? n : room);
    }
    w->len += n;
}


#define llmd_chat_puts(w, lit)  llmd_chat_put(w, lit, sizeof(lit) - 1)


/* A validated message's role and content. */
static inline const char *
llmd_chat_role(const cJSON *msg)
{
    return cJSON_GetObjectItemCaseSensitive(msg, "role")->valuestring;
}


static inline int
llmd_chat_role_is(const cJSON *msg, const char *role)
{
    return strcmp(llmd_chat_role(msg), role) == 0;
}


static inline const cJSON *
llmd_chat_content(const cJSON *msg)
{
    return cJSON_GetObjectItemCaseSensitive(msg, "content");
}


/* llmd_chat_validate.c */
long llmd_chat_kwargs(llmd_chat_ctx_t *c, const cJSON *kwargs);
long llmd_chat_validate(llmd_chat_ctx_t *c);


/* llmd_chat_text.c */
int llmd_chat_is_text_type(const char *type, const char **key);
void llmd_chat_text_init_str(llmd_chat_text_t *v, const char *s);
void llmd_chat_text_init(llmd_chat_text_t *v, const cJSON *content);
void llmd_chat_text_emit(llmd_chat_text_t *v, size_t a, size_t b,
    llmd_chat_out_t *w);
void llmd_chat_emit_all(llmd_chat_text_t *v, llmd_chat_out_t *w);
int llmd_chat_text_match(llmd_chat_text_t *v, size_t at, const char *lit,
    size_t n);
size_t llmd_chat_text_find(llmd_chat_text_t *v, size_t a, size_t b,
    const char *lit);
size_t llmd_chat_text_rfind(llmd_chat_text_t *v, size_t a, size_t b,
    const char *lit);
size_t llmd_chat_text_lstrip_nl(llmd_chat_text_t *v, size_t a, size_t b);
size_t llmd_chat_text_rstrip_nl(llmd_chat_text_t *v, size_t a, size_t b);
void llmd_chat_text_trim(llmd_chat_text_t *v, size_t *pa, size_t *pb);
void llmd_chat_text_emit_json(llmd_chat_text_t *v, size_t a, size_t b,
    llmd_chat_out_t *w);


/* The renderers (llmd_chat_qwen3.c, llmd_chat_llama.c). */
void llmd_chat_render_qwen3(llmd_chat_ctx_t *c, llmd_chat_out_t *w);
void llmd_chat_render_llama3(llmd_chat_ctx_t *c, llmd_chat_out_t *w);
void llmd_chat_render_llama31(llmd_chat_ctx_t *c, llmd_chat_out_t *w);

#endif /* LLMD_CHAT_INT_H */
