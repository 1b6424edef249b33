/* virnucpro validate-precision: embeddings in each reduced precision (FP16, BF16, FP8)
 * against FP32 embeddings of the same frames on the same devices, per model and per
 * length stratum. On a GPU the reduced precisions run as in predict; on the CPU they are
 * emulated (values rounded where the GPU rounds them), so the comparison is real there
 * too. */
#include <getopt.h>
#include <pthread.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "pipeline/engine.h"
#include "pipeline/predict_internal.h"
#include "virnucpro.h"

/* validate-precision's defaults: the command starts from them and the help prints them. */
static const struct vp_defaults {
    const char *device, *precisions;
    int chunk;
    long batch_tokens;
    double min_cos, min_cos_bf16, min_cos_fp8; /* min_cos_bf16 < -1: reported only */
    double min_agree, min_agree_fp8;
} vp_defaults = {"auto", "fp16,bf16", 500, 32768, 0.999, -2.0, 0.99, 0.0, 0.995};

static void vp_usage(FILE *f)
{
    const struct vp_defaults *d = &vp_defaults;
    fprintf(f,
        "Usage: virnucpro validate-precision --esm PATH --dnabert DIR [--classifier FILE]\n"
        "                                    [--device LIST] [-l 300|500] [options] INPUT\n"
        "\n"
        "Prepares INPUT as predict does (chunks, stop-free six-frame ORFs), embeds every\n"
        "ORF with DNABERT-S and ESM-2 in FP32, then in each of --precisions, on the same\n"
        "devices, and reports for each model, precision and ORF length stratum (protein\n"
        "length: short < 50 aa, medium 50-119, long >= 120): cosine similarity to FP32\n"
        "(min, 1st percentile, mean, and 1 - mean), the largest absolute difference, mean\n"
        "and standard deviation of the element differences, and the L2-norm ratio\n"
        "(reduced / FP32, mean and range); with --classifier, how many labels agree with\n"
        "FP32's. On the CPU the reduced precisions are emulated (rounded where the GPU\n"
        "rounds them): slow, but a real check of their numerics without a GPU.\n"
        "Exits 3 when it ran and a precision's cosine minimum (all strata) is under its\n"
        "threshold, labels agree less than asked, or a precision gives exactly the FP32\n"
        "embeddings (it was not applied); 1 on an error, 2 on a usage error.\n"
        "\n"
        "Options:\n"
        "      --esm PATH              ESM-2 model directory or fair-esm .pt\n"
        "      --dnabert DIR           DNABERT-S model directory with tokenizer.json\n"
        "      --classifier FILE       VirNucPro classifier .pth (label agreement)\n"
        "  -d, --device LIST           %s (default), cpu, cuda, cuda:N, comma-separated (one\n"
        "                              worker each, as predict)\n"
        "  -l, --length N              chunk length, 300 or 500 (default %d)\n"
        "      --precisions LIST       comma-separated: fp16, bf16, fp8 (E4M3 GEMMs with\n"
        "                              per-channel weight scales), fp8-tensor (per-tensor\n"
        "                              scales); default %s. fp8 needs a GPU of\n"
        "                              compute capability 8.9+, or the CPU (emulated)\n"
        "      --min-cosine X          FP16 threshold (default %g)\n"
        "      --min-cosine-bf16 X     BF16 threshold (default: reported only)\n"
        "      --min-cosine-fp8 X      fp8 and fp8-tensor threshold (default %g)\n"
        "      --min-agreement X       fraction of labels that must agree, every precision\n"
        "                              (default %g: reported)\n"
        "      --min-agreement-fp8 X   the same for fp8 and fp8-tensor (default %g)\n"
        "      --batch-tokens N        tokens per encoder batch (default %ld)\n"
        "      --limit N               at most N ORFs (default: all)\n"
        "  -h, --help                  this help\n",
        d->device, d->chunk, d->precisions, d->min_cos, d->min_cos_fp8, d->min_agree,
        d->min_agree_fp8, d->batch_tokens);
}

/* ---- one pass over the input's ORFs, on the engine predict uses ---- */
typedef struct orfs {
    size_t n, cap;
    int *aa;          /* protein length of each ORF */
    float *model[2];  /* [0] DNABERT-S n x hd, [1] ESM-2 n x he */
    unsigned char *label; /* with a classifier: 1 = virus */
    size_t recomputed;    /* batches the guard recomputed in FP32 */
} orfs;

