/* virnucpro validate-precision: the GPU's FP16 (and BF16) embeddings against its
 * own FP32 embeddings of the same frames, per model and per length stratum. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "virnucpro.h"

static void vp_usage(FILE *f)
{
    fputs(
        "Usage: virnucpro validate-precision --esm PATH --dnabert DIR [--classifier FILE]\n"
        "                                    [--device cuda[:N]] [-l 300|500] [options] INPUT\n"
        "\n"
        "Prepares INPUT as predict does (chunks, stop-free six-frame ORFs), embeds every\n"
        "ORF with DNABERT-S and ESM-2 on the GPU in FP32, then in FP16 and BF16, and\n"
        "reports for each model, precision and ORF length stratum (protein length: short\n"
        "< 50 aa, medium 50-119, long >= 120): cosine similarity to FP32 (min, 1st\n"
        "percentile, mean), the largest absolute difference, mean and standard deviation\n"
        "of the element differences, and the L2-norm ratio (reduced / FP32, mean and\n"
        "range); with --classifier, how many labels agree with FP32's.\n"
        "Exits 1 when FP16's cosine minimum is under --min-cosine (or BF16's under\n"
        "--min-cosine-bf16, when given), or when labels disagree under --min-agreement.\n"
        "\n"
        "Options:\n"
        "      --esm PATH              ESM-2 model directory or fair-esm .pt\n"
        "      --dnabert DIR           DNABERT-S model directory with tokenizer.json\n"
        "      --classifier FILE       VirNucPro classifier .pth (label agreement)\n"
        "      --device D              cuda (default) or cuda:N; cpu runs FP32 only\n"
        "  -l, --length N              chunk length, 300 or 500 (default 500)\n"
        "      --precisions LIST       fp16,bf16 (default) or one of them\n"
        "      --min-cosine X          FP16 threshold (default 0.999)\n"
        "      --min-cosine-bf16 X     BF16 threshold (default: reported only)\n"
        "      --min-agreement X       fraction of labels that must agree (default 0: reported)\n"
        "      --batch-tokens N        tokens per encoder batch (default 32768)\n"
        "      --limit N               at most N ORFs (default: all)\n"
        "  -h, --help                  this help\n",
        f);
}

/* ---- the ORFs of the input, tokenized for both models ---- */
typedef struct orfs {
    size_t n, cap;
    vnp_ids *dna, *esm;
    int *aa; /* protein length */
} orfs;

static void orfs_free(orfs *o)
{
    for (size_t i = 0; i < o->n; i++) {
        vnp_ids_free(&o->dna[i]);
        vnp_ids_free(&o->esm[i]);
    }
    free(o->dna);
    free(o->esm);
    free(o->aa);
}

static vnp_code read_orfs(const char *input, size_t chunk_len, const vnp_bpe *bpe, size_t limit,
                          orfs *o, vnp_error *err)
{
    vnp_seq_reader *r;
    vnp_code rc = vnp_seq_open(input, &r, err);
    if (rc)
        return rc;
    vnp_frames fr;
    vnp_frames_init(&fr);
    vnp_record rec;
    int got = 0;
    while (rc == VNP_OK && (!limit || o->n < limit) && (got = vnp_seq_read(r, &rec, err)) == 1) {
        size_t nc = vnp_chunk_count(rec.len, chunk_len);
        for (size_t i = 0; rc == VNP_OK && i < nc && (!limit || o->n < limit); i++) {
            vnp_chunk ch = vnp_chunk_at(rec.len, chunk_len, i);
            if ((rc = vnp_six_frames(rec.seq + ch.start, ch.len, &fr, err)))
                break;
            for (int f = 0; f < fr.n && (!limit || o->n < limit); f++) {
                if (o->n == o->cap) {
                    size_t cap = o->cap ? 2 * o->cap : 1024;
                    vnp_ids *d = realloc(o->dna, cap * sizeof *d);
                    if (d)
                        o->dna = d;
                    vnp_ids *e = realloc(o->esm, cap * sizeof *e);
                    if (e)
                        o->esm = e;
                    int *a = realloc(o->aa, cap * sizeof *a);
                    if (a)
                        o->aa = a;
                    if (!d || !e || !a) {
                        rc = vnp_fail(err, VNP_ENOMEM, "out of memory reading ORFs");
                        break;
                    }
                    o->cap = cap;
                }
                memset(&o->dna[o->n], 0, sizeof o->dna[o->n]);
                memset(&o->esm[o->n], 0, sizeof o->esm[o->n]);
                o->aa[o->n] = (int)fr.frame[f].protein_len;
                o->n++;
                if ((rc = vnp_bpe_encode(bpe, fr.frame[f].nucleotide, fr.frame[f].nucleotide_len,
                                         &o->dna[o->n - 1], err)) ||
                    (rc = vnp_esm_encode(fr.frame[f].protein, fr.frame[f].protein_len,
                                         &o->esm[o->n - 1], err)))
                    break;
            }
        }
    }
    if (rc == VNP_OK && got < 0)
        rc = err->code;
    vnp_frames_free(&fr);
    vnp_seq_close(r);
    return rc;
}

