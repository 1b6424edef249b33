/* Subcommands of the virnucpro CLI; each lives in cmd_<name>.c. */
#ifndef VNP_CLI_COMMANDS_H
#define VNP_CLI_COMMANDS_H

#include "virnucpro/pipeline.h"
#include "virnucpro/precision.h"

typedef struct vnp_command {
    const char *name;
    const char *summary;
    int (*run)(int argc, char **argv); /* argv[0] is the subcommand name */
} vnp_command;

int vnp_cmd_preprocess(int argc, char **argv);
int vnp_cmd_models(int argc, char **argv);
int vnp_cmd_embed(int argc, char **argv);
int vnp_cmd_predict(int argc, char **argv);
int vnp_cmd_classify(int argc, char **argv);
int vnp_cmd_inspect(int argc, char **argv);
int vnp_cmd_validate_precision(int argc, char **argv);
int vnp_cmd_tokenize(int argc, char **argv);
int vnp_cmd_merge(int argc, char **argv);
int vnp_cmd_train(int argc, char **argv);

/* Prints "virnucpro: error: <msg>" to stderr. */
void vnp_cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Checks a --device list as the options are parsed (so a bad one is a usage error,
 * exit 2, before any model loads); 0 after printing the error. */
int vnp_cli_device_ok(const char *list);
/* A whole-number option in [lo, hi] into *out; 0 after printing the error. */
int vnp_cli_count(const char *opt, const char *s, long lo, long hi, long *out);
/* A --precision value (fp32, fp16, bf16, fp8, fp8-tensor) into *out; 0 after printing
 * the error. */
int vnp_cli_precision(const char *s, vnp_precision *out);
/* -l/--length of predict, classify, train and validate-precision: 300 or 500 (the
 * published classifiers' chunk lengths) into *out; 0 after printing the error. */
int vnp_cli_chunk_length(const char *s, int *out);
/* A number in [lo, hi] into *out; 0 after printing the error. */
int vnp_cli_number(const char *opt, const char *s, double lo, double hi, double *out);
/* One line on stderr when a reduced precision was asked for and d has a CPU worker: there it
 * is emulated (for checking, not speed). Nothing for the default precision, FP32, or when
 * VIRNUCPRO_DISABLE_FP16 turns it into FP32 (the backend says so). */
void vnp_cli_precision_note(const vnp_devices *d, vnp_precision asked);

/* Exit statuses of every command (virnucpro --help, README). */
enum {
    VNP_EXIT_OK = 0,
    VNP_EXIT_ERROR = 1,      /* something failed; the message says what and where */
    VNP_EXIT_USAGE = 2,      /* a bad option or value: nothing was run */
    VNP_EXIT_THRESHOLDS = 3  /* validate-precision ran, and a threshold was not met */
};

#endif
