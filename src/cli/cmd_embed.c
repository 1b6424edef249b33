/* virnucpro embed: pooled DNABERT-S or ESM-2 embeddings of every record of a
 * FASTA/FASTQ file, as a safetensors file.
 *
 * Output layout (little-endian safetensors):
 *   "embeddings"  F32 [N, H]  row i = record i of INPUT, in input order
 *   "ids"         U8  [bytes] the record IDs in row order, each followed by '\n'
 *                             (the same convention as predict's merged_features)
 *   __metadata__  {"format": "pt", "model": "ESM-2" | "DNABERT-S", "checkpoint": path,
 *                  "pooling": how rows were pooled, "ids": the layout of "ids"}
 * In Python: safetensors.numpy.load_file(p)["ids"].tobytes().decode().split("\n")[:-1].
 * Rows and IDs stream to temporary files beside OUT and are assembled at the
 * end, so memory does not grow with the input; OUT appears only on success. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/commands.h"
#include "virnucpro.h"

static void embed_usage(FILE *f)
{
    fputs("Usage: virnucpro embed --model PATH -o OUT.safetensors [--device DEV] [-t N]\n"
          "                       [--batch-tokens N] [-q] INPUT\n"
          "\n"
          "Embeds every record of INPUT (FASTA/FASTQ, plain or gzip; '-' = stdin) with the\n"
          "model at PATH: a DNABERT-S directory (with its tokenizer.json) embeds DNA as the\n"
          "mean over all tokens including [CLS] and [SEP]; an ESM-2 directory or fair-esm\n"
          ".pt file embeds protein as the mean over residues 1..min(1024, L) of the last\n"
          "layer, as VirNucPro does. The model is decided by the checkpoint.\n"
          "\n"
          "OUT holds \"embeddings\" F32 [N, H] in input order and \"ids\" U8: the record IDs,\n"
          "one per line, in row order.\n"
          "\n"
          "Options:\n"
          "  -m, --model PATH      model directory or fair-esm .pt file (required)\n"
          "  -o, --output FILE     output safetensors file (required)\n"
          "  -d, --device DEV      cpu (default), cuda or cuda:N\n"
          "  -t, --threads N       CPU threads (default: all cores)\n"
          "  -b, --batch-tokens N  tokens per packed batch (default 8192)\n"
          "  -q, --quiet           no summary line on stderr\n"
          "  -h, --help            this help\n"
          "\n"
          "VIRNUCPRO_DISABLE_FP16=1 computes in FP32 on a GPU.\n",
          f);
}

/* ---- batching ---- */
typedef struct {
    vnp_ids toks;
    int32_t *cu;
    char **ids;
    size_t *id_len;
    int n, cap;
} pending;

static int pending_push(pending *p, const char *id, size_t id_len)
{
    if (p->n + 1 >= p->cap) {
        int nc = p->cap ? p->cap * 2 : 256;
        int32_t *cu = realloc(p->cu, sizeof(int32_t) * (size_t)(nc + 1));
        if (cu)
            p->cu = cu;
        char **ids = realloc(p->ids, sizeof(char *) * (size_t)nc);
        if (ids)
            p->ids = ids;
        size_t *il = realloc(p->id_len, sizeof(size_t) * (size_t)nc);
        if (il)
            p->id_len = il;
        if (!cu || !ids || !il)
            return -1;
        p->cap = nc;
    }
    if (!(p->ids[p->n] = strndup(id, id_len)))
        return -1;
    p->id_len[p->n] = id_len;
    p->n++;
    p->cu[p->n] = (int32_t)p->toks.n;
    return 0;
}

static void pending_clear(pending *p)
{
    for (int i = 0; i < p->n; i++)
        free(p->ids[i]);
    p->n = 0;
    p->toks.n = 0;
    if (p->cu)
        p->cu[0] = 0;
}

/* Embeds the pending records; a batch that comes out non-finite in FP16/BF16 is
 * recomputed in FP32 (the NaN/Inf guard) and the event logged with its records. */