static void orfs_free(orfs *o)
{
    free(o->aa);
    free(o->model[0]);
    free(o->model[1]);
    free(o->label);
    memset(o, 0, sizeof *o);
}

typedef struct vp_reader {
    vnp_engine *eng;
    const char *input;
    size_t chunk_len, limit;
    const vnp_bpe *bpe;
    vnp_error err;
} vp_reader;

/* Producer: the input's ORFs (the record -> chunk -> frame path predict uses) in
 * windows, at most `limit` of them. */
static void *vp_read(void *arg)
{
    vp_reader *r = arg;
    vnp_seq_reader *rd = NULL;
    vnp_frames fr;
    vnp_frames_init(&fr);
    vnp_window *w = NULL;
    size_t total = 0;
    vnp_record rec;
    int got = 0;
    vnp_code rc = vnp_seq_open(r->input, &rd, &r->err);
    if (!rc) {
        vnp_seq_set_nucleotide_only(rd, 1);
        vnp_seq_set_stop_fd(rd, vnp_engine_stop_fd(r->eng)); /* a failed run wakes stdin */
    }
    int stopped = 0; /* the engine is stopping: its error is already set */
    while (!rc && !stopped && (!r->limit || total < r->limit) && !vnp_engine_failed(r->eng) &&
           (got = vnp_seq_read(rd, &rec, &r->err)) == 1) {
        size_t nc = vnp_chunk_count(rec.len, r->chunk_len);
        for (size_t i = 0; !rc && !stopped && i < nc && (!r->limit || total < r->limit); i++) {
            if (!w && !(w = vnp_window_new())) {
                rc = vnp_fail(&r->err, VNP_ENOMEM, "out of memory");
                break;
            }
            size_t added;
            rc = vnp_orfs_add_chunk(w, r->bpe, &rec, r->chunk_len, i, &fr, &added, &r->err);
            total += added;
            if (!rc && w->norf >= 2048) {
                vnp_window *full = w;
                w = NULL;
                if (!vnp_engine_push(r->eng, full, &r->err))
                    stopped = 1;
            }
        }
    }
    if (!rc && got < 0)
        rc = (vnp_code)-got;
    /* --limit: drop the ORFs past it (a chunk's frames come together) */
    if (!rc && w && r->limit && total > r->limit)
        w->norf -= total - r->limit < w->norf ? total - r->limit : w->norf;
    if (rc)
        vnp_engine_fail(r->eng, &r->err);
    else if (!stopped && w) {
        vnp_engine_push(r->eng, w, &r->err);
        w = NULL;
    }
    vnp_window_free(w);
    vnp_frames_free(&fr);
    if (rd)
        vnp_seq_close(rd);
    vnp_engine_close(r->eng);
    return NULL;
}

static int grow(void **p, size_t need, size_t sz)
{
    void *n = realloc(*p, (need ? need : 1) * sz);
    if (!n)
        return 0;
    *p = n;
    return 1;
}

