/*
 * Text from token ids as Hugging Face's decode() gives it, for prompts made
 * the way inference-perf v0.2 makes them (random ids, decoded): the bytes
 * of the ids (the tokenizer's decode) become UTF-8 with every ill-formed
 * sequence replaced by U+FFFD (the tokenizers library's lossy conversion,
 * maximal subparts as WHATWG's decoder), then, when the tokenizer's
 * tokenizer_config.json asks for clean_up_tokenization_spaces (Llama-3.1
 * does), transformers' clean-up of spaces before punctuation and English
 * contractions.  And the JSON of such text as inference-perf sends it.
 * Pure.
 */
#ifndef LG_TEXT_H
#define LG_TEXT_H

#include <stddef.h>

/* Valid UTF-8 from n bytes: out needs room for 3 n bytes; its length. */
size_t lg_text_utf8_lossy(const char *in, size_t n, char *out);

/* transformers' clean_up_tokenization, in place: the new length. */
size_t lg_text_clean_up_spaces(char *s, size_t n);

/*
 * A JSON string of valid UTF-8 s as Python's json.dumps() writes it by
 * default (ensure_ascii): quoted, every character outside ASCII as \uXXXX
 * (surrogate pairs above U+FFFF), control characters and DEL escaped, NUL
 * included.  out needs room for 6 n + 2 bytes; its length.
 */
size_t lg_text_json_ascii(const char *s, size_t n, char *out);

#endif /* LG_TEXT_H */
