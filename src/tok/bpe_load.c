/* Loading a `tokenizers` tokenizer.json (BPE model) with cJSON. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tok/bpe_internal.h"

#define MAX_AFFIX 256 /* longest continuing_subword_prefix / end_of_word_suffix */

typedef struct loader {
    const char *name;
    vnp_error *err;
    vnp_bpe *bpe;
} loader;

static vnp_code nomem(loader *L)
{
    return vnp_fail(L->err, VNP_ENOMEM, "%s: out of memory loading the tokenizer", L->name);
}

static vnp_code bad(loader *L, const char *what)
{
    return vnp_fail(L->err, VNP_EFORMAT, "%s: %s; is this a Hugging Face tokenizer.json?",
                    L->name, what);
}

/* An optional member that must be a string or null. *out is NULL when absent/null. */
static vnp_code opt_string(loader *L, const cJSON *obj, const char *key, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return VNP_OK;
    if (!cJSON_IsString(v))
        return vnp_fail(L->err, VNP_EFORMAT, "%s: model.%s must be a string or null", L->name,
                        key);
    *out = v->valuestring;
    return VNP_OK;
}

static vnp_code opt_bool(loader *L, const cJSON *obj, const char *where, const char *key,
                         bool dflt, bool *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = dflt;
    if (!v || cJSON_IsNull(v))
        return VNP_OK;
    if (!cJSON_IsBool(v))
        return vnp_fail(L->err, VNP_EFORMAT, "%s: %s.%s must be true or false", L->name, where,
                        key);
    *out = cJSON_IsTrue(v);
    return VNP_OK;
}

/* A JSON number that is an integer id 0..INT32_MAX, else -1. */
static int32_t json_id(const cJSON *v)
{
    if (!cJSON_IsNumber(v))
        return -1;
    double d = v->valuedouble;
    if (!(d >= 0 && d <= INT32_MAX) || d != (double)(int32_t)d)
        return -1;
    return (int32_t)d;
}

static vnp_code load_vocab(loader *L, const cJSON *model)
{
    vnp_bpe *b = L->bpe;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab))
        return bad(L, "model.vocab is missing or not an object");
    if (vnp_strmap_init(&b->vocab, (size_t)cJSON_GetArraySize(vocab)))
        return nomem(L);
    const cJSON *e;
    cJSON_ArrayForEach(e, vocab)
    {
        int32_t id = json_id(e);
        if (id < 0)
            return vnp_fail(L->err, VNP_EFORMAT,
                            "%s: model.vocab: the id of token '%.64s' is not an integer in 0..%d",
                            L->name, e->string, INT32_MAX);
        if (vnp_strmap_put(&b->vocab, e->string, strlen(e->string), id))
            return nomem(L);
        if ((size_t)id + 1 > b->vocab_size)
            b->vocab_size = (size_t)id + 1;
    }
    return VNP_OK;
}

static vnp_code add_merge(loader *L, size_t rank, const char *a, size_t al, const char *bs,
                          size_t bl)
{
    vnp_bpe *b = L->bpe;
    int32_t ida = vnp_strmap_get(&b->vocab, a, al), idb = vnp_strmap_get(&b->vocab, bs, bl);
    if (ida < 0 || idb < 0)
        return vnp_fail(L->err, VNP_EFORMAT,
                        "%s: model.merges[%zu]: token '%.*s' is not in the vocabulary", L->name,
                        rank, (int)(ida < 0 ? (al > 64 ? 64 : al) : (bl > 64 ? 64 : bl)),
                        ida < 0 ? a : bs);
    /* The merged token is a + b without b's continuing-subword prefix. */
    size_t skip = b->prefix_len;
    if (bl < skip)
        return vnp_fail(L->err, VNP_EFORMAT,
                        "%s: model.merges[%zu]: '%.64s' is shorter than the continuing subword "
                        "prefix",
                        L->name, rank, bs);
    char stack[256];
    size_t nl = al + bl - skip;
    char *joined = nl <= sizeof stack ? stack : malloc(nl);
    if (!joined)
        return nomem(L);
    memcpy(joined, a, al);
    memcpy(joined + al, bs + skip, bl - skip);
    int32_t id = vnp_strmap_get(&b->vocab, joined, nl);
    vnp_code rc = VNP_OK;
    if (id < 0)
        rc = vnp_fail(L->err, VNP_EFORMAT,
                      "%s: model.merges[%zu]: the merged token '%.*s' is not in the vocabulary",
                      L->name, rank, (int)(nl > 64 ? 64 : nl), joined);
    else if (rank > UINT32_MAX ||
             vnp_pairmap_put(&b->merges, ida, idb, (vnp_merge){(uint32_t)rank, id}))
        rc = nomem(L);
    if (joined != stack)
        free(joined);
    return rc;
}

