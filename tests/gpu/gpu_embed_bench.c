/* Throughput of one encoder over a FASTA file, as the engine runs it: the
 * sequences tokenized, packed into token-budget batches (length-sorted), and
 * embedded batch by batch with pooled FP32 results copied back.
 *
 *   vnp_gpu_embed_bench MODEL_DIR FASTA [--device cuda] [--precision fp16|bf16|fp32|fp8|fp8-tensor]
 *                       [--budget TOKENS] [--limit N] [--label NAME] [--mode sync|pipelined]
 *                       [--passes N]
 *
 * MODEL_DIR is an ESM-2 (protein FASTA) or DNABERT-S (nucleotide FASTA, with its
 * tokenizer.json) checkpoint. Prints one "RESULT" line: tokens, seconds, tok/s.
 * --mode sync (default): vnp_encoder_embed, one batch at a time (the host waits for each
 * before building the next). pipelined: the engine's per-device embedder
 * (src/pipeline/embedder.h) with two batches in flight, as predict runs a worker: the
 * host builds and uploads a batch while the device runs the previous one.
 * --passes N (default 1): the timed pass over the whole file N times; tok/s is over all
 * of them, with the slowest and fastest pass beside it (DNABERT-S passes last well under
 * a second, where one pass's rate moves by several per cent between runs). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "pipeline/embedder.h"
#include "virnucpro/model.h"
#include "virnucpro/pipeline.h"
#include "virnucpro/seq.h"
#include "virnucpro/tok.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* pass 0: the warm-up batch; 1..: the timed passes over the whole file */
typedef struct {
    double first, run, min, max; /* run: all timed passes together */
} pass_times;

static void pass_done(pass_times *tm, int pass, double dt)
{
    if (pass == 0) {
        tm->first = dt;
        return;
    }
    tm->run += dt;
    tm->min = pass == 1 || dt < tm->min ? dt : tm->min;
    tm->max = pass == 1 || dt > tm->max ? dt : tm->max;
}

