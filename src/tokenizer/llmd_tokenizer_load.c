/*
 * Loading a Hugging Face tokenizer.json of the byte-level BPE family into
 * the read-only tables of llmd_tokenizer_int.h.  Anything the encoder would
 * not reproduce exactly (other models, normalizers, pre-tokenizers) is
 * rejected with a message instead of being approximated.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <utf8proc.h>

#include "tokenizer/llmd_tokenizer_int.h"


/* Largest tokenizer.json / tokenizer_config.json read. */
#define LLMD_TOK_MAX_FILE   (256 * 1024 * 1024)
/* Largest token id accepted (bounds the per-id arrays). */
#define LLMD_TOK_MAX_ID     (16 * 1024 * 1024)


typedef struct {
    char    *err;
    size_t   errlen;
} llmd_tok_load_ctx_t;


static int
llmd_tok_fail(llmd_tok_load_ctx_t *ctx, const char *fmt, const char *arg)
{
    snprintf(ctx->err, ctx->errlen, fmt, arg ? arg : "");
    return -1;
}


static cJSON *
llmd_tok_read_json(const char *path, llmd_tok_load_ctx_t *ctx)
{
    FILE    *f;
    char    *buf;
    long     size;
    size_t   n;
    cJSON   *json;

    f = fopen(path, "rb");
    if (f == NULL) {
        llmd_tok_fail(ctx, "cannot open %s", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0
        || size > LLMD_TOK_MAX_FILE || fseek(f, 0, SEEK_SET) != 0)
    {
        fclose(f);
        llmd_tok_fail(ctx, "%s: unreadable or too large", path);
        return NULL;
    }
    buf = malloc((size_t) size + 1);
    if (buf == NULL) {
        fclose(f);
        llmd_tok_fail(ctx, "out of memory reading %s", path);
        return NULL;
    }
    n = fread(buf, 1, (size_t) size, f);
    fclose(f);
    if (n != (size_t) size) {
        free(buf);
        llmd_tok_fail(ctx, "%s: short read", path);
        return NULL;
    }
    buf[n] = '\0';
    json = cJSON_ParseWithLength(buf, n);
    free(buf);
    if (json == NULL) {
        llmd_tok_fail(ctx, "%s: invalid JSON", path);
    }
    return json;
}


static size_t
llmd_tok_table_size(size_t n)
{
    size_t  size;

    size = 16;
    while (size < 2 * n) {
        size *= 2;
    }
    return size;
}


/* The type string of a component object, or "" when absent. */
static const char *
llmd_tok_type(const cJSON *obj)
{
    const cJSON  *t;

    t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}


static int
llmd_tok_bool(const cJSON *obj, const char *name, int dflt)
{
    const cJSON  *b;

    b = cJSON_GetObjectItemCaseSensitive(obj, name);
    if (cJSON_IsBool(b)) {
        return cJSON_IsTrue(b);
    }
    return dflt;
}


/* Whether a member is absent, null, false, "" or 0. */
static int
llmd_tok_unset(const cJSON *obj, const char *name)
{
    const cJSON  *v;

    v = cJSON_GetObjectItemCaseSensitive(obj, name);
    return v == NULL || cJSON_IsNull(v) || cJSON_IsFalse(v)
           || (cJSON_IsString(v) && v->valuestring[0] == '\0')
           || (cJSON_IsNumber(v) && v->valuedouble == 0);
}


static int
llmd_tok_id(const cJSON *v, uint32_t *id)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0
        || v->valuedouble >= LLMD_TOK_MAX_ID
        || v->valuedouble != (double) (uint32_t) v->valuedouble)
    {
        return -1;
    }
    *id = (uint32_t) v->valuedouble;
    return 0;
}


/* Appends the bytes a byte-level spelling stands for; -1 if it has none. */
static int
llmd_tok_spell_bytes(const char *s, size_t len, unsigned char *out,
    size_t *n)
{
    utf8proc_ssize_t  k;
    utf8proc_int32_t  cp;
    size_t            i;
    int               b;

    *n = 0;
    for (i = 0; i < len; i += (size_t) k) {
        k = utf8proc_iterate((const utf8proc_uint8_t *) s + i,
                             (utf8proc_ssize_t) (len - i), &cp);
        if (k <= 0) {
            return -1;
        }
        b = llmd_tok_cp_to_byte((uint32_t) cp);
        if (b < 0) {
            return -1;
        }
        out[(*n)++] = (unsigned char) b;
    }
    return 0;
}