static vnp_code load_merges(loader *L, const cJSON *model)
{
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsArray(merges))
        return bad(L, "model.merges is missing or not an array");
    if (vnp_pairmap_init(&L->bpe->merges, (size_t)cJSON_GetArraySize(merges)))
        return nomem(L);
    size_t rank = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, merges)
    {
        vnp_code c;
        if (cJSON_IsString(m)) {
            /* "a b": exactly one space, as `tokenizers` requires. */
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (!sp || strchr(sp + 1, ' '))
                return vnp_fail(L->err, VNP_EFORMAT,
                                "%s: model.merges[%zu] is '%.64s', expected two tokens "
                                "separated by one space",
                                L->name, rank, s);
            c = add_merge(L, rank, s, (size_t)(sp - s), sp + 1, strlen(sp + 1));
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 0)) &&
                   cJSON_IsString(cJSON_GetArrayItem(m, 1))) {
            const char *a = cJSON_GetArrayItem(m, 0)->valuestring;
            const char *bs = cJSON_GetArrayItem(m, 1)->valuestring;
            c = add_merge(L, rank, a, strlen(a), bs, strlen(bs));
        } else {
            return vnp_fail(L->err, VNP_EFORMAT,
                            "%s: model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]",
                            L->name, rank);
        }
        if (c)
            return c;
        rank++;
    }
    return VNP_OK;
}

typedef struct made_by {
    int32_t id;
    uint32_t rank;
} made_by;

static int cmp_made_by(const void *a, const void *b)
{
    int32_t x = ((const made_by *)a)->id, y = ((const made_by *)b)->id;
    return (x > y) - (x < y);
}

/* Rank of the merge that makes token id, or -1 (a base symbol). */
static int64_t made_rank(const made_by *v, size_t n, int32_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && v[lo].id == id ? (int64_t)v[lo].rank : -1;
}

#define DENSE_MAX_IDS (1u << 20)    /* ids indexable by the row/column maps */
#define DENSE_MAX_CELLS (1u << 22)  /* 8 MiB of uint16 cells */

/* Builds the dense pair table when ranks fit 16 bits and the table is small. */
static vnp_code plan_dense(loader *L)
{
    vnp_bpe *b = L->bpe;
    const vnp_pairmap *m = &b->merges;
    if (b->n_ranks >= UINT16_MAX || b->vocab_size > DENSE_MAX_IDS || m->count == 0)
        return VNP_OK;
    size_t ids = b->vocab_size;
    b->dense_row = malloc(ids * sizeof *b->dense_row);
    b->dense_col = malloc(ids * sizeof *b->dense_col);
    if (!b->dense_row || !b->dense_col)
        return nomem(L);
    memset(b->dense_row, 0xFF, ids * sizeof *b->dense_row);
    memset(b->dense_col, 0xFF, ids * sizeof *b->dense_col);
    size_t rows = 0, cols = 0;
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->slots[i].key == VNP_PAIRMAP_EMPTY)
            continue;
        uint32_t a = (uint32_t)(m->slots[i].key >> 32), c = (uint32_t)m->slots[i].key;
        if (b->dense_row[a] < 0)
            b->dense_row[a] = (int32_t)rows++;
        if (b->dense_col[c] < 0)
            b->dense_col[c] = (int32_t)cols++;
    }
    if (rows * cols > DENSE_MAX_CELLS || rows * cols == 0) {
        free(b->dense_row);
        free(b->dense_col);
        b->dense_row = b->dense_col = NULL;
        return VNP_OK;
    }
    if (!(b->dense_rank1 = calloc(rows * cols, sizeof *b->dense_rank1)))
        return nomem(L);
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->slots[i].key == VNP_PAIRMAP_EMPTY)
            continue;
        uint32_t a = (uint32_t)(m->slots[i].key >> 32), c = (uint32_t)m->slots[i].key;
        b->dense_rank1[(size_t)b->dense_row[a] * cols + (size_t)b->dense_col[c]] =
            (uint16_t)(m->slots[i].val.rank + 1);
    }
    b->dense_ids = ids;
    b->dense_cols = cols;
    return VNP_OK;
}

