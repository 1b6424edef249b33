/* The training run of `virnucpro train`, as the original train.py: a random split
 * (random_split's sizes: floor(n * val_fraction) validation rows, the rest training),
 * each epoch the training rows in a new random order in batches (a last batch of one
 * row is skipped: BatchNorm cannot train on it), StepLR after each epoch, the
 * validation metrics, and early stopping once `patience` epochs in a row did not
 * lower the best validation loss; the parameters of the best epoch are kept.
 *
 * Every random number comes from the seed, one stream per use (initial parameters,
 * split, batch order, dropout), so a run is reproducible for a seed and thread
 * count. */
#include <errno.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "pipeline/crash_point.h"
#include "pipeline/sig_watch.h"
#include "virnucpro/pipeline.h"
#include "virnucpro/train.h"
#include "virnucpro/weights.h"

#define RNG_STREAM_SPLIT 2
#define RNG_STREAM_ORDER 3
#define RNG_STREAM_DROPOUT 4

void vnp_train_options_init(vnp_train_options *o)
{
    memset(o, 0, sizeof *o);
    o->hidden = 512;
    o->dropout = 0.5f;
    o->lr = 2e-4;
    o->momentum = 0.9;
    o->step_size = 10;
    o->gamma = 0.85;
    o->batch = 32;
    o->val_fraction = 0.1;
    o->epochs = 200;
    o->patience = 5;
}

void vnp_train_result_free(vnp_train_result *r)
{
    if (!r)
        return;
    free(r->epochs);
    vnp_mlp_params_free(&r->best);
    memset(r, 0, sizeof *r);
}

/* ---- the trace (tests) ---- */
typedef struct trace {
    vnp_tensor *t;
    char **names;
    void **data;
    size_t n, cap;
} trace;

static void trace_free(trace *tr)
{
    for (size_t i = 0; i < tr->n; i++) {
        free(tr->names[i]);
        free(tr->data[i]);
    }
    free(tr->t);
    free(tr->names);
    free(tr->data);
}

/* Adds a copy of data as tensor `name` [d0] or [d0, d1]. */
static int trace_add(trace *tr, const char *name, vnp_dtype dt, const void *data, int64_t d0,
                     int64_t d1)
{
    if (tr->n == tr->cap) {
        size_t cap = tr->cap ? 2 * tr->cap : 64;
        vnp_tensor *t = realloc(tr->t, cap * sizeof *t);
        if (t)
            tr->t = t;
        char **nm = realloc(tr->names, cap * sizeof *nm);
        if (nm)
            tr->names = nm;
        void **d = realloc(tr->data, cap * sizeof *d);
        if (d)
            tr->data = d;
        if (!t || !nm || !d)
            return 0;
        tr->cap = cap;
    }
    size_t bytes = (size_t)d0 * (size_t)(d1 ? d1 : 1) * vnp_dtype_size(dt);
    char *nm = strdup(name);
    void *copy = malloc(bytes ? bytes : 1);
    if (!nm || !copy) {
        free(nm);
        free(copy);
        return 0;
    }
    if (bytes)
        memcpy(copy, data, bytes);
    vnp_tensor *t = &tr->t[tr->n];
    memset(t, 0, sizeof *t);
    t->name = nm;
    t->dtype = dt;
    t->ndim = d1 ? 2 : 1;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->data = copy;
    t->nbytes = bytes;
    tr->names[tr->n] = nm;
    tr->data[tr->n] = copy;
    tr->n++;
    return 1;
}

static int trace_params(trace *tr, const vnp_mlp_params *p)
{
    int64_t H = p->hidden;
    return trace_add(tr, "init.hidden_layer.weight", VNP_DT_F32, p->w1, H, p->in) &&
           trace_add(tr, "init.hidden_layer.bias", VNP_DT_F32, p->b1, H, 0) &&
           trace_add(tr, "init.output_layer.weight", VNP_DT_F32, p->w2, 2, H) &&
           trace_add(tr, "init.output_layer.bias", VNP_DT_F32, p->b2, 2, 0);
}

static int trace_indices(trace *tr, const char *name, const size_t *idx, size_t n)
{
    int64_t *v = malloc((n ? n : 1) * sizeof *v);
    if (!v)
        return 0;
    for (size_t i = 0; i < n; i++)
        v[i] = (int64_t)idx[i];
    int ok = trace_add(tr, name, VNP_DT_I64, v, (int64_t)n, 0);
    free(v);
    return ok;
}

/* ---- signals: stop between two batches ---- */
static void on_stop(void *arg, int sig)
{
    (void)sig;
    atomic_store((atomic_int *)arg, 1);
}