static void
llmd_tok_insert(uint32_t *slots, size_t mask, uint64_t hash, uint32_t id)
{
    size_t  i;

    i = hash & mask;
    while (slots[i] != 0) {
        i = (i + 1) & mask;
    }
    slots[i] = id + 1;
}


/* Vocabulary and added tokens: ids, spellings, bytes, lookup tables. */
static int
llmd_tok_load_vocab(llmd_tokenizer_t *tok, const cJSON *vocab,
    const cJSON *added, llmd_tok_load_ctx_t *ctx)
{
    const cJSON       *it, *v;
    uint32_t           id, max_id;
    size_t             spell_total, n, n_vocab, i;
    llmd_tok_added_t  *a;

    max_id = 0;
    spell_total = 0;
    n_vocab = 0;
    cJSON_ArrayForEach(it, vocab) {
        if (llmd_tok_id(it, &id) != 0) {
            return llmd_tok_fail(ctx, "bad id of vocabulary token \"%s\"",
                                 it->string);
        }
        max_id = id > max_id ? id : max_id;
        spell_total += strlen(it->string);
        n_vocab++;
    }
    if (n_vocab == 0) {
        return llmd_tok_fail(ctx, "empty vocabulary%s", NULL);
    }
    tok->n_added = 0;
    cJSON_ArrayForEach(it, added) {
        v = cJSON_GetObjectItemCaseSensitive(it, "content");
        if (!cJSON_IsString(v) || v->valuestring[0] == '\0'
            || strlen(v->valuestring) > LLMD_TOK_MAX_ADDED_LEN
            || llmd_tok_id(cJSON_GetObjectItemCaseSensitive(it, "id"), &id)
               != 0)
        {
            return llmd_tok_fail(ctx, "bad added token%s", NULL);
        }
        max_id = id > max_id ? id : max_id;
        spell_total += strlen(v->valuestring);
        tok->n_added++;
    }

    tok->n_ids = (size_t) max_id + 1;
    tok->spell = malloc(spell_total + 1);
    tok->bytes = malloc(spell_total + 1);
    tok->spell_of = calloc(tok->n_ids, sizeof(llmd_tok_str_t));
    tok->bytes_of = calloc(tok->n_ids, sizeof(llmd_tok_str_t));
    tok->flags = calloc(tok->n_ids, 1);
    tok->vocab_mask = llmd_tok_table_size(n_vocab) - 1;
    tok->vocab_slots = calloc(tok->vocab_mask + 1, sizeof(uint32_t));
    tok->spell_mask = llmd_tok_table_size(n_vocab + tok->n_added) - 1;
    tok->spell_slots = calloc(tok->spell_mask + 1, sizeof(uint32_t));
    tok->added = calloc(tok->n_added + 1, sizeof(llmd_tok_added_t));
    tok->added_mask = llmd_tok_table_size(tok->n_added) - 1;
    tok->added_slots = calloc(tok->added_mask + 1, sizeof(uint32_t));
    if (tok->spell == NULL || tok->bytes == NULL || tok->spell_of == NULL
        || tok->bytes_of == NULL || tok->flags == NULL
        || tok->vocab_slots == NULL || tok->spell_slots == NULL
        || tok->added == NULL || tok->added_slots == NULL)
    {
        return llmd_tok_fail(ctx, "out of memory%s", NULL);
    }

    cJSON_ArrayForEach(it, vocab) {
        (void) llmd_tok_id(it, &id);
        if (tok->flags[id] & LLMD_TOK_F_PRESENT) {
            return llmd_tok_fail(ctx, "two vocabulary tokens share the id of "
                                 "\"%s\"", it->string);
        }
        n = strlen(it->string);
        tok->spell_of[id].off = (uint32_t) tok->spell_len;
        tok->spell_of[id].len = (uint32_t) n;
        memcpy(tok->spell + tok->spell_len, it->string, n);
        tok->spell_len += n;
        tok->flags[id] = LLMD_TOK_F_PRESENT;

        /* A spelling outside the byte alphabet can never be produced. */
        tok->bytes_of[id].off = (uint32_t) tok->bytes_len;
        if (llmd_tok_spell_bytes(it->string, n, tok->bytes + tok->bytes_len,
                                 &i) == 0)
        {
            tok->bytes_of[id].len = (uint32_t) i;
            tok->bytes_len += i;
            tok->flags[id] |= LLMD_TOK_F_VOCAB;
            llmd_tok_insert(tok->vocab_slots, tok->vocab_mask,
                            llmd_tok_hash(tok->bytes + tok->bytes_of[id].off,
                                          i), id);
        } else {
            memcpy(tok->bytes + tok->bytes_len, it->string, n);
            tok->bytes_of[id].len = (uint32_t) n;
            tok->bytes_len += n;
        }
    }

    a = tok->added;
    cJSON_ArrayForEach(it, added) {
        v = cJSON_GetObjectItemCaseSensitive(it, "content");
        (void) llmd_tok_id(cJSON_GetObjectItemCaseSensitive(it, "id"), &id);
        n = strlen(v->valuestring);
        if (llmd_tok_added_find(tok, (const unsigned char *) v->valuestring,
                                n) != LLMD_TOK_NONE)
        {
            return llmd_tok_fail(ctx, "added token \"%s\" given twice",
                                 v->valuestring);
        }
        /* As in the reference, an added token takes over its id. */
        tok->spell_of[id].off = (uint32_t) tok->spell_len;
        tok->spell_of[id].len = (uint32_t) n;
        memcpy(tok->spell + tok->spell_len, v->valuestring, n);
        tok->spell_len += n;
        tok->bytes_of[id].off = (uint32_t) tok->bytes_len;
        tok->bytes_of[id].len = (uint32_t) n;
        memcpy(tok->bytes + tok->bytes_len, v->valuestring, n);
        tok->bytes_len += n;
        tok->flags[id] |= LLMD_TOK_F_PRESENT | LLMD_TOK_F_ADDED;
        if (llmd_tok_bool(it, "special", 0)) {
            tok->flags[id] |= LLMD_TOK_F_SPECIAL;
        }

        a->id = id;
        a->content_off = tok->bytes_of[id].off;
        a->content_len = (uint32_t) n;
        a->lstrip = (uint8_t) llmd_tok_bool(it, "lstrip", 0);
        a->rstrip = (uint8_t) llmd_tok_bool(it, "rstrip", 0);
        llmd_tok_insert(tok->added_slots, tok->added_mask,
                        llmd_tok_hash(v->valuestring, n),
                        (uint32_t) (a - tok->added));
        tok->added_first[(unsigned char) v->valuestring[0]] = 1;
        for (i = 0; i < tok->n_added_lens; i++) {
            if (tok->added_lens[i] == n) {
                break;
            }
        }
        if (i == tok->n_added_lens) {
            tok->added_lens[tok->n_added_lens++] = (uint32_t) n;
        }
        a++;
    }

    /* Longest first: the reference matches the longest token at a place. */
    for (i = 1; i < tok->n_added_lens; i++) {
        for (n = i; n > 0 && tok->added_lens[n - 1] < tok->added_lens[n];
             n--)
        {
            id = tok->added_lens[n];
            tok->added_lens[n] = tok->added_lens[n - 1];
            tok->added_lens[n - 1] = id;
        }
    }

    /* One first byte for all added tokens ('<'): found with memchr. */
    tok->added_first_byte = -1;
    for (i = 0; i < 256; i++) {
        if (tok->added_first[i]) {
            tok->added_first_byte = tok->added_first_byte == -1 ? (int) i
                                                                : -2;
        }
    }

    /* Spelling lookup; added tokens were given the later word. */
    for (id = 0; id < tok->n_ids; id++) {
        if (tok->flags[id] & LLMD_TOK_F_PRESENT) {
            llmd_tok_insert(tok->spell_slots, tok->spell_mask,
                            llmd_tok_hash(tok->spell + tok->spell_of[id].off,
                                          tok->spell_of[id].len), id);
        }
    }
    return 0;
}