/* Embeds every ORF with the model at `path` on (device, prec): out[n * hidden].
 * bad[i] is set for ORFs whose batch came out non-finite (their rows are NaN). */
static vnp_code embed_all(const char *path, const char *device, vnp_precision prec,
                          const vnp_ids *ids, size_t n, size_t budget, float **out, int *hidden,
                          unsigned char *bad, double *seconds, vnp_error *err)
{
    vnp_backend *be = NULL;
    vnp_encoder *enc = NULL;
    vnp_packing pk = {0};
    int32_t *tok = NULL, *cu = NULL;
    size_t *len = malloc((n ? n : 1) * sizeof *len);
    *out = NULL;
    vnp_code rc = len ? VNP_OK : vnp_fail(err, VNP_ENOMEM, "out of memory");
    if (!rc)
        rc = vnp_backend_create(device, prec, 0, &be, err);
    if (!rc && vnp_backend_precision(be) != prec)
        printf("note: %s computes in FP32 only; this comparison is trivial there\n",
               vnp_backend_name(be));
    if (!rc)
        rc = vnp_encoder_load(path, be, &enc, err);
    for (size_t i = 0; !rc && i < n; i++)
        len[i] = ids[i].n;
    if (!rc)
        rc = vnp_pack(len, n, budget, 0, &pk, err);
    if (!rc) {
        *hidden = vnp_encoder_hidden_size(enc);
        size_t maxt = 0;
        for (size_t b = 0; b < pk.nbatches; b++)
            maxt = pk.batches[b].tokens > maxt ? pk.batches[b].tokens : maxt;
        tok = malloc((maxt ? maxt : 1) * sizeof *tok);
        cu = malloc((n + 1) * sizeof *cu);
        *out = malloc((n ? n : 1) * (size_t)*hidden * sizeof **out);
        if (!tok || !cu || !*out)
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory for %zu embeddings", n);
    }
    float *emb = NULL;
    if (!rc && !(emb = malloc((n ? n : 1) * (size_t)*hidden * sizeof *emb)))
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory for %zu embeddings", n);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (size_t b = 0; !rc && b < pk.nbatches; b++) {
        const vnp_pack_batch *pb = &pk.batches[b];
        size_t t = 0;
        cu[0] = 0;
        for (size_t k = 0; k < pb->count; k++) {
            const vnp_ids *s = &ids[pk.order[pb->first + k]];
            memcpy(tok + t, s->v, s->n * sizeof *tok);
            t += s->n;
            cu[k + 1] = (int32_t)t;
        }
        vnp_batch batch = {tok, cu, (int)pb->count};
        rc = vnp_encoder_embed(enc, &batch, emb, err);
        int nonfinite = rc == VNP_ENUMERIC;
        if (nonfinite)
            rc = VNP_OK; /* reported as such, not fatal here */
        for (size_t k = 0; !rc && k < pb->count; k++) {
            size_t i = pk.order[pb->first + k];
            float *dst = *out + i * (size_t)*hidden;
            if (nonfinite) {
                bad[i] = 1;
                for (int h = 0; h < *hidden; h++)
                    dst[h] = NAN;
            } else
                memcpy(dst, emb + k * (size_t)*hidden, (size_t)*hidden * sizeof *dst);
        }
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    *seconds = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) * 1e-9;
    free(emb);
    free(tok);
    free(cu);
    free(len);
    vnp_packing_free(&pk);
    vnp_encoder_free(enc);
    vnp_backend_free(be);
    if (rc) {
        free(*out);
        *out = NULL;
        vnp_error_prefix(err, "%s: ", path);
    }
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

