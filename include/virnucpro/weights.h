/* Stage 3: checkpoint readers. Each fills a vnp_tensor_map; nothing a file
 * asks for is ever executed. */
#ifndef VIRNUCPRO_WEIGHTS_H
#define VIRNUCPRO_WEIGHTS_H

#include "virnucpro/error.h"
#include "virnucpro/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hugging Face model.safetensors (memory-mapped). */
vnp_code vnp_safetensors_load(const char *path, vnp_tensor_map **out, vnp_error *err);

/* PyTorch zip checkpoint (torch.save): a state dict (pytorch_model.bin), a fair-esm
 * hub file ({"model": state_dict, "cfg": ...}: tensors under "model.", cfg values
 * as attributes "cfg.model.layers", ...), or a whole pickled module (VirNucPro's
 * classifier .pth: flat "hidden_layer.weight", "bn1.running_var", ... and plain
 * attributes such as "bn1.eps"). */
vnp_code vnp_torch_load(const char *path, vnp_tensor_map **out, vnp_error *err);

/* Either of the above, chosen by content (safetensors header or zip magic). */
vnp_code vnp_checkpoint_load(const char *path, vnp_tensor_map **out, vnp_error *err);

#ifdef __cplusplus
}
#endif
#endif