/* A merge given as "left right" or ["left", "right"]. */
static int
llmd_tok_merge_parts(const cJSON *m, const char **l, size_t *ll,
    const char **r, size_t *rl)
{
    const char  *sp;

    if (cJSON_IsString(m)) {
        sp = strchr(m->valuestring, ' ');
        if (sp == NULL || sp == m->valuestring || strchr(sp + 1, ' ') != NULL)
        {
            return -1;
        }
        *l = m->valuestring;
        *ll = (size_t) (sp - m->valuestring);
        *r = sp + 1;
        *rl = strlen(sp + 1);
        return 0;
    }
    if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2
        && cJSON_IsString(m->child) && cJSON_IsString(m->child->next))
    {
        *l = m->child->valuestring;
        *ll = strlen(*l);
        *r = m->child->next->valuestring;
        *rl = strlen(*r);
        return 0;
    }
    return -1;
}


static int
llmd_tok_load_merges(llmd_tokenizer_t *tok, const cJSON *merges,
    llmd_tok_load_ctx_t *ctx)
{
    const cJSON       *m;
    const char        *l, *r;
    char              *cat;
    size_t             ll, rl, n, i;
    uint32_t           left, right, result, rank;
    uint64_t           key;
    llmd_tok_merge_t  *e;

    n = (size_t) cJSON_GetArraySize(merges);
    tok->merge_mask = llmd_tok_table_size(n) - 1;
    tok->merges = calloc(tok->merge_mask + 1, sizeof(llmd_tok_merge_t));
    cat = malloc(2 * tok->spell_len + 2);
    if (tok->merges == NULL || cat == NULL) {
        free(cat);
        return llmd_tok_fail(ctx, "out of memory%s", NULL);
    }

    rank = 0;
    cJSON_ArrayForEach(m, merges) {
        if (llmd_tok_merge_parts(m, &l, &ll, &r, &rl) != 0) {
            free(cat);
            return llmd_tok_fail(ctx, "bad merge rule%s", NULL);
        }
        if (ll + rl > 2 * tok->spell_len) {
            rank++;
            continue;
        }
        memcpy(cat, l, ll);
        memcpy(cat + ll, r, rl);
        left = llmd_tok_spell_find(tok, l, ll);
        right = llmd_tok_spell_find(tok, r, rl);
        result = llmd_tok_spell_find(tok, cat, ll + rl);
        /* Rules over tokens the model cannot produce never apply. */
        if (left == LLMD_TOK_NONE || right == LLMD_TOK_NONE
            || result == LLMD_TOK_NONE
            || !(tok->flags[left] & tok->flags[right] & tok->flags[result]
                 & LLMD_TOK_F_VOCAB))
        {
            rank++;
            continue;
        }
        key = (((uint64_t) left << 32) | right) + 1;
        i = llmd_tok_hash(&key, sizeof(key)) & tok->merge_mask;
        for ( ;; ) {
            e = &tok->merges[i];
            /* A repeated rule: the later rank wins, as in a JS Map. */
            if (e->key == 0 || e->key == key) {
                e->key = key;
                e->rank = rank;
                e->result = result;
                break;
            }
            i = (i + 1) & tok->merge_mask;
        }
        rank++;
    }
    free(cat);
    return 0;
}


