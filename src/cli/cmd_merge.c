/* virnucpro merge: the output directories of predict --shard I/N -> one run's files. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/commands.h"
#include "virnucpro.h"

static void merge_usage(FILE *f)
{
    fputs("Usage: virnucpro merge -o OUT [--input INPUT] DIR...\n"
          "\n"
          "Combines the output directories of 'virnucpro predict --shard I/N' (one for each\n"
          "I = 1..N, in any order) into OUT: the files one predict run over the whole input\n"
          "writes, byte for byte (prediction_results.txt and sequences.tsv back in input\n"
          "order, prediction_results_highestscore.csv sorted as one run sorts it, and\n"
          "merged_features.safetensors and the --keep-intermediate files when the shards\n"
          "have them). Refuses, naming the directories and what differs, shards of\n"
          "different runs (input records, models, -l, device kind and precision, version,\n"
          "N), a shard given twice or missing, an unfinished shard, and files it does not\n"
          "know. OUT gets the files only when all of them are complete.\n"
          "report.html and plots/ draw the sequences, so they need the input: with\n"
          "--input (or the input path the shards recorded in run.json, when it is absolute\n"
          "and readable) merge makes them too, with the shards' -l, --min-score and --plots,\n"
          "and OUT is one run's directory; else 'virnucpro classify OUT --input INPUT' does.\n"
          "\n"
          "Options:\n"
          "  -o, --output OUT  directory for the merged files (created if missing)\n"
          "  -i, --input INPUT the FASTA/FASTQ the shards read (for report.html and plots/;\n"
          "                    its records must be the ones the shards read)\n"
          "  -q, --quiet       no summary line\n"
          "  -h, --help        this help\n",
          f);
}

int vnp_cmd_merge(int argc, char **argv)
{
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'},
        {"input", required_argument, NULL, 'i'},
        {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *out = NULL, *input = NULL;
    int quiet = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:i:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': out = optarg; break;
        case 'i': input = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': merge_usage(stdout); return 0;
        case ':':
            vnp_cli_error("option '%s' needs a value; see 'virnucpro merge --help'",
                          argv[optind - 1]);
            return 2;
        default:
            vnp_cli_error("unknown option '%s'; see 'virnucpro merge --help'", argv[optind - 1]);
            return 2;
        }
    }
    if (!out) {
        vnp_cli_error("missing -o OUT (the directory for the merged files); see 'virnucpro "
                      "merge --help'");
        return 2;
    }
    if (optind >= argc) {
        vnp_cli_error("missing the shard directories (the -o of each 'predict --shard I/N' "
                      "run); see 'virnucpro merge --help'");
        return 2;
    }
    vnp_error err;
    vnp_error_clear(&err);
    size_t n = (size_t)(argc - optind);
    if (vnp_merge(out, (const char *const *)(argv + optind), n, &err) != VNP_OK) {
        vnp_cli_error("%s", err.msg);
        return 1;
    }
    /* report.html and plots/: from --input, else from the path the shards recorded */
    char recorded[4096] = "";
    if (!input && vnp_merge_recorded_input(out, recorded, sizeof recorded))
        input = recorded;
    vnp_code rc = input ? vnp_merge_report(out, input, &err) : VNP_OK;
    vnp_error ferr;
    if (vnp_merge_finish(out, &ferr) != VNP_OK) { /* the merged files are complete */
        vnp_cli_error("%s", ferr.msg);
        return 1;
    }
    if (rc != VNP_OK) {
        vnp_cli_error("%s (the merged tables are in %s; report.html and plots/ are not)",
                      err.msg, out);
        return 1;
    }
    if (!input)
        fprintf(stderr, "virnucpro: merge: report.html and plots/ need the input the shards "
                        "read: run 'virnucpro classify %s --input INPUT' (or merge with "
                        "--input)\n",
                out);
    if (!quiet)
        fprintf(stderr, "virnucpro: merge: %zu shard%s -> %s%s\n", n, n == 1 ? "" : "s", out,
                input ? " (with report.html)" : "");
    return 0;
}