/* ---- the run ---- */
vnp_code vnp_train_run(const float *x, const uint8_t *y, size_t n, int width,
                       const vnp_train_options *o, vnp_train_result *res, vnp_error *err)
{
    memset(res, 0, sizeof *res);
    if (o->batch < 2 || o->epochs < 1 || o->patience < 1 || o->step_size < 1 ||
        !(o->val_fraction > 0 && o->val_fraction < 1) || !(o->lr > 0) ||
        !(o->momentum >= 0 && o->momentum < 1) || !(o->gamma > 0 && o->gamma <= 1))
        return vnp_fail(err, VNP_EINVAL,
                        "training options out of range: batch >= 2, epochs >= 1, patience >= "
                        "1, step size >= 1, 0 < validation fraction < 1, lr > 0, 0 <= "
                        "momentum < 1, 0 < gamma <= 1");
    size_t n_val = (size_t)floor((double)n * o->val_fraction);
    size_t n_train = n - n_val;
    if (n_val < 1 || n_train < 2)
        return vnp_fail(err, VNP_EINVAL,
                        "%zu labelled rows are too few to train: %zu would be held out for "
                        "validation and %zu left to train on (at least 1 and 2)",
                        n, n_val, n_train);
    size_t pos = 0;
    for (size_t i = 0; i < n; i++)
        pos += y[i] != 0;
    if (!pos || pos == n)
        return vnp_fail(err, VNP_EINVAL,
                        "all %zu labelled rows are of one class (%s); training needs both "
                        "viral and other sequences",
                        n, pos ? "viral" : "other");
    vnp_code rc = VNP_OK;
    atomic_int stop_flag;
    atomic_init(&stop_flag, 0);
    vnp_sig_watch sw;
    memset(&sw, 0, sizeof sw);
    sw.stop = on_stop;
    sw.arg = &stop_flag;
    if (o->handle_signals && vnp_sig_watch_start(&sw))
        vnp_sig_watch_running(&sw); /* nothing to lose yet: every signal stops it cleanly */
    vnp_backend *be = NULL;
    vnp_mlp_trainer *tr = NULL;
    vnp_mlp_params p;
    memset(&p, 0, sizeof p);
    trace tc;
    memset(&tc, 0, sizeof tc);
    size_t B = (size_t)o->batch, H = (size_t)o->hidden;
    size_t *split = malloc(n * sizeof *split), *order = malloc(n_train * sizeof *order);
    float *val_x = malloc(n_val * (size_t)width * sizeof(float));
    float *bx = malloc(B * (size_t)width * sizeof(float));
    float *logits = malloc(n_val * 2 * sizeof(float)), *probs = malloc(n_val * 2 * sizeof(float));
    uint8_t *val_y = malloc(n_val), *by = malloc(B), *keep = malloc(B * H);
    uint8_t *epoch_keep = o->trace_path ? malloc(n_train * H) : NULL;
    res->epochs = calloc((size_t)o->epochs, sizeof *res->epochs);
    if (!split || !order || !val_x || !bx || !logits || !probs || !val_y || !by || !keep ||
        !res->epochs || (o->trace_path && !epoch_keep)) {
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory for training on %zu rows", n);
        goto done;
    }
    if ((rc = vnp_mlp_params_init(&p, width, o->hidden, o->dropout, o->seed, err)) ||
        (rc = vnp_backend_create(o->device ? o->device : "cpu", VNP_PREC_FP32,
                                 o->threads > 0 ? o->threads : vnp_cpu_threads_available(), &be,
                                 err)) ||
        (rc = vnp_mlp_trainer_create(be, &p, o->batch, (float)o->momentum, &tr, err)))
        goto done;
    vnp_rng r_split, r_order, r_drop;
    vnp_rng_init(&r_split, o->seed, RNG_STREAM_SPLIT);
    vnp_rng_init(&r_order, o->seed, RNG_STREAM_ORDER);
    vnp_rng_init(&r_drop, o->seed, RNG_STREAM_DROPOUT);
    vnp_rng_permutation(&r_split, split, n);
    const size_t *train_rows = split, *val_rows = split + n_train;
    for (size_t i = 0; i < n_val; i++) {
        memcpy(val_x + i * (size_t)width, x + val_rows[i] * (size_t)width,
               (size_t)width * sizeof(float));
        val_y[i] = y[val_rows[i]] ? 1 : 0;
    }
    if (o->trace_path && (!trace_params(&tc, &p) ||
                          !trace_indices(&tc, "split.train", train_rows, n_train) ||
                          !trace_indices(&tc, "split.val", val_rows, n_val))) {
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory for the training trace");
        goto done;
    }
    res->train_rows = n_train;
    res->val_rows = n_val;
    double lr = o->lr, best = INFINITY;
    int since_best = 0;
    float keep_below = 1.0f - o->dropout;
    for (int e = 1; e <= o->epochs; e++) {
        vnp_rng_permutation(&r_order, order, n_train);
        for (size_t i = 0; i < n_train; i++)
            order[i] = train_rows[order[i]];
        double loss_sum = 0;
        size_t steps = 0, used = 0;
        for (size_t b0 = 0; b0 < n_train; b0 += B) {
            size_t rows = n_train - b0 < B ? n_train - b0 : B;
            if (rows < 2)
                break; /* BatchNorm cannot train on one row */
            if (atomic_load(&stop_flag)) {
                rc = vnp_fail(err, VNP_EINTERRUPTED,
                              "interrupted by %s in epoch %d (of at most %d); no model was "
                              "written",
                              vnp_signal_name(atomic_load(&sw.signal)), e, o->epochs);
                goto done;
            }
            for (size_t i = 0; i < rows; i++) {
                memcpy(bx + i * (size_t)width, x + order[b0 + i] * (size_t)width,
                       (size_t)width * sizeof(float));
                by[i] = y[order[b0 + i]] ? 1 : 0;
            }
            for (size_t k = 0; k < rows * H; k++)
                keep[k] = vnp_rng_unit_f32(&r_drop) < keep_below;
            if (epoch_keep)
                memcpy(epoch_keep + used * H, keep, rows * H);
            double loss;
            if ((rc = vnp_mlp_train_step(tr, bx, by, (int)rows, keep, lr, &loss, err))) {
                vnp_error_prefix(err, "epoch %d, batch %zu: ", e, steps + 1);
                goto done;
            }
            loss_sum += loss;
            steps++;
            used += rows;
        }
        if (o->trace_path) {
            char nm[64];
            snprintf(nm, sizeof nm, "order.%d", e);
            int ok = trace_indices(&tc, nm, order, used);
            snprintf(nm, sizeof nm, "keep.%d", e);
            if (!ok || !trace_add(&tc, nm, VNP_DT_U8, epoch_keep, (int64_t)used, (int64_t)H)) {
                rc = vnp_fail(err, VNP_ENOMEM, "out of memory for the training trace");
                goto done;
            }
        }
        vnp_train_epoch *ep = &res->epochs[res->nepochs++];
        ep->epoch = e;
        ep->lr = lr;
        ep->loss = steps ? loss_sum / (double)steps : NAN;
        if (e % o->step_size == 0)
            lr *= o->gamma;
        if ((rc = vnp_mlp_eval(tr, val_x, n_val, logits, probs, err)) ||
            (rc = vnp_binary_metrics_compute(logits, probs, val_y, n_val, &ep->val, err))) {
            vnp_error_prefix(err, "epoch %d, validation: ", e);
            goto done;
        }
        if (!o->quiet)
            fprintf(stderr,
                    "virnucpro: train: epoch %d: loss %.4f, validation loss %.4f, accuracy "
                    "%.4f, precision %.4f, recall %.4f, F1 %.4f, AUROC %.4f\n",
                    e, ep->loss, ep->val.loss, ep->val.accuracy, ep->val.precision,
                    ep->val.recall, ep->val.f1, ep->val.auroc);
        if (ep->val.loss < best || !res->best_epoch) {
            if (ep->val.loss < best)
                best = ep->val.loss;
            since_best = 0;
            res->best_epoch = e;
            if ((rc = vnp_mlp_trainer_sync(tr, err)) ||
                (rc = vnp_mlp_params_copy(&res->best, &p, err)))
                goto done;
        } else if (++since_best >= o->patience) {
            res->stopped_early = 1;
            break;
        }
    }
    if (o->trace_path) {
        const char *meta[] = {"format", "pt", "content", "virnucpro train trace (tests)", NULL};
        rc = vnp_safetensors_save(o->trace_path, tc.t, tc.n, meta, err);
    }
done:
    vnp_sig_watch_stop(&sw);
    vnp_mlp_trainer_free(tr);
    vnp_backend_free(be);
    vnp_mlp_params_free(&p);
    trace_free(&tc);
    free(split);
    free(order);
    free(val_x);
    free(bx);
    free(logits);
    free(probs);
    free(val_y);
    free(by);
    free(keep);
    free(epoch_keep);
    if (rc)
        vnp_train_result_free(res);
    if (rc == VNP_EINTERRUPTED)
        res->signal = atomic_load(&sw.signal);
    return rc;
}