static int
llmd_tok_load_pretok(llmd_tokenizer_t *tok, const cJSON *pre,
    llmd_tok_load_ctx_t *ctx)
{
    const cJSON  *split, *byte_level, *it, *pat, *v;
    const char   *type, *behavior;
    int           literal;

    split = NULL;
    byte_level = NULL;
    type = llmd_tok_type(pre);
    if (strcmp(type, "ByteLevel") == 0) {
        byte_level = pre;
    } else if (strcmp(type, "Sequence") == 0) {
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(pre,
                                                          "pretokenizers"))
        {
            type = llmd_tok_type(it);
            if (strcmp(type, "Split") == 0 && split == NULL
                && byte_level == NULL)
            {
                split = it;
            } else if (strcmp(type, "ByteLevel") == 0 && byte_level == NULL) {
                byte_level = it;
            } else {
                return llmd_tok_fail(ctx, "unsupported pre-tokenizer "
                                     "sequence (at \"%s\")", type);
            }
        }
    }
    if (byte_level == NULL) {
        return llmd_tok_fail(ctx, "not a byte-level pre-tokenizer (\"%s\")",
                             llmd_tok_type(pre));
    }
    tok->add_prefix_space = llmd_tok_bool(byte_level, "add_prefix_space", 1);

    if (split != NULL) {
        if (llmd_tok_bool(byte_level, "use_regex", 1)) {
            return llmd_tok_fail(ctx, "Split followed by a ByteLevel with "
                                 "use_regex%s", NULL);
        }
        v = cJSON_GetObjectItemCaseSensitive(split, "behavior");
        behavior = cJSON_IsString(v) ? v->valuestring : "";
        if (strcmp(behavior, "Isolated") != 0
            || llmd_tok_bool(split, "invert", 0))
        {
            return llmd_tok_fail(ctx, "unsupported Split behavior \"%s\"",
                                 behavior);
        }
        pat = cJSON_GetObjectItemCaseSensitive(split, "pattern");
        v = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        literal = 0;
        if (!cJSON_IsString(v)) {
            v = cJSON_GetObjectItemCaseSensitive(pat, "String");
            literal = 1;
        }
        if (!cJSON_IsString(v)) {
            return llmd_tok_fail(ctx, "Split without a pattern%s", NULL);
        }
        tok->split_restart = !literal
                             && llmd_tok_split_is_restartable(v->valuestring);
        tok->split_ascii_digits = literal
                                  ? 0
                                  : llmd_tok_split_ascii_digits(v->valuestring);
        return llmd_tok_compile_split(v->valuestring, literal, &tok->split,
                                      &tok->split_jit, ctx->err, ctx->errlen);
    }

    if (llmd_tok_bool(byte_level, "use_regex", 1)) {
        tok->split_restart = 1;
        return llmd_tok_compile_split(llmd_tok_gpt2_pattern, 0, &tok->split,
                                      &tok->split_jit, ctx->err, ctx->errlen);
    }
    return 0;
}


