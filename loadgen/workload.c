/*
 * Workloads: deterministic prompt text from a seed, with request bodies
 * built once before the run so that sending costs nothing but a write.
 *
 * Text is a sequence of " word" pieces taken from a list of short English
 * words, each checked to be exactly one token with the project tokenizer
 * (--tokenizer; Llama-3's pre-tokenizer splits " word" off as one piece, and
 * merges never cross pieces, so N words are N tokens).  The words have at
 * most four letters, so the simulator's fallback tokenizer (a space and up
 * to four letters per token) counts them alike when it runs without a
 * tokenizer file.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cJSON.h>

#include "lg.h"
#include "lg_text.h"
#include "tokenizer/llmd_tokenizer.h"


static const char *lg_words[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was",
    "with", "be", "by", "on", "not", "he", "this", "are", "or", "his",
    "from", "at", "but", "have", "an", "they", "one", "you", "all", "were",
    "her", "she", "we", "can", "has", "more", "will", "some", "time",
    "when", "what", "then", "also", "been", "into", "only", "new", "two",
    "more", "most", "than", "them", "such", "used", "each", "made", "many",
    "year", "work", "part", "data", "line", "case", "form", "fact", "word",
    "hand", "high", "long", "last", "take", "much", "call", "make", "well",
    "just", "over", "back", "good", "give", "find", "very", "late", "like",
    "home", "life", "left", "city", "road", "king", "war", "sea", "land",
    "team", "game", "name", "book", "song", "film", "art", "law", "body",
    "face", "door", "room", "food", "tree", "fire", "wind", "rain", "snow",
    "blue", "red", "dark", "cold", "warm", "fast", "slow", "open", "free",
    "true", "safe", "easy", "hard", "full", "soft", "best", "next", "past",
    "cost", "rate", "risk", "plan", "rule", "test", "node", "pod", "disk",
    "file", "code", "task", "step", "page", "list", "size", "type", "mode",
    "user", "text", "load", "peak", "cache", "key", "map", "set", "run",
    "path", "port", "host", "link", "wait", "read", "send", "keep", "move",
    "turn", "show", "grow", "hold", "feel", "help", "play", "walk", "talk",
    "ask", "tell", "know", "see", "say", "go", "come", "look", "want",
    "use", "try", "need", "mean", "seem", "begin", "lead", "stay", "fall",
};

#define LG_NWORDS  (sizeof(lg_words) / sizeof(lg_words[0]))


typedef struct {
    const char  *w[LG_NWORDS];
    size_t       n;
} lg_vocab_t;


static int lg_vocab_build(const llmd_tokenizer_t *tok, lg_vocab_t *vb);
static size_t lg_vocab_words(const lg_vocab_t *vb, uint64_t *rng, long n,
    char *buf);
static char *lg_make_body(const lg_config_t *cf, const char *system,
    const char *user, long max_tokens, size_t *len);
static long lg_dist_sample(const lg_dist_t *d, uint64_t *rng);
static long lg_count_tokens(const llmd_tokenizer_t *tok, const char *text,
    size_t len, unsigned flags);
static long lg_ip_vocab(const llmd_tokenizer_t *tok);
static int lg_ip_clean_up(const char *tokenizer_json);
static char *lg_ip_text(const lg_workload_t *wl, uint64_t *rng, long n,
    uint32_t *ids, size_t *len);
static char *lg_ip_body(const lg_config_t *cf, const char *prompt,
    size_t len, long max_tokens, size_t *body_len);
static int lg_workload_ip(const lg_config_t *cf, const char *path,
    lg_workload_t *wl, char *err, size_t errlen);


static int
lg_vocab_build(const llmd_tokenizer_t *tok, lg_vocab_t *vb)
{
    char    spelled[16];
    size_t  i, j, len;

    vb->n = 0;
    for (i = 0; i < LG_NWORDS; i++) {
        len = strlen(lg_words[i]);
        if (len > 4 || len + 2 > sizeof(spelled)) {
            continue;
        }
        for (j = 0; j < vb->n; j++) {
            if (strcmp(vb->w[j], lg_words[i]) == 0) {
                break;
            }
        }
        if (j < vb->n) {
            continue;
        }
        if (tok != NULL) {
            /* byte-level BPE spells the leading space as U+0120 "Ġ" */
            memcpy(spelled, "\xc4\xa0", 2);
            memcpy(spelled + 2, lg_words[i], len);
            if (llmd_tokenizer_token_to_id(tok, spelled, len + 2) < 0) {
                continue;
            }
        }
        vb->w[vb->n++] = lg_words[i];
    }
    return vb->n >= 16 ? 0 : -1;
}


