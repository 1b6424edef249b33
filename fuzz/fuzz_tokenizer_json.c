/* libFuzzer: tokenizer.json loading on arbitrary bytes, then encoding with what
 * loaded (fixed strings that reach every branch of the encoder, and the input's
 * own first bytes as text); also the ESM-2 alphabet on the raw input. */
#include <stddef.h>
#include <stdint.h>

#include "virnucpro/tok.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TEXT(s) {s, sizeof(s) - 1}
static const struct {
    const char *s;
    size_t n;
} texts[] = {
    TEXT("ACGTACGTTTGACCA"),
    TEXT("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
    TEXT("acgtN NNN [CLS]ACG[SEP] [UNK][[MASK]] -.,;"),
    /* non-ASCII letter, U+2003 space, bytes that are not UTF-8, NUL, CJK, affixes */
    TEXT("A\xc3\xa9" "C\xe2\x80\x83" "G\xff\xfe" "T\x00" "A\xe4\xb8\xad" "##</w><0x41>"),
    TEXT(""),
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    vnp_ids ids = {0};
    vnp_error err;
    vnp_esm_encode((const char *)data, size, &ids, &err);
    vnp_bpe *bpe = NULL;
    if (vnp_bpe_load_json((const char *)data, size, "fuzz.json", &bpe, &err) == VNP_OK) {
        size_t vocab = vnp_bpe_vocab_size(bpe);
        for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
            ids.n = 0;
            if (vnp_bpe_encode(bpe, texts[i].s, texts[i].n, &ids, &err) == VNP_OK)
                for (size_t k = 0; k < ids.n; k++)
                    if (ids.v[k] < 0 || (size_t)ids.v[k] >= vocab)
                        __builtin_trap(); /* every id must be inside the vocabulary */
        }
        ids.n = 0;
        vnp_bpe_encode(bpe, (const char *)data, size < 256 ? size : 256, &ids, &err);
        (void)vnp_bpe_token_id(bpe, "[UNK]");
        vnp_bpe_free(bpe);
    }
    vnp_ids_free(&ids);
    return 0;
}