/* Decides whether the bucket-per-rank merge schedule reproduces `tokenizers`
 * (see bpe_merge.c): every merged token made by one merge only, and every merge
 * ranked after the merges that make its parts. */
static vnp_code plan_schedule(loader *L)
{
    vnp_bpe *b = L->bpe;
    const vnp_pairmap *m = &b->merges;
    made_by *v = malloc((m->count ? m->count : 1) * sizeof *v);
    if (!v)
        return nomem(L);
    size_t n = 0;
    b->n_ranks = 0;
    for (size_t i = 0; i <= m->mask; i++)
        if (m->slots[i].key != VNP_PAIRMAP_EMPTY) {
            v[n++] = (made_by){m->slots[i].val.id, m->slots[i].val.rank};
            if (m->slots[i].val.rank + 1 > b->n_ranks)
                b->n_ranks = m->slots[i].val.rank + 1;
        }
    qsort(v, n, sizeof *v, cmp_made_by);
    bool ok = true;
    for (size_t i = 1; i < n && ok; i++)
        ok = v[i].id != v[i - 1].id;
    for (size_t i = 0; i <= m->mask && ok; i++) {
        if (m->slots[i].key == VNP_PAIRMAP_EMPTY)
            continue;
        int32_t a = (int32_t)(m->slots[i].key >> 32), c = (int32_t)(m->slots[i].key & 0xFFFFFFFFu);
        int64_t r = m->slots[i].val.rank;
        ok = made_rank(v, n, a) < r && made_rank(v, n, c) < r;
    }
    free(v);
    b->rank_schedule = ok;
    if (!ok)
        return VNP_OK;
    size_t nr = b->n_ranks ? b->n_ranks : 1;
    b->rank_left = malloc(nr * sizeof *b->rank_left);
    b->rank_right = malloc(nr * sizeof *b->rank_right);
    b->rank_new = malloc(nr * sizeof *b->rank_new);
    if (!b->rank_left || !b->rank_right || !b->rank_new)
        return nomem(L);
    memset(b->rank_left, 0xFF, nr * sizeof *b->rank_left);
    memset(b->rank_right, 0xFF, nr * sizeof *b->rank_right);
    memset(b->rank_new, 0xFF, nr * sizeof *b->rank_new);
    for (size_t i = 0; i <= m->mask; i++) {
        if (m->slots[i].key == VNP_PAIRMAP_EMPTY)
            continue;
        int32_t a = (int32_t)(m->slots[i].key >> 32), c = (int32_t)(m->slots[i].key & 0xFFFFFFFFu);
        uint32_t r = m->slots[i].val.rank;
        b->rank_left[r] = a;
        b->rank_right[r] = c;
        b->rank_new[r] = m->slots[i].val.id;
    }
    return plan_dense(L);
}

