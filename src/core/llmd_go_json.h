/*
 * Go's encoding/json string escaping, as llm-d's router writes a chat
 * request's messages before hashing them: one implementation for the cJSON
 * path (llmd_prompt.c) and the body scanner (llmd_body_scan.c), which must
 * produce the same bytes (their differential test compares block hashes).
 */
#ifndef LLMD_GO_JSON_H
#define LLMD_GO_JSON_H

#include <stddef.h>

/* Receives the escaped output, a run of bytes at a time. */
typedef void (*llmd_go_write_pt)(void *data, const void *p, size_t len);

/*
 * The length of the valid UTF-8 sequence at s (a lead byte >= 0x80), or 0
 * when it is not one: the rules of Go's utf8.DecodeRune (no overlong forms,
 * no surrogates, nothing above U+10FFFF).
 */
size_t llmd_utf8_len(const unsigned char *s, size_t len);

/*
 * Writes s escaped as Go's json.Marshal escapes a string, without the
 * quotes: '"', '\\' and control characters escaped, '<' '>' '&' as \u00XX,
 * U+2028/U+2029 as \u2028/\u2029, each invalid UTF-8 byte as \ufffd.
 */
void llmd_go_json_escape(const unsigned char *s, size_t len,
    llmd_go_write_pt write, void *data);

#endif /* LLMD_GO_JSON_H */
