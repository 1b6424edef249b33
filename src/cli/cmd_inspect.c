/* virnucpro inspect: what a checkpoint holds (tensors and attributes), read by the
 * same code the models load with — nothing in the file is executed. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "virnucpro.h"

static void inspect_usage(FILE *f)
{
    fputs("Usage: virnucpro inspect [-s] FILE...\n"
          "\n"
          "Lists the tensors and attributes of each checkpoint FILE: Hugging Face\n"
          "model.safetensors, PyTorch pytorch_model.bin, fair-esm .pt, or a whole pickled\n"
          "module such as VirNucPro's 300_model.pth / 500_model.pth. Pickles are read by a\n"
          "restricted interpreter that never runs code: a file that asks to is refused.\n"
          "\n"
          "Output, per file:\n"
          "  # FILE: N tensors (B bytes), M attributes\n"
          "  NAME<TAB>DTYPE<TAB>[SHAPE]            one line per tensor, in file order\n"
          "  @NAME<TAB>VALUE                       one line per attribute (bn1.eps, ...)\n"
          "\n"
          "Options:\n"
          "  -s, --stats   add min, max, mean and the count of NaN/Inf of float tensors\n"
          "  -h, --help    this help\n",
          f);
}

static void print_stats(const vnp_tensor *t)
{
    int64_t n = vnp_tensor_numel(t);
    if (t->dtype != VNP_DT_F32 && t->dtype != VNP_DT_F16 && t->dtype != VNP_DT_BF16 &&
        t->dtype != VNP_DT_F64)
        return;
    if (n == 0) {
        fputs("\tempty", stdout);
        return;
    }
    float *f = malloc((size_t)n * sizeof *f);
    vnp_error err;
    if (!f || vnp_tensor_to_f32(t, f, &err) != VNP_OK) {
        free(f);
        fputs("\t(no stats: out of memory)", stdout);
        return;
    }
    double sum = 0, lo = INFINITY, hi = -INFINITY;
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(f[i])) {
            bad++;
            continue;
        }
        sum += f[i];
        lo = f[i] < lo ? f[i] : lo;
        hi = f[i] > hi ? f[i] : hi;
    }
    if (bad == n)
        printf("\tmin=nan max=nan mean=nan nonfinite=%" PRId64, bad);
    else
        printf("\tmin=%.6g max=%.6g mean=%.6g nonfinite=%" PRId64, lo, hi,
               sum / (double)(n - bad), bad);
    free(f);
}

/* The shortest %g form that reads back as the same double (1e-05, not 1.0000000000000001e-05). */
static void print_num(double v)
{
    char buf[64];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (strtod(buf, NULL) == v || prec == 17)
            break;
    }
    fputs(buf, stdout);
}

static void print_map(const char *path, const vnp_tensor_map *m, int stats)
{
    size_t total = 0;
    for (size_t i = 0; i < vnp_tensor_map_count(m); i++)
        total += vnp_tensor_map_at(m, i)->nbytes;
    printf("# %s: %zu tensors (%zu bytes), %zu attributes\n", path, vnp_tensor_map_count(m),
           total, vnp_tensor_map_attr_count(m));
    for (size_t i = 0; i < vnp_tensor_map_count(m); i++) {
        const vnp_tensor *t = vnp_tensor_map_at(m, i);
        char shape[256];
        printf("%s\t%s\t%s", t->name, vnp_dtype_name(t->dtype),
               vnp_shape_str(t->shape, t->ndim, shape, sizeof shape));
        if (stats)
            print_stats(t);
        putchar('\n');
    }
    for (size_t i = 0; i < vnp_tensor_map_attr_count(m); i++) {
        const char *k = vnp_tensor_map_attr_key(m, i);
        double v;
        if (vnp_tensor_map_num(m, k, &v)) {
            printf("@%s\t", k);
            print_num(v);
            putchar('\n');
        } else
            printf("@%s\t%s\n", k, vnp_tensor_map_str(m, k));
    }
}

int vnp_cmd_inspect(int argc, char **argv)
{
    static const struct option opts[] = {
        {"stats", no_argument, NULL, 's'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int stats = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, "sh", opts, NULL)) != -1) {
        switch (c) {
        case 's': stats = 1; break;
        case 'h': inspect_usage(stdout); return 0;
        default:
            vnp_cli_error("unknown option '%s'; see 'virnucpro inspect --help'", argv[optind - 1]);
            return 2;
        }
    }
    if (optind >= argc) {
        vnp_cli_error("no checkpoint given; see 'virnucpro inspect --help'");
        return 2;
    }
    int status = 0;
    for (int i = optind; i < argc; i++) {
        vnp_tensor_map *m;
        vnp_error err;
        if (vnp_checkpoint_load(argv[i], &m, &err) != VNP_OK) {
            vnp_cli_error("%s", err.msg);
            status = 1;
            continue;
        }
        print_map(argv[i], m, stats);
        vnp_tensor_map_free(m);
        fflush(stdout);
    }
    return status;
}