static vnp_code load_model(loader *L, const cJSON *root)
{
    vnp_bpe *b = L->bpe;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!cJSON_IsObject(model))
        return bad(L, "no \"model\" object");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && !(cJSON_IsString(type) && !strcmp(type->valuestring, "BPE")))
        return vnp_fail(L->err, VNP_EUNSUPPORTED,
                        "%s: model type %s%.64s%s is not supported; only BPE (DNABERT-S) is",
                        L->name, cJSON_IsString(type) ? "'" : "",
                        cJSON_IsString(type) ? type->valuestring : "(not a string)",
                        cJSON_IsString(type) ? "'" : "");
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) &&
        !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0.0))
        return vnp_fail(L->err, VNP_EUNSUPPORTED,
                        "%s: model.dropout is set; BPE dropout is for training and makes "
                        "tokens random, set it to null",
                        L->name);
    const char *unk, *prefix, *suffix;
    vnp_code c;
    if ((c = opt_string(L, model, "unk_token", &unk)) ||
        (c = opt_string(L, model, "continuing_subword_prefix", &prefix)) ||
        (c = opt_string(L, model, "end_of_word_suffix", &suffix)) ||
        (c = opt_bool(L, model, "model", "fuse_unk", false, &b->fuse_unk)) ||
        (c = opt_bool(L, model, "model", "byte_fallback", false, &b->byte_fallback)) ||
        (c = opt_bool(L, model, "model", "ignore_merges", false, &b->ignore_merges)))
        return c;
    if ((prefix && strlen(prefix) > MAX_AFFIX) || (suffix && strlen(suffix) > MAX_AFFIX))
        return vnp_fail(L->err, VNP_EUNSUPPORTED,
                        "%s: continuing_subword_prefix / end_of_word_suffix longer than %d "
                        "bytes",
                        L->name, MAX_AFFIX);
    if (prefix && *prefix) {
        if (!(b->prefix = strdup(prefix)))
            return nomem(L);
        b->prefix_len = strlen(prefix);
    }
    if (suffix && *suffix) {
        if (!(b->suffix = strdup(suffix)))
            return nomem(L);
        b->suffix_len = strlen(suffix);
    }
    if ((c = load_vocab(L, model)) || (c = load_merges(L, model)) || (c = plan_schedule(L)))
        return c;
    b->unk_id = -1;
    if (unk) {
        b->unk_id = vnp_strmap_get(&b->vocab, unk, strlen(unk));
        if (b->unk_id < 0)
            return vnp_fail(L->err, VNP_EFORMAT,
                            "%s: model.unk_token '%.64s' is not in the vocabulary", L->name, unk);
    }
    for (int i = 0; i < 128; i++) {
        char ch = (char)i;
        b->ascii_id[i] = vnp_strmap_get(&b->vocab, &ch, 1);
    }
    for (int i = 0; i < 256; i++) {
        char code[8];
        snprintf(code, sizeof code, "<0x%02X>", i);
        b->byte_id[i] = vnp_strmap_get(&b->vocab, code, 6);
    }
    return VNP_OK;
}

/* Id of a new added token as `tokenizers` assigns it: the vocabulary's id when the
 * content is a model token, else the size of the model vocabulary or, once added
 * ids reach past it, one more than the largest added id. */
static int32_t added_id(const vnp_bpe *b, const char *content, size_t len, int32_t max_added)
{
    int32_t id = vnp_strmap_get(&b->vocab, content, len);
    if (id >= 0)
        return id;
    size_t model_size = b->vocab.count;
    if (max_added < 0)
        return model_size > INT32_MAX ? -1 : (int32_t)model_size;
    if ((size_t)max_added >= model_size || model_size == 0)
        return max_added == INT32_MAX ? -1 : max_added + 1;
    return (int32_t)model_size;
}