/* Appends n words to buf; buf has room for n * 5 bytes. */
static size_t
lg_vocab_words(const lg_vocab_t *vb, uint64_t *rng, long n, char *buf)
{
    size_t       off = 0, len;
    const char  *w;
    long         i;

    for (i = 0; i < n; i++) {
        w = vb->w[lg_rng_next(rng) % vb->n];
        len = strlen(w);
        buf[off++] = ' ';
        memcpy(buf + off, w, len);
        off += len;
    }
    buf[off] = '\0';
    return off;
}


static char *
lg_make_body(const lg_config_t *cf, const char *system, const char *user,
    long max_tokens, size_t *len)
{
    cJSON  *o, *msgs, *m, *so;
    char   *s;

    o = cJSON_CreateObject();
    if (o == NULL) {
        return NULL;
    }
    cJSON_AddStringToObject(o, "model", cf->model);
    if (cf->chat) {
        msgs = cJSON_AddArrayToObject(o, "messages");
        if (system != NULL && system[0] != '\0') {
            m = cJSON_CreateObject();
            cJSON_AddStringToObject(m, "role", "system");
            cJSON_AddStringToObject(m, "content", system);
            cJSON_AddItemToArray(msgs, m);
        }
        m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "role", "user");
        cJSON_AddStringToObject(m, "content", user);
        cJSON_AddItemToArray(msgs, m);
    } else {
        /* one string: the shared part first, as inference-perf sends it */
        size_t  a = system ? strlen(system) : 0, b = strlen(user);
        char   *p = malloc(a + b + 1);

        if (p == NULL) {
            cJSON_Delete(o);
            return NULL;
        }
        memcpy(p, system ? system : "", a);
        memcpy(p + a, user, b + 1);
        cJSON_AddStringToObject(o, "prompt", p);
        free(p);
    }
    cJSON_AddNumberToObject(o, "max_tokens", (double) max_tokens);
    if (cf->ignore_eos) {
        cJSON_AddBoolToObject(o, "ignore_eos", 1);
    }
    cJSON_AddBoolToObject(o, "stream", cf->stream);
    if (cf->pad_bytes > 0) {
        /* an ignored field that makes the body as large as wanted */
        char  *pad = malloc(cf->pad_bytes + 1);

        if (pad == NULL) {
            cJSON_Delete(o);
            return NULL;
        }
        memset(pad, 'x', cf->pad_bytes);
        pad[cf->pad_bytes] = '\0';
        cJSON_AddStringToObject(o, "llmd_loadgen_padding", pad);
        free(pad);
    }
    if (cf->stream) {
        so = cJSON_AddObjectToObject(o, "stream_options");
        cJSON_AddBoolToObject(so, "include_usage", 1);
    }
    s = cJSON_PrintUnformatted(o);
    cJSON_Delete(o);
    if (s != NULL) {
        *len = strlen(s);
    }
    return s;
}


static long
lg_dist_sample(const lg_dist_t *d, uint64_t *rng)
{
    double  u1, u2, z, v;

    /* Box-Muller, clipped to [min, max] */
    u1 = lg_rng_uniform(rng);
    u2 = lg_rng_uniform(rng);
    z = sqrt(-2.0 * log(u1)) * cos(2 * M_PI * u2);
    v = d->mean + d->std * z;
    if (v < d->min) {
        v = d->min;
    }
    if (v > d->max) {
        v = d->max;
    }
    return lround(v);
}


static long
lg_count_tokens(const llmd_tokenizer_t *tok, const char *text, size_t len,
    unsigned flags)
{
    size_t     ssz, cap;
    void      *scratch;
    uint32_t  *ids;
    long       n;

    ssz = llmd_tokenizer_scratch_size(tok, len);
    /* room for the special tokens the post-processor adds */
    cap = llmd_tokenizer_max_ids(tok, len) + 8;
    scratch = malloc(ssz);
    ids = malloc(cap * sizeof(uint32_t));
    n = (scratch && ids)
        ? llmd_tokenizer_encode(tok, text, len, flags, scratch, ssz, ids, cap)
        : -1;
    free(scratch);
    free(ids);
    return n;
}