static int
llmd_tok_load_normalizer(llmd_tokenizer_t *tok, const cJSON *norm,
    llmd_tok_load_ctx_t *ctx)
{
    const cJSON  *it;
    const char   *type;

    tok->normalizer = LLMD_TOK_NORM_NONE;
    if (norm == NULL || cJSON_IsNull(norm)) {
        return 0;
    }
    type = llmd_tok_type(norm);
    if (strcmp(type, "NFC") == 0) {
        tok->normalizer = LLMD_TOK_NORM_NFC;
        return 0;
    }
    if (strcmp(type, "Sequence") == 0) {
        cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(norm,
                                                            "normalizers"))
        {
            if (strcmp(llmd_tok_type(it), "NFC") != 0) {
                return llmd_tok_fail(ctx, "unsupported normalizer \"%s\"",
                                     llmd_tok_type(it));
            }
            tok->normalizer = LLMD_TOK_NORM_NFC;
        }
        return 0;
    }
    return llmd_tok_fail(ctx, "unsupported normalizer \"%s\"", type);
}


static int
llmd_tok_load_template(llmd_tokenizer_t *tok, const cJSON *tp,
    llmd_tok_load_ctx_t *ctx)
{
    const cJSON  *it, *st, *id;
    int           after;
    uint32_t      tid;

    after = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(tp, "single")) {
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence") != NULL) {
            after = 1;
            continue;
        }
        st = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        id = cJSON_GetObjectItemCaseSensitive(st, "id");
        if (!cJSON_IsString(id)) {
            return llmd_tok_fail(ctx, "bad TemplateProcessing item%s", NULL);
        }
        /* The reference maps the token's name through the vocabulary. */
        tid = llmd_tok_spell_find(tok, id->valuestring,
                                  strlen(id->valuestring));
        if (tid == LLMD_TOK_NONE) {
            return llmd_tok_fail(ctx, "unknown template token \"%s\"",
                                 id->valuestring);
        }
        if (after) {
            if (tok->n_suffix == LLMD_TOK_MAX_TEMPLATE) {
                return llmd_tok_fail(ctx, "template too long%s", NULL);
            }
            tok->suffix_ids[tok->n_suffix++] = tid;
        } else {
            if (tok->n_prefix == LLMD_TOK_MAX_TEMPLATE) {
                return llmd_tok_fail(ctx, "template too long%s", NULL);
            }
            tok->prefix_ids[tok->n_prefix++] = tid;
        }
    }
    if (!after) {
        return llmd_tok_fail(ctx, "template without the sequence%s", NULL);
    }
    return 0;
}


