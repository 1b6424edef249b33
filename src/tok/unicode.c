/* UTF-8 decoding and the Unicode whitespace sets of the reference tokenizers. */
#include "tok/unicode.h"

size_t vnp_utf8_decode(const unsigned char *s, size_t len, uint32_t *cp)
{
    unsigned char b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t n;
    uint32_t c, min;
    if (b >= 0xC2 && b <= 0xDF) {
        n = 2, c = b & 0x1F, min = 0x80;
    } else if (b >= 0xE0 && b <= 0xEF) {
        n = 3, c = b & 0x0F, min = 0x800;
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4, c = b & 0x07, min = 0x10000;
    } else {
        *cp = VNP_UTF8_INVALID;
        return 1;
    }
    if (len < n) {
        *cp = VNP_UTF8_INVALID;
        return 1;
    }
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = VNP_UTF8_INVALID;
            return 1;
        }
        c = (c << 6) | (s[i] & 0x3F);
    }
    if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF)) {
        *cp = VNP_UTF8_INVALID;
        return 1;
    }
    *cp = c;
    return n;
}

int vnp_unicode_is_white_space(uint32_t cp)
{
    /* The complete White_Space property (checked against `tokenizers` on every
     * code point; tools/tok_diff.py keeps every one of them in the differential set). */
    if (cp < 0x80)
        return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    switch (cp) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
        return 1;
    default:
        return cp >= 0x2000 && cp <= 0x200A;
    }
}

int vnp_unicode_is_python_space(uint32_t cp)
{
    return vnp_unicode_is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F);
}
