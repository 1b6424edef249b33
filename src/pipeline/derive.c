/* The derived outputs (sequences.tsv, chunks.tsv, viral_regions.bed, viral.fna, the
 * report and its plots) from a complete prediction_results.txt and the input: the
 * records are read again in order (with the same duplicate-ID renaming as predict) and
 * the rows are matched to them in lockstep, so that every chunk, scored or not, gets its
 * coordinates and every viral sequence its original bases. Used by predict at its commit
 * (into ".part" names) and by classify. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pipeline/crash_point.h"
#include "pipeline/record_ids.h"
#include "pipeline/report.h"
#include "pipeline/shard.h"
#include "virnucpro/hub.h"
#include "virnucpro/pipeline.h"
#include "virnucpro/seq.h"

#define RESULTS_HEADER "Sequence_ID\tPrediction\tscore1\tscore2\n"
#define FASTA_COLUMNS 60

void vnp_derive_options_init(vnp_derive_options *o)
{
    memset(o, 0, sizeof *o);
    o->suffix = "";
    o->chunk_len = 500;
    o->min_score = -1.0f;
    o->plots = VNP_DEFAULT_PLOTS;
}

/* The four tables, in the order they are opened. */
static const char *const k_tables[4] = {VNP_PREDICT_SEQUENCES, VNP_PREDICT_CHUNKS, VNP_PREDICT_BED,
                                        VNP_PREDICT_VIRAL_FNA};

static char *out_path(const char *dir, const char *name, const char *suffix)
{
    size_t n = strlen(dir) + strlen(name) + strlen(suffix) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s", dir, name, suffix);
    return p;
}

/* Removes a directory of plain files (our plots/) and the directory. */
static void remove_flat_dir(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            size_t n = strlen(dir) + strlen(e->d_name) + 2;
            char *p = malloc(n);
            if (p) {
                snprintf(p, n, "%s/%s", dir, e->d_name);
                remove(p);
                free(p);
            }
        }
        closedir(d);
    }
    rmdir(dir);
}

static vnp_code rename_part(const char *from, const char *to, vnp_error *err)
{
    if (rename(from, to) != 0)
        return vnp_fail(err, VNP_EIO, "cannot rename %s to %s: %s", from, to, strerror(errno));
    vnp_crash_point("output renamed into place");
    return VNP_OK;
}

void vnp_derive_remove_plots(const char *out_dir)
{
    char *p = out_path(out_dir, VNP_PREDICT_PLOTS, "");
    if (p)
        remove_flat_dir(p);
    free(p);
}

void vnp_derive_remove(const char *out_dir, const char *suffix)
{
    static const char *const files[] = {VNP_PREDICT_SEQUENCES, VNP_PREDICT_CHUNKS, VNP_PREDICT_BED,
                                        VNP_PREDICT_VIRAL_FNA, VNP_PREDICT_REPORT};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *p = out_path(out_dir, files[i], suffix);
        if (p)
            remove(p);
        free(p);
    }
    char *p = out_path(out_dir, VNP_PREDICT_PLOTS, suffix);
    if (p)
        remove_flat_dir(p);
    free(p);
}

vnp_code vnp_derive_rename(const char *out_dir, vnp_error *err)
{
    /* plots/ (a directory, only with --plots > 0) before the report that shows them */
    static const char *const files[] = {VNP_PREDICT_SEQUENCES, VNP_PREDICT_CHUNKS,
                                        VNP_PREDICT_BED,       VNP_PREDICT_VIRAL_FNA,
                                        VNP_PREDICT_PLOTS,     VNP_PREDICT_REPORT};
    vnp_code rc = VNP_OK;
    for (size_t i = 0; i < sizeof files / sizeof files[0] && !rc; i++) {
        char *part = out_path(out_dir, files[i], ".part"), *final = out_path(out_dir, files[i], "");
        /* optional: plots/ (--plots 0, a shard), report.html (a shard) */
        int dir = !strcmp(files[i], VNP_PREDICT_PLOTS),
            optional = dir || !strcmp(files[i], VNP_PREDICT_REPORT);
        if (!part || !final)
            rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
        else if (access(part, F_OK) == 0) {
            if (dir) /* an earlier run's plots (classify again): the new ones replace them */
                remove_flat_dir(final);
            rc = rename_part(part, final, err);
        } else if (optional)
            ; /* none made, or renamed already */
        else if (access(final, F_OK) != 0)
            rc = vnp_fail(err, VNP_EFORMAT,
                          "cannot finish the outputs in %s: neither %s nor its .part is there "
                          "(files were removed by hand?); run without --resume",
                          out_dir, files[i]);
        free(part);
        free(final);
    }
    return rc;
}

