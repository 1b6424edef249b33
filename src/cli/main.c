/* virnucpro: command-line entry point and subcommand dispatch. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "virnucpro.h"

#ifndef VNP_VERSION
#define VNP_VERSION VNP_VERSION_STRING
#endif

/* Each subcommand registers itself here. */
static const vnp_command commands[] = {
    {"preprocess", "chunk sequences and keep stop-free six-frame ORFs (the original's files)",
     vnp_cmd_preprocess},
    {"models", "fetch, verify, list and locate the ESM-2, DNABERT-S and classifier checkpoints",
     vnp_cmd_models},
    {"embed", "pooled DNABERT-S or ESM-2 embeddings of every record, as safetensors",
     vnp_cmd_embed},
    {"predict", "score every chunk of every sequence: viral or not (VirNucPro's outputs)",
     vnp_cmd_predict},
    {"train", "retrain the classifier on labelled viral and other sequences (train.py)",
     vnp_cmd_train},
    {"merge", "combine the outputs of predict --shard I/N runs into one run's files",
     vnp_cmd_merge},
    {"classify", "rebuild the per-sequence outputs of a finished predict run, without models",
     vnp_cmd_classify},
    {"inspect", "list the tensors and attributes of a checkpoint (never runs its code)",
     vnp_cmd_inspect},
    {"validate-precision", "GPU FP16/BF16 embeddings against FP32, per model and length stratum",
     vnp_cmd_validate_precision},
    {"tokenize", "print the DNABERT-S or ESM-2 token ids of every record", vnp_cmd_tokenize},
    {NULL, NULL, NULL},
};

void vnp_cli_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("virnucpro: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void usage(FILE *f)
{
    fprintf(f, "virnucpro %s - identify viral sequences with ESM-2 + DNABERT-S embeddings\n\n"
               "Usage: virnucpro <command> [options]\n\nCommands:\n",
            VNP_VERSION);
    for (const vnp_command *c = commands; c->name; c++)
        fprintf(f, "  %-20s %s\n", c->name, c->summary);
    fprintf(f, "  %-20s %s\n  %-20s %s\n", "help [COMMAND]", "this list, or a command's options",
            "version", "version, git commit, CUDA architectures and BLAS of this build");
    fprintf(f, "\nRun 'virnucpro help <command>' (or 'virnucpro <command> --help') for a "
               "command's options.\nExit status: 0 success, 1 error, 2 usage error, 128+N "
               "stopped by signal N (predict: resumable);\nvalidate-precision: 3 when it ran and "
               "a threshold is not met.\n");
}

/* `virnucpro version` (and --version, -V): what this binary is. */
static int version(void)
{
    vnp_build_info b;
    vnp_build_info_get(&b);
    printf("virnucpro %s\ngit commit: %s\nbuild type: %s\nCUDA architectures: %s\nBLAS: %s\n",
           b.version, b.git_commit, b.build_type, *b.cuda_archs ? b.cuda_archs : "none (no CUDA)",
           b.blas);
    return 0;
}

static const vnp_command *command_named(const char *name)
{
    for (const vnp_command *c = commands; c->name; c++)
        if (!strcmp(name, c->name))
            return c;
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") ||
        (!strcmp(argv[1], "help") && argc == 2)) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "help") && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "help")) { /* help CMD = CMD --help */
        const vnp_command *c = command_named(argv[2]);
        if (!c || argc > 3) {
            vnp_cli_error("help takes one command name, got '%s'%s; run 'virnucpro help' for "
                          "the list",
                          argv[2], argc > 3 ? " and more" : "");
            return 2;
        }
        /* as `virnucpro CMD --help` (commands see argv[-1], the program) */
        char *args[4] = {argv[0], argv[2], "--help", NULL};
        return c->run(2, args + 1);
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V"))
        return version(); /* the first line alone is "virnucpro VERSION", as it always was */
    if (!strcmp(argv[1], "version")) {
        if (argc > 2 && (!strcmp(argv[2], "--help") || !strcmp(argv[2], "-h"))) {
            printf("Usage: virnucpro version\n\nPrints the version, the git commit the binary "
                   "was built from, the build type,\nthe CUDA architectures compiled for and "
                   "the BLAS library (as run.json records them).\n");
            return 0;
        }
        if (argc > 2) {
            vnp_cli_error("version takes no argument; see 'virnucpro version --help'");
            return 2;
        }
        return version();
    }
    const vnp_command *c = command_named(argv[1]);
    if (c)
        return c->run(argc - 1, argv + 1);
    vnp_cli_error("unknown command '%s'; run 'virnucpro --help' for the list", argv[1]);
    return 2;
}

int vnp_cli_device_ok(const char *list)
{
    vnp_devices d;
    vnp_error e;
    if (vnp_devices_parse(list, &d, &e) != VNP_OK) {
        vnp_cli_error("%s", e.msg);
        return 0;
    }
    vnp_devices_free(&d);
    return 1;
}

int vnp_cli_count(const char *opt, const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || !*s || *end || v < lo || v > hi) {
        vnp_cli_error("%s expects a whole number from %ld to %ld, got '%s'", opt, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}

int vnp_cli_chunk_length(const char *s, int *out)
{
    if (!strcmp(s, "300") || !strcmp(s, "500")) {
        *out = s[0] == '3' ? 300 : 500;
        return 1;
    }
    vnp_cli_error("-l/--length must be 300 or 500 (the published classifiers' chunk lengths), "
                  "got '%s'", s);
    return 0;
}

int vnp_cli_precision(const char *s, vnp_precision *out)
{
    if (vnp_precision_parse(s, out))
        return 1;
    vnp_cli_error("--precision must be " VNP_PRECISION_NAMES ", got '%s'", s);
    return 0;
}

void vnp_cli_precision_note(const vnp_devices *d, vnp_precision asked)
{
    if (asked == VNP_PREC_DEFAULT || asked == VNP_PREC_FP32 ||
        vnp_precision_effective("cpu", asked) != asked)
        return;
    int cpu = 0;
    for (int i = 0; i < d->n; i++)
        cpu |= !strcmp(d->name[i], "cpu");
    if (cpu)
        fprintf(stderr,
                "virnucpro: --precision %s on the CPU is emulated (values rounded where a GPU "
                "rounds them): as slow as fp32 or slower, for checking the precision, not "
                "for speed\n",
                vnp_precision_name(asked));
}

int vnp_cli_number(const char *opt, const char *s, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || !*s || *end || !(v >= lo && v <= hi)) {
        vnp_cli_error("%s expects a number from %g to %g, got '%s'", opt, lo, hi, s);
        return 0;
    }
    *out = v;
    return 1;
}