static int
llmd_tok_load_post(llmd_tokenizer_t *tok, const cJSON *post,
    llmd_tok_load_ctx_t *ctx)
{
    const cJSON  *it;
    const char   *type;
    int           templates;

    if (post == NULL || cJSON_IsNull(post)) {
        return 0;
    }
    type = llmd_tok_type(post);
    if (strcmp(type, "ByteLevel") == 0) {
        return 0;
    }
    if (strcmp(type, "TemplateProcessing") == 0) {
        return llmd_tok_load_template(tok, post, ctx);
    }
    if (strcmp(type, "Sequence") != 0) {
        return llmd_tok_fail(ctx, "unsupported post-processor \"%s\"", type);
    }
    templates = 0;
    cJSON_ArrayForEach(it, cJSON_GetObjectItemCaseSensitive(post,
                                                            "processors"))
    {
        type = llmd_tok_type(it);
        if (strcmp(type, "ByteLevel") == 0) {
            continue;
        }
        if (strcmp(type, "TemplateProcessing") != 0 || templates++ > 0) {
            return llmd_tok_fail(ctx, "unsupported post-processor \"%s\"",
                                 type);
        }
        if (llmd_tok_load_template(tok, it, ctx) != 0) {
            return -1;
        }
    }
    return 0;
}


static int
llmd_tok_load_model(llmd_tokenizer_t *tok, const cJSON *root,
    llmd_tok_load_ctx_t *ctx)
{
    const cJSON  *model, *vocab, *merges;
    const char   *type;
    unsigned      b;
    unsigned char byte;

    model = cJSON_GetObjectItemCaseSensitive(root, "model");
    type = llmd_tok_type(model);
    if (!cJSON_IsObject(model) || (type[0] != '\0' && strcmp(type, "BPE")))
    {
        return llmd_tok_fail(ctx, "unsupported model type \"%s\"", type);
    }
    if (!llmd_tok_unset(model, "dropout")
        || !llmd_tok_unset(model, "continuing_subword_prefix")
        || !llmd_tok_unset(model, "end_of_word_suffix")
        || !llmd_tok_unset(model, "byte_fallback"))
    {
        return llmd_tok_fail(ctx, "unsupported BPE option (dropout, "
                             "subword affixes or byte_fallback)%s", NULL);
    }
    tok->ignore_merges = llmd_tok_bool(model, "ignore_merges", 0);

    vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab) || !cJSON_IsArray(merges)) {
        return llmd_tok_fail(ctx, "BPE model without vocab or merges%s",
                             NULL);
    }
    if (llmd_tok_load_vocab(tok, vocab,
            cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), ctx) != 0
        || llmd_tok_load_merges(tok, merges, ctx) != 0)
    {
        return -1;
    }

    for (b = 0; b < 256; b++) {
        byte = (unsigned char) b;
        tok->byte_id[b] = llmd_tok_vocab_find(tok, &byte, 1);
        if (tok->byte_id[b] == LLMD_TOK_NONE) {
            return llmd_tok_fail(ctx, "the vocabulary lacks a byte of the "
                                 "byte-level alphabet%s", NULL);
        }
    }
    return 0;
}


/*
 * Marks the vocabulary tokens whose own bytes merge back to them alone, so
 * that encode can take a whole piece found in the vocabulary without
 * running the merges (a memo of llmd_tok_bpe(), not a change of result).
 */
static int
llmd_tok_mark_self(llmd_tokenizer_t *tok)
{
    uint32_t  id, out[LLMD_TOK_SMALL_PIECE];
    size_t    len;

    for (id = 0; id < tok->n_ids; id++) {
        if (!(tok->flags[id] & LLMD_TOK_F_VOCAB)) {
            continue;
        }
        len = tok->bytes_of[id].len;
        if (len == 0 || len > LLMD_TOK_SMALL_PIECE) {
            continue;
        }
        if (tok->ignore_merges
            || (llmd_tok_bpe(tok, tok->bytes + tok->bytes_of[id].off, len,
                             NULL, out) == 1 && out[0] == id))
        {
            tok->flags[id] |= LLMD_TOK_F_SELF;
        }
    }
    return 0;
}


