/* Stage 3: checkpoint readers. Each fills a vnp_tensor_map; nothing a file
 * asks for is ever executed.
 *
 * Tensors are row-major contiguous (vnp_tensor). Where the file's layout allows, their
 * data points into a read-only memory map of the file that the map keeps alive (so
 * loading an 11 GB checkpoint copies nothing); misaligned or non-contiguous tensors
 * are copied. Returned maps own everything; free them with vnp_tensor_map_free.
 *
 * Errors (vnp_code, message naming the file and the tensor/entry/byte offset):
 *   VNP_ENOTFOUND     the file does not exist
 *   VNP_EIO           it cannot be opened / mapped
 *   VNP_EFORMAT       truncated or corrupt: bad header JSON, offsets outside the file,
 *                     overlapping tensors, sizes != dtype x shape, damaged zip directory,
 *                     missing storage, malformed pickle, ...
 *   VNP_EUNSUPPORTED  valid but not supported: other dtypes (F8, complex, ...), compressed
 *                     or encrypted zip entries, big-endian storages, legacy (pre-1.6)
 *                     torch files, and any pickle opcode or global outside the allow-list
 *                     (e.g. "pickle global 'posix.system' at byte 2 is not allowed")
 *   VNP_EINTEGRITY    data.pkl does not match its zip CRC-32
 *   VNP_ENOMEM        out of memory
 */
#ifndef VIRNUCPRO_WEIGHTS_H
#define VIRNUCPRO_WEIGHTS_H

#include "virnucpro/error.h"
#include "virnucpro/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Hugging Face model.safetensors (memory-mapped). Dtypes F32, F16, BF16, I64 (and F64,
 * I32, I16, I8, U8, BOOL). The header is validated before use: well-formed JSON object,
 * data_offsets inside the data section, end - begin == dtype size x shape, no overlap and
 * no unindexed bytes (the format requires the data section to be fully covered).
 * Tensor names are the header's keys, in header order. "__metadata__" entries become
 * string attributes "__metadata__.<key>" (e.g. "__metadata__.format" = "pt"). */
vnp_code vnp_safetensors_load(const char *path, vnp_tensor_map **out, vnp_error *err);

/* PyTorch zip checkpoint (torch.save, PyTorch >= 1.6; any archive folder name; zip64).
 * The pickle is read by a restricted interpreter (see src/weights/pickle_vm.h) and its
 * value tree is flattened into dotted names:
 *  - a state dict (pytorch_model.bin): the dict's keys as they are, e.g.
 *    "esm.encoder.layer.0.attention.self.query.weight", "bert.embeddings...";
 *  - nested dicts join their keys with '.': the fair-esm hub file
 *    {"model": state_dict, "cfg": {"model": argparse.Namespace}} gives tensors
 *    "model.encoder.sentence_encoder.embed_tokens.weight", ... and attributes named
 *    after the Namespace's fields, verbatim:
 *      "cfg.model.encoder_layers"           (number)
 *      "cfg.model.encoder_embed_dim"        (number)
 *      "cfg.model.encoder_ffn_embed_dim"    (number)
 *      "cfg.model.encoder_attention_heads"  (number)
 *      "cfg.model.token_dropout"            (number, 1 = True)
 *      "cfg.model.arch"                     (string, e.g. "ESM-1b")
 *    and every other number/bool/string in cfg the same way (lists get ".0", ".1", ...);
 *  - a whole pickled nn.Module (VirNucPro's classifier .pth, CPU or CUDA tagged):
 *    its state_dict() names, in state_dict() order — "hidden_layer.weight",
 *    "bn1.running_var", "bn1.num_batches_tracked" (I64, 0-dim), ... — and each
 *    module's public plain attributes as attributes: "bn1.eps", "bn1.momentum",
 *    "bn1.num_features", "bn1.affine" (1/0), "hidden_layer.in_features",
 *    "dropout.p", ... ("training" and "_private" fields are skipped);
 *  - a file holding one bare tensor gives one tensor named "tensor".
 * Numbers, bools and numpy scalars (np.float64, np.int64, np.bool_, ...) become numeric
 * attributes (vnp_tensor_map_num), strings string attributes (vnp_tensor_map_str), torch
 * dtype objects the string "torch.float32", torch.device objects "cuda:0". */
vnp_code vnp_torch_load(const char *path, vnp_tensor_map **out, vnp_error *err);

/* Either of the above, chosen by content (zip magic, pickle magic, or a safetensors
 * header); a path ending in ".index.json" is a sharded checkpoint (below). */
vnp_code vnp_checkpoint_load(const char *path, vnp_tensor_map **out, vnp_error *err);

/* A sharded Hugging Face checkpoint: model.safetensors.index.json or
 * pytorch_model.bin.index.json, whose "weight_map" names the shard (a file beside it)
 * of every tensor. All tensors come in one map; every one the index names must be
 * in its shard, and none in two. */
vnp_code vnp_sharded_checkpoint_load(const char *index_path, vnp_tensor_map **out,
                                     vnp_error *err);

/* Writes tensors t[0..n) (name, dtype, shape, data, nbytes; the order kept) as a
 * safetensors file, with meta (NULL or a NULL-terminated list of key, value strings) as
 * its __metadata__. Written as "<path>.part" and renamed: path appears only complete.
 * VNP_EINVAL for a size that does not match its shape or a name given twice; VNP_EIO
 * naming the file otherwise. */
vnp_code vnp_safetensors_save(const char *path, const vnp_tensor *t, size_t n,
                              const char *const *meta, vnp_error *err);

#ifdef __cplusplus
}
#endif
#endif