static vnp_code load_added(loader *L, const cJSON *root)
{
    vnp_bpe *b = L->bpe;
    if (vnp_strmap_init(&b->added_map, 16))
        return nomem(L);
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!list || cJSON_IsNull(list))
        return VNP_OK;
    if (!cJSON_IsArray(list))
        return bad(L, "added_tokens is not an array");
    int n = cJSON_GetArraySize(list);
    if (n > 0 && !(b->added = calloc((size_t)n, sizeof *b->added)))
        return nomem(L);
    int32_t max_added = -1;
    int i = -1;
    const cJSON *t;
    cJSON_ArrayForEach(t, list)
    {
        i++;
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(t, "content");
        if (!cJSON_IsObject(t) || !cJSON_IsString(content))
            return vnp_fail(L->err, VNP_EFORMAT, "%s: added_tokens[%d] has no string content",
                            L->name, i);
        bool special, normalized, flag;
        vnp_code c;
        if ((c = opt_bool(L, t, "added_tokens[]", "special", false, &special)) ||
            (c = opt_bool(L, t, "added_tokens[]", "normalized", !special, &normalized)))
            return c;
        static const char *const flags[] = {"single_word", "lstrip", "rstrip"};
        for (int f = 0; f < 3; f++) {
            if ((c = opt_bool(L, t, "added_tokens[]", flags[f], false, &flag)))
                return c;
            if (flag)
                return vnp_fail(L->err, VNP_EUNSUPPORTED,
                                "%s: added token '%.64s' sets %s, which this tokenizer does "
                                "not implement",
                                L->name, content->valuestring, flags[f]);
        }
        const char *s = content->valuestring;
        size_t len = strlen(s);
        if (len == 0)
            continue; /* ignored by `tokenizers` too */
        int32_t k = vnp_strmap_get(&b->added_map, s, len);
        if (k >= 0) {
            b->added[k].normalized = normalized; /* a repeated token's last flags win */
            continue;
        }
        int32_t id = added_id(b, s, len, max_added);
        if (id < 0)
            return vnp_fail(L->err, VNP_EFORMAT, "%s: too many added tokens", L->name);
        k = (int32_t)b->n_added;
        if (!(b->added[k].content = strdup(s)) || vnp_strmap_put(&b->added_map, s, len, k))
            return nomem(L);
        b->added[k].len = len;
        b->added[k].id = id;
        b->added[k].normalized = normalized;
        b->n_added++;
        /* first-byte sets are built once all flags are known (vnp_bpe_load_json) */
        if (id > max_added)
            max_added = id;
        if ((size_t)id + 1 > b->vocab_size)
            b->vocab_size = (size_t)id + 1;
    }
    return VNP_OK;
}

static vnp_code pretok_one(loader *L, const cJSON *p, vnp_pretok *kind)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(p, "type");
    if (!cJSON_IsString(type))
        return bad(L, "a pre_tokenizer has no \"type\"");
    const char *s = type->valuestring;
    if (!strcmp(s, "Whitespace")) {
        *kind = VNP_PRETOK_WHITESPACE;
    } else if (!strcmp(s, "WhitespaceSplit")) {
        if (*kind == VNP_PRETOK_NONE)
            *kind = VNP_PRETOK_WHITESPACE_SPLIT;
    } else if (!strcmp(s, "Sequence")) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers"), *q;
        if (!cJSON_IsArray(list))
            return bad(L, "pre_tokenizer Sequence has no \"pretokenizers\" array");
        cJSON_ArrayForEach(q, list)
        {
            vnp_code c = pretok_one(L, q, kind);
            if (c)
                return c;
        }
    } else {
        return vnp_fail(L->err, VNP_EUNSUPPORTED,
                        "%s: pre_tokenizer '%.64s' is not supported (Whitespace, "
                        "WhitespaceSplit and Sequence of them are)",
                        L->name, s);
    }
    return VNP_OK;
}

/* Whitespace and WhitespaceSplit in any order and number amount to the finest
 * of them: Whitespace's words are never split further by WhitespaceSplit, and
 * WhitespaceSplit's words are exactly what Whitespace splits. */
static vnp_code load_pretok(loader *L, const cJSON *root)
{
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (n && !cJSON_IsNull(n)) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(n, "type");
        return vnp_fail(L->err, VNP_EUNSUPPORTED,
                        "%s: normalizer '%.64s' is not supported (DNABERT-S has none)", L->name,
                        cJSON_IsString(type) ? type->valuestring : "?");
    }
    L->bpe->pretok = VNP_PRETOK_NONE;
    if (!p || cJSON_IsNull(p))
        return VNP_OK;
    if (!cJSON_IsObject(p))
        return bad(L, "pre_tokenizer is not an object");
    return pretok_one(L, p, &L->bpe->pretok);
}

static vnp_code push_id(loader *L, int32_t **v, size_t *n, int32_t id)
{
    int32_t *p = realloc(*v, (*n + 1) * sizeof *p);
    if (!p)
        return nomem(L);
    p[(*n)++] = id;
    *v = p;
    return VNP_OK;
}