int
lg_workload_build(const lg_config_t *cf, lg_workload_t *wl, char *err,
    size_t errlen)
{
    llmd_tokenizer_t  *tok = NULL;
    lg_vocab_t         vb;
    char               path[1200], terr[256], *sys = NULL, *q = NULL;
    struct stat        sb;
    uint64_t           rng;
    long               g, p, n, in = 0, out, got;
    size_t             total, i, qmax;
    lg_prompt_t       *pr;
    int                rc = -1;

    memset(wl, 0, sizeof(*wl));

    if (cf->tokenizer[0] != '\0') {
        snprintf(path, sizeof(path), "%s", cf->tokenizer);
        if (stat(path, &sb) == 0 && S_ISDIR(sb.st_mode)) {
            snprintf(path, sizeof(path), "%s/tokenizer.json", cf->tokenizer);
        }
        tok = llmd_tokenizer_load(path, NULL, terr, sizeof(terr));
        if (tok == NULL) {
            snprintf(err, errlen, "tokenizer %s: %s", path, terr);
            return -1;
        }
    }
    if (cf->mode == LG_MODE_IP_V02) {
        wl->tok = tok;
        tok = NULL;
        rc = lg_workload_ip(cf, path, wl, err, errlen);
        goto done;
    }
    if (lg_vocab_build(tok, &vb) != 0) {
        snprintf(err, errlen, "the tokenizer has too few one-token words");
        goto done;
    }

    if (cf->data == LG_DATA_SHARED_PREFIX) {
        total = (size_t) cf->num_groups * cf->prompts_per_group;
        if (total == 0 || total > LG_MAX_PROMPTS
            || (double) total * (cf->system_prompt_len + cf->question_len)
               > 2e8)
        {
            snprintf(err, errlen, "workload too large");
            goto done;
        }
        qmax = cf->question_len;
    } else {
        total = cf->num_prompts;
        if (total == 0 || total > LG_MAX_PROMPTS
            || (double) total * cf->input_dist.max > 2e8)
        {
            snprintf(err, errlen, "workload too large");
            goto done;
        }
        qmax = (size_t) cf->input_dist.max;
    }

    wl->prompts = calloc(total, sizeof(lg_prompt_t));
    sys = malloc(cf->system_prompt_len * 5 + 1);
    q = malloc(qmax * 5 + 64);
    if (wl->prompts == NULL || sys == NULL || q == NULL) {
        snprintf(err, errlen, "out of memory");
        goto done;
    }
    sys[0] = '\0';

    for (i = 0; i < total; i++) {
        pr = &wl->prompts[i];
        if (cf->data == LG_DATA_SHARED_PREFIX) {
            g = i / cf->prompts_per_group;
            p = i % cf->prompts_per_group;
            if (p == 0) {
                rng = cf->seed * 1000003ULL + g;
                lg_vocab_words(&vb, &rng, cf->system_prompt_len, sys);
            }
            rng = (cf->seed * 1000003ULL + g) * 7919ULL + p + 1;
            lg_vocab_words(&vb, &rng, cf->question_len, q);
            in = cf->system_prompt_len + cf->question_len;
            out = cf->output_len;
            pr->group = (int) g;
            pr->index = (int) p;
        } else {
            rng = cf->seed * 0x2545f4914f6cdd1dULL + i;
            in = lg_dist_sample(&cf->input_dist, &rng);
            out = lg_dist_sample(&cf->output_dist, &rng);
            lg_vocab_words(&vb, &rng, in, q);
            pr->group = -1;
            pr->index = (int) i;
        }
        pr->input_tokens = in;
        pr->output_tokens = out;
        pr->body = lg_make_body(cf, cf->data == LG_DATA_SHARED_PREFIX ? sys
                                                                    : NULL,
                                q, out, &pr->body_len);
        if (pr->body == NULL) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        wl->n++;
    }

    /* check the claim of the header comment on the last prompt */
    if (tok != NULL) {
        n = cf->data == LG_DATA_SHARED_PREFIX ? cf->question_len : in;
        got = lg_count_tokens(tok, q, strlen(q), 0);
        if (got == n && cf->data == LG_DATA_SHARED_PREFIX
            && cf->system_prompt_len > 0)
        {
            n = cf->system_prompt_len;
            got = lg_count_tokens(tok, sys, strlen(sys), 0);
        }
        if (got != n) {
            snprintf(err, errlen, "tokenizer counts %ld tokens in %ld words",
                     got, n);
            goto done;
        }
        wl->counted = 1;
        snprintf(wl->tokenizer_note, sizeof(wl->tokenizer_note),
                 "%s (%zu one-token words)", path, vb.n);
    } else {
        snprintf(wl->tokenizer_note, sizeof(wl->tokenizer_note),
                 "none: one token per word assumed (%zu words)", vb.n);
    }
    rc = 0;

done:
    free(sys);
    free(q);
    if (tok != NULL) {
        llmd_tokenizer_free(tok);
    }
    if (rc != 0) {
        lg_workload_free(wl);
    }
    return rc;
}