/* ---- the rows of prediction_results.txt, one at a time ---- */

typedef struct row_cursor {
    FILE *f;
    const char *path;
    char *line;
    size_t cap;
    size_t lineno;
    int live;           /* a row is loaded */
    size_t chunk_len;   /* length of the chunk ID: the row ID minus its frame */
    int frame;          /* 0..5 = F1 F2 F3 R1 R2 R3 */
    float p_others, p_virus;
} row_cursor;

static int is_frame(const char *s)
{
    return (s[0] == 'F' || s[0] == 'R') && (s[1] == '1' || s[1] == '2' || s[1] == '3');
}

static vnp_code row_next(row_cursor *r, vnp_error *err)
{
    ssize_t n = getline(&r->line, &r->cap, r->f);
    r->live = 0;
    if (n <= 0) {
        if (ferror(r->f))
            return vnp_fail(err, VNP_EIO, "cannot read %s: %s", r->path, strerror(errno));
        return VNP_OK;
    }
    r->lineno++;
    char *t1 = memchr(r->line, '\t', (size_t)n);
    char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    char *end = NULL;
    if (t2) {
        errno = 0;
        r->p_others = strtof(t2 + 1, &end);
        if (end && *end == '\t')
            r->p_virus = strtof(end + 1, &end);
        else
            end = NULL;
    }
    if (!t1 || !t2 || !end || *end != '\n' || t1 - r->line < 3 || !is_frame(t1 - 2) ||
        !isfinite(r->p_others) || !isfinite(r->p_virus))
        return vnp_fail(err, VNP_EFORMAT,
                        "%s line %zu is not a row of prediction_results.txt (Sequence_ID, "
                        "Prediction, score1, score2, tab-separated); is the run finished?",
                        r->path, r->lineno);
    r->chunk_len = (size_t)(t1 - r->line) - 2;
    r->frame = (t1[-2] == 'R' ? 3 : 0) + (t1[-1] - '1');
    r->live = 1;
    return VNP_OK;
}

/* The chunk number (1-based) when the loaded row is one of record `id`'s: its chunk ID
 * is exactly "<id>_chunk_<digits>" (no other record's rows can have that form); else 0. */
static size_t row_chunk_of(const row_cursor *r, const char *id, size_t id_len)
{
    static const char mid[] = "_chunk_";
    size_t m = sizeof mid - 1;
    if (!r->live || r->chunk_len <= id_len + m || memcmp(r->line, id, id_len) ||
        memcmp(r->line + id_len, mid, m))
        return 0;
    size_t k = 0;
    for (size_t i = id_len + m; i < r->chunk_len; i++) {
        char ch = r->line[i];
        if (ch < '0' || ch > '9' || k > ((size_t)-1) / 20)
            return 0;
        k = 10 * k + (size_t)(ch - '0');
    }
    return k;
}

/* ---- the writers ---- */

typedef struct derive_state {
    const vnp_derive_options *o;
    char *path[4];
    FILE *f[4]; /* k_tables order */
    vnp_chunk_score *score;
    unsigned char *frames; /* per chunk: the frames that have rows, bit f = frame f */
    size_t score_cap;
    vnp_frames fr;
    vnp_report *report;
    vnp_derive_stats st;
} derive_state;

