/* The models as the pipeline's workers drive them: queued on a backend's stream,
 * writing into backend buffers, with no wait and no guard handling of their own
 * (the worker resets and reads the guard once per batch). The synchronous calls of
 * include/virnucpro/model.h are built on these. (Internal to src/.) */
#ifndef VNP_MODEL_QUEUED_H
#define VNP_MODEL_QUEUED_H

#include "backend/backend.h"
#include "virnucpro/model.h"

/* Queues enc on batch b and mean-pools every sequence into columns [col, col + hidden)
 * of rows 0..nseq-1 of `out` (an F32 backend buffer with row stride ld). The batch's
 * ids, cu_seqlens and pooling ranges are staged in host slot `slot` (0 or 1): the
 * caller must have waited for the last batch queued with the same slot of this encoder
 * before reusing it. b itself may be changed as soon as this returns. */
vnp_code vnp_encoder_queue_pooled(vnp_encoder *enc, int slot, const vnp_batch *b, vnp_buf *out,
                                  int ld, int col, vnp_error *err);

/* The classifier's weights on a backend, computed in FP32 whatever the backend's
 * compute dtype (its BatchNorm amplifies rounding ~100x). */
typedef struct vnp_classifier_dev vnp_classifier_dev;

vnp_code vnp_classifier_upload(const vnp_classifier *c, vnp_backend *be, vnp_classifier_dev **out,
                               vnp_error *err);
void vnp_classifier_dev_free(vnp_classifier_dev *d);
/* Queues logits[n * 2] (an F32 backend buffer) = output_layer(ReLU(bn1(hidden_layer(x))))
 * for the rows of x, an F32 backend buffer [n, input width]. */
vnp_code vnp_classifier_queue_logits(vnp_classifier_dev *d, const vnp_buf *x, int n,
                                     vnp_buf *logits, vnp_error *err);

#endif
