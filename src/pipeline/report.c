/* report.html and the SVG files in plots/ (report.h): one self-contained page, no network, no
 * external asset; the score tracks are inline SVG, the same as the standalone files. */
#include "pipeline/report.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HIST_BINS 20
#define MAX_SEGMENTS 2000 /* a track draws at most this many segments (long contigs: groups
                           * of consecutive chunks, each its best score) */
#define ID_IN_NAME 80     /* characters of the ID in a plot's file name */

#define COLOR_VIRUS "#c0392b"
#define COLOR_OTHERS "#2e86c1"
#define COLOR_UNSCORED "#aab7b8"

enum { CALL_UNSCORED, CALL_OTHERS, CALL_VIRUS };

typedef struct segment {
    size_t start, end; /* 0-based half-open, on the sequence */
    float score;       /* max virus score (scored chunks) */
    int call;
} segment;

typedef struct track {
    size_t index; /* record number: ties of viral chunk counts go to the earlier one */
    char *id;
    size_t length, chunks, scored, viral;
    float max_virus;
    size_t group; /* chunks per segment */
    segment *seg;
    size_t nseg;
} track;

struct vnp_report {
    const vnp_derive_options *o;
    track *t; /* the best tracks so far, best first; at most o->plots */
    size_t n;
    size_t hist[HIST_BINS]; /* scored sequences by max virus score */
    size_t viral_seqs;
};

static void track_free(track *t)
{
    free(t->id);
    free(t->seg);
    memset(t, 0, sizeof *t);
}

vnp_code vnp_report_create(const vnp_derive_options *o, vnp_report **out, vnp_error *err)
{
    vnp_report *r = calloc(1, sizeof *r);
    if (!r || (o->plots > 0 && !(r->t = calloc((size_t)o->plots, sizeof *r->t)))) {
        free(r);
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    }
    r->o = o;
    *out = r;
    return VNP_OK;
}

void vnp_report_free(vnp_report *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        track_free(&r->t[i]);
    free(r->t);
    free(r);
}

size_t vnp_report_tracks(const vnp_report *r) { return r->n; }

/* More viral chunks first; ties: input order. */
static int better(size_t viral_a, size_t index_a, const track *b)
{
    return viral_a > b->viral || (viral_a == b->viral && index_a < b->index);
}

static vnp_code make_track(const vnp_report *r, size_t index, const vnp_record *rec,
                           const vnp_chunk_score *score, size_t n, const vnp_seq_tally *t,
                           track *out, vnp_error *err)
{
    memset(out, 0, sizeof *out);
    out->index = index;
    out->length = rec->len;
    out->chunks = n;
    out->scored = t->chunks_scored;
    out->viral = t->chunks_viral;
    out->max_virus = t->max_virus;
    out->group = (n + MAX_SEGMENTS - 1) / MAX_SEGMENTS;
    if (out->group == 0)
        out->group = 1;
    out->nseg = (n + out->group - 1) / out->group;
    out->id = malloc(rec->id_len + 1);
    out->seg = calloc(out->nseg ? out->nseg : 1, sizeof *out->seg);
    if (!out->id || !out->seg) {
        track_free(out);
        return vnp_fail(err, VNP_ENOMEM, "out of memory drawing '%s'", rec->id);
    }
    memcpy(out->id, rec->id, rec->id_len);
    out->id[rec->id_len] = 0;
    for (size_t g = 0; g < out->nseg; g++) {
        segment *s = &out->seg[g];
        size_t first = g * out->group, last = first + out->group < n ? first + out->group : n;
        s->start = vnp_chunk_at(rec->len, (size_t)r->o->chunk_len, first).start;
        s->call = CALL_UNSCORED;
        for (size_t k = first; k < last; k++) {
            vnp_chunk ch = vnp_chunk_at(rec->len, (size_t)r->o->chunk_len, k);
            if (ch.start + ch.len > s->end)
                s->end = ch.start + ch.len;
            if (!score[k].frames)
                continue;
            int call = vnp_chunk_viral(&score[k], r->o->min_score) ? CALL_VIRUS : CALL_OTHERS;
            if (s->call == CALL_UNSCORED || score[k].max_virus > s->score)
                s->score = score[k].max_virus;
            if (call > s->call)
                s->call = call;
        }
    }
    return VNP_OK;
}

