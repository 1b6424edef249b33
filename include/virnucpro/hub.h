/* Stage 6: fetching, verifying and caching the published checkpoints.
 *
 * Four models are known by name:
 *   esm2_t36_3B_UR50D  ESM-2 3B, Hugging Face hub facebook/esm2_t36_3B_UR50D
 *   dnabert-s          DNABERT-S, Hugging Face hub zhihan1996/DNABERT-S
 *   classifier-300     VirNucPro's 300_model.pth (GitHub Li-Jing-1997/VirNucPro)
 *   classifier-500     VirNucPro's 500_model.pth (GitHub Li-Jing-1997/VirNucPro)
 * each pinned to one revision (src/hub/model_table.c).
 *
 * The cache is $VIRNUCPRO_MODELS, else $XDG_CACHE_HOME/virnucpro, else
 * ~/.cache/virnucpro; it holds one directory per model and manifest.json, which
 * records every file's size and SHA-256. Files are downloaded to "<name>.part",
 * resumed with HTTP Range after an interruption, checked against the digest the
 * server reports (the hub's X-Linked-Etag / ETag) and, for the default sources,
 * against digests pinned in the model table, then renamed into place.
 *
 * An existing Hugging Face hub cache (HF_HUB_CACHE, HF_HOME/hub,
 * ~/.cache/huggingface/hub) and a fair-esm torch hub file (TORCH_HOME/hub/checkpoints/
 * esm2_t36_3B_UR50D.pt) are used in place, without copying.
 *
 * Environment: VIRNUCPRO_HUB_URL (else HF_ENDPOINT, else https://huggingface.co) and
 * VIRNUCPRO_GITHUB_URL (else https://raw.githubusercontent.com) set the base URLs of
 * mirrors; VIRNUCPRO_OFFLINE=1 forbids any network access; VIRNUCPRO_HUB_RETRIES,
 * VIRNUCPRO_HUB_RETRY_DELAY_MS and VIRNUCPRO_HUB_STALL_SECONDS tune the transfer.
 * Proxies come from the usual http_proxy / https_proxy / no_proxy variables. */
#ifndef VIRNUCPRO_HUB_H
#define VIRNUCPRO_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Every field has an "unset" value (NULL or -1) meaning "from the environment,
 * else the default"; vnp_hub_options_init sets them all unset. */
typedef struct vnp_hub_options {
    const char *cache_dir; /* NULL: VIRNUCPRO_MODELS, XDG_CACHE_HOME/virnucpro, ~/.cache/virnucpro */
    int offline;           /* 1: never touch the network; -1: VIRNUCPRO_OFFLINE */
    int progress;          /* 1: progress bar on stderr; 0: none; -1: when stderr is a TTY */
    int retries;           /* retries after a transient error; -1: VIRNUCPRO_HUB_RETRIES or 5 */
    int retry_delay_ms;    /* first backoff delay, doubled each retry; -1: env or 1000 */
    int stall_seconds;     /* a transfer with no data for this long fails; -1: env or 60 */
    int use_external;      /* 1: use HF hub / torch hub caches in place; 0: never; -1: 1 */
    int quiet;             /* 1: no informational messages (errors still returned) */
} vnp_hub_options;

void vnp_hub_options_init(vnp_hub_options *opt);

/* The known model names, in a fixed order (NULL-terminated). */
const char *const *vnp_models_names(void);
/* 1 when name is a known model. */
int vnp_models_is_known(const char *name);
/* "classifier-300" / "classifier-500" for chunk length 300 / 500; NULL otherwise. */
const char *vnp_models_classifier_for_length(int chunk_length);

/* Downloads and verifies a model into the cache (a no-op when it is already
 * complete and its files hash to the manifest). Fails with VNP_ENOTFOUND in
 * offline mode when the model is not cached, VNP_ENET on network errors,
 * VNP_EINTEGRITY when a digest does not match, VNP_EIO on disk errors. */