enum { T_SEQ, T_CHUNKS, T_BED, T_FNA };

static vnp_code wfail(derive_state *s, int t, vnp_error *err)
{
    return vnp_fail(err, VNP_EIO, "cannot write %s: %s (check free space)", s->path[t],
                    strerror(errno));
}

static vnp_code write_chunks(derive_state *s, const vnp_record *rec, size_t n, vnp_error *err)
{
    FILE *f = s->f[T_CHUNKS];
    for (size_t k = 0; k < n; k++) {
        vnp_chunk ch = vnp_chunk_at(rec->len, (size_t)s->o->chunk_len, k);
        const vnp_chunk_score *c = &s->score[k];
        char score[VNP_F32_STR_MAX] = "NA";
        if (c->frames)
            vnp_format_f32(c->max_virus, score);
        if (fwrite(rec->id, 1, rec->id_len, f) != rec->id_len ||
            fprintf(f, "\t%.*s_chunk_%zu\t%zu\t%zu\t%zu\t%s\t%s\n", (int)rec->id_len, rec->id,
                    k + 1, ch.start + 1, ch.start + ch.len, c->frames, score,
                    vnp_chunk_call(c, s->o->min_score)) < 0)
            return wfail(s, T_CHUNKS, err);
    }
    return VNP_OK;
}

/* BED6 of the maximal runs of consecutive viral chunks: 0-based half-open, from the
 * first chunk's start to the furthest end, score round(1000 x mean max score2). */
static vnp_code write_regions(derive_state *s, const vnp_record *rec, size_t n, vnp_error *err)
{
    size_t region = 0;
    for (size_t k = 0; k < n;) {
        if (!vnp_chunk_viral(&s->score[k], s->o->min_score)) {
            k++;
            continue;
        }
        size_t first = k, end = 0;
        double sum = 0;
        for (; k < n && vnp_chunk_viral(&s->score[k], s->o->min_score); k++) {
            vnp_chunk ch = vnp_chunk_at(rec->len, (size_t)s->o->chunk_len, k);
            if (ch.start + ch.len > end)
                end = ch.start + ch.len;
            sum += (double)s->score[k].max_virus;
        }
        double mean = sum / (double)(k - first);
        long score = (long)floor(1000.0 * mean + 0.5);
        score = score < 0 ? 0 : score > 1000 ? 1000 : score;
        size_t start = vnp_chunk_at(rec->len, (size_t)s->o->chunk_len, first).start;
        FILE *f = s->f[T_BED];
        if (fwrite(rec->id, 1, rec->id_len, f) != rec->id_len ||
            fprintf(f, "\t%zu\t%zu\t%.*s_region_%zu\t%ld\t.\n", start, end, (int)rec->id_len,
                    rec->id, ++region, score) < 0)
            return wfail(s, T_BED, err);
        s->st.regions++;
    }
    return VNP_OK;
}

static vnp_code write_fasta(derive_state *s, const vnp_record *rec, const vnp_seq_tally *t,
                            vnp_error *err)
{
    FILE *f = s->f[T_FNA];
    char score[VNP_F32_STR_MAX];
    vnp_format_f32(t->max_virus, score);
    if (fputc('>', f) == EOF || fwrite(rec->id, 1, rec->id_len, f) != rec->id_len ||
        fprintf(f, " verdict=virus chunks_virus=%zu/%zu max_score=%s\n", t->chunks_viral,
                t->chunks_scored, score) < 0)
        return wfail(s, T_FNA, err);
    for (size_t off = 0; off < rec->len; off += FASTA_COLUMNS) {
        size_t w = rec->len - off < FASTA_COLUMNS ? rec->len - off : FASTA_COLUMNS;
        if (fwrite(rec->seq + off, 1, w, f) != w || fputc('\n', f) == EOF)
            return wfail(s, T_FNA, err);
    }
    return VNP_OK;
}

