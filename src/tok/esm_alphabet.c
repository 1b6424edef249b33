/* The ESM-2 alphabet and the EsmTokenizer splitting rules. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tok/unicode.h"
#include "virnucpro/tok.h"

static const char *const esm_tokens[VNP_ESM_VOCAB] = {
    "<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R",
    "T",     "I",     "D",     "P",     "K", "Q", "N", "F", "Y", "M", "H",
    "W",     "C",     "X",     "B",     "U", "Z", "O", ".", "-", "<null_1>", "<mask>",
};

const char *vnp_esm_token(int32_t id)
{
    return id >= 0 && id < VNP_ESM_VOCAB ? esm_tokens[id] : NULL;
}

/* Id + 1 of each one-character token (0: not a token). */
static const uint8_t esm_char_id1[256] = {
    ['L'] = 5, ['A'] = 6, ['G'] = 7, ['V'] = 8, ['S'] = 9, ['E'] = 10, ['R'] = 11, ['T'] = 12,
    ['I'] = 13, ['D'] = 14, ['P'] = 15, ['K'] = 16, ['Q'] = 17, ['N'] = 18, ['F'] = 19,
    ['Y'] = 20, ['M'] = 21, ['H'] = 22, ['W'] = 23, ['C'] = 24, ['X'] = 25, ['B'] = 26,
    ['U'] = 27, ['Z'] = 28, ['O'] = 29, ['.'] = 30, ['-'] = 31,
};

static int32_t esm_char_id(unsigned char c)
{
    return (int32_t)esm_char_id1[c] - 1;
}

/* Id of the multi-character token spelled at s (s[0] == '<'), or -1; *n gets its length. */
static int32_t esm_special_at(const char *s, size_t len, size_t *n)
{
    for (int32_t id = 0; id < VNP_ESM_VOCAB; id++) {
        const char *t = esm_tokens[id];
        size_t tl = strlen(t);
        if (tl > 1 && tl <= len && !memcmp(s, t, tl)) {
            *n = tl;
            return id;
        }
    }
    return -1;
}

vnp_code vnp_esm_encode(const char *protein, size_t len, vnp_ids *ids, vnp_error *err)
{
    /* Worst case: every byte a token, plus <cls> and <eos>. */
    vnp_code c = vnp_ids_reserve(ids, len + 2, err);
    if (c)
        return c;
    int32_t *out = ids->v + ids->n;
    size_t k = 0;
    out[k++] = VNP_ESM_CLS;
    const unsigned char *s = (const unsigned char *)protein;
    int in_unknown = 0; /* inside a run of characters that are no token */
    for (size_t i = 0; i < len;) {
        int32_t id = esm_char_id(s[i]);
        size_t n = 1;
        if (id < 0 && s[i] == '<')
            id = esm_special_at(protein + i, len - i, &n);
        if (id >= 0) {
            if (in_unknown)
                out[k++] = VNP_ESM_UNK, in_unknown = 0;
            out[k++] = id;
            i += n;
            continue;
        }
        uint32_t cp;
        n = vnp_utf8_decode(s + i, len - i, &cp);
        if (cp != VNP_UTF8_INVALID && vnp_unicode_is_python_space(cp)) {
            if (in_unknown)
                out[k++] = VNP_ESM_UNK, in_unknown = 0;
        } else {
            in_unknown = 1;
        }
        i += n;
    }
    if (in_unknown)
        out[k++] = VNP_ESM_UNK;
    out[k++] = VNP_ESM_EOS;
    ids->n += k;
    return VNP_OK;
}

vnp_code vnp_esm_check_vocab(const char *path, vnp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return vnp_fail(err, VNP_EIO, "%s: cannot open the ESM-2 vocabulary: %s", path,
                        strerror(errno));
    char line[256];
    int32_t id = 0;
    vnp_code rc = VNP_OK;
    while (fgets(line, sizeof line, f)) {
        size_t n = strlen(line);
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' ' ||
                     line[n - 1] == '\t'))
            line[--n] = '\0';
        if (id >= VNP_ESM_VOCAB) {
            if (n == 0)
                continue; /* trailing blank lines */
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s: line %d: '%s' is beyond the %d tokens of the ESM-2 alphabet; "
                          "this tool only supports the ESM-2 vocabulary",
                          path, id + 1, line, VNP_ESM_VOCAB);
            break;
        }
        if (strcmp(line, esm_tokens[id])) {
            rc = vnp_fail(err, VNP_EFORMAT,
                          "%s: line %d is '%s' but the ESM-2 alphabet has '%s' at id %d; "
                          "this tool only supports the ESM-2 vocabulary",
                          path, id + 1, line, esm_tokens[id], id);
            break;
        }
        id++;
    }
    if (!rc && ferror(f))
        rc = vnp_fail(err, VNP_EIO, "%s: read error", path);
    if (!rc && id < VNP_ESM_VOCAB)
        rc = vnp_fail(err, VNP_EFORMAT,
                      "%s: only %d tokens, the ESM-2 alphabet has %d (missing '%s')", path, id,
                      VNP_ESM_VOCAB, esm_tokens[id]);
    fclose(f);
    return rc;
}