vnp_code vnp_models_fetch(const char *name, const vnp_hub_options *opt, vnp_error *err);

/* Re-hashes every cached file of a model against manifest.json (or, for a model used
 * in place from a Hugging Face cache, against the digests its blobs are named by).
 * VNP_ENOTFOUND when the model is in neither; VNP_EINTEGRITY (message naming the file)
 * when a file is missing, has the wrong size or the wrong digest; the next fetch then
 * downloads it again. *nfiles / *bytes (may be NULL) receive what was checked. */
vnp_code vnp_models_verify(const char *name, const vnp_hub_options *opt, int *nfiles,
                           uint64_t *bytes, vnp_error *err);

typedef enum vnp_model_state {
    VNP_MODEL_MISSING = 0,   /* nowhere */
    VNP_MODEL_PARTIAL = 1,   /* some files in the cache, not complete */
    VNP_MODEL_CACHED = 2,    /* complete in the cache; sizes and dates match the manifest */
    VNP_MODEL_MODIFIED = 3,  /* complete in the manifest, but a file changed since: re-verify */
    VNP_MODEL_HF_CACHE = 4,  /* a complete snapshot in a Hugging Face hub cache */
    VNP_MODEL_TORCH_HUB = 5  /* a fair-esm torch hub checkpoint */
} vnp_model_state;

typedef struct vnp_model_info {
    vnp_model_state state;
    char path[4096];     /* what to load (directory or file); the cache location when missing */
    char revision[64];   /* pinned revision (of the snapshot, for an HF cache) */
    uint64_t bytes;      /* total size of the files present */
    int nfiles;
} vnp_model_info;

/* Where a model is, without any network access or hashing. */
vnp_code vnp_models_info(const char *name, const vnp_hub_options *opt, vnp_model_info *info,
                         vnp_error *err);
const char *vnp_model_state_name(vnp_model_state s);

/* The path to load for a model: a model directory (config.json + weights +
 * tokenizer files) for esm2_t36_3B_UR50D and dnabert-s, the .pth file for the
 * classifiers; for ESM-2 possibly a fair-esm .pt file (torch hub cache).
 * Looks in the cache, then the Hugging Face and torch hub caches, and fetches the
 * model on first use unless offline. Offline and missing: VNP_ENOTFOUND with a
 * message naming the model and how to fetch it. Uses default options. */
vnp_code vnp_models_resolve(const char *name, char *path, size_t cap, vnp_error *err);
vnp_code vnp_models_resolve_with(const char *name, const vnp_hub_options *opt, char *path,
                                 size_t cap, vnp_error *err);

/* Resolves several models at once: when offline and some are missing, the error
 * names every missing one (not just the first). paths[i] has cap bytes each. */
vnp_code vnp_models_resolve_all(const char *const *names, size_t n, const vnp_hub_options *opt,
                                char (*paths)[4096], vnp_error *err);

/* The cache directory these options use (created on fetch, not here). */
vnp_code vnp_models_cache_dir(const vnp_hub_options *opt, char *path, size_t cap, vnp_error *err);

/* SHA-256 (lowercase hex) of a file, remembered in <model cache>/digests.tsv by path,
 * size, mtime and inode so that an unchanged file is read only once. */
vnp_code vnp_file_sha256_cached(const char *path, char hex[65], vnp_error *err);
/* SHA-256 (lowercase hex) of a file, read now (not remembered: for inputs). */
vnp_code vnp_file_sha256(const char *path, char hex[65], vnp_error *err);
/* n bytes as 2n lowercase hex digits and a NUL into out. */
void vnp_hex_lower(const unsigned char *bytes, size_t n, char *out);
/* SHA-256 (lowercase hex) of a memory block. */
vnp_code vnp_sha256_hex(const void *data, size_t n, char hex[65], vnp_error *err);

#ifdef __cplusplus
}
#endif
#endif
