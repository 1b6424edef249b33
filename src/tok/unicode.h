/* The little Unicode the tokenizers need: UTF-8 decoding and whitespace. */
#ifndef VNP_TOK_UNICODE_H
#define VNP_TOK_UNICODE_H

#include <stddef.h>
#include <stdint.h>

/* Code point marking a byte that does not start a valid UTF-8 sequence. */
#define VNP_UTF8_INVALID UINT32_MAX

/* Decodes the character at s[0] (len > 0 bytes available). Returns its length in
 * bytes (1..4) and stores the code point; a malformed, overlong, surrogate or
 * truncated sequence is one byte long with *cp = VNP_UTF8_INVALID. */
size_t vnp_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp);

/* Unicode White_Space: what Oniguruma's \s and Rust's char::is_whitespace
 * match (the `tokenizers` pre-tokenizers). */
int vnp_unicode_is_white_space(uint32_t cp);

/* Python's str.isspace (str.split() separators): White_Space plus U+001C..U+001F. */
int vnp_unicode_is_python_space(uint32_t cp);

#endif