vnp_code vnp_report_add(vnp_report *r, size_t index, const vnp_record *rec,
                        const vnp_chunk_score *score, size_t n, const vnp_seq_tally *t,
                        vnp_error *err)
{
    if (t->chunks_scored > 0) {
        int bin = (int)floor((double)t->max_virus * HIST_BINS);
        r->hist[bin < 0 ? 0 : bin >= HIST_BINS ? HIST_BINS - 1 : bin]++;
    }
    if (strcmp(vnp_seq_tally_verdict(t), "virus"))
        return VNP_OK;
    r->viral_seqs++;
    size_t cap = r->o->plots > 0 ? (size_t)r->o->plots : 0;
    if (cap == 0 || (r->n == cap && !better(t->chunks_viral, index, &r->t[r->n - 1])))
        return VNP_OK;
    track tr;
    vnp_code rc = make_track(r, index, rec, score, n, t, &tr, err);
    if (rc)
        return rc;
    if (r->n == cap)
        track_free(&r->t[--r->n]);
    size_t at = r->n;
    while (at > 0 && better(tr.viral, tr.index, &r->t[at - 1]))
        at--;
    memmove(&r->t[at + 1], &r->t[at], (r->n - at) * sizeof *r->t);
    r->t[at] = tr;
    r->n++;
    return VNP_OK;
}

/* ---- writing ---- */

static void xml_text(FILE *f, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", f); break;
        case '<': fputs("&lt;", f); break;
        case '>': fputs("&gt;", f); break;
        case '"': fputs("&quot;", f); break;
        case '\'': fputs("&#39;", f); break;
        default:
            /* control characters are not allowed in XML 1.0 */
            fputc((unsigned char)*s < 0x20 && *s != '\t' ? '?' : *s, f);
        }
    }
}

/* A tick step of 1, 2 or 5 x 10^k giving at most 6 intervals over [0, len]. */
static double tick_step(double len)
{
    double step = 1;
    while (len / step > 6) {
        if (len / (step * 2) <= 6)
            return step * 2;
        if (len / (step * 5) <= 6)
            return step * 5;
        step *= 10;
    }
    return step;
}

static const char *call_color(int call)
{
    return call == CALL_VIRUS ? COLOR_VIRUS : call == CALL_OTHERS ? COLOR_OTHERS : COLOR_UNSCORED;
}

/* The threshold line's score and label. */
static float threshold(const vnp_derive_options *o, char *label, size_t cap)
{
    if (o->min_score >= 0) {
        char v[VNP_F32_STR_MAX];
        vnp_format_f32(o->min_score, v);
        snprintf(label, cap, "--min-score %s", v);
        return o->min_score;
    }
    snprintf(label, cap, "score2 &#8805; score1 (about 0.5)");
    return 0.5f;
}

#define TW 960.0
#define TH 210.0
#define ML 48.0
#define MR 16.0
#define MT 34.0
#define MB 36.0

/* One score track: chunk segments along the sequence at their max virus score, coloured
 * by call, unscored chunks as grey marks on the axis, the threshold dashed. */