/*
 * The hot piece table (llmd_tokenizer_int.h): each token of up to 8 bytes
 * that encode emits alone for those bytes (the vocabulary's own answer for
 * them, with LLMD_TOK_F_SELF or ignore_merges), in id order, into the
 * first free of its two slots.
 */
static int
llmd_tok_build_hot(llmd_tokenizer_t *tok)
{
    size_t                i, len, k;
    uint32_t              id;
    uint64_t              key;
    llmd_tok_hot_t       *e;
    const unsigned char  *b;

    tok->hot = calloc(LLMD_TOK_HOT_SLOTS, sizeof(llmd_tok_hot_t));
    if (tok->hot == NULL) {
        return -1;
    }
    for (id = 0; id < tok->n_ids; id++) {
        len = tok->bytes_of[id].len;
        if (!(tok->flags[id] & LLMD_TOK_F_VOCAB) || len == 0
            || len > LLMD_TOK_HOT_MAX
            || !(tok->ignore_merges || (tok->flags[id] & LLMD_TOK_F_SELF)))
        {
            continue;
        }
        b = tok->bytes + tok->bytes_of[id].off;
        if (llmd_tok_vocab_find(tok, b, len) != id) {
            continue;
        }
        key = llmd_tok_key8(b, len);
        i = llmd_tok_hot_slot(key, len);
        for (k = 0; k < 2; k++) {
            e = &tok->hot[(i + k) & (LLMD_TOK_HOT_SLOTS - 1)];
            if (e->len == 0) {
                e->key = key;
                e->id = id;
                e->len = (uint32_t) len;
                break;
            }
        }
    }
    return 0;
}


llmd_tokenizer_t *
llmd_tokenizer_load(const char *path, const char *config_path, char *err,
    size_t errlen)
{
    cJSON               *root, *config;
    llmd_tokenizer_t    *tok;
    llmd_tok_load_ctx_t  ctx;
    char                 dummy[1];

    if (err == NULL || errlen == 0) {
        err = dummy;
        errlen = sizeof(dummy);
    }
    ctx.err = err;
    ctx.errlen = errlen;
    err[0] = '\0';
    if (path == NULL) {
        llmd_tok_fail(&ctx, "no tokenizer.json given%s", NULL);
        return NULL;
    }

    /* tokenizer_config.json only has to be valid JSON: see tokenizer.md. */
    if (config_path != NULL) {
        config = llmd_tok_read_json(config_path, &ctx);
        if (config == NULL) {
            return NULL;
        }
        cJSON_Delete(config);
    }

    root = llmd_tok_read_json(path, &ctx);
    if (root == NULL) {
        return NULL;
    }
    tok = calloc(1, sizeof(llmd_tokenizer_t));
    if (tok == NULL) {
        cJSON_Delete(root);
        llmd_tok_fail(&ctx, "out of memory%s", NULL);
        return NULL;
    }

    if (llmd_tok_load_model(tok, root, &ctx) != 0
        || llmd_tok_load_normalizer(tok,
               cJSON_GetObjectItemCaseSensitive(root, "normalizer"), &ctx)
           != 0
        || llmd_tok_load_pretok(tok,
               cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), &ctx)
           != 0
        || llmd_tok_load_post(tok,
               cJSON_GetObjectItemCaseSensitive(root, "post_processor"), &ctx)
           != 0
        || llmd_tok_mark_self(tok) != 0)
    {
        cJSON_Delete(root);
        llmd_tokenizer_free(tok);
        return NULL;
    }
    if (llmd_tok_build_hot(tok) != 0) {
        llmd_tok_fail(&ctx, "out of memory%s", NULL);
        cJSON_Delete(root);
        llmd_tokenizer_free(tok);
        return NULL;
    }
    cJSON_Delete(root);
    return tok;
}


void
llmd_tokenizer_free(llmd_tokenizer_t *tok)
{
    if (tok == NULL) {
        return;
    }
    pcre2_code_free(tok->split);
    free(tok->spell);
    free(tok->bytes);
    free(tok->spell_of);
    free(tok->bytes_of);
    free(tok->flags);
    free(tok->vocab_slots);
    free(tok->spell_slots);
    free(tok->merges);
    free(tok->added);
    free(tok->added_slots);
    free(tok->hot);
    free(tok);
}