/* Tokens of text as inference-perf counts them: BOS included, 0 for "". */
long
lg_workload_count(const lg_workload_t *wl, const char *text, size_t len)
{
    if (len == 0 || wl->tok == NULL) {
        return 0;
    }
    return lg_count_tokens(wl->tok, text, len, LLMD_TOK_ADD_SPECIAL_TOKENS);
}


/*
 * Hugging Face's vocab_size: the model's ids without the added tokens.  They
 * follow the model's, so it is the first special id (Llama-3: 128000,
 * Qwen: 151643); every id when there is none.
 */
static long
lg_ip_vocab(const llmd_tokenizer_t *tok)
{
    size_t  i, n = llmd_tokenizer_vocab_size(tok);

    for (i = 0; i < n; i++) {
        if (llmd_tokenizer_is_special(tok, (uint32_t) i)) {
            return (long) i;
        }
    }
    return (long) n;
}


/* clean_up_tokenization_spaces of the tokenizer_config.json beside it. */
static int
lg_ip_clean_up(const char *tokenizer_json)
{
    char         path[1200], *buf = NULL, *slash;
    FILE        *f;
    long         size;
    cJSON       *o, *v;
    int          on = 0;

    snprintf(path, sizeof(path), "%s", tokenizer_json);
    slash = strrchr(path, '/');
    snprintf(slash ? slash + 1 : path,
             sizeof(path) - (slash ? slash + 1 - path : 0),
             "tokenizer_config.json");
    f = fopen(path, "r");
    if (f == NULL) {
        return 0;
    }
    if (fseek(f, 0, SEEK_END) == 0 && (size = ftell(f)) > 0
        && size < 16 * 1024 * 1024 && fseek(f, 0, SEEK_SET) == 0
        && (buf = malloc(size)) != NULL
        && fread(buf, 1, size, f) == (size_t) size)
    {
        o = cJSON_ParseWithLength(buf, size);
        v = cJSON_GetObjectItemCaseSensitive(o, "clean_up_tokenization_spaces");
        on = cJSON_IsTrue(v);
        cJSON_Delete(o);
    }
    free(buf);
    fclose(f);
    return on;
}


/* n random ids below the vocabulary size, decoded: malloc()ed text. */
static char *
lg_ip_text(const lg_workload_t *wl, uint64_t *rng, long n, uint32_t *ids,
    size_t *len)
{
    char    *raw, *text;
    size_t   cap = (size_t) n * 16 + 64;
    long     i, got;

    for (i = 0; i < n; i++) {
        ids[i] = (uint32_t) (lg_rng_uniform(rng) * wl->vocab);
        if (ids[i] >= (uint32_t) wl->vocab) {
            ids[i] = (uint32_t) wl->vocab - 1;
        }
    }
    for ( ;; ) {
        raw = malloc(cap);
        if (raw == NULL) {
            return NULL;
        }
        got = llmd_tokenizer_decode(wl->tok, ids, n,
                                    LLMD_TOK_SKIP_SPECIAL_TOKENS, raw, cap);
        if (got != LLMD_TOK_ERR_CAPACITY) {
            break;
        }
        free(raw);
        cap *= 2;
    }
    text = got >= 0 ? malloc((size_t) got * 3 + 1) : NULL;
    if (text != NULL) {
        *len = lg_text_utf8_lossy(raw, (size_t) got, text);
        if (wl->clean_up_spaces) {
            *len = lg_text_clean_up_spaces(text, *len);
        }
        text[*len] = '\0';
    }
    free(raw);
    return text;
}


/* {"model": ..., "prompt": ..., ...} as inference-perf v0.2 sends it. */
static char *
lg_ip_body(const lg_config_t *cf, const char *prompt, size_t len,
    long max_tokens, size_t *body_len)
{
    size_t   mlen = strlen(cf->model), o;
    char    *b;

    b = malloc(6 * (len + mlen) + 256);
    if (b == NULL) {
        return NULL;
    }
    o = (size_t) sprintf(b, "{\"model\": ");
    o += lg_text_json_ascii(cf->model, mlen, b + o);
    o += (size_t) sprintf(b + o, ", \"prompt\": ");
    o += lg_text_json_ascii(prompt, len, b + o);
    o += (size_t) sprintf(b + o, ", \"max_tokens\": %ld, \"ignore_eos\": %s,"
                          " \"stream\": %s}", max_tokens,
                          cf->ignore_eos ? "true" : "false",
                          cf->stream ? "true" : "false");
    *body_len = o;
    return b;
}