static vnp_code flush(pending *p, vnp_encoder *enc, vnp_encoder_fp32 **twin, float *rows,
                      vnp_features_writer *o, vnp_error *err)
{
    if (p->n == 0)
        return VNP_OK;
    vnp_batch b = {p->toks.v, p->cu, p->n};
    int recomputed = 0;
    vnp_code rc = vnp_encoder_embed_checked(enc, twin, &b, rows, &recomputed, err);
    if (recomputed || rc == VNP_ENUMERIC)
        vnp_warn("embed: a batch of %d records ('%s' .. '%s') gave NaN/Inf in reduced "
                 "precision%s",
                 p->n, p->ids[0], p->ids[p->n - 1],
                 rc ? " and in FP32 too" : "; recomputed in FP32");
    int H = vnp_encoder_hidden_size(enc);
    for (int i = 0; !rc && i < p->n; i++)
        rc = vnp_features_writer_add(o, p->ids[i], p->id_len[i], rows + (size_t)i * H, err);
    pending_clear(p);
    return rc;
}

static double seconds_between(struct timespec a, struct timespec b)
{
    return (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
}

/* User + system CPU time of the process (all threads). */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
           (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static int parse_count(const char *opt, const char *v, long min, long max, long *out)
{
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || *end || end == v || x < min || x > max) {
        vnp_cli_error("%s expects a whole number from %ld to %ld, got '%s'", opt, min, max, v);
        return -1;
    }
    *out = x;
    return 0;
}

int vnp_cmd_embed(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"output", required_argument, NULL, 'o'},
        {"device", required_argument, NULL, 'd'},  {"threads", required_argument, NULL, 't'},
        {"batch-tokens", required_argument, NULL, 'b'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *output = NULL, *device = "cpu";
    long threads = 0, budget = 8192;
    int quiet = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:o:d:t:b:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': output = optarg; break;
        case 'd': device = optarg; break;
        case 't':
            if (parse_count("-t/--threads", optarg, 0, 1024, &threads))
                return 2;
            break;
        case 'b':
            if (parse_count("--batch-tokens", optarg, 1, 1L << 24, &budget))
                return 2;
            break;
        case 'q': quiet = 1; break;
        case 'h': embed_usage(stdout); return 0;
        case ':':
            vnp_cli_error("option '%s' needs a value; see 'virnucpro embed --help'",
                          argv[optind - 1]);
            return 2;
        default:
            vnp_cli_error("unknown option '%s'; see 'virnucpro embed --help'", argv[optind - 1]);
            return 2;
        }
    }
    if (!model || !output) {
        vnp_cli_error("missing %s; see 'virnucpro embed --help'",
                      !model ? "--model PATH" : "-o/--output FILE");
        return 2;
    }
    if (optind != argc - 1) {
        vnp_cli_error(optind >= argc ? "missing INPUT (a FASTA/FASTQ file, or '-' for stdin)"
                                     : "expected one INPUT, got %d arguments",
                      argc - optind);
        return 2;
    }
    const char *input = argv[optind];

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vnp_error err;
    vnp_error_clear(&err);
    vnp_backend *be = NULL;
    vnp_encoder *enc = NULL;
    vnp_bpe *bpe = NULL;
    vnp_seq_reader *rd = NULL;
    float *rows = NULL;
    pending p = {0};
    vnp_features_writer *o = NULL;
    vnp_encoder_fp32 *twin = NULL; /* FP32 copy for the NaN/Inf guard, loaded on first need */
    int status = 1;
    uint64_t tokens = 0;
    vnp_code rc = vnp_backend_create(device, VNP_PREC_FP16, (int)threads, &be, &err);
    if (!rc)
        rc = vnp_encoder_load(model, be, &enc, &err);
    struct timespec t_loaded;
    clock_gettime(CLOCK_MONOTONIC, &t_loaded);
    double cpu_loaded = cpu_seconds();
    int esm = !rc && vnp_encoder_kind_of(enc) == VNP_ENCODER_ESM2;
    if (!rc && !esm) {
        char tj[4096];
        snprintf(tj, sizeof tj, "%s/tokenizer.json", model);
        rc = vnp_bpe_load(tj, &bpe, &err);
        if (rc)
            vnp_error_prefix(&err, "DNABERT-S model '%s' needs its tokenizer.json: ", model);
    }
    int H = rc ? 0 : vnp_encoder_hidden_size(enc);
    if (!rc && !(rows = malloc(sizeof(float) * (size_t)H * 1024))) /* grown per batch below */
        rc = vnp_fail(&err, VNP_ENOMEM, "out of memory");
    int rows_cap = 1024;
    if (!rc)
        rc = vnp_seq_open(input, &rd, &err);
    if (!rc) {
        const char *meta[] = {"model", esm ? "ESM-2" : "DNABERT-S", "checkpoint", model,
                              "pooling",
                              esm ? "mean of the last layer (after emb_layer_norm_after) over "
                                    "residues 1..min(1024, L)"
                                  : "mean of the last layer over all tokens incl. [CLS] and [SEP]",
                              NULL};
        rc = vnp_features_writer_create(output, "embeddings", H, meta, &o, &err);
    }
    if (!rc && !(p.cu = malloc(sizeof(int32_t))))
        rc = vnp_fail(&err, VNP_ENOMEM, "out of memory");
    if (p.cu)
        p.cu[0] = 0;
    vnp_record rec;
    int got;
    while (!rc && (got = vnp_seq_read(rd, &rec, &err)) != 0) {
        if (got < 0) {
            rc = (vnp_code)-got;
            break;
        }
        size_t before = p.toks.n;
        rc = esm ? vnp_esm_encode(rec.seq, rec.len, &p.toks, &err)
                 : vnp_bpe_encode(bpe, rec.seq, rec.len, &p.toks, &err);
        if (rc) {
            vnp_error_prefix(&err, "%s: record '%s': ", vnp_seq_name(rd), rec.id);
            break;
        }
        if (p.toks.n > (size_t)INT32_MAX / 2) {
            rc = vnp_fail(&err, VNP_EINVAL, "%s: record '%s' is too long to embed",
                          vnp_seq_name(rd), rec.id);
            break;
        }
        tokens += p.toks.n - before;
        if (pending_push(&p, rec.id, rec.id_len)) {
            rc = vnp_fail(&err, VNP_ENOMEM, "out of memory");
            break;
        }
        if (p.n > rows_cap) {
            float *nr = realloc(rows, sizeof(float) * (size_t)H * (size_t)p.n * 2);
            if (!nr) {
                rc = vnp_fail(&err, VNP_ENOMEM, "out of memory");
                break;
            }
            rows = nr;
            rows_cap = p.n * 2;
        }
        if (p.toks.n >= (size_t)budget)
            rc = flush(&p, enc, &twin, rows, o, &err);
    }
    if (!rc)
        rc = flush(&p, enc, &twin, rows, o, &err);
    if (!rc)
        rc = vnp_features_writer_finish(o, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc)
        vnp_cli_error("%s", err.msg);
    else {
        status = 0;
        double load = seconds_between(t0, t_loaded), s = seconds_between(t_loaded, t1);
        double cpu = cpu_seconds() - cpu_loaded;
        if (!quiet)
            fprintf(stderr,
                    "virnucpro: embed: %llu records, %llu tokens, %s [%llu, %d] -> %s on %s; "
                    "model loaded in %.2f s, embedded in %.2f s (%.1f tokens/s, %.1f tokens "
                    "per CPU-second)\n",
                    (unsigned long long)vnp_features_writer_rows(o), (unsigned long long)tokens,
                    esm ? "ESM-2" : "DNABERT-S", (unsigned long long)vnp_features_writer_rows(o), H,
                    output,
                    vnp_backend_name(be), load, s, s > 0 ? (double)tokens / s : 0.0,
                    cpu > 0 ? (double)tokens / cpu : 0.0);
    }
    vnp_features_writer_free(o);
    pending_clear(&p);
    free(p.cu), free(p.ids), free(p.id_len);
    vnp_ids_free(&p.toks);
    free(rows);
    vnp_seq_close(rd);
    vnp_bpe_free(bpe);
    vnp_encoder_fp32_free(twin);
    vnp_encoder_free(enc);
    vnp_backend_free(be);
    return status;
}
