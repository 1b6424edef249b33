/* Stage 2: tokenizers. ESM-2 alphabet for proteins, DNABERT-S BPE for DNA.
 *
 * Both produce exactly the ids of the Hugging Face tokenizers the models were
 * published with (EsmTokenizer / fair-esm's alphabet; the `tokenizers` BPE of
 * DNABERT-S's tokenizer.json, as transformers calls it), special tokens included.
 * tests/tok/test_tok_diff.c checks this against the reference packages on
 * thousands of random strings.
 *
 * Text is bytes, decoded as UTF-8 where it is UTF-8:
 * - Whitespace is Unicode White_Space (what `tokenizers`' pre-tokenizers use:
 *   checked on every code point), plus U+001C..U+001F for the ESM alphabet
 *   (Python's str.split(), which EsmTokenizer uses).
 * - The Whitespace pre-tokenizer's `\w` is exact for ASCII. Other code points that
 *   are not White_Space count as word characters, whatever their Unicode class.
 *   This cannot change any id while no vocabulary symbol contains them (true of
 *   DNABERT-S, whose symbols are ASCII): such a character is one [UNK] that no
 *   merge crosses, whichever word it lands in.
 * - A byte that does not start valid UTF-8 is one character of its own (one
 *   [UNK] / part of an <unk> run). The reference tokenizers cannot take such
 *   input at all (Python strings are Unicode).
 * - DNA is not upper-cased: lower-case bases are not in the DNABERT-S vocabulary
 *   and each becomes [UNK], exactly as the reference does with the same text. */
#ifndef VIRNUCPRO_TOK_H
#define VIRNUCPRO_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A growable array of token ids. Zero-initialise; free with vnp_ids_free. */
typedef struct vnp_ids {
    int32_t *v;
    size_t n, cap;
} vnp_ids;

void vnp_ids_free(vnp_ids *ids);
/* Makes room for `extra` more ids beyond ids->n. */
vnp_code vnp_ids_reserve(vnp_ids *ids, size_t extra, vnp_error *err);
vnp_code vnp_ids_push(vnp_ids *ids, int32_t id, vnp_error *err);

/* ---- ESM-2 alphabet (33 tokens: <cls>=0 <pad>=1 <eos>=2 <unk>=3, residues, <mask>=32) ---- */
enum { VNP_ESM_CLS = 0, VNP_ESM_PAD = 1, VNP_ESM_EOS = 2, VNP_ESM_UNK = 3, VNP_ESM_MASK = 32,
       VNP_ESM_VOCAB = 33 };
/* Appends <cls> residues <eos> to ids (ids->n is not reset). As EsmTokenizer:
 * each alphabet character (upper case residues, '.', '-') is its token; a special
 * token written out ("<mask>") is that token; whitespace separates and is dropped;
 * every other maximal run of characters (lower case, '*', digits, ...) becomes ONE
 * <unk>. */
vnp_code vnp_esm_encode(const char *protein, size_t len, vnp_ids *ids, vnp_error *err);
/* The token string of an ESM-2 id, NULL outside 0..32. */
const char *vnp_esm_token(int32_t id);
/* Checks that a Hugging Face vocab.txt lists exactly the built-in alphabet in
 * order (the ids this tool uses). */
vnp_code vnp_esm_check_vocab(const char *vocab_txt_path, vnp_error *err);

/* ---- DNABERT-S BPE from tokenizer.json ---- */
typedef struct vnp_bpe vnp_bpe;

/* Loads a `tokenizers` JSON file: model BPE (merges as "a b" strings or pairs,
 * unk_token, fuse_unk, byte_fallback, ignore_merges, continuing_subword_prefix,
 * end_of_word_suffix), added_tokens, normalizer null, pre_tokenizer Whitespace /
 * WhitespaceSplit / Sequence of them / null, post_processor TemplateProcessing /
 * BertProcessing / RobertaProcessing / null. truncation and padding are ignored,
 * as transformers ignores them by default. Anything else is VNP_EUNSUPPORTED. */
vnp_code vnp_bpe_load(const char *tokenizer_json_path, vnp_bpe **out, vnp_error *err);
/* The same from JSON text in memory; `name` is used in error messages. */
vnp_code vnp_bpe_load_json(const char *json, size_t len, const char *name, vnp_bpe **out,
                           vnp_error *err);
void vnp_bpe_free(vnp_bpe *bpe);
/* Largest id (model vocabulary and added tokens) + 1. */
size_t vnp_bpe_vocab_size(const vnp_bpe *bpe);
/* Id of a token string (model vocabulary or added token), -1 if absent. */
int32_t vnp_bpe_token_id(const vnp_bpe *bpe, const char *token);
/* Appends [CLS] tokens [SEP] (the file's template) to ids (ids->n is not reset).
 * Thread-safe: bpe is only read. */
vnp_code vnp_bpe_encode(const vnp_bpe *bpe, const char *text, size_t len, vnp_ids *ids,
                        vnp_error *err);

#ifdef __cplusplus
}
#endif
#endif