/* Labels of [dna | esm] features through the classifier; 1 = virus. */
static vnp_code labels_of(const vnp_classifier *c, const float *dna, int hd, const float *esm,
                          int he, size_t n, unsigned char *label, vnp_error *err)
{
    float *x = calloc((n ? n : 1) * (size_t)(hd + he), sizeof *x);
    float *p = malloc((n ? n : 1) * 2 * sizeof *p);
    vnp_code rc = x && p ? VNP_OK : vnp_fail(err, VNP_ENOMEM, "out of memory");
    for (size_t i = 0; !rc && i < n; i++) {
        memcpy(x + i * (size_t)(hd + he), dna + i * (size_t)hd, (size_t)hd * sizeof *x);
        memcpy(x + i * (size_t)(hd + he) + hd, esm + i * (size_t)he, (size_t)he * sizeof *x);
    }
    if (!rc)
        rc = vnp_classifier_predict(c, x, n, p, err);
    for (size_t i = 0; !rc && i < n; i++)
        label[i] = p[2 * i + 1] > p[2 * i];
    free(x);
    free(p);
    return rc;
}

enum {
    OPT_ESM = 1000,
    OPT_DNABERT,
    OPT_CLASSIFIER,
    OPT_DEVICE,
    OPT_PRECISIONS,
    OPT_MINCOS,
    OPT_MINCOS_BF16,
    OPT_MINAGREE,
    OPT_BATCH,
    OPT_LIMIT
};