/* Every chunk's rows are exactly its stop-free frames (predict scores each of them): the
 * rows were made from these bases with this -l. */
static vnp_code check_frames(derive_state *s, const vnp_record *rec, size_t n, vnp_error *err)
{
    for (size_t k = 0; k < n; k++) {
        vnp_chunk ch = vnp_chunk_at(rec->len, (size_t)s->o->chunk_len, k);
        vnp_code rc = vnp_six_frames(rec->seq + ch.start, ch.len, &s->fr, err);
        if (rc)
            return rc;
        unsigned kept = 0;
        for (int i = 0; i < s->fr.n; i++)
            kept |= 1u << s->fr.frame[i].frame;
        if (kept != s->frames[k]) {
            char have[32] = "", want[32] = "";
            for (int f = 0; f < 6; f++) {
                if (s->frames[k] & (1u << f))
                    snprintf(have + strlen(have), sizeof have - strlen(have), " %s",
                             vnp_frame_name(f));
                if (kept & (1u << f))
                    snprintf(want + strlen(want), sizeof want - strlen(want), " %s",
                             vnp_frame_name(f));
            }
            return vnp_fail(err, VNP_EFORMAT,
                            "%s: the rows of %.*s_chunk_%zu (frames:%s) are not the chunk's "
                            "stop-free frames in %s (%s); were the rows made from this input "
                            "with -l %d?",
                            s->o->results, (int)rec->id_len, rec->id, k + 1,
                            *have ? have : " none",
                            s->o->input_name ? s->o->input_name : s->o->input,
                            *want ? want + 1 : "none", s->o->chunk_len);
        }
    }
    return VNP_OK;
}

/* One record: its rows (consumed from r), then a line in every table. */
static vnp_code one_record(derive_state *s, row_cursor *r, const vnp_record *rec, size_t index,
                           vnp_error *err)
{
    size_t n = vnp_chunk_count(rec->len, (size_t)s->o->chunk_len);
    if (n > s->score_cap) {
        vnp_chunk_score *p = realloc(s->score, n * sizeof *p);
        if (p)
            s->score = p;
        unsigned char *q = p ? realloc(s->frames, n) : NULL;
        if (!q)
            return vnp_fail(err, VNP_ENOMEM, "out of memory (record '%s', %zu chunks)", rec->id,
                            n);
        s->frames = q;
        s->score_cap = n;
    }
    memset(s->score, 0, n * sizeof *s->score);
    memset(s->frames, 0, n);
    size_t k, last = 0;
    vnp_code rc;
    while ((k = row_chunk_of(r, rec->id, rec->id_len)) > 0) {
        if (k > n || k < last)
            return vnp_fail(err, VNP_EFORMAT,
                            "%s line %zu: chunk %zu of record '%s', which has %zu chunk%s of "
                            "%d bp%s; were the rows made from this input with -l %d?",
                            r->path, r->lineno, k, rec->id, n, n == 1 ? "" : "s",
                            s->o->chunk_len, k < last ? " (and rows out of order)" : "",
                            s->o->chunk_len);
        vnp_chunk_score *c = &s->score[k - 1];
        if (s->frames[k - 1] & (1u << r->frame))
            return vnp_fail(err, VNP_EFORMAT, "%s line %zu: a second row for frame %.2s of %.*s",
                            r->path, r->lineno, r->line + r->chunk_len, (int)r->chunk_len,
                            r->line);
        s->frames[k - 1] |= (unsigned char)(1u << r->frame);
        if (c->frames == 0 || r->p_others > c->max_others)
            c->max_others = r->p_others;
        if (c->frames == 0 || r->p_virus > c->max_virus)
            c->max_virus = r->p_virus;
        c->frames++;
        s->st.frames++;
        last = k;
        if ((rc = row_next(r, err)))
            return rc;
    }
    if (!s->o->trust_rows && (rc = check_frames(s, rec, n, err)))
        return rc;
    vnp_seq_tally t;
    vnp_seq_tally_begin(&t, rec->len, n);
    for (size_t i = 0; i < n; i++)
        vnp_seq_tally_add(&t, &s->score[i], vnp_chunk_viral(&s->score[i], s->o->min_score));
    const char *verdict = vnp_seq_tally_verdict(&t);
    s->st.records++;
    s->st.chunks += n;
    s->st.chunks_scored += t.chunks_scored;
    s->st.chunks_viral += t.chunks_viral;
    int virus = !strcmp(verdict, "virus");
    if (virus)
        s->st.seq_virus++;
    else if (t.chunks_scored)
        s->st.seq_others++;
    else
        s->st.seq_unscored++;
    if ((rc = vnp_sequences_write_row(s->f[T_SEQ], s->path[T_SEQ], rec->id, rec->id_len, &t,
                                      err)) ||
        (rc = write_chunks(s, rec, n, err)) || (rc = write_regions(s, rec, n, err)) ||
        (virus && (rc = write_fasta(s, rec, &t, err))))
        return rc;
    return s->report ? vnp_report_add(s->report, index, rec, s->score, n, &t, err) : VNP_OK;
}

