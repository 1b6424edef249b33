/* Encoder configuration from a Hugging Face config.json (cJSON): the fields every
 * architecture has here, the architecture's own through its descriptor. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/encoder_internal.h"

static char *slurp(const char *path, vnp_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        vnp_fail(err, errno == ENOENT ? VNP_ENOTFOUND : VNP_EIO, "cannot open '%s': %s", path,
                 strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4096 + 1 > cap) {
            cap = cap ? cap * 2 : 8192;
            char *nb = realloc(buf, cap);
            if (!nb) {
                free(buf);
                fclose(f);
                vnp_fail(err, VNP_ENOMEM, "out of memory reading '%s'", path);
                return NULL;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        vnp_fail(err, VNP_EIO, "error reading '%s'", path);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* Reads an integer field; `required` makes absence an error. */
static vnp_code get_int(const cJSON *root, const char *path, const char *key, int required,
                        int *out, vnp_error *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v || cJSON_IsNull(v)) {
        if (required)
            return vnp_fail(err, VNP_EFORMAT, "'%s' has no \"%s\"; it is needed to build the model",
                            path, key);
        return VNP_OK;
    }
    double d = v->valuedouble;
    if (!cJSON_IsNumber(v) || d != floor(d) || d < 1 || d > 1e9)
        return vnp_fail(err, VNP_EFORMAT, "'%s': \"%s\" must be a positive integer", path, key);
    *out = (int)d;
    return VNP_OK;
}

vnp_code vnp_config_from_json(const char *path, vnp_encoder_config *cfg, vnp_error *err)
{
    char *text = slurp(path, err);
    if (!text)
        return err ? err->code : VNP_EIO;
    cJSON *root = cJSON_Parse(text);
    free(text);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return vnp_fail(err, VNP_EFORMAT, "'%s' is not a JSON object", path);
    }
    vnp_code rc = VNP_OK;
    memset(cfg, 0, sizeof *cfg);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const char *model_type = cJSON_IsString(mt) ? mt->valuestring : "";
    const vnp_encoder_arch *arch = NULL;
    for (int k = 0; vnp_encoder_archs[k] && !arch; k++)
        if (!strcmp(model_type, vnp_encoder_archs[k]->model_type))
            arch = vnp_encoder_archs[k];
    if (!arch) {
        rc = vnp_fail(err, VNP_EUNSUPPORTED,
                      "'%s': model_type \"%s\" is neither \"esm\" (ESM-2) nor \"bert\" (DNABERT-S)",
                      path, model_type);
        goto out;
    }
    cfg->kind = arch->kind;
    cfg->mask_id = 32;
    if ((rc = get_int(root, path, "hidden_size", 1, &cfg->hidden, err)) ||
        (rc = get_int(root, path, "num_hidden_layers", 1, &cfg->layers, err)) ||
        (rc = get_int(root, path, "num_attention_heads", 1, &cfg->heads, err)) ||
        (rc = get_int(root, path, "intermediate_size", 1, &cfg->intermediate, err)) ||
        (rc = get_int(root, path, "vocab_size", 1, &cfg->vocab, err)) ||
        (rc = get_int(root, path, "mask_token_id", 0, &cfg->mask_id, err)))
        goto out;
    cfg->eps = 1e-12f; /* transformers' default for both configs */
    const cJSON *eps = cJSON_GetObjectItemCaseSensitive(root, "layer_norm_eps");
    if (eps && !cJSON_IsNull(eps)) {
        if (!cJSON_IsNumber(eps) || !(eps->valuedouble > 0) || eps->valuedouble > 1) {
            rc = vnp_fail(err, VNP_EFORMAT, "'%s': \"layer_norm_eps\" must be a number in (0, 1]",
                          path);
            goto out;
        }
        cfg->eps = (float)eps->valuedouble;
    }
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (act && !(cJSON_IsString(act) && !strcmp(act->valuestring, "gelu"))) {
        rc = vnp_fail(err, VNP_EUNSUPPORTED,
                      "'%s': hidden_act \"%s\" is not supported; both models use \"gelu\" (erf)",
                      path, cJSON_IsString(act) ? act->valuestring : "?");
        goto out;
    }
    if (arch->config_json && (rc = arch->config_json(root, path, cfg, err)))
        goto out;
    if (cfg->hidden % cfg->heads || (arch->even_head_dim && (cfg->hidden / cfg->heads) % 2)) {
        rc = vnp_fail(
            err, VNP_EFORMAT, "'%s': hidden_size %d is not a multiple of num_attention_heads %d%s",
            path, cfg->hidden, cfg->heads, arch->even_head_dim ? " with an even head size" : "");
        goto out;
    }
out:
    cJSON_Delete(root);
    return rc;
}
