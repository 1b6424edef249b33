/* virnucpro predict: FASTA/FASTQ in, VirNucPro's prediction files out. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/fs.h"
#include "virnucpro.h"

/* The help, with the defaults of vnp_predict_options_init (never repeated here). */
static void predict_usage(FILE *f)
{
    vnp_predict_options d;
    vnp_predict_options_init(&d);
    fprintf(f,
        "Usage: virnucpro predict [-l 300|500] [-o DIR] [--esm DIR] [--dnabert DIR]\n"
        "                         [--classifier FILE] [--device LIST] [-t N]\n"
        "                         [--batch-tokens N] [--min-score X] [--plots N]\n"
        "                         [--keep-intermediate] [--embeddings] [--shard I/N]\n"
        "                         [--resume] INPUT\n"
        "\n"
        "Cuts every sequence of INPUT into chunks of the given length, translates each chunk\n"
        "in six frames, embeds every stop-free frame with DNABERT-S (DNA) and ESM-2 (protein)\n"
        "and scores the concatenated embedding with VirNucPro's classifier. Streams: memory\n"
        "depends on the models and the batch size, not on the input. Writes into DIR:\n"
        "  prediction_results.txt               one row per kept frame, in input order:\n"
        "                                       Sequence_ID Prediction score1 score2\n"
        "  prediction_results_highestscore.csv  one row per chunk, sorted by ID: Is_Virus is\n"
        "                                       True when the chunk's best virus score is at\n"
        "                                       least its best non-virus score\n"
        "  sequences.tsv                        one row per input sequence with its verdict\n"
        "                                       (see README: virus when at least half of its\n"
        "                                       scored chunks are called viral)\n"
        "  chunks.tsv                           one row per chunk: coordinates (1-based),\n"
        "                                       frames kept, max virus score, call\n"
        "  viral_regions.bed                    BED6 of the runs of consecutive viral chunks\n"
        "  viral.fna                            the sequences called virus, original bases\n"
        "  report.html, plots/                  the run on one page (no network): counts, the\n"
        "                                       score histogram, score tracks along the viral\n"
        "                                       sequences (also as SVG files in plots/)\n"
        "  run.json                             the record of the run (also when it fails)\n"
        "\n"
        "INPUT is FASTA or FASTQ (LF, CRLF or CR line ends), plain or compressed with gzip,\n"
        "bzip2, xz or zstd (found from the content); '-' reads stdin. A record that looks\n"
        "like protein is an error.\n"
        "\n"
        "Options:\n"
        "  -l, --length N        chunk length, 300 or 500 (default %d); picks the classifier\n"
        "  -o, --output DIR      output directory, created if missing (default: INPUT's\n"
        "                        name up to '.fa' + '_merged', next to it, as the original)\n"
        "      --esm PATH        ESM-2 model directory or fair-esm .pt (default: the cached\n"
        "                        esm2_t36_3B_UR50D, fetched on first use)\n"
        "      --dnabert DIR     DNABERT-S model directory with tokenizer.json (default: the\n"
        "                        cached dnabert-s)\n"
        "      --classifier FILE VirNucPro classifier .pth (default: classifier-300/-500)\n"
        "  -d, --device LIST     where to compute, comma-separated, one worker per entry:\n"
        "                        auto (default: every visible GPU, else the CPU), cpu, cuda\n"
        "                        (every visible GPU) or cuda:N; entries may repeat (cpu,cpu =\n"
        "                        two CPU workers). A worker that fails is retired and the\n"
        "                        others finish its work; the run fails only when none is left\n"
        "      --precision P     fp16 (default on CUDA), bf16, fp32 (default on the CPU), or\n"
        "                        fp8 / fp8-tensor (experimental; E4M3 GEMMs with per-channel /\n"
        "                        per-tensor weight scales; GPUs of compute capability 8.9+;\n"
        "                        validate it first, see validate-precision). On the CPU a\n"
        "                        reduced precision is emulated: for checking, not speed\n"
        "  -t, --threads N       CPU threads of each CPU worker (default: the CPUs this\n"
        "                        process may use)\n"
        "      --batch-tokens N  ESM-2 tokens per batch (default %d on CPU, %d on CUDA);\n"
        "                        DNABERT-S runs on the same frames\n"
        "      --window N        frames read ahead and length-sorted together (default %zu)\n"
        "      --min-score X     a chunk is viral when its max virus score is at least X\n"
        "                        (0 to 1; default: max score2 >= max score1, the original\n"
        "                        rule); changes the files above, never the first two\n"
        "      --plots N         score tracks of the N viral sequences with the most viral\n"
        "                        chunks in report.html and plots/ (default %d; 0: none)\n"
        "      --keep-intermediate  also write the three preprocessing files (as preprocess)\n"
        "      --embeddings      also write merged_features.safetensors: tensor 'features'\n"
        "                        [N, DNABERT-S hidden + ESM-2 hidden] F32 in row order of\n"
        "                        prediction_results.txt, tensor 'ids' (U8, one ID per line)\n"
        "      --resume          continue an interrupted run in DIR (same command otherwise):\n"
        "                        rows of finished records are kept, the rest is computed\n"
        "                        (DIR/predict.journal tracks them; not with stdin,\n"
        "                        --embeddings or --keep-intermediate)\n"
        "      --shard I/N       only records whose 0-based index modulo N is I-1 (one job of N\n"
        "                        over the same input, e.g. a Slurm array task); the input is\n"
        "                        still read once from start to end. Adds DIR/shard.txt;\n"
        "                        'virnucpro merge' combines the N directories into the files\n"
        "                        of one run\n"
        "      --progress, --no-progress  progress line on stderr (default: on a terminal)\n"
        "      --log-interval S  when stderr is not a terminal (a batch job's log): one\n"
        "                        timestamped line every S seconds with records, frames,\n"
        "                        tokens/s, %% of the input and ETA (default %g; 0: none)\n"
        "  -q, --quiet           no summary lines, no timed progress lines (unless\n"
        "                        --log-interval is given) and no model-download notes\n"
        "  -h, --help            this help\n"
        "\n"
        "Models not given are taken from the model cache (see 'virnucpro models'); with\n"
        "VIRNUCPRO_OFFLINE=1 a missing one is an error saying how to fetch it.\n",
        d.chunk_len, VNP_DEFAULT_BATCH_TOKENS_CPU, VNP_DEFAULT_BATCH_TOKENS_CUDA,
        d.window_orfs, d.plots, d.log_interval);
}

