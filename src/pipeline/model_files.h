/* The files a model is made of, each with its SHA-256: what predict's journal
 * identifies a run by and what run.json records. (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_MODEL_FILES_H
#define VNP_PIPELINE_MODEL_FILES_H

#include <stdint.h>

#include "virnucpro/error.h"

typedef struct vnp_model_file {
    char *path;        /* the file */
    const char *name;  /* its base name (inside path) */
    uint64_t bytes;
    char sha256[65];   /* lowercase hex */
} vnp_model_file;

/* path: a checkpoint file, or a model directory (every .safetensors, .bin, .json, .pt,
 * .pth, .txt and .model file in it: shards, config, tokenizer, vocabulary), sorted by
 * path; SHA-256 by vnp_file_sha256_cached (hashed once per file version). `what` names
 * the model in messages ("ESM-2"). */
vnp_code vnp_model_files(const char *path, const char *what, vnp_model_file **out, int *n,
                         vnp_error *err);
void vnp_model_files_free(vnp_model_file *f, int n);

#endif