static vnp_code load_template(loader *L, const cJSON *post)
{
    vnp_bpe *b = L->bpe;
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(post, "single");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(post, "special_tokens");
    if (!cJSON_IsArray(single))
        return bad(L, "post_processor TemplateProcessing has no \"single\" template");
    int seen_a = 0;
    const cJSON *item;
    cJSON_ArrayForEach(item, single)
    {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(item, "Sequence");
        if (cJSON_IsObject(sq)) {
            const cJSON *id = cJSON_GetObjectItemCaseSensitive(sq, "id");
            if (!cJSON_IsString(id) || strcmp(id->valuestring, "A") || seen_a)
                return bad(L, "the single template must hold the sequence $A exactly once");
            seen_a = 1;
        } else if (cJSON_IsObject(sp)) {
            const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
            const cJSON *tok = cJSON_IsString(name) && cJSON_IsObject(specials)
                                   ? cJSON_GetObjectItemCaseSensitive(specials, name->valuestring)
                                   : NULL;
            const cJSON *ids = tok ? cJSON_GetObjectItemCaseSensitive(tok, "ids") : NULL;
            if (!cJSON_IsArray(ids))
                return vnp_fail(L->err, VNP_EFORMAT,
                                "%s: post_processor: special token '%.64s' of the template has "
                                "no ids in special_tokens",
                                L->name, cJSON_IsString(name) ? name->valuestring : "?");
            const cJSON *x;
            cJSON_ArrayForEach(x, ids)
            {
                int32_t id = json_id(x);
                if (id < 0)
                    return bad(L, "post_processor: a special token id is not an integer");
                vnp_code c = seen_a ? push_id(L, &b->post_ids, &b->n_post, id)
                                    : push_id(L, &b->pre_ids, &b->n_pre, id);
                if (c)
                    return c;
            }
        } else {
            return bad(L, "post_processor: a template item is neither SpecialToken nor "
                          "Sequence");
        }
    }
    if (!seen_a)
        return bad(L, "the single template must hold the sequence $A exactly once");
    return VNP_OK;
}

/* BertProcessing / RobertaProcessing: {"cls": [token, id], "sep": [token, id]}. */
static vnp_code load_cls_sep(loader *L, const cJSON *post)
{
    vnp_bpe *b = L->bpe;
    const cJSON *cls = cJSON_GetObjectItemCaseSensitive(post, "cls");
    const cJSON *sep = cJSON_GetObjectItemCaseSensitive(post, "sep");
    int32_t cid = cJSON_IsArray(cls) ? json_id(cJSON_GetArrayItem(cls, 1)) : -1;
    int32_t sid = cJSON_IsArray(sep) ? json_id(cJSON_GetArrayItem(sep, 1)) : -1;
    if (cid < 0 || sid < 0)
        return bad(L, "post_processor: cls/sep must be [token, id]");
    vnp_code c = push_id(L, &b->pre_ids, &b->n_pre, cid);
    return c ? c : push_id(L, &b->post_ids, &b->n_post, sid);
}

static vnp_code load_post(loader *L, const cJSON *root)
{
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (!post || cJSON_IsNull(post))
        return VNP_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(post, "type");
    if (!cJSON_IsString(type))
        return bad(L, "post_processor has no \"type\"");
    if (!strcmp(type->valuestring, "TemplateProcessing"))
        return load_template(L, post);
    if (!strcmp(type->valuestring, "BertProcessing") ||
        !strcmp(type->valuestring, "RobertaProcessing"))
        return load_cls_sep(L, post);
    return vnp_fail(L->err, VNP_EUNSUPPORTED,
                    "%s: post_processor '%.64s' is not supported (TemplateProcessing, "
                    "BertProcessing and RobertaProcessing are)",
                    L->name, type->valuestring);
}

