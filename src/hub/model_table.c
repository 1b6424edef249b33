/* The one table of the published checkpoints: where each comes from, at which
 * revision, which files make it up, and the digests known for that revision.
 *
 * Revisions and digests (looked up 2026-11 from public copies of the repositories;
 * this build machine has no internet access, so they were not re-checked live):
 * - facebook/esm2_t36_3B_UR50D @ 476b639933c8baad5ad09a60ac1a87f987b656fc ("Update TF
 *   weights", the head of main: the snapshot id found in HF caches). Its PyTorch
 *   weights are two shards listed by pytorch_model.bin.index.json; their LFS SHA-256
 *   and sizes are those of commit 02863af ("Upload EsmForMaskedLM"), unchanged since.
 *   The safetensors conversion exists only in pull-request refs, not on main.
 * - zhihan1996/DNABERT-S @ 2efd650282ec5d5ab377c787c76ea56b723f6b7c: a commit id that
 *   third-party code pins for this repository (the hub history itself was not
 *   reachable). pytorch_model.bin's SHA-256 is that of the LFS object shown by
 *   duplicates of the repository ("Duplicate from zhihan1996/DNABERT-S").
 * - Li-Jing-1997/VirNucPro @ 0f93f2755a7ea1acd3ff1bcf182892f960ef3326 (head of main,
 *   2025-04-01); 300_model.pth / 500_model.pth are plain git blobs (no LFS), last
 *   changed in 0b7e6f1 ("first commit"): their git blob ids are pinned.
 * Pins are checked only when a model comes from its default source; a mirror set
 * with VIRNUCPRO_HUB_URL / VIRNUCPRO_GITHUB_URL is checked against its own digests.
 * A revision the server does not have is replaced by default_branch, each file accepted
 * only on its pinned digest (model_fetch.c; docs/MODELS.md). */
#include <string.h>

#include "hub/hub_internal.h"

static const vnp_model_spec table[] = {
    {
        .name = "esm2_t36_3B_UR50D",
        .what = "ESM-2 3B protein language model (36 layers, 2560 wide)",
        .source = VNP_SOURCE_HF_HUB,
        .repo = "facebook/esm2_t36_3B_UR50D",
        .revision = "476b639933c8baad5ad09a60ac1a87f987b656fc",
        .default_branch = "main",
        .required = {"config.json", "vocab.txt"},
        .optional = {"special_tokens_map.json", "tokenizer_config.json"},
        .weights = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                    "pytorch_model.bin.index.json"},
        .torch_hub_file = "esm2_t36_3B_UR50D.pt",
        .pins = {
            {"pytorch_model-00001-of-00002.bin",
             "0f971f11c449d21422aa982b791619c10351972992c735f4c3cd43fe09790412", NULL,
             9976735419ull},
            {"pytorch_model-00002-of-00002.bin",
             "7560b46fc383c691fb74b915b7d4bcef40d3df181447f16ba4b298845e308d0c", NULL,
             1390347055ull},
        },
    },
    {
        .name = "dnabert-s",
        .what = "DNABERT-S DNA embedding model (MosaicBERT, 768 wide)",
        .source = VNP_SOURCE_HF_HUB,
        .repo = "zhihan1996/DNABERT-S",
        .revision = "2efd650282ec5d5ab377c787c76ea56b723f6b7c",
        .default_branch = "main",
        .required = {"config.json", "tokenizer.json"},
        /* the remote code its config.json's auto_map names, so that the directory
         * also loads in transformers; this program does not need it */
        .optional = {"tokenizer_config.json", "special_tokens_map.json", "configuration_bert.py",
                     "bert_layers.py", "bert_padding.py", "flash_attn_triton.py"},
        .weights = {"model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                    "pytorch_model.bin.index.json"},
        .pins = {
            {"pytorch_model.bin",
             "f3cfc3d0541859df64759e758cc4bc40fe1d5760799a7d098a9f9f09501c1e5f", NULL, 0},
        },
    },
    {
        .name = "classifier-300",
        .what = "VirNucPro MLP classifier for 300 bp chunks (300_model.pth)",
        .source = VNP_SOURCE_GITHUB,
        .repo = "Li-Jing-1997/VirNucPro",
        .revision = "0f93f2755a7ea1acd3ff1bcf182892f960ef3326",
        .default_branch = "main",
        .required = {"300_model.pth"},
        .load_file = "300_model.pth",
        .pins = {{"300_model.pth", NULL, "a0b5b85e7c1e44f00cde146d091beb82b2c8e855", 0}},
    },
    {
        .name = "classifier-500",
        .what = "VirNucPro MLP classifier for 500 bp chunks (500_model.pth)",
        .source = VNP_SOURCE_GITHUB,
        .repo = "Li-Jing-1997/VirNucPro",
        .revision = "0f93f2755a7ea1acd3ff1bcf182892f960ef3326",
        .default_branch = "main",
        .required = {"500_model.pth"},
        .load_file = "500_model.pth",
        .pins = {{"500_model.pth", NULL, "fc35d5ef9f1f4564eea7036f34f4f8ec6000d33d", 0}},
    },
};

static const char *const names[] = {"esm2_t36_3B_UR50D", "dnabert-s", "classifier-300",
                                     "classifier-500", NULL};

size_t vnp_hub_spec_count(void) { return sizeof table / sizeof table[0]; }

const vnp_model_spec *vnp_hub_spec_at(size_t i)
{
    return i < vnp_hub_spec_count() ? &table[i] : NULL;
}

const vnp_model_spec *vnp_hub_spec(const char *name)
{
    if (!name)
        return NULL;
    for (size_t i = 0; i < vnp_hub_spec_count(); i++)
        if (!strcmp(table[i].name, name))
            return &table[i];
    return NULL;
}

const vnp_pin *vnp_hub_spec_pin(const vnp_model_spec *spec, const char *file)
{
    for (const vnp_pin *p = spec->pins; p->file; p++)
        if (!strcmp(p->file, file))
            return p;
    return NULL;
}

const char *const *vnp_models_names(void) { return names; }

int vnp_models_is_known(const char *name) { return vnp_hub_spec(name) != NULL; }

const char *vnp_models_classifier_for_length(int chunk_length)
{
    if (chunk_length == 300)
        return "classifier-300";
    if (chunk_length == 500)
        return "classifier-500";
    return NULL;
}
