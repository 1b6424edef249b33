/* Internals of the model hub shared by the src/hub sources and tests/hub. */
#ifndef VNP_HUB_INTERNAL_H
#define VNP_HUB_INTERNAL_H

#include <stdint.h>
#include <stdio.h>

#include <cjson/cJSON.h>

#include "virnucpro/hub.h"

#define VNP_HUB_MAX_FILES 16
#define VNP_HUB_PATH 4096

typedef enum vnp_source_kind {
    VNP_SOURCE_HF_HUB = 0, /* {hub}/{repo}/resolve/{revision}/{file} */
    VNP_SOURCE_GITHUB = 1  /* {raw}/{repo}/{revision}/{file} */
} vnp_source_kind;

/* A digest pinned in the table for one file of the pinned revision. */
typedef struct vnp_pin {
    const char *file;
    const char *sha256;   /* hex, or NULL */
    const char *git_sha1; /* git blob id (hex), or NULL */
    uint64_t size;        /* 0 when not pinned */
} vnp_pin;

typedef struct vnp_model_spec {
    const char *name;
    const char *what;        /* one line for `models list` */
    vnp_source_kind source;
    const char *repo;        /* owner/name */
    const char *revision;    /* commit (or branch, see the table) */
    const char *default_branch; /* fetched instead when the server does not have revision
                                   (HTTP 404), each file accepted only on its pinned digest
                                   (model_fetch.c); NULL: "main" */
    const char *required[VNP_HUB_MAX_FILES]; /* NULL-terminated */
    const char *optional[VNP_HUB_MAX_FILES]; /* fetched when the revision has them */
    const char *weights[5];  /* candidates in order of preference; the first present wins;
                                a *.index.json candidate brings the shards it lists */
    const char *load_file;   /* file to load inside the model directory; NULL: the directory */
    const char *torch_hub_file; /* fair-esm checkpoint name under torch hub, or NULL */
    vnp_pin pins[6];         /* terminated by file == NULL */
} vnp_model_spec;

/* ---- model table ---- */
const vnp_model_spec *vnp_hub_spec(const char *name);
size_t vnp_hub_spec_count(void);
const vnp_model_spec *vnp_hub_spec_at(size_t i);
const vnp_pin *vnp_hub_spec_pin(const vnp_model_spec *spec, const char *file);

/* ---- resolved options ---- */
typedef struct vnp_hub_cfg {
    char cache_dir[VNP_HUB_PATH];
    char hub_url[1024];    /* no trailing slash */
    char github_url[1024];
    int hub_is_default, github_is_default;
    int offline, progress, retries, retry_delay_ms, stall_seconds, use_external, quiet;
} vnp_hub_cfg;

vnp_code vnp_hub_cfg_resolve(const vnp_hub_options *opt, vnp_hub_cfg *cfg, vnp_error *err);
/* URL of a file of a model at revision rev (the pinned one, or its default branch). */
void vnp_hub_file_url(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, const char *rev,
                      const char *file, char *url, size_t cap);
/* The branch fetched when the pinned revision is not found ("main" unless the table says). */
const char *vnp_hub_default_branch(const vnp_model_spec *spec);
/* Pinned digests apply only when the model comes from its default source. */
int vnp_hub_pins_apply(const vnp_hub_cfg *cfg, const vnp_model_spec *spec);

/* ---- digests ---- */
typedef struct vnp_digest {
    char sha256[65];
    char git_sha1[41];
    uint64_t size;
} vnp_digest;
/* Hashes a file: SHA-256, and the git blob SHA-1 in the same pass when want_git_sha1
 * (else d->git_sha1 is empty). */
vnp_code vnp_hub_digest_file(const char *path, vnp_digest *d, int want_git_sha1, vnp_error *err);
/* 1 when s is exactly n lowercase/uppercase hex digits. */
int vnp_hub_is_hex(const char *s, size_t n);

/* ---- HTTP ---- */
typedef struct vnp_http_head {
    long status;             /* final HTTP status (after redirects) */
    int64_t size;            /* X-Linked-Size, else Content-Length; -1 unknown */
    char sha256[65];         /* from X-Linked-Etag / ETag when it is 64 hex digits */
    char git_sha1[41];       /* from ETag when it is 40 hex digits (hub, non-LFS files) */
    char commit[64];         /* X-Repo-Commit */
    char error_code[32];     /* X-Error-Code of a 404 (the hub's RevisionNotFound,
                                EntryNotFound); "" when none */
} vnp_http_head;

