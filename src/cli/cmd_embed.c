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
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/commands.h"
#include "pipeline/engine.h"
#include "virnucpro.h"

/* embed's defaults: the command starts from them and the help prints them. */
static const struct embed_defaults {
    const char *device;
    long batch_tokens;
} embed_defaults = {"auto", 8192};

static void embed_usage(FILE *f)
{
    fprintf(f, "Usage: virnucpro embed --model PATH -o OUT.safetensors [--device DEV] [-t N]\n"
          "                       [--batch-tokens N] [--precision P] [-q] INPUT\n"
          "\n"
          "Embeds every record of INPUT (FASTA/FASTQ; plain, gzip, bzip2, xz or\n"
          "zstd; '-' = stdin) with the\n"
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
          "  -d, --device LIST     comma-separated, one worker each: auto (default: every\n"
          "                        visible GPU, else the CPU), cpu, cuda (every GPU), cuda:N;\n"
          "                        a worker that fails is retired, the others finish its work\n"
          "  -t, --threads N       CPU threads of each CPU worker (default: the CPUs this\n"
          "                        process may use)\n"
          "  -b, --batch-tokens N  tokens per packed batch (default %ld)\n"
          "      --precision P     fp16 (default on CUDA), bf16, fp32 (default on the CPU),\n"
          "                        fp8 or fp8-tensor (experimental; GPUs of compute\n"
          "                        capability 8.9+); on the CPU a reduced precision is\n"
          "                        emulated (rounded where the GPU rounds): for checking,\n"
          "                        not speed; recorded in the file's metadata\n"
          "  -q, --quiet           no summary line on stderr\n"
          "  -h, --help            this help\n"
          "\n"
          "VIRNUCPRO_DISABLE_FP16=1 computes in FP32 on a GPU.\n",
          embed_defaults.batch_tokens);
}

/* ---- the records, in windows, through the engine ---- */
#define EMBED_WINDOW 2048

typedef struct embed_run {
    vnp_engine *eng;
    vnp_seq_reader *rd;
    const vnp_bpe *bpe; /* DNABERT-S; NULL for ESM-2 */
    uint64_t tokens;    /* the reader's */
    vnp_error err;      /* the reader's */
} embed_run;

/* Reader thread: records -> windows of whole-record items. */
static void *embed_reader(void *arg)
{
    embed_run *r = arg;
    vnp_window *w = NULL;
    vnp_record rec;
    vnp_code rc = VNP_OK;
    int got;
    while (!vnp_engine_failed(r->eng) && (got = vnp_seq_read(r->rd, &rec, &r->err)) != 0) {
        if (got < 0) {
            rc = (vnp_code)-got;
            break;
        }
        if (!w && !(w = vnp_window_new())) {
            rc = vnp_fail(&r->err, VNP_ENOMEM, "out of memory");
            break;
        }
        vnp_win_orf *o;
        if ((rc = vnp_window_add_orf(w, &o, &r->err)) ||
            (rc = vnp_window_text(w, rec.id, rec.id_len, &o->id_off, &r->err)))
            break;
        o->id_len = rec.id_len;
        vnp_ids *ids = r->bpe ? &w->dna : &w->esm;
        size_t before = ids->n;
        rc = r->bpe ? vnp_bpe_encode(r->bpe, rec.seq, rec.len, ids, &r->err)
                    : vnp_esm_encode(rec.seq, rec.len, ids, &r->err);
        if (rc) {
            vnp_error_prefix(&r->err, "%s: record '%s': ", vnp_seq_name(r->rd), rec.id);
            break;
        }
        if (ids->n - before > (size_t)INT32_MAX / 2) {
            rc = vnp_fail(&r->err, VNP_EINVAL, "%s: record '%s' is too long to embed",
                          vnp_seq_name(r->rd), rec.id);
            break;
        }
        if (r->bpe) {
            o->dna_off = before;
            o->dna_len = ids->n - before;
        } else {
            o->esm_off = before;
            o->esm_len = ids->n - before;
        }
        r->tokens += ids->n - before;
        if (w->norf >= EMBED_WINDOW) {
            vnp_window *full = w;
            w = NULL;
            if (!vnp_engine_push(r->eng, full, &r->err))
                break;
        }
    }
    if (rc)
        vnp_engine_fail(r->eng, &r->err);
    else if (w && !vnp_engine_failed(r->eng)) {
        vnp_engine_push(r->eng, w, &r->err);
        w = NULL;
    }
    vnp_window_free(w);
    vnp_engine_close(r->eng);
    return NULL;
}