/* ---- outputs ---- */
static char *path_with(const char *prefix, const char *suffix)
{
    size_t n = strlen(prefix) + strlen(suffix) + 1;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s%s", prefix, suffix);
    return p;
}

static void put_f32(FILE *f, double v)
{
    char b[VNP_F32_STR_MAX];
    vnp_format_f32((float)v, b);
    fputs(b, f);
}

static void put_metrics(FILE *f, const vnp_binary_metrics *m)
{
    double v[] = {m->loss, m->accuracy, m->precision, m->recall, m->f1, m->auroc};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        fputc('\t', f);
        put_f32(f, v[i]);
    }
}

vnp_code vnp_train_write_outputs(const vnp_train_result *r, const vnp_train_options *o,
                                 const char *prefix, const char *const *meta, vnp_error *err)
{
    char *log = path_with(prefix, ".log.tsv"), *log_part = path_with(prefix, ".log.tsv.part");
    char *ho = path_with(prefix, ".heldout.tsv"), *ho_part = path_with(prefix, ".heldout.tsv.part");
    char *st = path_with(prefix, ".safetensors"), *pth = path_with(prefix, ".pth");
    vnp_code rc = VNP_OK;
    FILE *f = NULL;
    if (!log || !log_part || !ho || !ho_part || !st || !pth) {
        rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
        goto done;
    }
    f = fopen(log_part, "w");
    if (!f)
        goto io;
    fputs("epoch\tlr\tloss\tval_loss\taccuracy\tprecision\trecall\tf1\tauroc\n", f);
    for (int i = 0; i < r->nepochs; i++) {
        const vnp_train_epoch *e = &r->epochs[i];
        fprintf(f, "%d\t%.10g\t", e->epoch, e->lr);
        put_f32(f, e->loss);
        put_metrics(f, &e->val);
        fputc('\n', f);
    }
    if (fclose(f) != 0) {
        f = NULL;
        goto io;
    }
    vnp_crash_point("train: log.tsv.part written");
    f = fopen(ho_part, "w");
    if (!f)
        goto io;
    const vnp_binary_metrics *b = &r->epochs[r->best_epoch - 1].val;
    fprintf(f, "metric\tvalue\nbest_epoch\t%d\nepochs_run\t%d\nstopped_early\t%s\n"
               "train_rows\t%zu\nvalidation_rows\t%zu\nseed\t%llu\n",
            r->best_epoch, r->nepochs, r->stopped_early ? "yes" : "no", r->train_rows,
            r->val_rows, (unsigned long long)o->seed);
    const char *names[] = {"val_loss", "accuracy", "precision", "recall", "f1", "auroc"};
    double v[] = {b->loss, b->accuracy, b->precision, b->recall, b->f1, b->auroc};
    for (size_t i = 0; i < 6; i++) {
        fprintf(f, "%s\t", names[i]);
        put_f32(f, v[i]);
        fputc('\n', f);
    }
    fprintf(f, "true_positives\t%zu\nfalse_positives\t%zu\ntrue_negatives\t%zu\n"
               "false_negatives\t%zu\n",
            b->tp, b->fp, b->tn, b->fn);
    if (fclose(f) != 0) {
        f = NULL;
        goto io;
    }
    f = NULL;
    vnp_crash_point("train: heldout.tsv.part written");
    /* each file complete under its final name or not there: the model files rename
     * themselves, then the two tables */
    if ((rc = vnp_mlp_save_safetensors(&r->best, st, meta, err)))
        goto done;
    vnp_crash_point("train: safetensors renamed");
    if ((rc = vnp_mlp_save_pth(&r->best, pth, err)))
        goto done;
    vnp_crash_point("train: pth renamed");
    if (rename(log_part, log) != 0)
        goto io;
    vnp_crash_point("train: log.tsv renamed");
    if (rename(ho_part, ho) != 0)
        goto io;
    vnp_crash_point("train: heldout.tsv renamed");
    goto done;
io:
    rc = vnp_fail(err, VNP_EIO, "cannot write the training outputs next to %s: %s", prefix,
                  strerror(errno));
    if (f)
        fclose(f);
done:
    if (rc && log_part)
        remove(log_part);
    if (rc && ho_part)
        remove(ho_part);
    free(log);
    free(log_part);
    free(ho);
    free(ho_part);
    free(st);
    free(pth);
    return rc;
}
