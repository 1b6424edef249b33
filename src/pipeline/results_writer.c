/* prediction_results.txt rows, as the original tool wrote them. */
#include <errno.h>
#include <string.h>

#include "virnucpro/pipeline.h"

const char *vnp_label_of(float p_others, float p_virus)
{
    return p_virus > p_others ? "virus" : "others";
}

static vnp_code write_failed(const char *path, vnp_error *err)
{
    return vnp_fail(err, VNP_EIO, "cannot write %s: %s (check free space and permissions)",
                    path, strerror(errno));
}

vnp_code vnp_results_write_header(FILE *f, const char *path, vnp_error *err)
{
    if (fputs("Sequence_ID\tPrediction\tscore1\tscore2\n", f) < 0)
        return write_failed(path, err);
    return VNP_OK;
}

vnp_code vnp_results_write_row(FILE *f, const char *path, const char *id, size_t id_len,
                               float p_others, float p_virus, vnp_error *err)
{
    char a[VNP_F32_STR_MAX], b[VNP_F32_STR_MAX];
    vnp_format_f32(p_others, a);
    vnp_format_f32(p_virus, b);
    if (fwrite(id, 1, id_len, f) != id_len ||
        fprintf(f, "\t%s\t%s\t%s\n", vnp_label_of(p_others, p_virus), a, b) < 0)
        return write_failed(path, err);
    return VNP_OK;
}
