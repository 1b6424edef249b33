/* VirNucPro in C: which short DNA sequences are viral.
 *
 * The public API, stage by stage along the data path:
 *   seq      FASTA/FASTQ reading, chunking, six-frame ORFs
 *   tok      ESM-2 alphabet, DNABERT-S BPE
 *   tensor / weights   safetensors, PyTorch zip+pickle checkpoints
 *   model    backends (CPU/CUDA), ESM-2 and DNABERT-S encoders, the classifier
 *   pipeline batching, workers, output files
 *   hub      fetching, verifying and caching the published checkpoints
 * Every fallible function returns a vnp_code and fills a vnp_error. */
#ifndef VIRNUCPRO_H
#define VIRNUCPRO_H

#define VNP_VERSION_STRING "0.1.0"

#include "virnucpro/error.h"
#include "virnucpro/half.h"
#include "virnucpro/precision.h"
#include "virnucpro/seq.h"
#include "virnucpro/tok.h"
#include "virnucpro/tensor.h"
#include "virnucpro/weights.h"
#include "virnucpro/model.h"
#include "virnucpro/train.h"
#if __has_include("virnucpro/pipeline.h")
#include "virnucpro/pipeline.h"
#endif
#if __has_include("virnucpro/hub.h")
#include "virnucpro/hub.h"
#endif

#endif