/* The calling thread: windows in input order -> rows of the output. */
static vnp_code embed_write(vnp_engine *eng, vnp_features_writer *o, vnp_error *err)
{
    vnp_window *w;
    int H = vnp_engine_width(eng);
    vnp_code rc = VNP_OK;
    while (!rc && (w = vnp_engine_pop(eng))) {
        for (size_t i = 0; !rc && i < w->norf; i++)
            rc = vnp_features_writer_add(o, w->text + w->orf[i].id_off, w->orf[i].id_len,
                                         w->features + i * (size_t)H, err);
        vnp_engine_release(eng, w);
    }
    if (rc)
        vnp_engine_fail(eng, err);
    return vnp_engine_error(eng, err);
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


int vnp_cmd_embed(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},   {"output", required_argument, NULL, 'o'},
        {"device", required_argument, NULL, 'd'},  {"threads", required_argument, NULL, 't'},
        {"batch-tokens", required_argument, NULL, 'b'}, {"quiet", no_argument, NULL, 'q'},
        {"precision", required_argument, NULL, 'P'},
        {"help", no_argument, NULL, 'h'},          {NULL, 0, NULL, 0},
    };
    const char *model = NULL, *output = NULL, *device = embed_defaults.device;
    vnp_precision prec = VNP_PREC_DEFAULT;
    long threads = 0, budget = embed_defaults.batch_tokens;
    int quiet = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:o:d:t:b:qhP:", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'o': output = optarg; break;
        case 'd':
            if (!vnp_cli_device_ok(optarg))
                return 2;
            device = optarg;
            break;
        case 't':
            if (!vnp_cli_count("-t/--threads", optarg, 0, 1024, &threads))
                return 2;
            break;
        case 'b':
            if (!vnp_cli_count("--batch-tokens", optarg, 1, 1L << 30, &budget))
                return 2;
            break;
        case 'q': quiet = 1; break;
        case 'P':
            if (!vnp_cli_precision(optarg, &prec))
                return 2;
            break;
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
    vnp_bpe *bpe = NULL;
    vnp_seq_reader *rd = NULL;
    vnp_features_writer *o = NULL;
    vnp_engine *eng = NULL;
    vnp_devices dev = {0};
    int status = 1;
    embed_run run = {0};
    /* the checkpoint decides the model: a DNABERT-S one needs its tokenizer */
    vnp_encoder_kind kind;
    vnp_code rc = vnp_encoder_probe(model, &kind, &err);
    int esm = !rc && kind == VNP_ENCODER_ESM2;
    if (!rc && !esm) {
        char tj[4096];
        snprintf(tj, sizeof tj, "%s/tokenizer.json", model);
        rc = vnp_bpe_load(tj, &bpe, &err);
        if (rc)
            vnp_error_prefix(&err, "DNABERT-S model '%s' needs its tokenizer.json: ", model);
    }
    if (!rc)
        rc = vnp_devices_parse(device, &dev, &err);
    if (!rc) {
        if (dev.auto_cpu && !quiet)
            fprintf(stderr, "virnucpro: --device auto: no CUDA GPU visible; computing on the "
                            "CPU\n");
        if (!quiet)
            vnp_cli_precision_note(&dev, prec);
        vnp_engine_config ec;
        memset(&ec, 0, sizeof ec);
        ec.models.dnabert = esm ? NULL : model;
        ec.models.esm = esm ? model : NULL;
        ec.models.prec = prec;
        ec.models.threads = threads > 0 ? (int)threads : vnp_cpu_threads_available();
        ec.devices = (const char *const *)dev.name;
        ec.ndevices = dev.n;
        ec.batch_tokens = (size_t)budget;
        ec.want_features = 1;
        rc = vnp_engine_start(&ec, &eng, &err);
    }
    struct timespec t_loaded;
    clock_gettime(CLOCK_MONOTONIC, &t_loaded);
    double cpu_loaded = cpu_seconds();
    int H = rc ? 0 : vnp_engine_width(eng);
    if (!rc)
        rc = vnp_seq_open(input, &rd, &err);
    if (!rc)
        vnp_seq_set_stop_fd(rd, vnp_engine_stop_fd(eng)); /* a failed run wakes a stalled stdin */
    if (!rc) {
        const char *meta[] = {"model", esm ? "ESM-2" : "DNABERT-S", "checkpoint", model,
                              "pooling",
                              esm ? "mean of the last layer (after emb_layer_norm_after) over "
                                    "residues 1..min(1024, L)"
                                  : "mean of the last layer over all tokens incl. [CLS] and [SEP]",
                              NULL, NULL, NULL};
        if (prec != VNP_PREC_DEFAULT) { /* asked for: recorded (the default is not, as before) */
            meta[6] = "precision"; /* what the workers compute in (VIRNUCPRO_DISABLE_FP16) */
            meta[7] = vnp_precision_name(vnp_precision_effective(dev.name[0], prec));
        }
        rc = vnp_features_writer_create(output, "embeddings", H, meta, &o, &err);
    }
    if (!rc) {
        run.eng = eng;
        run.rd = rd;
        run.bpe = bpe;
        pthread_t reader;
        if (pthread_create(&reader, NULL, embed_reader, &run) != 0)
            rc = vnp_fail(&err, VNP_ENOMEM, "cannot start the reader thread");
        else {
            rc = embed_write(eng, o, &err);
            pthread_join(reader, NULL);
            if (!rc)
                rc = vnp_engine_error(eng, &err);
        }
    }
    if (!rc)
        rc = vnp_features_writer_finish(o, &err);
    uint64_t tokens = run.tokens;
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
                    vnp_engine_describe(eng), load, s, s > 0 ? (double)tokens / s : 0.0,
                    cpu > 0 ? (double)tokens / cpu : 0.0);
    }
    vnp_features_writer_free(o);
    vnp_engine_free(eng);
    vnp_devices_free(&dev);
    vnp_seq_close(rd);
    vnp_bpe_free(bpe);
    return status;
}
