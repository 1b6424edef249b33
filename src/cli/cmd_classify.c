/* virnucpro classify: the derived outputs again, from a finished prediction_results.txt
 * and its input, without the models (another --min-score, more plots). */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "core/fs.h"
#include "virnucpro.h"

static void classify_usage(FILE *f)
{
    fprintf(f,
        "Usage: virnucpro classify DIR --input INPUT [-l 300|500] [--min-score X]\n"
        "                          [--plots N] [-o OUT]\n"
        "\n"
        "Rebuilds every per-sequence output of a finished 'virnucpro predict' run in DIR from\n"
        "its prediction_results.txt and the INPUT it was run on, without the models, in\n"
        "seconds: %s, %s, %s, %s,\n"
        "%s and %s/.\n"
        "With the options predict had, the files are predict's, byte for byte.\n"
        "\n"
        "Options:\n"
        "  -i, --input INPUT  the FASTA/FASTQ predict read (any compression; a copy of stdin\n"
        "                     is fine): it gives the sequences' lengths, coordinates and bases;\n"
        "                     with DIR/run.json its records must be the ones predict read\n"
        "  -l, --length N     predict's chunk length, 300 or 500 (default: the run's, from\n"
        "                     DIR/run.json; without it %d)\n"
        "      --min-score X  a chunk is viral when its max virus score (score2) is at least\n"
        "                     X (0 to 1); default: the original rule, max score2 >= max score1\n"
        "      --plots N      score tracks of the N viral sequences with the most viral chunks\n"
        "                     (default %d; 0: none)\n"
        "  -o, --output OUT   write into OUT (created if missing; default DIR)\n"
        "  -q, --quiet        no summary line\n"
        "  -h, --help         this help\n",
        VNP_PREDICT_SEQUENCES, VNP_PREDICT_CHUNKS, VNP_PREDICT_BED, VNP_PREDICT_VIRAL_FNA,
        VNP_PREDICT_REPORT, VNP_PREDICT_PLOTS, 500, VNP_DEFAULT_PLOTS);
}

enum { OPT_MIN_SCORE = 1000, OPT_PLOTS };

/* What DIR/run.json (written by predict) says of the run: its -l and the SHA-256 of the
 * records it read (the input given must have the same). Absent or unreadable: nothing. */
static void read_run_json(const char *dir, int *chunk_len, char sha[65])
{
    size_t n = strlen(dir) + 32;
    char *path = malloc(n);
    if (!path)
        return;
    snprintf(path, n, "%s/%s", dir, VNP_PREDICT_RUN_JSON);
    FILE *f = fopen(path, "rb");
    free(path);
    if (!f)
        return;
    char *text = NULL;
    size_t cap = 0;
    ssize_t got = getdelim(&text, &cap, '\0', f);
    fclose(f);
    cJSON *j = got > 0 ? cJSON_Parse(text) : NULL;
    free(text);
    const cJSON *len = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "options"), "chunk_length");
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(
        cJSON_GetObjectItemCaseSensitive(j, "input"), "records_sha256");
    if (cJSON_IsNumber(len) && (len->valueint == 300 || len->valueint == 500))
        *chunk_len = len->valueint;
    if (cJSON_IsString(rs) && strlen(rs->valuestring) == 64)
        memcpy(sha, rs->valuestring, 65);
    cJSON_Delete(j);
}

int vnp_cmd_classify(int argc, char **argv)
{
    static const struct option opts[] = {
        {"input", required_argument, NULL, 'i'},
        {"length", required_argument, NULL, 'l'},
        {"min-score", required_argument, NULL, OPT_MIN_SCORE},
        {"plots", required_argument, NULL, OPT_PLOTS},
        {"output", required_argument, NULL, 'o'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    vnp_derive_options d;
    vnp_derive_options_init(&d);
    const char *outdir = NULL;
    int quiet = 0, c, chunk_len = 0;
    double x;
    long v;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":i:l:o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'i': d.input = optarg; break;
        case 'l':
            if (!vnp_cli_chunk_length(optarg, &chunk_len))
                return 2;
            break;
        case OPT_MIN_SCORE:
            if (!vnp_cli_number("--min-score", optarg, 0.0, 1.0, &x))
                return 2;
            d.min_score = (float)x;
            break;
        case OPT_PLOTS:
            if (!vnp_cli_count("--plots", optarg, 0, VNP_MAX_PLOTS, &v))
                return 2;
            d.plots = (int)v;
            break;
        case 'o': outdir = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': classify_usage(stdout); return 0;
        case ':':
            vnp_cli_error("option '%s' needs a value; see 'virnucpro classify --help'",
                          argv[optind - 1]);
            return 2;
        default:
            vnp_cli_error("unknown option '%s'; see 'virnucpro classify --help'",
                          argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        vnp_cli_error("expected one DIR (a finished predict output directory), got %d "
                      "arguments; see 'virnucpro classify --help'",
                      argc - optind);
        return 2;
    }
    if (!d.input) {
        vnp_cli_error("missing --input: the FASTA/FASTQ file predict read (for the sequences' "
                      "coordinates and bases)");
        return 2;
    }
    const char *dir = argv[optind];
    size_t n = strlen(dir) + 64;
    char *results = malloc(n), *journal = malloc(n);
    if (!results || !journal) {
        free(results);
        free(journal);
        vnp_cli_error("out of memory");
        return 1;
    }
    snprintf(results, n, "%s/%s", dir, VNP_PREDICT_RESULTS);
    snprintf(journal, n, "%s/predict.journal", dir);
    int rc = 0;
    vnp_error err;
    if (access(journal, F_OK) == 0) {
        vnp_cli_error("%s holds an unfinished predict run (predict.journal); finish it with "
                      "'virnucpro predict --resume' first", dir);
        rc = 1;
    } else if (vnp_merge_check_complete(dir, &err) != VNP_OK) {
        vnp_cli_error("%s", err.msg);
        rc = 1;
    } else if (access(results, R_OK) != 0) {
        vnp_cli_error("%s has no %s: give the output directory of a finished predict run",
                      dir, VNP_PREDICT_RESULTS);
        rc = 1;
    }
    /* the run's -l and records from its run.json (-l given wins; the input is checked) */
    int run_len = 0;
    char sha[65] = "";
    read_run_json(dir, &run_len, sha);
    d.chunk_len = chunk_len ? chunk_len : run_len ? run_len : 500;
    d.records_sha256 = sha[0] ? sha : NULL;
    d.results = results;
    d.out_dir = outdir ? outdir : dir;
    d.suffix = ".part";
    vnp_derive_stats st;
    if (!rc && vnp_mkdirs(d.out_dir, "output directory", &err) != VNP_OK) {
        vnp_cli_error("%s", err.msg);
        rc = 1;
    }
    if (!rc && (vnp_derive(&d, &st, &err) != VNP_OK || vnp_derive_rename(d.out_dir, &err))) {
        vnp_cli_error("%s", err.msg);
        rc = 1;
    }
    if (!rc && d.plots == 0) /* an earlier run's tracks would not match the new report */
        vnp_derive_remove_plots(d.out_dir);
    if (!rc && !quiet)
        fprintf(stderr,
                "virnucpro: classify: %zu records, %zu chunks (%zu scored, %zu viral), %zu "
                "frames: %zu virus, %zu others, %zu unscored; %zu viral regions -> %s\n",
                st.records, st.chunks, st.chunks_scored, st.chunks_viral, st.frames,
                st.seq_virus, st.seq_others, st.seq_unscored, st.regions, d.out_dir);
    free(results);
    free(journal);
    return rc;
}