static void write_track(FILE *f, const vnp_report *r, const track *t, size_t rank,
                        int standalone)
{
    const double pw = TW - ML - MR, ph = TH - MT - MB;
    double len = t->length ? (double)t->length : 1;
    if (standalone)
        fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", f);
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"track\" width=\"%.0f\" "
               "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" data-rank=\"%zu\" data-id=\"",
            TW, TH, TW, TH, rank);
    xml_text(f, t->id);
    fputs("\">\n<title>", f);
    xml_text(f, t->id);
    fputs("</title>\n<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n", f);
    char ms[VNP_F32_STR_MAX];
    vnp_format_f32(t->max_virus, ms);
    fprintf(f, "<text x=\"%.0f\" y=\"18\" font-family=\"sans-serif\" font-size=\"13\" "
               "font-weight=\"bold\">%zu. ",
            ML, rank);
    xml_text(f, t->id);
    fprintf(f, "</text>\n<text x=\"%.0f\" y=\"18\" font-family=\"sans-serif\" font-size=\"12\" "
               "text-anchor=\"end\">%zu bp, %zu of %zu scored chunks viral (%zu chunks), max "
               "%s</text>\n",
            TW - MR, t->length, t->viral, t->scored, t->chunks, ms);
    /* frame, y ticks */
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
               "stroke=\"#555555\" stroke-width=\"1\"/>\n",
            ML, MT, pw, ph);
    for (int k = 0; k <= 2; k++) {
        double y = MT + ph * (1 - k / 2.0);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"11\" "
                   "text-anchor=\"end\">%s</text>\n",
                ML - 5, y + 4, k == 0 ? "0" : k == 1 ? "0.5" : "1");
    }
    fprintf(f, "<text x=\"12\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"11\" "
               "transform=\"rotate(-90 12 %.1f)\" text-anchor=\"middle\">virus score</text>\n",
            MT + ph / 2, MT + ph / 2);
    /* x ticks (bp) */
    double step = tick_step(len);
    for (double x = 0; x <= len + 0.5; x += step) {
        double px = ML + pw * x / len;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\"/>\n"
                   "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"11\" "
                   "text-anchor=\"middle\">%.0f</text>\n",
                px, MT + ph, px, MT + ph + 4, px, MT + ph + 16, x);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"11\" "
               "text-anchor=\"end\">position (bp)</text>\n",
            TW - MR, TH - 4);
    /* threshold */
    char label[64];
    float th = threshold(r->o, label, sizeof label);
    double ty = MT + ph * (1 - th);
    fprintf(f, "<line class=\"threshold\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
               "stroke=\"#7f8c8d\" stroke-dasharray=\"6 4\"/>\n"
               "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"10\" "
               "fill=\"#7f8c8d\">%s</text>\n",
            ML, ty, ML + pw, ty, ML + 4, ty - 3, label);
    /* chunks */
    fputs("<g class=\"chunks\">\n", f);
    for (size_t i = 0; i < t->nseg; i++) {
        const segment *s = &t->seg[i];
        double x1 = ML + pw * (double)s->start / len, x2 = ML + pw * (double)s->end / len;
        if (x2 - x1 < 0.5)
            x2 = x1 + 0.5;
        if (s->call == CALL_UNSCORED) {
            fprintf(f, "<rect x=\"%.2f\" y=\"%.1f\" width=\"%.2f\" height=\"5\" fill=\"%s\"/>\n",
                    x1, MT + ph - 5, x2 - x1, COLOR_UNSCORED);
            continue;
        }
        double y = MT + ph * (1 - (double)s->score);
        fprintf(f, "<rect x=\"%.2f\" y=\"%.2f\" width=\"%.2f\" height=\"4\" fill=\"%s\" "
                   "fill-opacity=\"0.85\"/>\n",
                x1, y - 2, x2 - x1, call_color(s->call));
    }
    fputs("</g>\n", f);
    /* legend */
    static const struct {
        const char *name;
        int call;
    } legend[] = {{"virus", CALL_VIRUS}, {"others", CALL_OTHERS}, {"unscored", CALL_UNSCORED}};
    for (int k = 0; k < 3; k++) {
        double x = ML + 4 + 90.0 * k;
        fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"12\" height=\"8\" fill=\"%s\"/>"
                   "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"11\">%s"
                   "</text>\n",
                x, TH - 12, call_color(legend[k].call), x + 16, TH - 4, legend[k].name);
    }
    if (t->group > 1)
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"10\" "
                   "fill=\"#7f8c8d\">(%zu chunks per mark: the best of each group)</text>\n",
                ML + 280, TH - 4, t->group);
    fputs("</svg>\n", f);
}

