/* Model sources: a checkpoint parsed and mapped once for the whole process. While a
 * source is open, every vnp_encoder_load of the same checkpoint (one per worker, and
 * the FP32 twins of the NaN/Inf guard) uploads from its tensor map instead of reading
 * and parsing the file again; the map is read-only once loaded, so the workers' threads
 * share it. The registry is under one lock. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model/model_source.h"
#include "virnucpro/weights.h"

struct vnp_model_source {
    char ckpt[1024];
    vnp_tensor_map *map;
    int refs;
    struct vnp_model_source *next;
};

static pthread_mutex_t g_mu = PTHREAD_MUTEX_INITIALIZER;
static vnp_model_source *g_open; /* under g_mu */

const vnp_tensor_map *vnp_model_source_find(const char *ckpt)
{
    const vnp_tensor_map *m = NULL;
    pthread_mutex_lock(&g_mu);
    for (vnp_model_source *s = g_open; s && !m; s = s->next)
        if (!strcmp(s->ckpt, ckpt))
            m = s->map;
    pthread_mutex_unlock(&g_mu);
    return m;
}

vnp_code vnp_model_source_open(const char *path, vnp_model_source **out, vnp_error *err)
{
    *out = NULL;
    char ckpt[1024], config[1024];
    vnp_code rc = vnp_model_resolve(path, ckpt, config, sizeof ckpt, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&g_mu);
    for (vnp_model_source *s = g_open; s; s = s->next)
        if (!strcmp(s->ckpt, ckpt)) {
            s->refs++;
            *out = s;
            break;
        }
    pthread_mutex_unlock(&g_mu);
    if (*out)
        return VNP_OK;
    vnp_model_source *s = calloc(1, sizeof *s);
    if (!s)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    snprintf(s->ckpt, sizeof s->ckpt, "%s", ckpt);
    if ((rc = vnp_checkpoint_load(ckpt, &s->map, err))) {
        vnp_error_prefix(err, "loading model '%s': ", path);
        free(s);
        return rc;
    }
    s->refs = 1;
    pthread_mutex_lock(&g_mu);
    s->next = g_open;
    g_open = s;
    pthread_mutex_unlock(&g_mu);
    *out = s;
    return VNP_OK;
}

void vnp_model_source_close(vnp_model_source *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&g_mu);
    int last = --s->refs == 0;
    if (last)
        for (vnp_model_source **p = &g_open; *p; p = &(*p)->next)
            if (*p == s) {
                *p = s->next;
                break;
            }
    pthread_mutex_unlock(&g_mu);
    if (last) {
        vnp_tensor_map_free(s->map);
        free(s);
    }
}