static vnp_code open_tables(derive_state *s, vnp_error *err)
{
    for (int i = 0; i < 4; i++) {
        if (!(s->path[i] = out_path(s->o->out_dir, k_tables[i], s->o->suffix)))
            return vnp_fail(err, VNP_ENOMEM, "out of memory");
        if (!(s->f[i] = fopen(s->path[i], "w")))
            return vnp_fail(err, VNP_EIO, "cannot create %s: %s", s->path[i], strerror(errno));
    }
    vnp_code rc = vnp_sequences_write_header(s->f[T_SEQ], s->path[T_SEQ], err);
    if (!rc && fputs("Sequence_ID\tChunk_ID\tStart\tEnd\tFrames_kept\tMax_virus_score\tCall\n",
                     s->f[T_CHUNKS]) < 0)
        rc = wfail(s, T_CHUNKS, err);
    return rc;
}

/* Flushed, on disk, closed: predict's journal says "committing" only after this. */
static vnp_code close_tables(derive_state *s, vnp_error *err)
{
    vnp_code rc = VNP_OK;
    for (int i = 0; i < 4; i++) {
        if (!s->f[i])
            continue;
        int bad = fflush(s->f[i]) != 0 || ferror(s->f[i]) || fsync(fileno(s->f[i])) != 0;
        bad |= fclose(s->f[i]) != 0;
        s->f[i] = NULL;
        if (bad && !rc)
            rc = wfail(s, i, err);
    }
    return rc;
}

static vnp_code check_records(EVP_MD_CTX *sha, const vnp_derive_options *o, vnp_error *err)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned mdn = 0;
    char hex[65];
    if (EVP_DigestFinal_ex(sha, md, &mdn) != 1 || mdn != 32)
        return vnp_fail(err, VNP_EIO, "OpenSSL SHA-256 failed");
    vnp_hex_lower(md, 32, hex);
    if (strcmp(hex, o->records_sha256))
        return vnp_fail(err, VNP_EINVAL,
                        "the records of %s are not the ones the rows were computed from (their "
                        "SHA-256 is %.12s..., the run's %.12s...): give the input predict read "
                        "(if predict itself says so, the input changed while it ran: run it "
                        "again)",
                        o->input_name ? o->input_name : o->input, hex, o->records_sha256);
    return VNP_OK;
}

