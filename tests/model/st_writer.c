#include "st_writer.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test_support.h"

void st_write_edited(const vnp_tensor_map *m, const char *path, const char *drop,
                     const char *reshape)
{
    cJSON *hdr = cJSON_CreateObject();
    size_t off = 0, n = vnp_tensor_map_count(m);
    size_t *sizes = calloc(n, sizeof *sizes);
    for (size_t i = 0; i < n; i++) {
        const vnp_tensor *t = vnp_tensor_map_at(m, i);
        if (drop && !strcmp(t->name, drop))
            continue;
        int64_t shape[VNP_MAX_DIMS];
        memcpy(shape, t->shape, sizeof shape);
        size_t bytes = t->nbytes;
        if (reshape && !strcmp(t->name, reshape)) {
            bytes = bytes / (size_t)shape[0] * (size_t)(shape[0] - 1);
            shape[0]--;
        }
        sizes[i] = bytes;
        cJSON *e = cJSON_AddObjectToObject(hdr, t->name);
        cJSON_AddStringToObject(e, "dtype", vnp_dtype_name(t->dtype));
        cJSON *sh = cJSON_AddArrayToObject(e, "shape");
        for (int d = 0; d < t->ndim; d++)
            cJSON_AddItemToArray(sh, cJSON_CreateNumber((double)shape[d]));
        cJSON *of = cJSON_AddArrayToObject(e, "data_offsets");
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(of, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *json = cJSON_PrintUnformatted(hdr);
    size_t jl = strlen(json), padded = (jl + 7) / 8 * 8;
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    uint64_t hl = padded;
    unsigned char le[8];
    for (int i = 0; i < 8; i++)
        le[i] = (unsigned char)(hl >> (8 * i));
    fwrite(le, 1, 8, f);
    fwrite(json, 1, jl, f);
    for (size_t i = jl; i < padded; i++)
        fputc(' ', f);
    for (size_t i = 0; i < n; i++)
        if (sizes[i])
            fwrite(vnp_tensor_map_at(m, i)->data, 1, sizes[i], f);
    assert_int_equal(fclose(f), 0);
    free(json);
    free(sizes);
    cJSON_Delete(hdr);
}