/* Embeds (and with cls classifies) every ORF on the devices in precision prec. */
static vnp_code vp_pass(const char *input, size_t chunk_len, const vnp_bpe *bpe, size_t limit,
                        const char *dnabert, const char *esm, const vnp_classifier *cls,
                        const char *cls_path,
                        const vnp_devices *dev, vnp_precision prec, size_t budget, orfs *o,
                        int hidden[2], double *seconds, vnp_error *err)
{
    memset(o, 0, sizeof *o);
    vnp_engine_config ec;
    memset(&ec, 0, sizeof ec);
    ec.models.dnabert = dnabert;
    ec.models.esm = esm;
    ec.models.cls = cls;
    ec.models.cls_path = cls_path;
    ec.models.prec = prec;
    ec.models.threads = vnp_cpu_threads_available();
    ec.devices = (const char *const *)dev->name;
    ec.ndevices = dev->n;
    ec.batch_tokens = budget;
    ec.want_features = 1;
    vnp_engine *eng = NULL;
    vnp_code rc = vnp_engine_start(&ec, &eng, err);
    if (rc)
        return rc;
    hidden[0] = vnp_engine_hidden(eng, VNP_ENCODER_DNABERT_S);
    hidden[1] = vnp_engine_hidden(eng, VNP_ENCODER_ESM2);
    int width = vnp_engine_width(eng);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vp_reader r = {eng, input, chunk_len, limit, bpe, {0}};
    pthread_t th;
    if (pthread_create(&th, NULL, vp_read, &r) != 0) {
        vnp_engine_free(eng);
        return vnp_fail(err, VNP_ENOMEM, "cannot start the reader thread");
    }
    vnp_window *w;
    while (!rc && (w = vnp_engine_pop(eng))) {
        size_t n = o->n + w->norf;
        if (!grow((void **)&o->aa, n, sizeof *o->aa) ||
            !grow((void **)&o->model[0], n * (size_t)hidden[0], sizeof(float)) ||
            !grow((void **)&o->model[1], n * (size_t)hidden[1], sizeof(float)) ||
            (cls && !grow((void **)&o->label, n, 1)))
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory for %zu embeddings", n);
        for (size_t i = 0; !rc && i < w->norf; i++) {
            size_t k = o->n + i;
            const float *f = w->features + i * (size_t)width;
            o->aa[k] = (int)w->orf[i].esm_len - 2;
            memcpy(o->model[0] + k * (size_t)hidden[0], f, (size_t)hidden[0] * sizeof(float));
            memcpy(o->model[1] + k * (size_t)hidden[1], f + hidden[0],
                   (size_t)hidden[1] * sizeof(float));
            if (cls)
                o->label[k] = w->probs[2 * i + 1] > w->probs[2 * i];
        }
        if (!rc)
            o->n = n;
        vnp_engine_release(eng, w);
    }
    if (rc)
        vnp_engine_fail(eng, err);
    pthread_join(th, NULL);
    if (!rc)
        rc = vnp_engine_error(eng, err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    vnp_engine_counts k;
    vnp_engine_counts_get(eng, &k);
    o->recomputed = k.recomputed;
    vnp_engine_free(eng);
    if (rc)
        orfs_free(o);
    return rc;
}

/* ---- statistics ---- */
#define NSTRATA 4 /* short, medium, long, all */
static const char *const stratum_name[NSTRATA] = {"short", "medium", "long", "all"};

static int stratum_of(int aa) { return aa < 50 ? 0 : aa < 120 ? 1 : 2; }

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

typedef struct stats {
    size_t n, nonfinite;
    size_t identical; /* ORFs whose reduced embedding equals FP32's bit for bit */
    double cos_min, cos_p01, cos_mean, max_abs, diff_mean, diff_std, ratio_mean, ratio_min,
        ratio_max;
} stats;

static void compute_stats(const float *ref, const float *red, const orfs *o, int H, int st,
                          stats *s)
{
    memset(s, 0, sizeof *s);
    double *cosv = malloc((o->n ? o->n : 1) * sizeof *cosv);
    double sum = 0, sum2 = 0, cnt = 0;
    s->ratio_min = INFINITY;
    s->ratio_max = -INFINITY;
    for (size_t i = 0; i < o->n; i++) {
        if (st < 3 && stratum_of(o->aa[i]) != st)
            continue;
        const float *a = ref + i * (size_t)H, *b = red + i * (size_t)H;
        double ab = 0, aa = 0, bb = 0;
        int finite = 1;
        s->identical += !memcmp(a, b, (size_t)H * sizeof *a);
        for (int k = 0; k < H; k++) {
            if (!isfinite(b[k]))
                finite = 0;
            ab += (double)a[k] * b[k];
            aa += (double)a[k] * a[k];
            bb += (double)b[k] * b[k];
            double d = (double)b[k] - a[k];
            if (fabs(d) > s->max_abs || !isfinite(d))
                s->max_abs = isfinite(d) ? fabs(d) : INFINITY;
            sum += d;
            sum2 += d * d;
            cnt++;
        }
        if (!finite)
            s->nonfinite++;
        double c = finite ? ab / sqrt(aa * bb) : -INFINITY;
        cosv[s->n++] = c;
        double ratio = sqrt(bb / aa);
        s->ratio_mean += ratio;
        if (ratio < s->ratio_min)
            s->ratio_min = ratio;
        if (ratio > s->ratio_max)
            s->ratio_max = ratio;
    }
    if (s->n) {
        qsort(cosv, s->n, sizeof *cosv, cmp_double);
        s->cos_min = cosv[0];
        s->cos_p01 = cosv[(size_t)floor(0.01 * (double)(s->n - 1))];
        for (size_t i = 0; i < s->n; i++)
            s->cos_mean += cosv[i];
        s->cos_mean /= (double)s->n;
        s->ratio_mean /= (double)s->n;
        s->diff_mean = sum / cnt;
        s->diff_std = sqrt(fmax(0.0, sum2 / cnt - s->diff_mean * s->diff_mean));
    }
    free(cosv);
}

enum {
    OPT_ESM = 1000,
    OPT_DNABERT,
    OPT_CLASSIFIER,
    OPT_DEVICE,
    OPT_PRECISIONS,
    OPT_MINCOS,
    OPT_MINCOS_BF16,
    OPT_MINCOS_FP8,
    OPT_MINAGREE,
    OPT_MINAGREE_FP8,
    OPT_BATCH,
    OPT_LIMIT
};

#define MAXPREC 4 /* fp16, bf16, fp8, fp8-tensor */

/* --precisions: a comma-separated list of reduced precisions, each once. */
static int parse_precisions(const char *list, vnp_precision *out, int *n)
{
    *n = 0;
    const char *p = list;
    for (;;) {
        const char *comma = strchr(p, ',');
        size_t len = comma ? (size_t)(comma - p) : strlen(p);
        char item[32];
        vnp_precision v;
        if (len == 0 || len >= sizeof item) {
            vnp_cli_error("--precisions: expected a comma-separated list of fp16, bf16, fp8, "
                          "fp8-tensor, got '%s'",
                          list);
            return 0;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (!vnp_precision_parse(item, &v) || v == VNP_PREC_FP32) {
            vnp_cli_error("--precisions: '%s' is not a reduced precision; use fp16, bf16, fp8 "
                          "or fp8-tensor (FP32 is the reference)",
                          item);
            return 0;
        }
        for (int k = 0; k < *n; k++)
            if (out[k] == v) {
                vnp_cli_error("--precisions: '%s' is listed twice", item);
                return 0;
            }
        out[(*n)++] = v;
        if (!comma)
            return 1;
        p = comma + 1;
    }
}

static int is_fp8(vnp_precision p)
{
    return vnp_precision_info_of(p)->gemm == VNP_FMT_E4M3;
}

int vnp_cmd_validate_precision(int argc, char **argv)
{
    static const struct option opts[] = {
        {"esm", required_argument, 0, OPT_ESM},
        {"dnabert", required_argument, 0, OPT_DNABERT},
        {"classifier", required_argument, 0, OPT_CLASSIFIER},
        {"device", required_argument, 0, 'd'},
        {"length", required_argument, 0, 'l'},
        {"precisions", required_argument, 0, OPT_PRECISIONS},
        {"min-cosine", required_argument, 0, OPT_MINCOS},
        {"min-cosine-bf16", required_argument, 0, OPT_MINCOS_BF16},
        {"min-cosine-fp8", required_argument, 0, OPT_MINCOS_FP8},
        {"min-agreement", required_argument, 0, OPT_MINAGREE},
        {"min-agreement-fp8", required_argument, 0, OPT_MINAGREE_FP8},
        {"batch-tokens", required_argument, 0, OPT_BATCH},
        {"limit", required_argument, 0, OPT_LIMIT},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const struct vp_defaults *d = &vp_defaults;
    const char *esm = NULL, *dnabert = NULL, *classifier = NULL, *device = d->device;
    const char *precisions = d->precisions;
    long chunk = d->chunk, budget = d->batch_tokens, limit = 0;
    double min_cos = d->min_cos, min_cos_bf16 = d->min_cos_bf16, min_cos_fp8 = d->min_cos_fp8,
           min_agree = d->min_agree, min_agree_fp8 = d->min_agree_fp8;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "l:d:h", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_ESM: esm = optarg; break;
        case OPT_DNABERT: dnabert = optarg; break;
        case OPT_CLASSIFIER: classifier = optarg; break;
        case 'd':
            if (!vnp_cli_device_ok(optarg))
                return 2;
            device = optarg;
            break;
        case OPT_PRECISIONS: precisions = optarg; break;
        case 'l': {
            int len;
            if (!vnp_cli_chunk_length(optarg, &len))
                return 2;
            chunk = len;
            break;
        }
        case OPT_MINCOS:
        case OPT_MINCOS_BF16:
        case OPT_MINCOS_FP8:
        case OPT_MINAGREE:
        case OPT_MINAGREE_FP8: {
            double v;
            const char *name = ch == OPT_MINCOS        ? "--min-cosine"
                               : ch == OPT_MINCOS_BF16 ? "--min-cosine-bf16"
                               : ch == OPT_MINCOS_FP8  ? "--min-cosine-fp8"
                               : ch == OPT_MINAGREE    ? "--min-agreement"
                                                       : "--min-agreement-fp8";
            if (!vnp_cli_number(name, optarg, -1.0, 1.0, &v))
                return 2;
            if (ch == OPT_MINCOS)
                min_cos = v;
            else if (ch == OPT_MINCOS_BF16)
                min_cos_bf16 = v;
            else if (ch == OPT_MINCOS_FP8)
                min_cos_fp8 = v;
            else if (ch == OPT_MINAGREE)
                min_agree = v;
            else
                min_agree_fp8 = v;
            break;
        }
        case OPT_BATCH:
            if (!vnp_cli_count("--batch-tokens", optarg, 16, 1L << 30, &budget))
                return 2;
            break;
        case OPT_LIMIT:
            if (!vnp_cli_count("--limit", optarg, 1, 100000000, &limit))
                return 2;
            break;
        case 'h': vp_usage(stdout); return 0;
        default: vp_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !esm || !dnabert) {
        vnp_cli_error("validate-precision needs --esm, --dnabert and one INPUT; see "
                      "'virnucpro validate-precision --help'");
        return 2;
    }
    vnp_precision precs[MAXPREC];
    int nprec = 0;
    if (!parse_precisions(precisions, precs, &nprec))
        return 2;
    const char *input = argv[optind];
    vnp_error err = {0};
    vnp_bpe *bpe = NULL;
    char tj[4096];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dnabert);
    vnp_classifier *cls = NULL;
    vnp_devices dev = {0};
    if (vnp_bpe_load(tj, &bpe, &err) ||
        (classifier && vnp_classifier_load(classifier, &cls, &err)) ||
        vnp_devices_parse(device, &dev, &err)) {
        vnp_cli_error("%s", err.msg);
        vnp_bpe_free(bpe);
        vnp_classifier_free(cls);
        return 1;
    }
    int on_gpu = 0;
    for (int i = 0; i < dev.n; i++)
        on_gpu |= strcmp(dev.name[i], "cpu") != 0;
    if (!on_gpu)
        printf("note: on the CPU the reduced precisions are emulated (values rounded where "
               "the GPU rounds them): this checks their numerics, not the GPU's kernels\n");
    for (int p = 0; p < nprec; p++)
        if (vnp_precision_effective(dev.name[0], precs[p]) != precs[p])
            fprintf(stderr,
                    "virnucpro: warning: VIRNUCPRO_DISABLE_FP16 is set: the %s pass computes "
                    "in FP32, and so compares FP32 with itself\n",
                    vnp_precision_name(precs[p]));
    const char *names[2] = {"DNABERT-S", "ESM-2"};
    orfs o, red[MAXPREC];
    memset(red, 0, sizeof red);
    int hidden[2] = {0, 0};
    int failed = 0, rc = 0;
    double secs;
    if (vp_pass(input, (size_t)chunk, bpe, (size_t)limit, dnabert, esm, cls, classifier, &dev,
                VNP_PREC_FP32, (size_t)budget, &o, hidden, &secs, &err)) {
        vnp_cli_error("FP32 reference: %s", err.msg);
        rc = 1;
    } else if (o.n == 0) {
        vnp_cli_error("'%s' yields no ORF to compare (no stop-free frame)", input);
        rc = 1;
    }
    if (!rc) {
        size_t nst[3] = {0, 0, 0};
        for (size_t i = 0; i < o.n; i++)
            nst[stratum_of(o.aa[i])]++;
        printf("validate-precision: %zu ORFs from %s (chunk %ld; short %zu, medium %zu, long "
               "%zu) on %s\n",
               o.n, input, chunk, nst[0], nst[1], nst[2], device);
        printf("fp32: %.1f s\n", secs);
    }
    for (int p = 0; p < nprec && !rc; p++) {
        const char *pn = vnp_precision_name(precs[p]);
        if (vp_pass(input, (size_t)chunk, bpe, (size_t)limit, dnabert, esm, cls, classifier,
                    &dev, precs[p], (size_t)budget, &red[p], hidden, &secs, &err)) {
            vnp_cli_error("%s: %s", pn, err.msg);
            rc = 1;
            break;
        }
        printf("%s: %.1f s (%zu batch%s recomputed in FP32 by the NaN/Inf guard)\n", pn, secs,
               red[p].recomputed, red[p].recomputed == 1 ? "" : "es");
        if (red[p].n != o.n) {
            vnp_cli_error("%s pass saw %zu ORFs, the FP32 pass %zu (the input changed?)", pn,
                          red[p].n, o.n);
            rc = 1;
        }
    }
    vnp_bpe_free(bpe);
    if (!rc) {
        printf("\n%-9s %-10s %-6s %6s %10s %10s %10s %10s %9s %10s %9s %7s %15s %s\n", "model",
               "prec", "strat", "n", "cos_min", "cos_p01", "cos_mean", "1-cos_mean", "max_abs",
               "diff_mean", "diff_std", "l2_rat", "l2_rat_range", "nonfinite");
        size_t same[MAXPREC] = {0};
        for (int m = 0; m < 2; m++)
            for (int p = 0; p < nprec; p++) {
                const char *pn = vnp_precision_name(precs[p]);
                for (int st = 0; st < NSTRATA; st++) {
                    stats s;
                    compute_stats(o.model[m], red[p].model[m], &o, hidden[m], st, &s);
                    if (!s.n)
                        continue;
                    printf("%-9s %-10s %-6s %6zu %10.8f %10.8f %10.8f %10.3e %9.3e %10.3e "
                           "%9.3e %7.5f %7.5f-%7.5f %zu\n",
                           names[m], pn, stratum_name[st], s.n, s.cos_min, s.cos_p01,
                           s.cos_mean, 1.0 - s.cos_mean, s.max_abs, s.diff_mean, s.diff_std,
                           s.ratio_mean, s.ratio_min, s.ratio_max, s.nonfinite);
                    if (st != 3)
                        continue;
                    same[p] += s.identical;
                    double thr = precs[p] == VNP_PREC_FP16   ? min_cos
                                 : precs[p] == VNP_PREC_BF16 ? min_cos_bf16
                                                             : min_cos_fp8;
                    if (!(s.cos_min >= thr)) {
                        printf("  -> %s %s cosine minimum %.8f is under %.6f\n", names[m], pn,
                               s.cos_min, thr);
                        failed = 1;
                    }
                }
            }
        for (int p = 0; p < nprec; p++)
            if (same[p] == 2 * o.n) {
                printf("  -> %s gives exactly the FP32 embeddings of every ORF: the reduced "
                       "precision was not applied (is VIRNUCPRO_DISABLE_FP16 set?)\n",
                       vnp_precision_name(precs[p]));
                failed = 1;
            }
        if (cls) {
            for (int p = 0; p < nprec && !rc; p++) {
                const char *pn = vnp_precision_name(precs[p]);
                double need = is_fp8(precs[p]) && min_agree_fp8 > min_agree ? min_agree_fp8
                                                                           : min_agree;
                for (int st = 0; st < NSTRATA; st++) {
                    size_t n = 0, agree = 0;
                    for (size_t i = 0; i < o.n; i++)
                        if (st == 3 || stratum_of(o.aa[i]) == st) {
                            n++;
                            agree += red[p].label[i] == o.label[i];
                        }
                    if (!n)
                        continue;
                    printf("labels %-10s %-6s agree with fp32: %zu of %zu (%.4f%%)\n", pn,
                           stratum_name[st], agree, n, 100.0 * (double)agree / (double)n);
                    if (st == 3 && (double)agree / (double)n < need) {
                        printf("  -> %s label agreement under %.4f\n", pn, need);
                        failed = 1;
                    }
                }
            }
        }
        printf("%s\n", failed ? "validate-precision: FAILED thresholds"
                              : "validate-precision: all thresholds met");
    }
    for (int p = 0; p < MAXPREC; p++)
        orfs_free(&red[p]);
    vnp_devices_free(&dev);
    vnp_classifier_free(cls);
    orfs_free(&o);
    return rc ? rc : failed ? VNP_EXIT_THRESHOLDS : VNP_EXIT_OK;
}
