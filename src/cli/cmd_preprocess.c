/* virnucpro preprocess: chunks + six-frame ORFs, the original tool's intermediate files. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/commands.h"
#include "virnucpro.h"

static void preprocess_usage(FILE *f)
{
    fputs("Usage: virnucpro preprocess -l LENGTH [-o DIR] [-n NAME] [-q] INPUT\n"
          "\n"
          "Cuts every sequence of INPUT into chunks of LENGTH bases, translates each chunk\n"
          "in six frames and keeps the frames whose protein has no stop codon, exactly as\n"
          "VirNucPro does. Writes, for input name S (the file name up to its first '.fa',\n"
          "as the original: 'sample.fasta.gz' -> 'sample'; else the name without '.gz' and\n"
          "its extension: 'reads.fq.gz' -> 'reads'; 'stdin' for '-'):\n"
          "  DIR/S_chunked<LENGTH>.fa            the chunks (<id>_chunk_<i>), 60-column FASTA\n"
          "  DIR/S_identified_nucleotide.fa      kept frames (<id>_chunk_<i>F1..R3), DNA\n"
          "  DIR/S_identified_protein.faa        the same frames, protein\n"
          "\n"
          "INPUT is FASTA or FASTQ (LF, CRLF or CR line ends), plain or compressed with gzip,\n"
          "bzip2, xz or zstd (found from the content); '-' reads stdin.\n"
          "Records with an empty sequence are skipped with a warning.\n"
          "\n"
          "Options:\n"
          "  -l, --length N   chunk length: 300 or 500 for the published models (required)\n"
          "  -o, --output DIR output directory, created if missing (default: the input's\n"
          "                   directory, '.' for stdin)\n"
          "  -n, --name S     output name stem instead of the one derived from INPUT\n"
          "  -q, --quiet      no summary line on stderr\n"
          "  -h, --help       this help\n",
          f);
}

static char *input_dir(const char *input)
{
    const char *slash = strrchr(input, '/');
    if (!strcmp(input, "-") || !slash)
        return strdup(".");
    if (slash == input)
        return strdup("/");
    return strndup(input, (size_t)(slash - input));
}

int vnp_cmd_preprocess(int argc, char **argv)
{
    static const struct option opts[] = {
        {"length", required_argument, NULL, 'l'}, {"output", required_argument, NULL, 'o'},
        {"name", required_argument, NULL, 'n'},   {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    long length = 0;
    const char *outdir = NULL, *name = NULL;
    int quiet = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":l:o:n:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            if (!vnp_cli_count("-l/--length", optarg, 3, 100000000, &length))
                return 2;
            break;
        case 'o': outdir = optarg; break;
        case 'n': name = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': preprocess_usage(stdout); return 0;
        case ':':
            vnp_cli_error("option '%s' needs a value; see 'virnucpro preprocess --help'",
                          argv[optind - 1]);
            return 2;
        default:
            vnp_cli_error("unknown option '%s'; see 'virnucpro preprocess --help'",
                          argv[optind - 1]);
            return 2;
        }
    }
    if (length == 0) {
        vnp_cli_error("missing -l/--length (300 or 500); see 'virnucpro preprocess --help'");
        return 2;
    }
    if (optind >= argc) {
        vnp_cli_error("missing INPUT (a FASTA/FASTQ file, or '-' for stdin)");
        return 2;
    }
    if (optind != argc - 1) {
        vnp_cli_error("expected one INPUT, got %d arguments", argc - optind);
        return 2;
    }
    if (name && (!*name || strchr(name, '/'))) {
        vnp_cli_error("--name must be a non-empty file name without '/', got '%s'", name);
        return 2;
    }
    const char *input = argv[optind];
    char *dir = outdir ? strdup(outdir) : input_dir(input);
    if (!dir) {
        vnp_cli_error("out of memory");
        return 1;
    }
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    vnp_preprocess_stats st;
    vnp_error err;
    vnp_error_clear(&err);
    vnp_code rc = vnp_preprocess(input, dir, name, (size_t)length, &st, &err);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (rc != VNP_OK) {
        vnp_cli_error("%s", err.msg);
        free(dir);
        return 1;
    }
    if (!quiet) {
        double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
        fprintf(stderr,
                "virnucpro: preprocess: %zu records (%zu empty skipped), %zu chunks of %ld, "
                "%zu frames kept -> %s; %.1f MB in %.3f s (%.1f MB/s)\n",
                st.records, st.skipped, st.chunks, length, st.frames, dir, (double)st.bytes / 1e6,
                s, s > 0 ? (double)st.bytes / 1e6 / s : 0.0);
    }
    free(dir);
    return 0;
}