static int
lg_workload_ip(const lg_config_t *cf, const char *path, lg_workload_t *wl,
    char *err, size_t errlen)
{
    size_t        total, i, j, slen = 0, qlen, plen;
    uint32_t     *ids;
    uint64_t      rng = cf->seed * 0x9e3779b97f4a7c15ULL + 17;
    char         *sys = NULL, *q, *prompt;
    long          g, p, in_min = 0, in_max = 0;
    double        in_sum = 0;
    lg_prompt_t  *pr, tmp;

    total = (size_t) cf->num_groups * cf->prompts_per_group;
    if (total == 0 || total > LG_MAX_PROMPTS
        || (double) total * (cf->system_prompt_len + cf->question_len) > 5e7)
    {
        snprintf(err, errlen, "workload too large");
        return -1;
    }
    wl->vocab = lg_ip_vocab(wl->tok);
    wl->clean_up_spaces = lg_ip_clean_up(path);
    wl->prompts = calloc(total, sizeof(lg_prompt_t));
    ids = malloc((cf->system_prompt_len + cf->question_len + 1)
                 * sizeof(uint32_t));
    if (wl->prompts == NULL || ids == NULL || wl->vocab < 1) {
        free(ids);
        snprintf(err, errlen, "out of memory");
        return -1;
    }

    for (i = 0; i < total; i++) {
        pr = &wl->prompts[i];
        g = i / cf->prompts_per_group;
        p = i % cf->prompts_per_group;
        if (p == 0) {
            free(sys);
            sys = lg_ip_text(wl, &rng, cf->system_prompt_len, ids, &slen);
        }
        q = lg_ip_text(wl, &rng, cf->question_len, ids, &qlen);
        prompt = (sys && q) ? malloc(slen + qlen + 2) : NULL;
        if (prompt == NULL) {
            free(q);
            goto nomem;
        }
        /* the shared part, a space, the question */
        memcpy(prompt, sys, slen);
        prompt[slen] = ' ';
        memcpy(prompt + slen + 1, q, qlen);
        plen = slen + 1 + qlen;
        free(q);
        pr->group = (int) g;
        pr->index = (int) p;
        pr->output_tokens = cf->output_len;
        pr->input_tokens = lg_count_tokens(wl->tok, prompt, plen,
                                           LLMD_TOK_ADD_SPECIAL_TOKENS);
        pr->body = lg_ip_body(cf, prompt, plen, cf->output_len,
                              &pr->body_len);
        free(prompt);
        if (pr->body == NULL || pr->input_tokens < 0) {
            goto nomem;
        }
        wl->n++;
        in_sum += pr->input_tokens;
        in_min = i == 0 || pr->input_tokens < in_min ? pr->input_tokens
                                                     : in_min;
        in_max = pr->input_tokens > in_max ? pr->input_tokens : in_max;
    }
    free(sys);
    free(ids);

    /* random.shuffle(prompts) once; stage after stage sends them in this
     * order from the first */
    for (i = total - 1; i > 0; i--) {
        j = lg_rng_next(&rng) % (i + 1);
        tmp = wl->prompts[i];
        wl->prompts[i] = wl->prompts[j];
        wl->prompts[j] = tmp;
    }
    wl->counted = 1;
    snprintf(wl->tokenizer_note, sizeof(wl->tokenizer_note),
             "%s (inference-perf-v0.2 prompts: ids below %ld%s;"
             " %.0f tokens on average, %ld-%ld, BOS included)", path,
             wl->vocab, wl->clean_up_spaces ? ", spaces cleaned up" : "",
             in_sum / total, in_min, in_max);
    return 0;

nomem:
    free(sys);
    free(ids);
    snprintf(err, errlen, "out of memory or tokenizer error");
    return -1;
}


void
lg_workload_free(lg_workload_t *wl)
{
    size_t  i;

    if (wl->prompts != NULL) {
        for (i = 0; i < wl->n; i++) {
            free(wl->prompts[i].body);
        }
        free(wl->prompts);
    }
    if (wl->tok != NULL) {
        llmd_tokenizer_free(wl->tok);
    }
    memset(wl, 0, sizeof(*wl));
}
