/* Shared by the model tests: golden token ids, packed batches, tolerances. */
#ifndef VNP_TEST_MODEL_FIXTURES_H
#define VNP_TEST_MODEL_FIXTURES_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "virnucpro/model.h"
#include "virnucpro/tensor.h"

/* expected/tokens.json: ORF ids and both models' token ids. */
typedef struct golden_tokens {
    int n;
    char **ids;
    int32_t **dna, **esm;
    int *dna_len, *esm_len;
} golden_tokens;

void golden_tokens_load(golden_tokens *g);
void golden_tokens_free(golden_tokens *g);
/* A cmocka group's setup and teardown when its tests need only the golden tokens: *state
 * is the loaded golden_tokens. */
int golden_tokens_group_setup(void **state);
int golden_tokens_group_teardown(void **state);

/* A cmocka group's setup and teardown: the golden tokens and
 * expected/tensors.safetensors. Load returns 0, or -1 with the error printed. */
int golden_fixtures_load(golden_tokens *g, vnp_tensor_map **expected);
void golden_fixtures_free(golden_tokens *g, vnp_tensor_map *expected);

/* A packed batch of the chosen sequences (idx[k] into seqs/lens). */
typedef struct packed {
    int32_t *tokens, *cu;
    vnp_batch b;
} packed;

void pack(packed *p, int32_t *const *seqs, const int *lens, const int *idx, int n);
/* pack() of sequences 0..n-1 in order. */
void pack_first(packed *p, int32_t *const *seqs, const int *lens, int n);
void packed_free(packed *p);

/* The end of a test that ran one batch through two ops tables of one backend: asserts
 * the two outputs (n floats each) equal bit for bit, frees them and the batch, and puts
 * the backend's own ops back (for the caller to free it with). */
void same_outputs_then_free(float *out[2], size_t n, packed *p, vnp_backend *be,
                            const vnp_backend_ops *own_ops);

/* ||a - b|| / ||b|| over n values. */
double rel_l2(const float *a, const float *b, size_t n);
/* max over rows of rel_l2 of each row of width w. */
double max_row_rel_l2(const float *a, const float *b, size_t rows, size_t w);

/* A malloc'd copy of a float32 tensor of expected/tensors.safetensors,
 * asserted to have `numel` values. */
float *expected_tensor(const vnp_tensor_map *m, const char *name, size_t numel);

/* The classifier's input: row i is a's row i then b's row i (n rows of 2w
 * values, malloc'd). */
float *merge_rows(const float *a, const float *b, int n, int w);

#endif
