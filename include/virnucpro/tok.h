/* Stage 2: tokenizers. ESM-2 alphabet for proteins, DNABERT-S BPE for DNA. */
#ifndef VIRNUCPRO_TOK_H
#define VIRNUCPRO_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A growable array of token ids. */
typedef struct vnp_ids {
    int32_t *v;
    size_t n, cap;
} vnp_ids;

void vnp_ids_free(vnp_ids *ids);

/* ---- ESM-2 alphabet (33 tokens: <cls>=0 <pad>=1 <eos>=2 <unk>=3, residues, <mask>=32) ---- */
enum { VNP_ESM_CLS = 0, VNP_ESM_PAD = 1, VNP_ESM_EOS = 2, VNP_ESM_UNK = 3, VNP_ESM_MASK = 32,
       VNP_ESM_VOCAB = 33 };
/* Appends <cls> residues <eos> to ids (ids->n is not reset). */
vnp_code vnp_esm_encode(const char *protein, size_t len, vnp_ids *ids, vnp_error *err);

/* ---- DNABERT-S BPE from tokenizer.json ---- */
typedef struct vnp_bpe vnp_bpe;

vnp_code vnp_bpe_load(const char *tokenizer_json_path, vnp_bpe **out, vnp_error *err);
void vnp_bpe_free(vnp_bpe *bpe);
size_t vnp_bpe_vocab_size(const vnp_bpe *bpe);
/* Appends [CLS] tokens [SEP] (the file's template) to ids (ids->n is not reset). */
vnp_code vnp_bpe_encode(const vnp_bpe *bpe, const char *text, size_t len, vnp_ids *ids,
                        vnp_error *err);

#ifdef __cplusplus
}
#endif
#endif