static vnp_code derive_all(derive_state *s, row_cursor *r, vnp_error *err)
{
    const vnp_derive_options *o = s->o;
    vnp_code rc;
    if (!(r->f = fopen(o->results, "r")))
        return vnp_fail(err, VNP_EIO, "cannot read %s: %s", o->results, strerror(errno));
    ssize_t hn = getline(&r->line, &r->cap, r->f);
    if (hn <= 0 || strcmp(r->line, RESULTS_HEADER))
        return vnp_fail(err, VNP_EFORMAT,
                        "%s does not start with the header of prediction_results.txt "
                        "(Sequence_ID, Prediction, score1, score2)",
                        o->results);
    r->lineno = 1;
    /* a --shard run's report would show part of the input: merge + classify make the
     * whole one */
    if ((rc = row_next(r, err)) || (rc = open_tables(s, err)) ||
        (o->shard_count == 0 && (rc = vnp_report_create(o, &s->report, err))))
        return rc;
    vnp_seq_reader *in = NULL;
    if ((rc = vnp_seq_open(o->input, &in, err)))
        return rc;
    vnp_seq_set_nucleotide_only(in, 1);
    vnp_seq_set_quiet(in, o->quiet);
    vnp_record_ids ids;
    vnp_record_ids_init(&ids);
    EVP_MD_CTX *sha = o->records_sha256 ? EVP_MD_CTX_new() : NULL;
    if (o->records_sha256 && (!sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1))
        rc = vnp_fail(err, VNP_EIO, "OpenSSL SHA-256 failed");
    vnp_record rec;
    int got = 0;
    size_t index = 0;
    size_t nread = 0;
    while (!rc && (got = vnp_seq_read(in, &rec, err)) == 1) {
        /* every record is hashed and its ID counted (the same renaming as one run); with
         * --shard only this shard's get rows */
        if (!(sha && (rc = vnp_record_hash(sha, &rec, err))) &&
            !(rc = vnp_record_ids_dedup(&ids, &rec, err)) &&
            vnp_shard_takes(nread++, o->shard_index, o->shard_count))
            rc = one_record(s, r, &rec, index++, err);
    }
    if (!rc && got < 0)
        rc = (vnp_code)-got;
    if (!rc && r->live)
        rc = vnp_fail(err, VNP_EFORMAT,
                      "%s line %zu: row '%.*s' belongs to no record of %s in input order (all "
                      "%zu records were matched before it); were the rows made from this input "
                      "with -l %d?",
                      o->results, r->lineno, (int)r->chunk_len + 2, r->line,
                      o->input_name ? o->input_name : o->input, s->st.records, o->chunk_len);
    if (!rc && sha)
        rc = check_records(sha, o, err);
    EVP_MD_CTX_free(sha);
    vnp_record_ids_free(&ids);
    vnp_seq_close(in);
    if (!rc)
        rc = close_tables(s, err);
    if (!rc && s->report && !(rc = vnp_report_finish(s->report, &s->st, err)))
        s->st.plots = vnp_report_tracks(s->report);
    return rc;
}

vnp_code vnp_derive(const vnp_derive_options *o, vnp_derive_stats *st, vnp_error *err)
{
    if (o->chunk_len != 300 && o->chunk_len != 500)
        return vnp_fail(err, VNP_EINVAL, "chunk length must be 300 or 500, not %d",
                        o->chunk_len);
    if (o->min_score > 1.0f || isnan(o->min_score))
        return vnp_fail(err, VNP_EINVAL, "--min-score must be from 0 to 1");
    derive_state s;
    memset(&s, 0, sizeof s);
    s.o = o;
    vnp_frames_init(&s.fr);
    row_cursor r;
    memset(&r, 0, sizeof r);
    r.path = o->results;
    vnp_derive_remove(o->out_dir, o->suffix); /* a killed earlier attempt's leftovers */
    vnp_code rc = derive_all(&s, &r, err);
    for (int i = 0; i < 4; i++)
        if (s.f[i])
            fclose(s.f[i]);
    if (r.f)
        fclose(r.f);
    free(r.line);
    vnp_report_free(s.report);
    if (rc)
        vnp_derive_remove(o->out_dir, o->suffix);
    for (int i = 0; i < 4; i++)
        free(s.path[i]);
    free(s.score);
    free(s.frames);
    vnp_frames_free(&s.fr);
    if (!rc) {
        vnp_crash_point("derived outputs written");
        if (st)
            *st = s.st;
    }
    return rc;
}
