/* prediction_results_highestscore.csv: per-chunk max scores, sorted by chunk ID
 * with an external merge sort so that memory stays bounded on any input. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "virnucpro/pipeline.h"

typedef struct entry {
    size_t off; /* into the ID arena */
    size_t len;
    float max1, max2;
    const char *p; /* arena + off, set just before sorting (the arena may move while adding) */
} entry;

struct vnp_chunk_calls {
    char *out_path;
    size_t mem_limit;
    char *arena;
    size_t arena_n, arena_cap;
    entry *e;
    size_t n, cap;
    size_t runs;
};

static char *run_path(const vnp_chunk_calls *c, size_t i)
{
    size_t n = strlen(c->out_path) + 32;
    char *p = malloc(n);
    if (p)
        snprintf(p, n, "%s.run%zu.tmp", c->out_path, i);
    return p;
}

vnp_code vnp_chunk_calls_create(const char *out_path, size_t mem_limit, vnp_chunk_calls **out,
                                vnp_error *err)
{
    *out = NULL;
    vnp_chunk_calls *c = calloc(1, sizeof *c);
    if (!c || !(c->out_path = strdup(out_path))) {
        free(c);
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    }
    c->mem_limit = mem_limit ? mem_limit : (size_t)16 << 20;
    *out = c;
    return VNP_OK;
}

size_t vnp_chunk_calls_runs(const vnp_chunk_calls *c) { return c->runs; }

static void remove_runs(vnp_chunk_calls *c)
{
    for (size_t i = 0; i < c->runs; i++) {
        char *p = run_path(c, i);
        if (p)
            remove(p);
        free(p);
    }
    c->runs = 0;
}

void vnp_chunk_calls_free(vnp_chunk_calls *c)
{
    if (!c)
        return;
    remove_runs(c);
    free(c->arena);
    free(c->e);
    free(c->out_path);
    free(c);
}

static int cmp_ids(const char *a, size_t na, const char *b, size_t nb)
{
    int r = memcmp(a, b, na < nb ? na : nb);
    if (r)
        return r;
    return (na > nb) - (na < nb);
}

static int by_id(const void *x, const void *y)
{
    const entry *a = x, *b = y;
    return cmp_ids(a->p, a->len, b->p, b->len);
}

/* Sorts entries by ID and folds equal IDs into one (max of each score). */
static void sort_and_fold(vnp_chunk_calls *c)
{
    if (c->n == 0)
        return;
    for (size_t i = 0; i < c->n; i++)
        c->e[i].p = c->arena + c->e[i].off;
    qsort(c->e, c->n, sizeof *c->e, by_id);
    size_t k = 0;
    for (size_t i = 0; i < c->n; i++) {
        if (k > 0 && by_id(&c->e[k - 1], &c->e[i]) == 0) {
            if (c->e[i].max1 > c->e[k - 1].max1)
                c->e[k - 1].max1 = c->e[i].max1;
            if (c->e[i].max2 > c->e[k - 1].max2)
                c->e[k - 1].max2 = c->e[i].max2;
        } else {
            c->e[k++] = c->e[i];
        }
    }
    c->n = k;
}

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Writes the sorted in-memory entries to run file c->runs and empties memory. */
static vnp_code spill(vnp_chunk_calls *c, vnp_error *err)
{
    sort_and_fold(c);
    char *p = run_path(c, c->runs);
    if (!p)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    FILE *f = fopen(p, "w");
    if (!f) {
        vnp_code rc = vnp_fail(err, VNP_EIO, "cannot create temporary file %s: %s", p,
                               strerror(errno));
        free(p);
        return rc;
    }
    c->runs++;
    int bad = 0;
    for (size_t i = 0; i < c->n && !bad; i++) {
        const entry *e = &c->e[i];
        bad = fwrite(c->arena + e->off, 1, e->len, f) != e->len ||
              fprintf(f, "\t%08x\t%08x\n", (unsigned)f32_bits(e->max1),
                      (unsigned)f32_bits(e->max2)) < 0;
    }
    if (fclose(f) != 0 || bad) {
        vnp_code rc = vnp_fail(err, VNP_EIO, "cannot write temporary file %s: %s", p,
                               strerror(errno));
        free(p);
        return rc;
    }
    free(p);
    c->n = 0;
    c->arena_n = 0;
    return VNP_OK;
}

vnp_code vnp_chunk_calls_add(vnp_chunk_calls *c, const char *chunk_id, size_t id_len,
                             float p_others, float p_virus, vnp_error *err)
{
    if (c->n > 0) {
        entry *last = &c->e[c->n - 1];
        if (cmp_ids(c->arena + last->off, last->len, chunk_id, id_len) == 0) {
            if (p_others > last->max1)
                last->max1 = p_others;
            if (p_virus > last->max2)
                last->max2 = p_virus;
            return VNP_OK;
        }
    }
    if (c->arena_n + c->n * sizeof(entry) >= c->mem_limit && c->n > 0) {
        vnp_code rc = spill(c, err);
        if (rc)
            return rc;
    }
    if (c->arena_n + id_len > c->arena_cap) {
        size_t cap = c->arena_cap ? c->arena_cap * 2 : 4096;
        while (cap < c->arena_n + id_len)
            cap *= 2;
        char *a = realloc(c->arena, cap);
        if (!a)
            return vnp_fail(err, VNP_ENOMEM, "out of memory collecting chunk calls");
        c->arena = a;
        c->arena_cap = cap;
    }
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 256;
        entry *e = realloc(c->e, cap * sizeof *e);
        if (!e)
            return vnp_fail(err, VNP_ENOMEM, "out of memory collecting chunk calls");
        c->e = e;
        c->cap = cap;
    }
    memcpy(c->arena + c->arena_n, chunk_id, id_len);
    c->e[c->n++] = (entry){c->arena_n, id_len, p_others, p_virus, NULL};
    c->arena_n += id_len;
    return VNP_OK;
}