enum {
    OPT_ESM = 1000,
    OPT_DNABERT,
    OPT_CLASSIFIER,
    OPT_DEVICE,
    OPT_PRECISION,
    OPT_BATCH_TOKENS,
    OPT_KEEP,
    OPT_EMBEDDINGS,
    OPT_PROGRESS,
    OPT_NO_PROGRESS,
    OPT_WINDOW,
    OPT_RESUME,
    OPT_SHARD,
    OPT_MIN_SCORE,
    OPT_PLOTS,
    OPT_LOG_INTERVAL
};


static double wall_clock(void)
{
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* "<dir of input>/<stem>_merged", the original tool's output folder. */
static char *default_outdir(const char *input)
{
    char stem[1024];
    vnp_error err;
    if (vnp_preprocess_stem(input, stem, sizeof stem, &err) != VNP_OK) {
        vnp_cli_error("%s", err.msg);
        return NULL;
    }
    const char *slash = strrchr(input, '/');
    size_t dl = (!strcmp(input, "-") || !slash) ? 0 : (size_t)(slash - input) + 1;
    size_t n = dl + strlen(stem) + 16;
    char *d = malloc(n);
    if (d)
        snprintf(d, n, "%.*s%s_merged", (int)dl, input, stem);
    return d;
}

int vnp_cmd_predict(int argc, char **argv)
{
    static const struct option opts[] = {
        {"length", required_argument, NULL, 'l'},
        {"output", required_argument, NULL, 'o'},
        {"esm", required_argument, NULL, OPT_ESM},
        {"dnabert", required_argument, NULL, OPT_DNABERT},
        {"classifier", required_argument, NULL, OPT_CLASSIFIER},
        {"device", required_argument, NULL, 'd'},
        {"precision", required_argument, NULL, OPT_PRECISION},
        {"threads", required_argument, NULL, 't'},
        {"batch-tokens", required_argument, NULL, OPT_BATCH_TOKENS},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"keep-intermediate", no_argument, NULL, OPT_KEEP},
        {"embeddings", no_argument, NULL, OPT_EMBEDDINGS},
        {"resume", no_argument, NULL, OPT_RESUME},
        {"shard", required_argument, NULL, OPT_SHARD},
        {"min-score", required_argument, NULL, OPT_MIN_SCORE},
        {"plots", required_argument, NULL, OPT_PLOTS},
        {"log-interval", required_argument, NULL, OPT_LOG_INTERVAL},
        {"progress", no_argument, NULL, OPT_PROGRESS},
        {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    /* the command line as given, for run.json (getopt_long reorders argv); argv[-1] is the
     * program's name (main passes argv + 1) */
    static char *cmdline[1024];
    int cmdn = argc + 1 < 1024 ? argc + 1 : 1024;
    memcpy(cmdline, argv - 1, (size_t)cmdn * sizeof *cmdline);
    vnp_predict_options o;
    vnp_predict_options_init(&o);
    int quiet = 0, log_given = 0, c;
    long v;
    const char *outdir = NULL;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:o:t:d:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (!vnp_cli_chunk_length(optarg, &o.chunk_len))
                return 2;
            break;
        case 'o': outdir = optarg; break;
        case OPT_ESM: o.esm = optarg; break;
        case OPT_DNABERT: o.dnabert = optarg; break;
        case OPT_CLASSIFIER: o.classifier = optarg; break;
        case 'd':
            if (!vnp_cli_device_ok(optarg))
                return 2;
            o.device = optarg;
            break;
        case OPT_PRECISION:
            if (!vnp_cli_precision(optarg, &o.precision))
                return 2;
            break;
        case 't':
            if (!vnp_cli_count("-t/--threads", optarg, 0, 1024, &v))
                return 2;
            o.threads = (int)v;
            break;
        case OPT_BATCH_TOKENS:
            if (!vnp_cli_count("--batch-tokens", optarg, 1, 1L << 30, &v))
                return 2;
            o.batch_tokens = (size_t)v;
            break;
        case OPT_WINDOW:
            if (!vnp_cli_count("--window", optarg, 1, 1L << 24, &v))
                return 2;
            o.window_orfs = (size_t)v;
            break;
        case OPT_MIN_SCORE: {
            double x;
            if (!vnp_cli_number("--min-score", optarg, 0.0, 1.0, &x))
                return 2;
            o.min_score = (float)x;
            break;
        }
        case OPT_PLOTS:
            if (!vnp_cli_count("--plots", optarg, 0, VNP_MAX_PLOTS, &v))
                return 2;
            o.plots = (int)v;
            break;
        case OPT_LOG_INTERVAL: {
            double x;
            if (!vnp_cli_number("--log-interval", optarg, 0.0, 86400.0, &x))
                return 2;
            o.log_interval = x;
            log_given = 1;
            break;
        }
        case OPT_KEEP: o.keep_intermediate = 1; break;
        case OPT_EMBEDDINGS: o.embeddings = 1; break;
        case OPT_RESUME: o.resume = 1; break;
        case OPT_SHARD: {
            vnp_error e;
            if (vnp_shard_parse(optarg, &o.shard_index, &o.shard_count, &e) != VNP_OK) {
                vnp_cli_error("%s", e.msg);
                return 2;
            }
            break;
        }
        case OPT_PROGRESS: o.progress = 1; break;
        case OPT_NO_PROGRESS: o.progress = 0; break;
        case 'q': quiet = 1; break;
        case 'h': predict_usage(stdout); return 0;
        case ':':
            vnp_cli_error("option '%s' needs a value; see 'virnucpro predict --help'",
                          argv[optind - 1]);
            return 2;
        default:
            vnp_cli_error("unknown option '%s'; see 'virnucpro predict --help'",
                          argv[optind - 1]);
            return 2;
        }
    }
    if (optind >= argc) {
        vnp_cli_error("missing INPUT (a FASTA/FASTQ file, or '-' for stdin); see "
                      "'virnucpro predict --help'");
        return 2;
    }
    if (optind != argc - 1) {
        vnp_cli_error("expected one INPUT, got %d arguments", argc - optind);
        return 2;
    }
    o.input = argv[optind];
    if (quiet && !log_given) /* -q: no timed progress lines either */
        o.log_interval = 0;
    vnp_error err;
    vnp_error_clear(&err);
    if (!quiet) { /* say where "auto" computes (the default) */
        vnp_devices d;
        if (vnp_devices_parse(o.device, &d, &err) == VNP_OK) {
            if (d.auto_cpu)
                fprintf(stderr, "virnucpro: --device auto: no CUDA GPU visible; computing on "
                                "the CPU (%d threads)\n",
                        o.threads > 0 ? o.threads : vnp_cpu_threads_available());
            else if (d.auto_gpus > 0)
                fprintf(stderr, "virnucpro: --device auto: %d CUDA GPU%s, one worker each\n",
                        d.auto_gpus, d.auto_gpus == 1 ? "" : "s");
            vnp_cli_precision_note(&d, o.precision);
            vnp_devices_free(&d);
        }
    }
    /* models not given come from the cache (fetched on first use unless offline) */
    const char *names[3];
    const char **slots[3];
    size_t nmiss = 0;
    if (!o.esm) {
        names[nmiss] = "esm2_t36_3B_UR50D";
        slots[nmiss++] = &o.esm;
    }
    if (!o.dnabert) {
        names[nmiss] = "dnabert-s";
        slots[nmiss++] = &o.dnabert;
    }
    if (!o.classifier) {
        names[nmiss] = vnp_models_classifier_for_length(o.chunk_len);
        slots[nmiss++] = &o.classifier;
    }
    static char paths[3][4096];
    if (nmiss > 0) {
        vnp_hub_options hub;
        vnp_hub_options_init(&hub);
        hub.progress = o.progress; /* --progress / --no-progress apply to downloads too */
        hub.quiet = quiet;
        if (vnp_models_resolve_all(names, nmiss, &hub, paths, &err) != VNP_OK) {
            vnp_cli_error("%s", err.msg);
            return 1;
        }
        for (size_t i = 0; i < nmiss; i++)
            *slots[i] = paths[i];
    }
    char *dir = outdir ? strdup(outdir) : default_outdir(o.input);
    if (!dir) {
        vnp_cli_error("out of memory");
        return 1;
    }
    o.out_dir = dir;
    /* a merge's output stopped in its renames: the merge completes it (refused before the
     * run, which would write its run.json there) */
    if (vnp_merge_check_complete(dir, &err) != VNP_OK) {
        vnp_cli_error("%s", err.msg);
        free(dir);
        return 1;
    }
    o.handle_signals = 1; /* SIGINT/SIGTERM/SIGHUP stop at a resumable point */
    vnp_predict_stats st;
    memset(&st, 0, sizeof st);
    double start = wall_clock();
    /* predict writes run.json itself as the run starts ("running") and in its commit
     * ("ok", renamed with the outputs) */
    vnp_run_record rec = {cmdn, cmdline, &o, &st, start, start, 0, NULL, 0};
    o.record = &rec;
    vnp_code rc = vnp_predict(&o, &st, &err);
    int status = rc == VNP_OK ? 0 : rc == VNP_EINTERRUPTED ? 128 + st.signal : 1;
    /* run.json of a failure (in DIR, made for it if the run failed before making it); not
     * for a directory another run holds, nor a success (committed with the outputs), nor
     * when --resume found nothing to do and the finished run's record is there */
    vnp_error derr;
    char rj[4200];
    snprintf(rj, sizeof rj, "%s/%s", dir, VNP_PREDICT_RUN_JSON);
    if (rc != VNP_EBUSY && !(rc == VNP_OK && st.record_written) &&
        !(st.already_done && access(rj, F_OK) == 0) &&
        vnp_mkdirs(dir, "output directory", &derr) == VNP_OK) {
        vnp_run_record r = {cmdn, cmdline, &o, &st, start, wall_clock(), status,
                            rc == VNP_OK ? NULL : err.msg, 0};
        vnp_error jerr;
        if (vnp_run_record_write(&r, &jerr) != VNP_OK)
            fprintf(stderr, "virnucpro: warning: %s\n", jerr.msg);
    }
    if (rc != VNP_OK) {
        if (rc == VNP_EINTERRUPTED)
            fprintf(stderr, "virnucpro: %s\n", err.msg);
        else
            vnp_cli_error("%s", err.msg);
        free(dir);
        return status;
    }
    if (st.already_done) {
        free(dir);
        return 0;
    }
    char shard[48] = "";
    if (o.shard_count)
        snprintf(shard, sizeof shard, "shard %u/%u: ", o.shard_index, o.shard_count);
    if (!quiet)
        fprintf(stderr,
                "virnucpro: predict: %s%zu records, %zu chunks, %zu ORFs scored -> %s; "
                "%.2f s (+ %.2f s loading models), %.0f tokens/s, peak RSS %.1f MB; on %s%s\n",
                shard, st.records, st.chunks, st.orfs, dir, st.seconds, st.load_seconds,
                st.seconds > 0 ? (double)st.tokens / st.seconds : 0.0,
                (double)st.peak_rss_kb / 1024.0, st.devices,
                st.retired ? " (some workers failed and were retired: see above)" : "");
    if (!quiet)
        fprintf(stderr,
                "virnucpro: predict: %s%zu viral sequences (%zu others, %zu unscored), %zu viral "
                "regions; in %s: prediction_results.txt, sequences.tsv, chunks.tsv, "
                "viral_regions.bed, viral.fna%s, run.json\n",
                shard, st.derived.seq_virus, st.derived.seq_others, st.derived.seq_unscored,
                st.derived.regions, dir,
                o.shard_count ? "" : o.plots > 0 ? ", report.html, plots/" : ", report.html");
    free(dir);
    return 0;
}
