/* The allow-list of pickle globals a PyTorch checkpoint may name. */
#ifndef VNP_WEIGHTS_PICKLE_GLOBALS_H
#define VNP_WEIGHTS_PICKLE_GLOBALS_H

#include "weights/pickle_vm.h"

/* Classifies module.name; returns 0 when the global is not allowed. *dtype is set for
 * storage types. */
int vnp_pickle_global_allowed(const char *module, const char *name, vnp_pk_global_kind *kind,
                              vnp_dtype *dtype);

#endif