static void die(const char *what, const vnp_error *err)
{
    fprintf(stderr, "vnp_gpu_embed_bench: %s: %s\n", what, err->msg);
    exit(2);
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: %s MODEL_DIR FASTA [--device D] [--precision P] [--budget N] "
                        "[--limit N] [--label NAME] [--mode sync|pipelined] [--passes N]\n",
                argv[0]);
        return 2;
    }
    const char *model = argv[1], *fasta = argv[2], *device = "cuda", *label = "";
    vnp_precision prec = VNP_PREC_FP16;
    size_t budget = 16384, limit = 0;
    int pipelined = 0, passes = 1;
    for (int i = 3; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--device"))
            device = argv[i + 1];
        else if (!strcmp(argv[i], "--precision")) {
            if (!vnp_precision_parse(argv[i + 1], &prec)) {
                fprintf(stderr, "vnp_gpu_embed_bench: --precision: %s, not '%s'\n",
                        VNP_PRECISION_NAMES, argv[i + 1]);
                return 2;
            }
        }
        else if (!strcmp(argv[i], "--budget"))
            budget = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--limit"))
            limit = strtoull(argv[i + 1], NULL, 10);
        else if (!strcmp(argv[i], "--label"))
            label = argv[i + 1];
        else if (!strcmp(argv[i], "--mode"))
            pipelined = !strcmp(argv[i + 1], "pipelined");
        else if (!strcmp(argv[i], "--passes")) {
            passes = atoi(argv[i + 1]);
            if (passes < 1 || passes > 100) {
                fprintf(stderr, "vnp_gpu_embed_bench: --passes: 1 to 100, not '%s'\n",
                        argv[i + 1]);
                return 2;
            }
        }
    }
    vnp_error err;
    vnp_backend *be;
    if (vnp_backend_create(device, prec, 0, &be, &err))
        die("backend", &err);
    double t0 = now_s();
    vnp_encoder *enc;
    if (vnp_encoder_load(model, be, &enc, &err))
        die("loading the model", &err);
    double t_load = now_s() - t0;
    int esm = vnp_encoder_kind_of(enc) == VNP_ENCODER_ESM2;
    vnp_bpe *bpe = NULL;
    if (!esm) {
        char tj[1200];
        snprintf(tj, sizeof tj, "%s/tokenizer.json", model);
        if (vnp_bpe_load(tj, &bpe, &err))
            die("tokenizer", &err);
    }

    /* tokenize everything */
    vnp_seq_reader *r;
    if (vnp_seq_open(fasta, &r, &err))
        die("input", &err);
    size_t n = 0, cap = 0, ntok = 0;
    vnp_ids *ids = NULL;
    vnp_record rec;
    int got;
    while ((got = vnp_seq_read(r, &rec, &err)) == 1 && (!limit || n < limit)) {
        if (n == cap) {
            cap = cap ? 2 * cap : 4096;
            ids = realloc(ids, cap * sizeof *ids);
        }
        memset(&ids[n], 0, sizeof ids[n]);
        vnp_code rc = esm ? vnp_esm_encode(rec.seq, rec.len, &ids[n], &err)
                          : vnp_bpe_encode(bpe, rec.seq, rec.len, &ids[n], &err);
        if (rc)
            die("tokenizing", &err);
        ntok += ids[n].n;
        n++;
    }
    if (got < 0)
        die("reading", &err);
    vnp_seq_close(r);
    size_t *len = malloc(n * sizeof *len);
    for (size_t i = 0; i < n; i++)
        len[i] = ids[i].n;
    vnp_packing pk;
    if (vnp_pack(len, n, budget, 0, &pk, &err))
        die("packing", &err);
    int H = vnp_encoder_hidden_size(enc);
    int32_t *tokens = malloc((budget + 4096) * 4 * 4);
    int32_t *cu = malloc((n + 1) * 4);
    float *out = malloc(n * (size_t)H * 4);
    size_t maxb = 0;
    for (size_t b = 0; b < pk.nbatches; b++)
        maxb = pk.batches[b].tokens > maxb ? pk.batches[b].tokens : maxb;
    tokens = realloc(tokens, maxb * 4);

    pass_times tm = {0, 0, 0, 0};
    vnp_embedder *emb = NULL;
    int32_t *slot_tok[2] = {NULL, NULL}, *slot_cu[2] = {NULL, NULL};
    float *slot_out[2] = {NULL, NULL};
    vnp_embed_job job[2];
    if (pipelined) {
        /* the embedder loads its own copy of the model; the sync encoder goes first */
        vnp_encoder_free(enc);
        enc = NULL;
        vnp_backend_free(be);
        be = NULL;
        vnp_embedder_config ec;
        memset(&ec, 0, sizeof ec);
        if (esm)
            ec.esm = model;
        else
            ec.dnabert = model;
        ec.prec = prec;
        ec.threads = 1;
        double tl = now_s();
        char dev[32];
        snprintf(dev, sizeof dev, "%s", !strcmp(device, "cuda") ? "cuda:0" : device);
        if (vnp_embedder_create(&ec, dev, &emb, &err))
            die("loading the model (embedder)", &err);
        t_load = now_s() - tl;
        for (int k = 0; k < 2; k++) {
            slot_tok[k] = malloc(maxb * 4);
            slot_cu[k] = malloc((n + 1) * 4);
            slot_out[k] = malloc(n * (size_t)H * 4);
        }
    }
    for (int pass = 0; pass < 1 + passes && pipelined; pass++) {
        double ts = now_s();
        size_t nb = pass == 0 ? 1 : pk.nbatches; /* pass 0: one warm-up batch */
        for (size_t b = 0; b < nb + 2; b++) {
            int k = (int)(b & 1);
            if (b >= 2 && vnp_embedder_finish(emb, k, &job[k], &err)) /* batch b-2 */
                die("embedding (finish)", &err);
            if (b >= nb)
                continue;
            const vnp_pack_batch *pb = &pk.batches[b];
            size_t T = 0;
            slot_cu[k][0] = 0;
            for (size_t q = 0; q < pb->count; q++) {
                const vnp_ids *sq = &ids[pk.order[pb->first + q]];
                memcpy(slot_tok[k] + T, sq->v, sq->n * 4);
                T += sq->n;
                slot_cu[k][q + 1] = (int32_t)T;
            }
            memset(&job[k], 0, sizeof job[k]);
            vnp_batch bt = {slot_tok[k], slot_cu[k], (int)pb->count};
            if (esm)
                job[k].esm = bt;
            else
                job[k].dna = bt;
            job[k].nseq = (int)pb->count;
            job[k].features = slot_out[k];
            if (vnp_embedder_submit(emb, k, &job[k], &err))
                die("embedding (submit)", &err);
        }
        pass_done(&tm, pass, now_s() - ts);
    }
    for (int pass = 0; pass < 1 + passes && !pipelined; pass++) {
        double ts = now_s();
        size_t nb = pass == 0 ? 1 : pk.nbatches; /* pass 0: one warm-up batch */
        for (size_t b = 0; b < nb; b++) {
            const vnp_pack_batch *pb = &pk.batches[b];
            size_t T = 0;
            cu[0] = 0;
            for (size_t k = 0; k < pb->count; k++) {
                const vnp_ids *s = &ids[pk.order[pb->first + k]];
                memcpy(tokens + T, s->v, s->n * 4);
                T += s->n;
                cu[k + 1] = (int32_t)T;
            }
            vnp_batch batch = {tokens, cu, (int)pb->count};
            if (vnp_encoder_embed(enc, &batch, out, &err))
                die("embedding", &err);
        }
        pass_done(&tm, pass, now_s() - ts);
    }
    size_t warm_tok = 0; /* the warm-up pass runs batch 0 once more */
    for (size_t q = 0; pk.nbatches && q < pk.batches[0].count; q++)
        warm_tok += ids[pk.order[pk.batches[0].first + q]].n;
    printf("RESULT %s model=%s precision=%s mode=%s sequences=%zu tokens=%zu batches=%zu "
           "budget=%zu load_s=%.1f warmup_s=%.2f warmup_tokens=%zu passes=%d run_s=%.2f "
           "tok_s=%.0f seq_s=%.1f pass_tok_s=%.0f..%.0f\n",
           label, esm ? "esm2" : "dnabert_s", emb ? vnp_embedder_name(emb) : vnp_backend_name(be),
           pipelined ? "pipelined" : "sync", n, ntok, pk.nbatches, budget, t_load, tm.first,
           warm_tok, passes, tm.run, passes * (double)ntok / tm.run, passes * (double)n / tm.run,
           ntok / tm.max, ntok / tm.min);
    vnp_embedder_free(emb);
    for (int k = 0; k < 2; k++) {
        free(slot_tok[k]);
        free(slot_cu[k]);
        free(slot_out[k]);
    }
    vnp_packing_free(&pk);
    for (size_t i = 0; i < n; i++)
        vnp_ids_free(&ids[i]);
    free(ids);
    free(len);
    free(tokens);
    free(cu);
    free(out);
    vnp_bpe_free(bpe);
    vnp_encoder_free(enc);
    vnp_backend_free(be);
    return 0;
}
