/*
 * Random request bodies for the differential test of the body scanner
 * (t/unit/test_body_scan.c): completions and chat requests with every
 * prompt shape, nested junk members, duplicate and escaped keys, strings
 * with escapes, surrogates (paired, lone, broken), invalid \u digits, raw
 * UTF-8 valid and invalid, control and NUL bytes; numbers in every form
 * strtod knows and some it does not; odd blanks, a BOM, deep nesting;
 * then, for part of them, byte mutations (flip, insert, delete,
 * truncate, duplicate).  Deterministic for a seed (splitmix64).
 */
#ifndef BODY_GEN_H
#define BODY_GEN_H

#include <stdint.h>
#include <string.h>


typedef struct {
    char      *p;
    size_t     n;
    size_t     cap;
    uint64_t   s;
    int        hostile;     /* strings with invalid escapes too */
} body_gen_t;


static uint64_t
bg_rnd(body_gen_t *g)
{
    uint64_t  z;

    z = (g->s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}


static unsigned
bg_rn(body_gen_t *g, unsigned n)
{
    return n ? (unsigned) (bg_rnd(g) % n) : 0;
}


static void
bg_put(body_gen_t *g, const void *s, size_t n)
{
    if (g->n + n <= g->cap) {
        memcpy(g->p + g->n, s, n);
        g->n += n;
    }
}


static void
bg_puts(body_gen_t *g, const char *s)
{
    bg_put(g, s, strlen(s));
}


static void
bg_putc(body_gen_t *g, int c)
{
    char  ch = (char) c;

    bg_put(g, &ch, 1);
}


static void
bg_ws(body_gen_t *g)
{
    unsigned  r, k;

    r = bg_rn(g, 100);

    if (r < 60) {
        return;
    }

    for (k = bg_rn(g, 3) + 1; k; k--) {
        if (r < 97) {
            bg_putc(g, " \t\n\r"[bg_rn(g, 4)]);

        } else {
            /* cJSON skips every byte <= 0x20 between tokens */
            bg_putc(g, bg_rn(g, 0x21));
        }
    }
}


static void
bg_hex4(body_gen_t *g, unsigned v)
{
    char        buf[8];
    const char *fmt = bg_rn(g, 2) ? "\\u%04x" : "\\u%04X";

    snprintf(buf, sizeof(buf), fmt, v & 0xffff);
    bg_puts(g, buf);
}


static void
bg_utf8(body_gen_t *g, unsigned cp)
{
    unsigned char  b[4];

    if (cp < 0x80) {
        bg_putc(g, cp);

    } else if (cp < 0x800) {
        b[0] = 0xc0 | (cp >> 6);
        b[1] = 0x80 | (cp & 0x3f);
        bg_put(g, b, 2);

    } else if (cp < 0x10000) {
        b[0] = 0xe0 | (cp >> 12);
        b[1] = 0x80 | ((cp >> 6) & 0x3f);
        b[2] = 0x80 | (cp & 0x3f);
        bg_put(g, b, 3);

    } else {
        b[0] = 0xf0 | (cp >> 18);
        b[1] = 0x80 | ((cp >> 12) & 0x3f);
        b[2] = 0x80 | ((cp >> 6) & 0x3f);
        b[3] = 0x80 | (cp & 0x3f);
        bg_put(g, b, 4);
    }
}


/* The contents of a string (no quotes). */
static void
bg_str_body(body_gen_t *g, unsigned maxlen)
{
    unsigned     n, r, k;
    static const char  *short_esc[] = {
        "\\n", "\\t", "\\r", "\\b", "\\f", "\\\"", "\\\\", "\\/"
    };
    static const char  *bad_u[] = {
        "\\udc00", "\\uDFFF", "\\ud800x", "\\uD800\\u0041", "\\u12zz",
        "\\u0000", "\\uzzzz", "\\ud83d\\ud83d", "\\ud83d", "\\u00",
        "\\u", "\\ud800\\", "\\u000\\\\"
    };
    static const char  *bad_esc[] = { "\\x", "\\a", "\\U0041", "\\0", "\\'" };

    n = bg_rn(g, maxlen + 1);

    while (n--) {
        r = bg_rn(g, 1000);

        if (!g->hostile && ((r >= 720 && r < 740) || (r >= 885 && r < 895)))
        {
            r = 0;
        }

        if (r < 450) {
            bg_putc(g, "abcdefghijklmnopqrstuvwxyz ABCXYZ 0189 ,.;:!?-_"
                    [bg_rn(g, 48)]);

        } else if (r < 520) {
            bg_putc(g, "<>&'/{}[]"[bg_rn(g, 9)]);

        } else if (r < 620) {
            bg_puts(g, short_esc[bg_rn(g, 8)]);

        } else if (r < 690) {
            k = bg_rn(g, 3);
            bg_hex4(g, k == 0 ? bg_rn(g, 0x80)
                       : k == 1 ? 0x80 + bg_rn(g, 0x780)
                       : 0x800 + bg_rn(g, 0xf800));

        } else if (r < 720) {
            bg_hex4(g, 0xd800 + bg_rn(g, 0x400));
            bg_hex4(g, 0xdc00 + bg_rn(g, 0x400));

        } else if (r < 740) {
            bg_puts(g, bad_u[bg_rn(g, 13)]);

        } else if (r < 820) {
            k = bg_rn(g, 4);
            bg_utf8(g, k == 0 ? 0x80 + bg_rn(g, 0x780)
                       : k == 1 ? 0x800 + bg_rn(g, 0xf800)
                       : k == 2 ? 0x10000 + bg_rn(g, 0x100000)
                       : 0x2028 + bg_rn(g, 2));

        } else if (r < 860) {
            bg_putc(g, 0x80 + bg_rn(g, 0x80));

        } else if (r < 885) {
            bg_putc(g, 1 + bg_rn(g, 0x1f));

        } else if (r < 890) {
            bg_putc(g, 0);

        } else if (r < 895) {
            bg_puts(g, bad_esc[bg_rn(g, 5)]);

        } else {
            for (k = bg_rn(g, 90) + 10; k; k--) {
                bg_putc(g, 'a' + bg_rn(g, 26));
            }
        }
    }
}


static void
bg_string(body_gen_t *g, unsigned maxlen)
{
    bg_putc(g, '"');
    bg_str_body(g, maxlen);
    bg_putc(g, '"');
}


static void
bg_number(body_gen_t *g)
{
    char        buf[64];
    unsigned    r, k;
    static const char  *odd[] = {
        "-0", "007", "1.", "-.5", ".5", "1e", "1e+", "--1", "1.2.3",
        "4294967295", "4294967296", "4294967295.0", "-1", "1E2", "1e-2",
        "2.5", "1e400", "-1e-400", "0.0", "1-2", "+1", "-", "1..2",
        "123456789012345678901234567890", "0e0", "1.0e+0", "3.0000000001",
        "9007199254740993", "18446744073709551616", "0x10", "1e5.5", "1e+-2"
    };

    r = bg_rn(g, 10);

    if (r >= 7 && !g->hostile && bg_rn(g, 8) != 0) {
        r = 0;
    }

    if (r < 5) {
        snprintf(buf, sizeof(buf), "%u", bg_rn(g, r < 3 ? 10 : 200000));

    } else if (r < 7) {
        snprintf(buf, sizeof(buf), "%llu",
                 (unsigned long long) (bg_rnd(g) % 4294967400ULL));

    } else {
        bg_puts(g, odd[bg_rn(g, 32)]);
        return;
    }

    bg_puts(g, buf);

    if (bg_rn(g, 20) == 0) {
        bg_puts(g, ".0");
    }

    if (bg_rn(g, 50) == 0) {
        for (k = bg_rn(g, 80); k; k--) {
            bg_putc(g, '0' + bg_rn(g, 10));
        }
    }
}


static void bg_value(body_gen_t *g, unsigned depth);


static void
bg_key(body_gen_t *g, const char *name)
{
    unsigned  r, i;

    r = bg_rn(g, 100);
    bg_putc(g, '"');

    if (r < 85) {
        bg_puts(g, name);

    } else if (r < 92) {
        /* one byte as an escape: the same key once decoded */
        i = bg_rn(g, strlen(name));
        bg_put(g, name, i);
        bg_hex4(g, (unsigned char) name[i]);
        bg_puts(g, name + i + 1);

    } else if (r < 96) {
        /* cut by a NUL: the same key for cJSON's strcmp */
        bg_puts(g, name);
        bg_puts(g, bg_rn(g, 2) ? "\\u0000junk" : "\\u00zzx");

    } else {
        bg_putc(g, name[0] ^ 0x20);
        bg_puts(g, name + 1);
    }

    bg_putc(g, '"');
}


static void
bg_member(body_gen_t *g, const char *name, void (*value)(body_gen_t *g),
    int *first)
{
    if (!*first) {
        bg_ws(g);
        bg_putc(g, ',');
    }

    *first = 0;
    bg_ws(g);
    bg_key(g, name);
    bg_ws(g);
    bg_putc(g, ':');
    bg_ws(g);
    value(g);
}


static void
bg_value(body_gen_t *g, unsigned depth)
{
    unsigned  r, k, n;
    static const char  *keys[] = {
        "a", "role", "content", "type", "text", "image_url", "url", "x\\ny",
        "model", "prompt"
    };

    r = bg_rn(g, depth > 4 ? 7 : 11);

    switch (r) {
    case 0:
        bg_puts(g, "null");
        break;
    case 1:
        bg_puts(g, bg_rn(g, 2) ? "true" : "false");
        break;
    case 2:
    case 3:
        bg_number(g);
        break;
    case 4:
    case 5:
    case 6:
        bg_string(g, 20);
        break;
    case 7:
    case 8:
        bg_putc(g, '[');
        bg_ws(g);
        for (n = bg_rn(g, 5), k = 0; k < n; k++) {
            if (k) {
                bg_putc(g, ',');
                bg_ws(g);
            }
            bg_value(g, depth + 1);
            bg_ws(g);
        }
        bg_putc(g, ']');
        break;
    default:
        bg_putc(g, '{');
        bg_ws(g);
        for (n = bg_rn(g, 5), k = 0; k < n; k++) {
            if (k) {
                bg_putc(g, ',');
                bg_ws(g);
            }
            bg_key(g, keys[bg_rn(g, 10)]);
            bg_ws(g);
            bg_putc(g, ':');
            bg_ws(g);
            bg_value(g, depth + 1);
            bg_ws(g);
        }
        bg_putc(g, '}');
        break;
    }
}


static void bg_any(body_gen_t *g) { bg_value(g, 2); }


static void
bg_model(body_gen_t *g)
{
    static const char  *models[] = {
        "\"meta-llama/Llama-3.1-8B-Instruct\"", "\"\"", "null", "7",
        "\"m\\u00e9t\\u0061\"", "\"a\\u0000b\"", "[\"m\"]", "\"qwen\""
    };

    if (bg_rn(g, 4) == 0) {
        bg_string(g, 12);

    } else {
        bg_puts(g, models[bg_rn(g, 8)]);
    }
}


static void
bg_salt(body_gen_t *g)
{
    static const char  *salts[] = {
        "\"salt-A\"", "\"\"", "null", "1", "\"\\u0000\"", "{}"
    };

    if (bg_rn(g, 3) == 0) {
        bg_string(g, 8);

    } else {
        bg_puts(g, salts[bg_rn(g, 6)]);
    }
}


static void
bg_bool(body_gen_t *g)
{
    static const char  *v[] = { "true", "false", "null", "1", "\"true\"" };

    bg_puts(g, v[bg_rn(g, 5)]);
}


static void
bg_ids(body_gen_t *g)
{
    unsigned  n, k;

    bg_putc(g, '[');

    for (n = bg_rn(g, 24), k = 0; k < n; k++) {
        if (k) {
            bg_putc(g, ',');
        }

        bg_ws(g);

        if (bg_rn(g, 60) == 0) {
            bg_value(g, 3);

        } else {
            bg_number(g);
        }
    }

    bg_putc(g, ']');
}


static void
bg_prompt(body_gen_t *g)
{
    unsigned  r, n, k;

    r = bg_rn(g, 20);

    if (r < 9) {
        bg_string(g, r == 0 ? 500 : 60);

    } else if (r < 12) {
        bg_putc(g, '[');
        for (n = bg_rn(g, 5), k = 0; k < n; k++) {
            if (k) {
                bg_putc(g, ',');
            }
            bg_ws(g);
            if (bg_rn(g, 30) == 0) {
                bg_value(g, 3);
            } else {
                bg_string(g, 60);
            }
        }
        bg_putc(g, ']');

    } else if (r < 16) {
        bg_ids(g);

    } else if (r < 18) {
        bg_putc(g, '[');
        for (n = bg_rn(g, 4), k = 0; k < n; k++) {
            if (k) {
                bg_putc(g, ',');
            }
            if (bg_rn(g, 20) == 0) {
                bg_value(g, 3);
            } else {
                bg_ids(g);
            }
        }
        bg_putc(g, ']');

    } else {
        bg_value(g, 2);
    }
}


static void
bg_part(body_gen_t *g)
{
    unsigned  r, n, k, first;
    static const char  *names[] = { "type", "text", "image_url", "detail" };

    r = bg_rn(g, 20);

    if (r == 0) {
        bg_puts(g, "null");
        return;
    }

    if (r == 1) {
        bg_value(g, 3);
        return;
    }

    bg_putc(g, '{');
    first = 1;

    for (n = bg_rn(g, 4) + 1, k = 0; k < n; k++) {
        if (!first) {
            bg_putc(g, ',');
        }

        first = 0;
        r = bg_rn(g, 4);
        bg_ws(g);
        bg_key(g, names[r]);
        bg_putc(g, ':');

        if (bg_rn(g, 15) == 0) {
            bg_value(g, 3);

        } else if (r == 2) {
            if (bg_rn(g, 2)) {
                bg_puts(g, "{\"url\":");
                bg_string(g, 30);
                bg_puts(g, "}");

            } else {
                bg_puts(g, bg_rn(g, 2) ? "{\"detail\":\"low\"}" : "null");
            }

        } else {
            bg_string(g, 40);
        }
    }

    bg_putc(g, '}');
}


static void
bg_message(body_gen_t *g)
{
    unsigned  r, n, k, first;
    static const char  *roles[] = {
        "\"system\"", "\"user\"", "\"assistant\"", "\"\"", "null", "3",
        "\"to\\u006fl\""
    };

    r = bg_rn(g, 25);

    if (r == 0) {
        bg_puts(g, "null");
        return;
    }

    if (r == 1) {
        bg_value(g, 3);
        return;
    }

    if (r < 16) {
        /* a string role and a string content, as chat clients send them
           (the keys still escaped, cut or miscased now and then) */
        k = bg_rn(g, 2);
        bg_putc(g, '{');
        bg_ws(g);
        bg_key(g, k ? "content" : "role");
        bg_putc(g, ':');
        bg_ws(g);

        if (k) {
            bg_string(g, bg_rn(g, 8) == 0 ? 300 : 50);
        } else {
            bg_puts(g, roles[bg_rn(g, 3)]);
        }

        bg_ws(g);
        bg_putc(g, ',');
        bg_ws(g);
        bg_key(g, k ? "role" : "content");
        bg_putc(g, ':');

        if (k) {
            bg_puts(g, roles[bg_rn(g, 8) == 0 ? 6 : bg_rn(g, 3)]);
        } else {
            bg_string(g, bg_rn(g, 8) == 0 ? 300 : 50);
        }

        bg_ws(g);
        bg_putc(g, '}');
        return;
    }

    bg_putc(g, '{');
    first = 1;

    for (n = bg_rn(g, 4) + 1, k = 0; k < n; k++) {
        if (!first) {
            bg_putc(g, ',');
        }

        first = 0;
        bg_ws(g);
        r = bg_rn(g, 10);

        if (r < 4) {
            bg_key(g, "role");
            bg_putc(g, ':');
            bg_puts(g, roles[bg_rn(g, 7)]);

        } else if (r < 8) {
            bg_key(g, "content");
            bg_putc(g, ':');
            bg_ws(g);
            r = bg_rn(g, 10);

            if (r < 6) {
                bg_string(g, r == 0 ? 300 : 50);

            } else if (r < 9) {
                unsigned  np, j;

                bg_putc(g, '[');
                for (np = bg_rn(g, 4), j = 0; j < np; j++) {
                    if (j) {
                        bg_putc(g, ',');
                    }
                    bg_part(g);
                }
                bg_putc(g, ']');

            } else {
                bg_value(g, 3);
            }

        } else {
            bg_key(g, bg_rn(g, 2) ? "name" : "tool_calls");
            bg_putc(g, ':');
            bg_value(g, 3);
        }
    }

    bg_ws(g);
    bg_putc(g, '}');
}


static void
bg_messages(body_gen_t *g)
{
    unsigned  n, k;

    if (bg_rn(g, 30) == 0) {
        bg_value(g, 2);
        return;
    }

    bg_putc(g, '[');

    for (n = bg_rn(g, 6), k = 0; k < n; k++) {
        if (k) {
            bg_putc(g, ',');
        }

        bg_ws(g);
        bg_message(g);
    }

    bg_ws(g);
    bg_putc(g, ']');
}


static void
bg_deep(body_gen_t *g)
{
    unsigned  d, k;

    /* around cJSON's nesting limit of 1000 (the root object is one) */
    d = 996 + bg_rn(g, 6);

    for (k = 0; k < d; k++) {
        bg_putc(g, k & 1 ? '{' : '[');
        if (k & 1) {
            bg_puts(g, "\"k\":");
        }
    }

    bg_puts(g, "1");

    while (d--) {
        bg_putc(g, d & 1 ? '}' : ']');
    }
}


/* A request body (mostly for api: 1 completions, 2 chat) into g. */
static void
bg_body(body_gen_t *g, int chat)
{
    unsigned  n, k, r;
    int       first;

    g->n = 0;

    if (bg_rn(g, 200) == 0) {
        bg_puts(g, "\xef\xbb\xbf");
    }

    bg_ws(g);

    if (bg_rn(g, 100) == 0) {
        bg_value(g, 0);
        goto tail;
    }

    bg_putc(g, '{');
    first = 1;

    for (n = bg_rn(g, 7) + 1, k = 0; k < n; k++) {
        r = (k == 0 && bg_rn(g, 5) != 0) ? 30 : bg_rn(g, 100);

        if (r < 20) {
            bg_member(g, "model", bg_model, &first);

        } else if (r < 45) {
            bg_member(g, chat ? "messages" : "prompt",
                      chat ? bg_messages : bg_prompt, &first);

        } else if (r < 50) {
            bg_member(g, chat ? "prompt" : "messages",
                      chat ? bg_prompt : bg_messages, &first);

        } else if (r < 57) {
            bg_member(g, "cache_salt", bg_salt, &first);

        } else if (r < 64) {
            bg_member(g, "stream", bg_bool, &first);

        } else if (r < 69) {
            bg_member(g, "add_generation_prompt", bg_bool, &first);

        } else if (r < 74) {
            bg_member(g, "tools", bg_any, &first);

        } else if (r < 77) {
            bg_member(g, "chat_template_kwargs", bg_any, &first);

        } else if (r < 78 && bg_rn(g, 8) == 0) {
            bg_member(g, "deep", bg_deep, &first);

        } else {
            bg_member(g, r < 90 ? "max_tokens" : "temperature", bg_any,
                      &first);
        }
    }

    bg_ws(g);
    bg_putc(g, '}');

tail:

    r = bg_rn(g, 50);

    if (r == 0) {
        bg_puts(g, " \n\r\t");

    } else if (r == 1) {
        bg_putc(g, "x\x01\x00}]"[bg_rn(g, 5)]);
    }
}


/* 1 to 4 byte mutations of g's body. */
static void
bg_mutate(body_gen_t *g)
{
    unsigned  k, op, at, len;
    static const char  tokens[] = "{}[]\",:\\ u0123456789eE.-+ntf\x00\x7f";

    for (k = bg_rn(g, 4) + 1; k && g->n; k--) {
        op = bg_rn(g, 6);
        at = bg_rn(g, (unsigned) g->n);

        switch (op) {
        case 0:
            g->p[at] = (char) bg_rn(g, 256);
            break;
        case 1:
            g->p[at] = tokens[bg_rn(g, sizeof(tokens) - 1)];
            break;
        case 2:
            if (g->n < g->cap) {
                memmove(g->p + at + 1, g->p + at, g->n - at);
                g->p[at] = tokens[bg_rn(g, sizeof(tokens) - 1)];
                g->n++;
            }
            break;
        case 3:
            len = bg_rn(g, 8) + 1;
            if (at + len > g->n) {
                len = (unsigned) g->n - at;
            }
            memmove(g->p + at, g->p + at + len, g->n - at - len);
            g->n -= len;
            break;
        case 4:
            g->n = at;
            break;
        default:
            len = bg_rn(g, 16) + 1;
            if (at + len <= g->n && g->n + len <= g->cap) {
                memmove(g->p + at + len, g->p + at, g->n - at);
                g->n += len;
            }
            break;
        }
    }
}

#endif /* BODY_GEN_H */