static int write_row(FILE *f, const char *id, size_t len, float max1, float max2)
{
    return fwrite(id, 1, len, f) == len &&
           fputs(max2 >= max1 ? "\tTrue\n" : "\tFalse\n", f) >= 0;
}

/* One open run during the merge: its current line, split. */
typedef struct run_cursor {
    FILE *f;
    char *line;
    size_t cap;
    size_t id_len;
    float max1, max2;
    int live;
} run_cursor;

static int cursor_next(run_cursor *r)
{
    ssize_t n = getline(&r->line, &r->cap, r->f);
    if (n <= 0) {
        r->live = 0;
        return 0;
    }
    char *tab = memchr(r->line, '\t', (size_t)n);
    unsigned a = 0, b = 0;
    if (!tab || sscanf(tab + 1, "%x\t%x", &a, &b) != 2) {
        r->live = 0;
        return -1;
    }
    r->id_len = (size_t)(tab - r->line);
    r->max1 = bits_f32(a);
    r->max2 = bits_f32(b);
    r->live = 1;
    return 1;
}

static vnp_code merge_runs(vnp_chunk_calls *c, FILE *out, vnp_error *err)
{
    run_cursor *r = calloc(c->runs, sizeof *r);
    if (!r)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    vnp_code rc = VNP_OK;
    for (size_t i = 0; i < c->runs && !rc; i++) {
        char *p = run_path(c, i);
        r[i].f = p ? fopen(p, "r") : NULL;
        if (!r[i].f || cursor_next(&r[i]) < 0)
            rc = vnp_fail(err, VNP_EIO, "cannot read temporary file %s", p ? p : "(?)");
        free(p);
    }
    char *cur = NULL;
    size_t cur_len = 0, cur_cap = 0;
    float m1 = 0, m2 = 0;
    int have = 0;
    while (!rc) {
        size_t best = c->runs;
        for (size_t i = 0; i < c->runs; i++)
            if (r[i].live && (best == c->runs || cmp_ids(r[i].line, r[i].id_len, r[best].line,
                                                         r[best].id_len) < 0))
                best = i;
        if (best == c->runs)
            break;
        run_cursor *b = &r[best];
        if (have && cmp_ids(cur, cur_len, b->line, b->id_len) == 0) {
            if (b->max1 > m1)
                m1 = b->max1;
            if (b->max2 > m2)
                m2 = b->max2;
        } else {
            if (have && !write_row(out, cur, cur_len, m1, m2)) {
                rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s", c->out_path,
                              strerror(errno));
                break;
            }
            if (b->id_len > cur_cap) {
                char *n = realloc(cur, b->id_len);
                if (!n) {
                    rc = vnp_fail(err, VNP_ENOMEM, "out of memory");
                    break;
                }
                cur = n;
                cur_cap = b->id_len;
            }
            memcpy(cur, b->line, b->id_len);
            cur_len = b->id_len;
            m1 = b->max1;
            m2 = b->max2;
            have = 1;
        }
        if (cursor_next(b) < 0)
            rc = vnp_fail(err, VNP_EIO, "temporary file of %s is corrupt", c->out_path);
    }
    if (!rc && have && !write_row(out, cur, cur_len, m1, m2))
        rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s", c->out_path, strerror(errno));
    for (size_t i = 0; i < c->runs; i++) {
        if (r[i].f)
            fclose(r[i].f);
        free(r[i].line);
    }
    free(r);
    free(cur);
    return rc;
}

vnp_code vnp_chunk_calls_finish(vnp_chunk_calls *c, vnp_error *err)
{
    vnp_code rc = VNP_OK;
    if (c->runs > 0 && c->n > 0 && (rc = spill(c, err)))
        return rc;
    FILE *f = fopen(c->out_path, "w");
    if (!f)
        return vnp_fail(err, VNP_EIO, "cannot create %s: %s", c->out_path, strerror(errno));
    if (fputs("Modified_ID\tIs_Virus\n", f) < 0)
        rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s", c->out_path, strerror(errno));
    if (!rc && c->runs > 0) {
        rc = merge_runs(c, f, err);
    } else if (!rc) {
        sort_and_fold(c);
        for (size_t i = 0; i < c->n && !rc; i++)
            if (!write_row(f, c->arena + c->e[i].off, c->e[i].len, c->e[i].max1, c->e[i].max2))
                rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s", c->out_path,
                              strerror(errno));
    }
    if (fclose(f) != 0 && !rc)
        rc = vnp_fail(err, VNP_EIO, "cannot write %s: %s", c->out_path, strerror(errno));
    remove_runs(c);
    c->n = 0;
    c->arena_n = 0;
    return rc;
}