/* HEAD request with retries. A 404 is returned in head->status with VNP_OK. */
vnp_code vnp_http_probe(const vnp_hub_cfg *cfg, const char *url, vnp_http_head *head,
                        vnp_error *err);
/* GET url into part_path, appending from its current size with a Range request
 * (restarting from zero when the server ignores the range). expected_size: -1 unknown.
 * label: name shown in the progress bar. */
vnp_code vnp_http_download(const vnp_hub_cfg *cfg, const char *url, const char *part_path,
                           int64_t expected_size, const char *label, vnp_error *err);

/* ---- progress bar ---- */
typedef struct vnp_progress {
    int enabled;
    char label[64];
    int64_t total;      /* -1 unknown */
    int64_t start_at;   /* bytes present before this transfer */
    double t0, last;
} vnp_progress;
void vnp_progress_begin(vnp_progress *p, int enabled, const char *label, int64_t total,
                        int64_t start_at);
void vnp_progress_update(vnp_progress *p, int64_t now_bytes, int force);
void vnp_progress_end(vnp_progress *p, int64_t now_bytes);
/* "1.5 GB" style. */
void vnp_hub_human_size(uint64_t bytes, char *out, size_t cap);

/* ---- manifest.json ---- */
/* Loads <cache>/manifest.json (an empty manifest when absent). */
vnp_code vnp_manifest_load(const char *cache_dir, cJSON **out, vnp_error *err);
/* Writes it atomically (temporary file + rename). */
vnp_code vnp_manifest_save(const char *cache_dir, const cJSON *root, vnp_error *err);
/* The object for a model (created when create != 0; NULL when absent). */
cJSON *vnp_manifest_model(cJSON *root, const char *name, int create);
/* The entry of one file in a model object (created when create != 0). */
cJSON *vnp_manifest_file(cJSON *model, const char *file, int create);

/* Exclusive lock on the cache directory while fetching. */
typedef struct vnp_cache_lock {
    int fd;
} vnp_cache_lock;
vnp_code vnp_cache_lock_take(const char *cache_dir, vnp_cache_lock *lk, int quiet,
                             vnp_error *err);
void vnp_cache_lock_release(vnp_cache_lock *lk);

/* ---- model state ---- */
/* The directory of a model inside the cache. */
void vnp_hub_model_dir(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, char *out, size_t cap);
/* The path to load for a model present in the cache directory dir. */
void vnp_hub_load_path(const vnp_model_spec *spec, const char *dir, char *out, size_t cap);
/* Quick check of a cached model: complete in the manifest and every file present
 * with the recorded size and modification time. */
int vnp_hub_cached_ok(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, const cJSON *manifest);

/* Fetches a model described by spec (the table entry or a test's own). */
vnp_code vnp_hub_fetch_spec(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, vnp_error *err);
/* Verifies a model of the cache against the manifest. */
vnp_code vnp_hub_verify_spec(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, int *nfiles,
                             uint64_t *bytes, vnp_error *err);

/* ---- external caches (used in place) ---- */
/* A complete snapshot of spec's repository in a Hugging Face hub cache. */
int vnp_hub_find_hf_snapshot(const vnp_model_spec *spec, char *dir, size_t cap, char *rev,
                             size_t revcap);
/* The fair-esm torch hub checkpoint of spec, when present. */
int vnp_hub_find_torch_hub(const vnp_model_spec *spec, char *file, size_t cap);
/* Re-hashes the files of a Hugging Face cache snapshot against the names of the
 * blobs they link to (SHA-256 for LFS files, git blob ids for the others). */
vnp_code vnp_hub_verify_hf_snapshot(const char *dir, int *nfiles, uint64_t *bytes,
                                    vnp_error *err);
/* The Hugging Face hub cache directory in effect (HF_HUB_CACHE, HF_HOME/hub, ...). */
void vnp_hub_hf_cache_root(char *out, size_t cap);

/* Message printed unless quiet (stderr). */
void vnp_hub_note(const vnp_hub_cfg *cfg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
