/* virnucpro train: retrain VirNucPro's classifier on labelled sequences (or on
 * cached feature rows), as the original train.py does. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "virnucpro.h"

/* The help, with the defaults of the options' initialisers (never repeated here). */
static void train_usage(FILE *f)
{
    vnp_train_features_options fd;
    vnp_train_options td;
    vnp_train_features_options_init(&fd);
    vnp_train_options_init(&td);
    fprintf(f,
        "Usage: virnucpro train --viral V.fa --other O.fa -l 300|500 -o PREFIX [options]\n"
        "       virnucpro train --features F.safetensors -o PREFIX [options]\n"
        "       virnucpro train --viral-features V.safetensors --other-features O.safetensors\n"
        "                       -o PREFIX [options]\n"
        "\n"
        "Trains VirNucPro's classifier (Linear -> BatchNorm1d -> ReLU -> Dropout -> Linear,\n"
        "cross-entropy, SGD with momentum, StepLR, early stopping on the validation loss)\n"
        "on the merged DNABERT-S + ESM-2 features of every stop-free frame of every chunk\n"
        "of the viral (class 1, virus) and other (class 0) sequences, computed as predict\n"
        "computes them. Writes:\n"
        "  PREFIX.safetensors           the classifier of the epoch with the lowest\n"
        "                               validation loss (predict --classifier takes it)\n"
        "  PREFIX.log.tsv               one row per epoch: lr, loss, val_loss, accuracy,\n"
        "                               precision, recall, f1, auroc (validation set)\n"
        "  PREFIX.heldout.tsv           the kept epoch's validation metrics and counts\n"
        "  PREFIX.features.safetensors  (from FASTA) the labelled features: 'features',\n"
        "                               'ids', 'labels' (1 = virus); reuse with --features\n"
        "\n"
        "Inputs:\n"
        "      --viral FILE        viral sequences (FASTA/FASTQ, plain or compressed)\n"
        "      --other FILE        non-viral sequences\n"
        "  -l, --length N          chunk length, 300 or 500 (default %d)\n"
        "      --features FILE     labelled features instead (a PREFIX.features.safetensors)\n"
        "      --viral-features FILE, --other-features FILE  unlabelled feature files\n"
        "                          (predict --embeddings' merged_features.safetensors)\n"
        "  -o, --output PREFIX     output path prefix (required)\n"
        "Feature computation (as predict):\n"
        "      --esm PATH, --dnabert DIR  models (default: the cached ones)\n"
        "      --device LIST       where the encoders run (default %s); the training\n"
        "                          runs on the list's first device (cpu, cuda or cuda:N;\n"
        "                          FP32), on the CPU with auto\n"
        "      --precision P       the encoders' precision on a GPU, as predict's option\n"
        "  -t, --threads N         CPU threads (default: the CPUs this process may use)\n"
        "      --batch-tokens N    ESM-2 tokens per batch\n"
        "      --window N          frames read ahead and length-sorted together (%zu)\n"
        "      --resume            go on with an interrupted feature computation (killed,\n"
        "                          stopped by a signal, a failed device), or reuse its\n"
        "                          complete PREFIX.features.safetensors; the result is the\n"
        "                          bytes of an uninterrupted run\n"
        "Training (defaults: the original train.py's):\n"
        "      --epochs N          at most N epochs (%d)\n"
        "      --patience N        stop after N epochs without a lower validation loss (%d)\n"
        "      --seed N            seed of the initial weights, split, batch order and\n"
        "                          dropout (%llu); the same seed and threads give the same model\n"
        "      --hidden N          hidden units (%d)\n"
        "      --dropout P         dropout probability (%g)\n"
        "      --lr X              SGD learning rate (%g)\n"
        "      --momentum X        SGD momentum (%g)\n"
        "      --step-size N       StepLR step in epochs (%d)\n"
        "      --gamma X           StepLR factor (%g)\n"
        "      --batch-size N      rows per batch (%d)\n"
        "      --val-fraction X    share of rows held out for validation (%g)\n"
        "  -q, --quiet             no per-epoch lines and no summary\n"
        "  -h, --help              this help\n",
        fd.chunk_len, fd.device, fd.window_orfs, td.epochs, td.patience, (unsigned long long)td.seed, td.hidden,
        (double)td.dropout, td.lr, td.momentum, td.step_size, td.gamma, td.batch,
        td.val_fraction);
}