void vnp_bpe_free(vnp_bpe *b)
{
    if (!b)
        return;
    vnp_bpe_scratch *spare = atomic_exchange(&b->spare, NULL);
    if (spare) {
        vnp_bpe_scratch_free(spare);
        free(spare);
    }
    vnp_strmap_free(&b->vocab);
    vnp_pairmap_free(&b->merges);
    free(b->prefix);
    free(b->suffix);
    for (size_t i = 0; i < b->n_added; i++)
        free(b->added[i].content);
    free(b->added);
    vnp_strmap_free(&b->added_map);
    free(b->pre_ids);
    free(b->post_ids);
    free(b->rank_left);
    free(b->rank_right);
    free(b->rank_new);
    free(b->dense_row);
    free(b->dense_col);
    free(b->dense_rank1);
    free(b);
}

vnp_code vnp_bpe_load_json(const char *json, size_t len, const char *name, vnp_bpe **out,
                           vnp_error *err)
{
    *out = NULL;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(json, len, &end, 0);
    if (!root) {
        size_t at = end && end >= json && end <= json + len ? (size_t)(end - json) : 0;
        return vnp_fail(err, VNP_EFORMAT,
                        "%s: not valid JSON (error near byte %zu); is this a Hugging Face "
                        "tokenizer.json?",
                        name, at);
    }
    loader L = {name, err, calloc(1, sizeof(vnp_bpe))};
    vnp_code c;
    if (!L.bpe)
        c = nomem(&L);
    else if (!cJSON_IsObject(root))
        c = bad(&L, "the top level is not an object");
    else if (!(c = load_model(&L, root)) && !(c = load_added(&L, root)) &&
             !(c = load_pretok(&L, root)))
        c = load_post(&L, root);
    cJSON_Delete(root);
    if (c) {
        vnp_bpe_free(L.bpe);
        return c;
    }
    for (size_t i = 0; i < L.bpe->n_added; i++) {
        const vnp_added_token *t = &L.bpe->added[i];
        int pass = t->normalized ? 1 : 0;
        unsigned char c0 = (unsigned char)t->content[0];
        if (!L.bpe->added_first[pass][c0]) {
            L.bpe->added_first[pass][c0] = true;
            L.bpe->first_byte[pass] = c0;
            L.bpe->n_first[pass]++;
        }
    }
    for (size_t i = 0; i < L.bpe->n_pre; i++)
        if ((size_t)L.bpe->pre_ids[i] + 1 > L.bpe->vocab_size)
            L.bpe->vocab_size = (size_t)L.bpe->pre_ids[i] + 1;
    for (size_t i = 0; i < L.bpe->n_post; i++)
        if ((size_t)L.bpe->post_ids[i] + 1 > L.bpe->vocab_size)
            L.bpe->vocab_size = (size_t)L.bpe->post_ids[i] + 1;
    *out = L.bpe;
    return VNP_OK;
}

vnp_code vnp_bpe_load(const char *path, vnp_bpe **out, vnp_error *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return vnp_fail(err, errno == ENOENT ? VNP_ENOTFOUND : VNP_EIO,
                        "%s: cannot open the tokenizer: %s", path, strerror(errno));
    char *buf = NULL;
    size_t len = 0, cap = 0;
    vnp_code c = VNP_OK;
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 262144;
            char *nb = realloc(buf, cap);
            if (!nb) {
                c = vnp_fail(err, VNP_ENOMEM, "%s: out of memory reading the tokenizer", path);
                break;
            }
            buf = nb;
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f))
                c = vnp_fail(err, VNP_EIO, "%s: read error: %s", path, strerror(errno));
            break;
        }
    }
    fclose(f);
    if (!c)
        c = vnp_bpe_load_json(buf, len, path, out, err);
    free(buf);
    return c;
}

size_t vnp_bpe_vocab_size(const vnp_bpe *bpe)
{
    return bpe->vocab_size;
}

int32_t vnp_bpe_token_id(const vnp_bpe *bpe, const char *token)
{
    size_t len = strlen(token);
    int32_t k = bpe->added_map.slots ? vnp_strmap_get(&bpe->added_map, token, len) : -1;
    return k >= 0 ? bpe->added[k].id : vnp_strmap_get(&bpe->vocab, token, len);
}