/* The histogram of per-sequence max virus scores. */
static void write_histogram(FILE *f, const vnp_report *r)
{
    const double w = 640, h = 240, ml = 50, mr = 16, mt = 16, mb = 40;
    const double pw = w - ml - mr, ph = h - mt - mb;
    size_t top = 1;
    for (int i = 0; i < HIST_BINS; i++)
        top = r->hist[i] > top ? r->hist[i] : top;
    fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"histogram\" width=\"%.0f\" "
               "height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\">\n"
               "<title>per-sequence max virus score</title>\n"
               "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
            w, h, w, h);
    char label[64];
    float th = threshold(r->o, label, sizeof label);
    for (int i = 0; i < HIST_BINS; i++) {
        double bh = ph * (double)r->hist[i] / (double)top;
        double x = ml + pw * i / HIST_BINS;
        int viral_side = (i + 1) / (double)HIST_BINS > th;
        fprintf(f, "<rect class=\"bin\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                   "fill=\"%s\" data-count=\"%zu\"/>\n",
                x + 1, mt + ph - bh, pw / HIST_BINS - 2, bh,
                viral_side ? COLOR_VIRUS : COLOR_OTHERS, r->hist[i]);
        if (r->hist[i])
            fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" "
                       "font-size=\"10\" text-anchor=\"middle\">%zu</text>\n",
                    x + pw / HIST_BINS / 2, mt + ph - bh - 3, r->hist[i]);
    }
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\"/>\n", ml,
            mt + ph, ml + pw, mt + ph);
    for (int k = 0; k <= 10; k += 2) {
        double x = ml + pw * k / 10.0;
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"11\" "
                   "text-anchor=\"middle\">%.1f</text>\n",
                x, mt + ph + 15, k / 10.0);
    }
    double tx = ml + pw * th;
    fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#7f8c8d\" "
               "stroke-dasharray=\"6 4\"/>\n"
               "<text x=\"%.1f\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"11\" "
               "text-anchor=\"middle\">max virus score of the sequence (threshold: %s)</text>\n"
               "<text x=\"12\" y=\"%.1f\" font-family=\"sans-serif\" font-size=\"11\" "
               "transform=\"rotate(-90 12 %.1f)\" text-anchor=\"middle\">sequences</text>\n"
               "</svg>\n",
            tx, mt, tx, mt + ph, ml + pw / 2, h - 6, label, mt + ph / 2, mt + ph / 2);
}

static const char k_style[] =
    "body{font-family:sans-serif;margin:24px;color:#222;max-width:1000px}"
    "h1{font-size:22px}h2{font-size:17px;margin-top:28px}"
    "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 10px;"
    "text-align:left}td.n{text-align:right}"
    "figure{margin:12px 0}svg{display:block}"
    ".virus{color:" COLOR_VIRUS "}.others{color:" COLOR_OTHERS "}.note{color:#666;"
    "font-size:13px}";

static void row(FILE *f, const char *name, size_t v)
{
    fprintf(f, "<tr><th>%s</th><td class=\"n\">%zu</td></tr>\n", name, v);
}

static void write_html(FILE *f, const vnp_report *r, const vnp_derive_stats *st)
{
    const vnp_derive_options *o = r->o;
    /* the page depends only on the rows and the records, not on where the input was read
     * from (a file, stdin, a FIFO): run.json names the input */
    fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
               "<title>virnucpro report</title>\n<style>%s</style>\n</head>\n<body>\n"
               "<h1>virnucpro report</h1>\n",
            k_style);
    char ms[VNP_F32_STR_MAX] = "";
    if (o->min_score >= 0)
        vnp_format_f32(o->min_score, ms);
    fprintf(f, "<h2>Run</h2>\n<table class=\"summary\">\n"
               "<tr><th>chunk length</th><td>%d bp</td></tr>\n"
               "<tr><th>a chunk is viral when</th><td>its max virus score (score2) &#8805; "
               "%s</td></tr>\n",
            o->chunk_len, o->min_score >= 0 ? ms : "its max score1 (the original rule)");
    fputs("<tr><th>a sequence is viral when</th><td>at least half of its scored chunks are "
          "viral</td></tr>\n",
          f);
    row(f, "sequences", st->records);
    row(f, "chunks", st->chunks);
    row(f, "chunks scored (a stop-free frame)", st->chunks_scored);
    row(f, "chunks viral", st->chunks_viral);
    row(f, "frames scored", st->frames);
    row(f, "viral regions (viral_regions.bed)", st->regions);
    fputs("</table>\n<h2>Sequences by verdict</h2>\n<table class=\"verdicts\">\n", f);
    fprintf(f, "<tr><th class=\"virus\">virus</th><td class=\"n\" id=\"n-virus\">%zu</td></tr>\n"
               "<tr><th class=\"others\">others</th><td class=\"n\" id=\"n-others\">%zu</td>"
               "</tr>\n<tr><th>unscored (no stop-free frame)</th><td class=\"n\" "
               "id=\"n-unscored\">%zu</td></tr>\n</table>\n",
            st->seq_virus, st->seq_others, st->seq_unscored);
    fputs("<h2>Max virus score per sequence</h2>\n<figure>\n", f);
    write_histogram(f, r);
    fputs("</figure>\n", f);
    fprintf(f, "<h2>Score tracks</h2>\n<p class=\"note\">The %zu viral sequence%s with the most "
               "viral chunks (of %zu; <code>--plots</code> %d): each chunk at its max virus "
               "score along the sequence, coloured by its call; the dashed line is the "
               "threshold. The same tracks are in <code>plots/</code>.</p>\n",
            r->n, r->n == 1 ? "" : "s", r->viral_seqs, o->plots);
    for (size_t i = 0; i < r->n; i++) {
        fputs("<figure>\n", f);
        write_track(f, r, &r->t[i], i + 1, 0);
        fputs("</figure>\n", f);
    }
    fprintf(f, "<p id=\"self-check\" class=\"note\" data-expected-tracks=\"%zu\">self-check: "
               "not run (scripts are off)</p>\n"
               "<script>\n(function () {\n"
               "  var p = document.getElementById('self-check');\n"
               "  var want = Number(p.getAttribute('data-expected-tracks'));\n"
               "  var got = document.querySelectorAll('svg.track').length;\n"
               "  var ok = got === want && document.querySelectorAll('svg.histogram').length "
               "=== 1;\n"
               "  p.setAttribute('data-tracks', String(got));\n"
               "  p.setAttribute('data-ok', ok ? 'true' : 'false');\n"
               "  p.textContent = 'self-check: ' + got + ' of ' + want + ' tracks drawn' + (ok "
               "? '' : ' (MISMATCH)');\n"
               "})();\n</script>\n</body>\n</html>\n",
            r->n);
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 2;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s/%s%s", a, b, c);
    return p;
}