enum {
    OPT_VIRAL = 1000, OPT_OTHER, OPT_FEATURES, OPT_VF, OPT_OF, OPT_ESM, OPT_DNABERT,
    OPT_DEVICE, OPT_BATCH_TOKENS, OPT_EPOCHS, OPT_PATIENCE, OPT_SEED, OPT_HIDDEN, OPT_DROPOUT,
    OPT_LR, OPT_MOMENTUM, OPT_STEP, OPT_GAMMA, OPT_BATCH, OPT_VAL, OPT_TRACE, OPT_PRECISION,
    OPT_RESUME, OPT_WINDOW
};

int vnp_cmd_train(int argc, char **argv)
{
    static const struct option opts[] = {
        {"viral", required_argument, NULL, OPT_VIRAL},
        {"other", required_argument, NULL, OPT_OTHER},
        {"features", required_argument, NULL, OPT_FEATURES},
        {"viral-features", required_argument, NULL, OPT_VF},
        {"other-features", required_argument, NULL, OPT_OF},
        {"length", required_argument, NULL, 'l'},
        {"output", required_argument, NULL, 'o'},
        {"esm", required_argument, NULL, OPT_ESM},
        {"dnabert", required_argument, NULL, OPT_DNABERT},
        {"device", required_argument, NULL, OPT_DEVICE},
        {"threads", required_argument, NULL, 't'},
        {"precision", required_argument, NULL, OPT_PRECISION},
        {"batch-tokens", required_argument, NULL, OPT_BATCH_TOKENS},
        {"epochs", required_argument, NULL, OPT_EPOCHS},
        {"patience", required_argument, NULL, OPT_PATIENCE},
        {"seed", required_argument, NULL, OPT_SEED},
        {"hidden", required_argument, NULL, OPT_HIDDEN},
        {"dropout", required_argument, NULL, OPT_DROPOUT},
        {"lr", required_argument, NULL, OPT_LR},
        {"momentum", required_argument, NULL, OPT_MOMENTUM},
        {"step-size", required_argument, NULL, OPT_STEP},
        {"gamma", required_argument, NULL, OPT_GAMMA},
        {"batch-size", required_argument, NULL, OPT_BATCH},
        {"val-fraction", required_argument, NULL, OPT_VAL},
        {"debug-trace", required_argument, NULL, OPT_TRACE},
        {"resume", no_argument, NULL, OPT_RESUME},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    vnp_train_options to;
    vnp_train_options_init(&to);
    vnp_train_features_options fo;
    vnp_train_features_options_init(&fo);
    const char *features = NULL, *vf = NULL, *of = NULL, *prefix = NULL;
    long v;
    double d;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:o:t:qh", opts, NULL)) != -1) {
        switch (c) {
        case OPT_VIRAL: fo.viral = optarg; break;
        case OPT_OTHER: fo.other = optarg; break;
        case OPT_FEATURES: features = optarg; break;
        case OPT_VF: vf = optarg; break;
        case OPT_OF: of = optarg; break;
        case 'l':
            if (!vnp_cli_chunk_length(optarg, &fo.chunk_len))
                return 2;
            break;
        case 'o': prefix = optarg; break;
        case OPT_ESM: fo.esm = optarg; break;
        case OPT_DNABERT: fo.dnabert = optarg; break;
        case OPT_DEVICE:
            if (!vnp_cli_device_ok(optarg))
                return 2;
            fo.device = optarg;
            break;
        case OPT_PRECISION:
            if (!vnp_cli_precision(optarg, &fo.precision))
                return 2;
            break;
        case 't':
            if (!vnp_cli_count("-t/--threads", optarg, 0, 1024, &v))
                return 2;
            fo.threads = to.threads = (int)v;
            break;
        case OPT_BATCH_TOKENS:
            if (!vnp_cli_count("--batch-tokens", optarg, 1, 1L << 30, &v))
                return 2;
            fo.batch_tokens = (size_t)v;
            break;
        case OPT_EPOCHS:
            if (!vnp_cli_count("--epochs", optarg, 1, 1000000, &v))
                return 2;
            to.epochs = (int)v;
            break;
        case OPT_PATIENCE:
            if (!vnp_cli_count("--patience", optarg, 1, 1000000, &v))
                return 2;
            to.patience = (int)v;
            break;
        case OPT_SEED:
            if (!vnp_cli_count("--seed", optarg, 0, 0x7fffffffL, &v))
                return 2;
            to.seed = (uint64_t)v;
            break;
        case OPT_HIDDEN:
            if (!vnp_cli_count("--hidden", optarg, 1, 65536, &v))
                return 2;
            to.hidden = (int)v;
            break;
        case OPT_STEP:
            if (!vnp_cli_count("--step-size", optarg, 1, 1000000, &v))
                return 2;
            to.step_size = (int)v;
            break;
        case OPT_BATCH:
            if (!vnp_cli_count("--batch-size", optarg, 2, 1 << 20, &v))
                return 2;
            to.batch = (int)v;
            break;
        case OPT_DROPOUT:
            if (!vnp_cli_number("--dropout", optarg, 0.0, 0.99, &d))
                return 2;
            to.dropout = (float)d;
            break;
        case OPT_LR:
            if (!vnp_cli_number("--lr", optarg, 1e-12, 10.0, &d))
                return 2;
            to.lr = d;
            break;
        case OPT_MOMENTUM:
            if (!vnp_cli_number("--momentum", optarg, 0.0, 0.999, &d))
                return 2;
            to.momentum = d;
            break;
        case OPT_GAMMA:
            if (!vnp_cli_number("--gamma", optarg, 1e-6, 1.0, &d))
                return 2;
            to.gamma = d;
            break;
        case OPT_VAL:
            if (!vnp_cli_number("--val-fraction", optarg, 0.001, 0.9, &d))
                return 2;
            to.val_fraction = d;
            break;
        case OPT_TRACE: to.trace_path = optarg; break;
        case OPT_RESUME: fo.resume = 1; break;
        case OPT_WINDOW:
            if (!vnp_cli_count("--window", optarg, 1, 1L << 24, &v))
                return 2;
            fo.window_orfs = (size_t)v;
            break;
        case 'q':
            to.quiet = 1;
            fo.quiet = 1;
            break;
        case 'h': train_usage(stdout); return 0;
        case ':':
            vnp_cli_error("option '%s' needs a value; see 'virnucpro train --help'",
                          argv[optind - 1]);
            return 2;
        default:
            vnp_cli_error("unknown option '%s'; see 'virnucpro train --help'", argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc) {
        vnp_cli_error("unexpected argument '%s'; inputs are given with --viral/--other or "
                      "--features; see 'virnucpro train --help'",
                      argv[optind]);
        return 2;
    }
    int fasta = fo.viral || fo.other, labelled = features != NULL, split = vf || of;
    if (!prefix || fasta + labelled + split != 1 || (fasta && !(fo.viral && fo.other)) ||
        (split && !(vf && of))) {
        vnp_cli_error("%s; see 'virnucpro train --help'",
                      !prefix ? "missing -o/--output PREFIX"
                              : "give the inputs one way: --viral and --other (sequences), "
                                "--features (labelled features), or --viral-features and "
                                "--other-features");
        return 2;
    }
    vnp_error err;
    vnp_error_clear(&err);
    /* The training's device: the --device list's first one; with auto the CPU (the
     * same bits on every machine). */
    static char train_device[64];
    if (!strstr(fo.device, "auto")) {
        vnp_devices dl;
        if (vnp_devices_parse(fo.device, &dl, &err) != VNP_OK) {
            vnp_cli_error("%s", err.msg);
            return 2;
        }
        snprintf(train_device, sizeof train_device, "%s", dl.name[0]);
        vnp_devices_free(&dl);
        to.device = train_device;
    }
    if (fasta && (!fo.esm || !fo.dnabert)) {
        /* models not given come from the cache (fetched on first use unless offline) */
        const char *names[2];
        const char **slots[2];
        size_t nmiss = 0;
        if (!fo.esm) {
            names[nmiss] = "esm2_t36_3B_UR50D";
            slots[nmiss++] = &fo.esm;
        }
        if (!fo.dnabert) {
            names[nmiss] = "dnabert-s";
            slots[nmiss++] = &fo.dnabert;
        }
        static char paths[3][4096];
        vnp_hub_options hub;
        vnp_hub_options_init(&hub);
        hub.quiet = fo.quiet;
        if (vnp_models_resolve_all(names, nmiss, &hub, paths, &err) != VNP_OK) {
            vnp_cli_error("%s", err.msg);
            return 1;
        }
        for (size_t i = 0; i < nmiss; i++)
            *slots[i] = paths[i];
    }
    vnp_train_data data;
    memset(&data, 0, sizeof data);
    vnp_train_result res;
    memset(&res, 0, sizeof res);
    vnp_code rc = VNP_OK;
    char *cache = NULL;
    int sig = 0;
    fo.handle_signals = to.handle_signals = 1;
    if (fasta) {
        size_t n = strlen(prefix) + 32;
        cache = malloc(n);
        if (!cache)
            rc = vnp_fail(&err, VNP_ENOMEM, "out of memory");
        else {
            snprintf(cache, n, "%s.features.safetensors", prefix);
            fo.out_path = cache;
            vnp_train_features_stats fs;
            rc = vnp_train_features_compute(&fo, &fs, &err);
            sig = rc == VNP_EINTERRUPTED ? fs.signal : 0;
            if (!rc && !fo.quiet && fs.already_done)
                fprintf(stderr, "virnucpro: train: --resume: %s is complete; training on it\n",
                        cache);
            else if (!rc && !fo.quiet)
                fprintf(stderr, "virnucpro: train: %zu frames (%zu viral, %zu other) -> %s\n",
                        fs.rows, fs.viral_rows, fs.rows - fs.viral_rows, cache);
        }
        if (!rc)
            rc = vnp_train_data_append(cache, -1, &data, &err);
    } else if (labelled)
        rc = vnp_train_data_append(features, -1, &data, &err);
    else {
        rc = vnp_train_data_append(vf, 1, &data, &err);
        if (!rc)
            rc = vnp_train_data_append(of, 0, &data, &err);
    }
    int training = !rc;
    if (!rc)
        rc = vnp_train_run(data.x, data.y, data.n, data.width, &to, &res, &err);
    if (training && rc == VNP_EINTERRUPTED) {
        sig = res.signal;
        /* what was saved and how to go on */
        vnp_error first = err;
        if (fasta)
            vnp_fail(&err, rc, "%s; the features cache %s is complete: run the same command "
                     "with --resume (it reuses the cache), or train from it with --features %s",
                     first.msg, cache, cache);
        else
            vnp_fail(&err, rc, "%s; run the same command again", first.msg);
    }
    if (!rc) {
        char seed[32];
        snprintf(seed, sizeof seed, "%llu", (unsigned long long)to.seed);
        const char *meta[] = {"trained_by", "virnucpro train " VNP_VERSION_STRING, "seed", seed,
                              NULL};
        rc = vnp_train_write_outputs(&res, &to, prefix, meta, &err);
    }
    int status = 0;
    if (rc) {
        vnp_cli_error("%s", err.msg);
        status = rc == VNP_EINTERRUPTED && sig ? 128 + sig : 1;
    } else if (!to.quiet) {
        const vnp_binary_metrics *b = &res.epochs[res.best_epoch - 1].val;
        fprintf(stderr,
                "virnucpro: train: %zu rows (%zu training, %zu validation), %d epochs%s; kept "
                "epoch %d: validation loss %.4f, accuracy %.4f, F1 %.4f, AUROC %.4f -> "
                "%s.safetensors\n",
                data.n, res.train_rows, res.val_rows, res.nepochs,
                res.stopped_early ? " (stopped early)" : "", res.best_epoch, b->loss,
                b->accuracy, b->f1, b->auroc, prefix);
    }
    vnp_train_result_free(&res);
    vnp_train_data_free(&data);
    free(cache);
    return status;
}
