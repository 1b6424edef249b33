/* virnucpro tokenize: the token ids the models see, one line per record. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli/commands.h"
#include "core/fs.h"
#include "virnucpro.h"

static void tokenize_usage(FILE *f)
{
    fputs("Usage: virnucpro tokenize --model DIR [--protein] INPUT\n"
          "\n"
          "Prints, for every record of INPUT, its ID, a tab and its token ids separated by\n"
          "spaces, special tokens included: what the embedding models are fed.\n"
          "  DNA (default): DNABERT-S BPE from DIR/tokenizer.json ([CLS] ... [SEP]);\n"
          "                 DIR may also be the tokenizer.json file itself.\n"
          "  --protein:     the ESM-2 alphabet (<cls> ... <eos>); when DIR has a\n"
          "                 vocab.txt it must list that alphabet. --model is optional.\n"
          "\n"
          "INPUT is FASTA or FASTQ, plain or gzip/bzip2/xz/zstd-compressed; '-' reads stdin. Sequences\n"
          "are tokenized as they are (no upper-casing): characters outside the vocabulary\n"
          "become [UNK] (each one) or <unk> (each run), as the reference tokenizers do.\n"
          "\n"
          "Options:\n"
          "  -m, --model DIR   model directory (or tokenizer.json for DNA)\n"
          "  -p, --protein     protein input, ESM-2 ids\n"
          "  -h, --help        this help\n",
          f);
}

static int file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

/* Writes "id\tids\n"; returns 0, or -1 on a write error. */
static int print_record(FILE *out, const vnp_record *rec, const vnp_ids *ids, char *line,
                        size_t line_cap)
{
    if (fwrite(rec->id, 1, rec->id_len, out) != rec->id_len || fputc('\t', out) == EOF)
        return -1;
    size_t k = 0;
    for (size_t i = 0; i < ids->n; i++) {
        if (line_cap - k < 16) {
            if (fwrite(line, 1, k, out) != k)
                return -1;
            k = 0;
        }
        k += (size_t)snprintf(line + k, line_cap - k, i ? " %d" : "%d", ids->v[i]);
    }
    line[k++] = '\n';
    return fwrite(line, 1, k, out) == k ? 0 : -1;
}

int vnp_cmd_tokenize(int argc, char **argv)
{
    static const struct option opts[] = {
        {"model", required_argument, NULL, 'm'},
        {"protein", no_argument, NULL, 'p'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *model = NULL;
    int protein = 0, c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":m:ph", opts, NULL)) != -1) {
        switch (c) {
        case 'm': model = optarg; break;
        case 'p': protein = 1; break;
        case 'h': tokenize_usage(stdout); return 0;
        case ':':
            vnp_cli_error("option '%s' needs a value; see 'virnucpro tokenize --help'",
                          argv[optind - 1]);
            return 2;
        default:
            vnp_cli_error("unknown option '%s'; see 'virnucpro tokenize --help'",
                          argv[optind - 1]);
            return 2;
        }
    }
    if (optind != argc - 1) {
        vnp_cli_error(optind == argc ? "no INPUT given; see 'virnucpro tokenize --help'"
                                     : "one INPUT only; see 'virnucpro tokenize --help'");
        return 2;
    }
    const char *input = argv[optind];
    if (!protein && !model) {
        vnp_cli_error("DNA needs --model DIR (the DNABERT-S directory with tokenizer.json); "
                      "use --protein for ESM-2 ids");
        return 2;
    }

    vnp_error err;
    vnp_error_clear(&err);
    vnp_bpe *bpe = NULL;
    char path[4096];
    if (model && !file_exists(model)) {
        vnp_cli_error("--model '%s' does not exist; give the model directory", model);
        return 1;
    }
    if (model && protein) {
        snprintf(path, sizeof path, "%s/vocab.txt", model);
        if (vnp_is_dir(model) && file_exists(path) && vnp_esm_check_vocab(path, &err)) {
            vnp_cli_error("%s", err.msg);
            return 1;
        }
        if (!vnp_is_dir(model)) {
            vnp_cli_error("--model '%s' is not a directory", model);
            return 2;
        }
    } else if (model) {
        if (vnp_is_dir(model))
            snprintf(path, sizeof path, "%s/tokenizer.json", model);
        else
            snprintf(path, sizeof path, "%s", model);
        if (vnp_bpe_load(path, &bpe, &err)) {
            vnp_cli_error("%s", err.msg);
            return 1;
        }
    }

    vnp_seq_reader *r;
    if (vnp_seq_open(input, &r, &err)) {
        vnp_cli_error("%s", err.msg);
        vnp_bpe_free(bpe);
        return 1;
    }
    static char outbuf[1 << 16];
    setvbuf(stdout, outbuf, _IOFBF, sizeof outbuf);
    char line[4096];
    vnp_ids ids = {0};
    vnp_record rec;
    int rc = 0, got;
    while ((got = vnp_seq_read(r, &rec, &err)) == 1) {
        ids.n = 0;
        vnp_code code = bpe ? vnp_bpe_encode(bpe, rec.seq, rec.len, &ids, &err)
                            : vnp_esm_encode(rec.seq, rec.len, &ids, &err);
        if (code) {
            vnp_cli_error("record '%.*s' (line %zu): %s", (int)rec.id_len, rec.id, rec.line,
                          err.msg);
            rc = 1;
            break;
        }
        if (print_record(stdout, &rec, &ids, line, sizeof line)) {
            vnp_cli_error("cannot write the token ids: %s", strerror(errno));
            rc = 1;
            break;
        }
    }
    if (got < 0) {
        vnp_cli_error("%s", err.msg);
        rc = 1;
    }
    if (fflush(stdout) != 0 && rc == 0) {
        vnp_cli_error("cannot write the token ids: %s", strerror(errno));
        rc = 1;
    }
    vnp_ids_free(&ids);
    vnp_seq_close(r);
    vnp_bpe_free(bpe);
    return rc;
}