static vnp_code close_checked(FILE *f, const char *path, vnp_error *err)
{
    int bad = fflush(f) != 0 || ferror(f) || fsync(fileno(f)) != 0;
    bad |= fclose(f) != 0;
    if (bad)
        return vnp_fail(err, VNP_EIO, "cannot write %s: %s (check free space)", path,
                        strerror(errno));
    return VNP_OK;
}

static vnp_code write_plots(const vnp_report *r, vnp_error *err)
{
    char *dir = join3(r->o->out_dir, VNP_PREDICT_PLOTS, r->o->suffix);
    if (!dir)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    vnp_code rc = VNP_OK;
    if (mkdir(dir, 0777) != 0 && errno != EEXIST)
        rc = vnp_fail(err, VNP_EIO, "cannot create %s: %s", dir, strerror(errno));
    int digits = 1;
    for (size_t m = r->n; m >= 10; m /= 10)
        digits++;
    for (size_t i = 0; i < r->n && !rc; i++) {
        char name[ID_IN_NAME + 64];
        int k = snprintf(name, sizeof name, "%0*zu_", digits, i + 1);
        for (const char *s = r->t[i].id; *s && k < (int)sizeof name - 8 && k < ID_IN_NAME; s++)
            name[k++] = (strchr("._-", *s) || (*s >= '0' && *s <= '9') ||
                         ((*s | 32) >= 'a' && (*s | 32) <= 'z'))
                            ? *s
                            : '_';
        snprintf(name + k, sizeof name - (size_t)k, ".svg");
        char *path = join3(dir, name, "");
        FILE *f = path ? fopen(path, "w") : NULL;
        if (!f) {
            rc = path ? vnp_fail(err, VNP_EIO, "cannot create %s: %s", path, strerror(errno))
                      : vnp_fail(err, VNP_ENOMEM, "out of memory");
        } else {
            write_track(f, r, &r->t[i], i + 1, 1);
            rc = close_checked(f, path, err);
        }
        free(path);
    }
    free(dir);
    return rc;
}

vnp_code vnp_report_finish(vnp_report *r, const vnp_derive_stats *st, vnp_error *err)
{
    vnp_code rc = VNP_OK;
    if (r->o->plots > 0 && (rc = write_plots(r, err)))
        return rc;
    char *path = join3(r->o->out_dir, VNP_PREDICT_REPORT, r->o->suffix);
    if (!path)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    FILE *f = fopen(path, "w");
    if (!f) {
        rc = vnp_fail(err, VNP_EIO, "cannot create %s: %s", path, strerror(errno));
    } else {
        write_html(f, r, st);
        rc = close_checked(f, path, err);
    }
    free(path);
    return rc;
}