int vnp_cmd_validate_precision(int argc, char **argv)
{
    static const struct option opts[] = {
        {"esm", required_argument, 0, OPT_ESM},
        {"dnabert", required_argument, 0, OPT_DNABERT},
        {"classifier", required_argument, 0, OPT_CLASSIFIER},
        {"device", required_argument, 0, OPT_DEVICE},
        {"length", required_argument, 0, 'l'},
        {"precisions", required_argument, 0, OPT_PRECISIONS},
        {"min-cosine", required_argument, 0, OPT_MINCOS},
        {"min-cosine-bf16", required_argument, 0, OPT_MINCOS_BF16},
        {"min-agreement", required_argument, 0, OPT_MINAGREE},
        {"batch-tokens", required_argument, 0, OPT_BATCH},
        {"limit", required_argument, 0, OPT_LIMIT},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0},
    };
    const char *esm = NULL, *dnabert = NULL, *classifier = NULL, *device = "cuda";
    const char *precisions = "fp16,bf16";
    long chunk = 500, budget = 32768, limit = 0;
    double min_cos = 0.999, min_cos_bf16 = -2.0, min_agree = 0.0;
    int ch;
    optind = 1;
    while ((ch = getopt_long(argc, argv, "l:h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case OPT_ESM: esm = optarg; break;
        case OPT_DNABERT: dnabert = optarg; break;
        case OPT_CLASSIFIER: classifier = optarg; break;
        case OPT_DEVICE: device = optarg; break;
        case OPT_PRECISIONS: precisions = optarg; break;
        case 'l':
            chunk = strtol(optarg, &end, 10);
            if (*end || (chunk != 300 && chunk != 500)) {
                vnp_cli_error("-l must be 300 or 500, got '%s'", optarg);
                return 2;
            }
            break;
        case OPT_MINCOS:
        case OPT_MINCOS_BF16:
        case OPT_MINAGREE: {
            double v = strtod(optarg, &end);
            if (!*optarg || *end || !(v >= -1.0 && v <= 1.0)) {
                vnp_cli_error("%s must be a number from -1 to 1, got '%s'",
                              ch == OPT_MINAGREE ? "--min-agreement" : "--min-cosine", optarg);
                return 2;
            }
            if (ch == OPT_MINCOS)
                min_cos = v;
            else if (ch == OPT_MINCOS_BF16)
                min_cos_bf16 = v;
            else
                min_agree = v;
            break;
        }
        case OPT_BATCH:
        case OPT_LIMIT: {
            long v = strtol(optarg, &end, 10);
            if (!*optarg || *end || v < (ch == OPT_BATCH ? 16 : 1) || v > 100000000) {
                vnp_cli_error("%s must be a whole number from %d to 100000000, got '%s'",
                              ch == OPT_BATCH ? "--batch-tokens" : "--limit",
                              ch == OPT_BATCH ? 16 : 1, optarg);
                return 2;
            }
            if (ch == OPT_BATCH)
                budget = v;
            else
                limit = v;
            break;
        }
        case 'h': vp_usage(stdout); return 0;
        default: vp_usage(stderr); return 2;
        }
    }
    if (optind != argc - 1 || !esm || !dnabert) {
        vnp_cli_error("validate-precision needs --esm, --dnabert and one INPUT; see "
                      "'virnucpro validate-precision --help'");
        return 2;
    }
    int want16 = strstr(precisions, "fp16") != NULL, want_bf = strstr(precisions, "bf16") != NULL;
    if (!want16 && !want_bf) {
        vnp_cli_error("--precisions must name fp16, bf16 or both, got '%s'", precisions);
        return 2;
    }
    const char *input = argv[optind];
    vnp_error err = {0};
    vnp_bpe *bpe = NULL;
    char tj[4096];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dnabert);
    orfs o = {0};
    vnp_classifier *cls = NULL;
    if (vnp_bpe_load(tj, &bpe, &err) ||
        (classifier && vnp_classifier_load(classifier, &cls, &err)) ||
        read_orfs(input, (size_t)chunk, bpe, (size_t)limit, &o, &err)) {
        vnp_cli_error("%s", err.msg);
        vnp_bpe_free(bpe);
        vnp_classifier_free(cls);
        orfs_free(&o);
        return 1;
    }
    vnp_bpe_free(bpe);
    if (o.n == 0) {
        vnp_cli_error("'%s' yields no ORF to compare (no stop-free frame)", input);
        orfs_free(&o);
        return 1;
    }
    size_t nst[3] = {0, 0, 0};
    for (size_t i = 0; i < o.n; i++)
        nst[stratum_of(o.aa[i])]++;
    printf("validate-precision: %zu ORFs from %s (chunk %ld; short %zu, medium %zu, long %zu) "
           "on %s\n",
           o.n, input, chunk, nst[0], nst[1], nst[2], device);

    const char *paths[2] = {dnabert, esm}, *names[2] = {"DNABERT-S", "ESM-2"};
    vnp_precision precs[2] = {VNP_PREC_FP16, VNP_PREC_BF16};
    const char *pn[2] = {"fp16", "bf16"};
    int want[2] = {want16, want_bf};
    float *ref[2] = {NULL, NULL}, *red[2][2] = {{NULL, NULL}, {NULL, NULL}};
    int hidden[2] = {0, 0};
    unsigned char *bad = calloc(o.n, 1);
    int failed = 0, rc = 0;
    for (int m = 0; m < 2 && !rc; m++) {
        const vnp_ids *ids = m ? o.esm : o.dna;
        double secs;
        if (embed_all(paths[m], device, VNP_PREC_FP32, ids, o.n, (size_t)budget, &ref[m],
                      &hidden[m], bad, &secs, &err)) {
            vnp_cli_error("FP32 reference: %s", err.msg);
            rc = 1;
            break;
        }
        printf("%s fp32: %.1f s\n", names[m], secs);
        for (int p = 0; p < 2 && !rc; p++) {
            if (!want[p])
                continue;
            if (embed_all(paths[m], device, precs[p], ids, o.n, (size_t)budget, &red[m][p],
                          &hidden[m], bad, &secs, &err)) {
                vnp_cli_error("%s: %s", pn[p], err.msg);
                rc = 1;
                break;
            }
            printf("%s %s: %.1f s\n", names[m], pn[p], secs);
        }
    }
    if (!rc) {
        printf("\n%-9s %-4s %-6s %6s %9s %9s %9s %9s %10s %9s %7s %15s %s\n", "model", "prec",
               "strat", "n", "cos_min", "cos_p01", "cos_mean", "max_abs", "diff_mean",
               "diff_std", "l2_rat", "l2_rat_range", "nonfinite");
        for (int m = 0; m < 2; m++)
            for (int p = 0; p < 2; p++) {
                if (!want[p])
                    continue;
                for (int st = 0; st < NSTRATA; st++) {
                    stats s;
                    compute_stats(ref[m], red[m][p], &o, hidden[m], st, &s);
                    if (!s.n)
                        continue;
                    printf("%-9s %-4s %-6s %6zu %9.6f %9.6f %9.6f %9.3e %10.3e %9.3e %7.5f "
                           "%7.5f-%7.5f %zu\n",
                           names[m], pn[p], stratum_name[st], s.n, s.cos_min, s.cos_p01,
                           s.cos_mean, s.max_abs, s.diff_mean, s.diff_std, s.ratio_mean,
                           s.ratio_min, s.ratio_max, s.nonfinite);
                    double thr = p == 0 ? min_cos : min_cos_bf16;
                    if (st == 3 && !(s.cos_min >= thr)) {
                        printf("  -> %s %s cosine minimum %.6f is under %.6f\n", names[m],
                               pn[p], s.cos_min, thr);
                        failed = 1;
                    }
                }
            }
        if (cls) {
            int hd = hidden[0], he = hidden[1];
            unsigned char *l32 = malloc(o.n), *lr = malloc(o.n);
            if (!l32 || !lr || labels_of(cls, ref[0], hd, ref[1], he, o.n, l32, &err)) {
                vnp_cli_error("classifier: %s", l32 && lr ? err.msg : "out of memory");
                rc = 1;
            }
            for (int p = 0; p < 2 && !rc; p++) {
                if (!want[p])
                    continue;
                if (labels_of(cls, red[0][p], hd, red[1][p], he, o.n, lr, &err)) {
                    vnp_cli_error("classifier: %s", err.msg);
                    rc = 1;
                    break;
                }
                for (int st = 0; st < NSTRATA; st++) {
                    size_t n = 0, agree = 0;
                    for (size_t i = 0; i < o.n; i++)
                        if (st == 3 || stratum_of(o.aa[i]) == st) {
                            n++;
                            agree += lr[i] == l32[i];
                        }
                    if (!n)
                        continue;
                    printf("labels %s %-6s agree with fp32: %zu of %zu (%.4f%%)\n", pn[p],
                           stratum_name[st], agree, n, 100.0 * (double)agree / (double)n);
                    if (st == 3 && (double)agree / (double)n < min_agree) {
                        printf("  -> %s label agreement under %.4f\n", pn[p], min_agree);
                        failed = 1;
                    }
                }
            }
            free(l32);
            free(lr);
        }
        printf("%s\n", failed ? "validate-precision: FAILED thresholds"
                              : "validate-precision: all thresholds met");
    }
    for (int m = 0; m < 2; m++) {
        free(ref[m]);
        free(red[m][0]);
        free(red[m][1]);
    }
    free(bad);
    vnp_classifier_free(cls);
    orfs_free(&o);
    return rc ? rc : failed ? 1 : 0;
}
