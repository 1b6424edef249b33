/* Checkpoints parsed and mapped once per process (model_source.c). (Internal to src/.) */
#ifndef VNP_MODEL_SOURCE_H
#define VNP_MODEL_SOURCE_H

#include <stddef.h>

#include "virnucpro/model.h"
#include "virnucpro/tensor.h"

/* Resolves a model path (directory or file) to its checkpoint file and, when there is
 * one, its config.json (config[0] = '\0' otherwise). */
vnp_code vnp_model_resolve(const char *path, char *ckpt, char *config, size_t cap,
                           vnp_error *err);
/* The tensor map of an open source for this checkpoint file, or NULL. Valid while the
 * source stays open (the caller holds it open around its use). */
const vnp_tensor_map *vnp_model_source_find(const char *ckpt);

#endif
