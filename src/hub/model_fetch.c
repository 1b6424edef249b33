/* Fetching one model: probe every file of the pinned revision, check free space,
 * download what is missing or damaged, verify each file's digest, record it in
 * the manifest, and mark the model complete.
 *
 * A pin that the server does not have (its first file answers HTTP 404 and the hub does
 * not say the revision exists) must not break every first run: the files are then taken
 * from the repository's default branch, a pinned file only when it has the pinned digest
 * (else the fetch is refused, naming the file, both revisions and what to do), a file
 * without a pin with a warning; the manifest records the branch (and commit) fetched. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "hub/hub_internal.h"

#define MAX_PLAN 64
#define SPACE_MARGIN (64ull << 20)

typedef struct plan_file {
    char name[256];
    char url[2048];
    vnp_http_head head;
    const vnp_pin *pin; /* when pins apply */
    int have;           /* present and verified */
} plan_file;

typedef struct fetch_ctx {
    const vnp_hub_cfg *cfg;
    const vnp_model_spec *spec;
    char dir[VNP_HUB_PATH];
    cJSON *manifest;
    plan_file files[MAX_PLAN];
    int n;
    const char *rev; /* revision the files come from: spec->revision, or the default branch */
    int fallback;    /* 1: rev is the default branch, the pinned revision being not found */
    char commit[64]; /* the commit the server reports for rev in fallback (hub), else "" */
    int tried_default; /* the default branch was asked for the first file */
    int unverified;    /* files of the default branch accepted without a pin */
} fetch_ctx;

/* A file name from a remote index: a plain name in the model directory. */
static int safe_file_name(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= 200 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static plan_file *plan_add(fetch_ctx *fc, const char *name, vnp_error *err)
{
    for (int i = 0; i < fc->n; i++)
        if (!strcmp(fc->files[i].name, name))
            return &fc->files[i];
    if (fc->n == MAX_PLAN) {
        vnp_fail(err, VNP_EFORMAT, "%s: more than %d files", fc->spec->name, MAX_PLAN);
        return NULL;
    }
    plan_file *p = &fc->files[fc->n++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    vnp_hub_file_url(fc->cfg, fc->spec, fc->rev, name, p->url, sizeof p->url);
    if (vnp_hub_pins_apply(fc->cfg, fc->spec))
        p->pin = vnp_hub_spec_pin(fc->spec, name);
    return p;
}

/* Whether the file's git blob id is to be compared (the hub's id of a small file,
 * or a pinned one). */
static int need_git(const plan_file *p)
{
    return p->head.git_sha1[0] || (p->pin && p->pin->git_sha1);
}

/* Whether a digest of the file's content is pinned. */
static int pinned(const plan_file *p)
{
    return p->pin && (p->pin->sha256 || p->pin->git_sha1);
}

/* " (commit C)" when the server reported the commit of the default branch, else "". */
static const char *commit_note(const fetch_ctx *fc, char *buf, size_t cap)
{
    if (fc->commit[0])
        snprintf(buf, cap, " (commit %s)", fc->commit);
    else
        buf[0] = 0;
    return buf;
}

/* The refusal of a file of the default branch whose digest is not the pinned one. */
static vnp_code fallback_refused(const fetch_ctx *fc, const plan_file *p, const char *what,
                                 const char *want, const char *got, vnp_error *err)
{
    const vnp_model_spec *s = fc->spec;
    char c[96];
    return vnp_fail(err, VNP_EINTEGRITY,
                    "%s: %s refused: the pinned revision %s of %s is not found, and %s on its "
                    "default branch %s%s has %s %s, not the %s pinned for revision %s; the "
                    "model has changed since this virnucpro was built. Do not use it "
                    "unverified: update virnucpro (a newer model table pins the new "
                    "revision), or get revision %s from a mirror (VIRNUCPRO_HUB_URL / "
                    "VIRNUCPRO_GITHUB_URL) or a Hugging Face cache, or give model files "
                    "you trust with --esm / --dnabert / --classifier",
                    s->name, p->name, s->revision, s->repo, p->name, fc->rev,
                    commit_note(fc, c, sizeof c), what, got, want, s->revision, s->revision);
}

/* HEAD of one file; *found = 0 on 404. */
static vnp_code probe(fetch_ctx *fc, plan_file *p, int *found, vnp_error *err)
{
    vnp_code rc = vnp_http_probe(fc->cfg, p->url, &p->head, err);
    if (rc)
        return rc;
    if (fc->spec->source != VNP_SOURCE_HF_HUB) {
        /* only the hub's ETags are content digests; GitHub's are opaque */
        p->head.sha256[0] = 0;
        p->head.git_sha1[0] = 0;
    }
    *found = p->head.status >= 200 && p->head.status < 300;
    if (!*found)
        return VNP_OK;
    const vnp_pin *pin = p->pin;
    if (fc->fallback && pin && pin->sha256 && p->head.sha256[0] &&
        strcmp(pin->sha256, p->head.sha256))
        return fallback_refused(fc, p, "SHA-256", pin->sha256, p->head.sha256, err);
    if (fc->fallback && pin && pin->git_sha1 && p->head.git_sha1[0] &&
        strcmp(pin->git_sha1, p->head.git_sha1))
        return fallback_refused(fc, p, "git blob id", pin->git_sha1, p->head.git_sha1, err);
    if (pin && pin->sha256 && p->head.sha256[0] && strcmp(pin->sha256, p->head.sha256))
        return vnp_fail(err, VNP_EINTEGRITY,
                        "%s: the server reports SHA-256 %s for %s, but revision %s of %s has %s "
                        "(pinned); the server does not serve the pinned file",
                        fc->spec->name, p->head.sha256, p->name, fc->spec->revision,
                        fc->spec->repo, pin->sha256);
    if (pin && pin->size && p->head.size >= 0 && (uint64_t)p->head.size != pin->size)
        return vnp_fail(err, VNP_EINTEGRITY,
                        "%s: the server reports %lld bytes for %s, but the pinned file has %llu",
                        fc->spec->name, (long long)p->head.size, p->name,
                        (unsigned long long)pin->size);
    return VNP_OK;
}

/* Checks a file's digest against the pin and what the server reported. Returns
 * VNP_OK, or VNP_EINTEGRITY with a message naming the file. checked: what it was
 * checked against (for the manifest). */
static vnp_code check_digest(const fetch_ctx *fc, const plan_file *p, const char *path,
                             const vnp_digest *d, const char **checked, vnp_error *err)
{
    const char *want = NULL, *got = NULL, *what = NULL;
    *checked = "nothing (no digest published; SHA-256 recorded)";
    if (p->pin && p->pin->size && d->size != p->pin->size)
        return vnp_fail(err, VNP_EINTEGRITY, "%s has %llu bytes, the pinned file has %llu", path,
                        (unsigned long long)d->size, (unsigned long long)p->pin->size);
    if (p->head.size >= 0 && d->size != (uint64_t)p->head.size)
        return vnp_fail(err, VNP_EINTEGRITY, "%s has %llu bytes, the server announced %lld",
                        path, (unsigned long long)d->size, (long long)p->head.size);
    if (p->head.git_sha1[0]) {
        want = p->head.git_sha1, got = d->git_sha1, what = "git blob id reported by the server";
        if (strcmp(want, got))
            goto mismatch;
        *checked = "git blob id reported by the server";
    }
    if (p->head.sha256[0]) {
        want = p->head.sha256, got = d->sha256, what = "SHA-256 reported by the server";
        if (strcmp(want, got))
            goto mismatch;
        *checked = "SHA-256 reported by the server";
    }
    if (p->pin && p->pin->git_sha1) {
        want = p->pin->git_sha1, got = d->git_sha1, what = "pinned git blob id";
        if (strcmp(want, got))
            goto mismatch;
        *checked = "pinned git blob id";
    }
    if (p->pin && p->pin->sha256) {
        want = p->pin->sha256, got = d->sha256, what = "pinned SHA-256";
        if (strcmp(want, got))
            goto mismatch;
        *checked = "pinned SHA-256";
    }
    return VNP_OK;
mismatch:
    return vnp_fail(err, VNP_EINTEGRITY, "%s does not match the %s: expected %s, got %s", path,
                    what, want, got);
}

static vnp_code record(fetch_ctx *fc, const plan_file *p, const char *path, const vnp_digest *d,
                       const char *checked, vnp_error *err)
{
    cJSON *m = vnp_manifest_model(fc->manifest, fc->spec->name, 1);
    cJSON *e = m ? vnp_manifest_file(m, p->name, 1) : NULL;
    if (!e)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    struct stat st;
    if (stat(path, &st) != 0)
        return vnp_fail(err, VNP_EIO, "cannot stat %s: %s", path, strerror(errno));
    cJSON_DeleteItemFromObjectCaseSensitive(e, "size");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "mtime_s");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "mtime_ns");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "sha256");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "url");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "checked_against");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "git_blob");
    cJSON_DeleteItemFromObjectCaseSensitive(e, "revision");
    if (d->git_sha1[0] && !cJSON_AddStringToObject(e, "git_blob", d->git_sha1))
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    char note[512], c[96];
    if (fc->fallback) {
        /* the file is of another revision than the pinned one: say which, and how sure */
        if (!cJSON_AddStringToObject(e, "revision", fc->commit[0] ? fc->commit : fc->rev))
            return vnp_fail(err, VNP_ENOMEM, "out of memory");
        if (pinned(p)) {
            vnp_warn("%s: %s from the default branch %s%s matches the %s of revision %s "
                     "(not found on the server): accepted",
                     fc->spec->name, p->name, fc->rev, commit_note(fc, c, sizeof c), checked,
                     fc->spec->revision);
        } else {
            fc->unverified++;
            vnp_warn("%s: %s is NOT VERIFIED: no digest is pinned for it, and it comes from "
                     "the default branch %s%s, not from the pinned revision %s (not found on "
                     "the server); it may differ from the file this virnucpro was tested "
                     "with. manifest.json records the revision fetched",
                     fc->spec->name, p->name, fc->rev, commit_note(fc, c, sizeof c),
                     fc->spec->revision);
            snprintf(note, sizeof note,
                     "no pin: fetched from the default branch %s in place of revision %s; "
                     "checked only against %s",
                     fc->rev, fc->spec->revision, checked);
            checked = note;
        }
    }
    if (!cJSON_AddNumberToObject(e, "size", (double)d->size) ||
        /* seconds and nanoseconds apart: each is exact in a JSON number */
        !cJSON_AddNumberToObject(e, "mtime_s", (double)st.st_mtim.tv_sec) ||
        !cJSON_AddNumberToObject(e, "mtime_ns", (double)st.st_mtim.tv_nsec) ||
        !cJSON_AddStringToObject(e, "sha256", d->sha256) ||
        !cJSON_AddStringToObject(e, "url", p->url) ||
        !cJSON_AddStringToObject(e, "checked_against", checked))
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    return vnp_manifest_save(fc->cfg->cache_dir, fc->manifest, err);
}

static const char *manifest_sha256(fetch_ctx *fc, const char *file)
{
    cJSON *m = vnp_manifest_model(fc->manifest, fc->spec->name, 0);
    cJSON *e = m ? vnp_manifest_file(m, file, 0) : NULL;
    cJSON *s = e ? cJSON_GetObjectItemCaseSensitive(e, "sha256") : NULL;
    return cJSON_IsString(s) ? s->valuestring : NULL;
}

static const char *entry_str(const cJSON *e, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static double entry_num(const cJSON *e, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(e, key);
    return cJSON_IsNumber(v) ? v->valuedouble : -1.0;
}

static int same_or_unknown(const char *want, const char *have)
{
    return !want || !want[0] || (have && !strcmp(want, have));
}

/* A file recorded in the manifest, unchanged since (size and date), whose recorded
 * digests agree with what the server and the pins say now: good without re-hashing.
 * (`models verify` re-hashes; a file it finds damaged loses its recorded date.) */
static int unchanged_since_fetch(fetch_ctx *fc, const plan_file *p, const struct stat *st)
{
    cJSON *m = vnp_manifest_model(fc->manifest, fc->spec->name, 0);
    cJSON *e = m ? vnp_manifest_file(m, p->name, 0) : NULL;
    const char *sha = e ? entry_str(e, "sha256") : NULL;
    if (!sha || entry_num(e, "size") != (double)st->st_size ||
        entry_num(e, "mtime_s") != (double)st->st_mtim.tv_sec ||
        entry_num(e, "mtime_ns") != (double)st->st_mtim.tv_nsec)
        return 0;
    const char *git = entry_str(e, "git_blob");
    return same_or_unknown(p->head.sha256, sha) && same_or_unknown(p->head.git_sha1, git) &&
           (!p->pin || (same_or_unknown(p->pin->sha256, sha) &&
                        same_or_unknown(p->pin->git_sha1, git)));
}

/* Is the file already there and good? Sets p->have. */
static vnp_code check_existing(fetch_ctx *fc, plan_file *p, vnp_error *err)
{
    char path[VNP_HUB_PATH];
    snprintf(path, sizeof path, "%s/%s", fc->dir, p->name);
    struct stat st;
    if (stat(path, &st) != 0)
        return VNP_OK;
    if (unchanged_since_fetch(fc, p, &st)) {
        p->have = 1;
        return VNP_OK;
    }
    if (!fc->cfg->quiet && st.st_size > (64 << 20)) {
        char sz[32];
        vnp_hub_human_size((uint64_t)st.st_size, sz, sizeof sz);
        vnp_hub_note(fc->cfg, "%s: verifying %s (%s)", fc->spec->name, p->name, sz);
    }
    vnp_digest d;
    vnp_code rc = vnp_hub_digest_file(path, &d, need_git(p), err);
    if (rc)
        return rc;
    const char *checked;
    vnp_error e2;
    const char *rec = manifest_sha256(fc, p->name);
    int has_remote = p->head.sha256[0] || p->head.git_sha1[0] || p->pin;
    if (check_digest(fc, p, path, &d, &checked, &e2) != VNP_OK) {
        vnp_hub_note(fc->cfg, "%s: %s; downloading it again", fc->spec->name, e2.msg);
        return VNP_OK;
    }
    if (!has_remote && (!rec || strcmp(rec, d.sha256))) {
        if (rec)
            vnp_hub_note(fc->cfg, "%s: %s has changed since it was fetched; downloading it again",
                         fc->spec->name, path);
        return VNP_OK; /* nothing vouches for it: fetch it again */
    }
    if (rec && strcmp(rec, d.sha256) == 0 && !has_remote)
        checked = "SHA-256 recorded when fetched";
    p->have = 1;
    return record(fc, p, path, &d, checked, err);
}

static vnp_code download_one(fetch_ctx *fc, plan_file *p, vnp_error *err)
{
    char path[VNP_HUB_PATH], part[VNP_HUB_PATH + 8];
    snprintf(path, sizeof path, "%s/%s", fc->dir, p->name);
    snprintf(part, sizeof part, "%s.part", path);
    for (int pass = 0;; pass++) {
        struct stat st;
        int resumed = stat(part, &st) == 0 && st.st_size > 0;
        if (!fc->cfg->progress && !fc->cfg->quiet) {
            char sz[32] = "size unknown";
            if (p->head.size >= 0)
                vnp_hub_human_size((uint64_t)p->head.size, sz, sizeof sz);
            vnp_hub_note(fc->cfg, "%s: downloading %s (%s)", fc->spec->name, p->name, sz);
        }
        vnp_code rc = vnp_http_download(fc->cfg, p->url, part, p->head.size, p->name, err);
        if (rc) {
            vnp_error_prefix(err, "%s: ", fc->spec->name);
            return rc;
        }
        vnp_digest d;
        if ((rc = vnp_hub_digest_file(part, &d, need_git(p), err)))
            return rc;
        const char *checked;
        rc = check_digest(fc, p, part, &d, &checked, err);
        if (rc && fc->fallback && pinned(p)) {
            /* a file of the default branch that is not the pinned one: refused, whatever
             * else differs (a resumed part of it would not help) */
            unlink(part);
            if (p->pin->sha256 && strcmp(p->pin->sha256, d.sha256))
                return fallback_refused(fc, p, "SHA-256", p->pin->sha256, d.sha256, err);
            if (p->pin->git_sha1 && strcmp(p->pin->git_sha1, d.git_sha1))
                return fallback_refused(fc, p, "git blob id", p->pin->git_sha1, d.git_sha1,
                                        err);
        }
        if (rc) {
            unlink(part);
            if (resumed && pass == 0) {
                vnp_hub_note(fc->cfg, "%s: %s; the resumed download is discarded, starting over",
                             fc->spec->name, err->msg);
                continue;
            }
            vnp_error_prefix(err, "%s: downloaded file rejected and removed: ", fc->spec->name);
            return rc;
        }
        if (rename(part, path) != 0)
            return vnp_fail(err, VNP_EIO, "cannot rename %s to %s: %s", part, path,
                            strerror(errno));
        p->have = 1;
        return record(fc, p, path, &d, checked, err);
    }
}

/* The shards a *.index.json lists in its weight_map. */
static vnp_code add_shards(fetch_ctx *fc, const char *index_name, vnp_error *err)
{
    char path[VNP_HUB_PATH];
    snprintf(path, sizeof path, "%s/%s", fc->dir, index_name);
    FILE *f = fopen(path, "rb");
    if (!f)
        return vnp_fail(err, VNP_EIO, "cannot open %s: %s", path, strerror(errno));
    char *buf = malloc(16 << 20);
    size_t n = buf ? fread(buf, 1, (16 << 20) - 1, f) : 0;
    fclose(f);
    if (!buf)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    cJSON *root = cJSON_ParseWithLength(buf, n);
    free(buf);
    cJSON *map = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!cJSON_IsObject(map) || !map->child) {
        cJSON_Delete(root);
        return vnp_fail(err, VNP_EFORMAT, "%s has no \"weight_map\" object naming the shards",
                        path);
    }
    vnp_code rc = VNP_OK;
    for (cJSON *it = map->child; it && !rc; it = it->next) {
        if (!cJSON_IsString(it) || !safe_file_name(it->valuestring)) {
            rc = vnp_fail(err, VNP_EFORMAT, "%s: tensor \"%s\" maps to an invalid shard name",
                          path, it->string ? it->string : "?");
            break;
        }
        plan_file *p = plan_add(fc, it->valuestring, err);
        if (!p) {
            rc = err ? err->code : VNP_EFORMAT;
            break;
        }
        if (p->head.status)
            continue; /* already probed */
        int found;
        if ((rc = probe(fc, p, &found, err)))
            break;
        if (!found)
            rc = vnp_fail(err, VNP_ENOTFOUND, "%s: %s lists shard %s, but %s answers HTTP %ld",
                          fc->spec->name, index_name, p->name, p->url, p->head.status);
    }
    cJSON_Delete(root);
    return rc;
}

static vnp_code check_space(fetch_ctx *fc, vnp_error *err)
{
    uint64_t need = 0;
    for (int i = 0; i < fc->n; i++) {
        plan_file *p = &fc->files[i];
        if (p->have || p->head.size < 0)
            continue;
        char part[VNP_HUB_PATH + 300];
        snprintf(part, sizeof part, "%s/%s.part", fc->dir, p->name);
        struct stat st;
        uint64_t have = (stat(part, &st) == 0 && st.st_size <= p->head.size) ? (uint64_t)st.st_size
                                                                              : 0;
        need += (uint64_t)p->head.size - have;
    }
    if (need == 0)
        return VNP_OK;
    struct statvfs vfs;
    if (statvfs(fc->dir, &vfs) != 0)
        return VNP_OK; /* cannot tell: let the writes report it */
    uint64_t avail = (uint64_t)vfs.f_bavail * (uint64_t)vfs.f_frsize;
    if (avail < need + SPACE_MARGIN) {
        char a[32], b[32];
        vnp_hub_human_size(need, a, sizeof a);
        vnp_hub_human_size(avail, b, sizeof b);
        return vnp_fail(err, VNP_EIO,
                        "%s needs %s more in %s, but only %s is free; free some space or choose "
                        "another cache with --dir or VIRNUCPRO_MODELS",
                        fc->spec->name, a, fc->dir, b);
    }
    return VNP_OK;
}

/* Removes manifest entries (and their files) that the current plan no longer has. */
static void drop_stale(fetch_ctx *fc)
{
    cJSON *m = vnp_manifest_model(fc->manifest, fc->spec->name, 0);
    cJSON *files = m ? cJSON_GetObjectItemCaseSensitive(m, "files") : NULL;
    if (!cJSON_IsObject(files))
        return;
    for (cJSON *it = files->child; it;) {
        cJSON *next = it->next;
        int keep = 0;
        for (int i = 0; i < fc->n; i++)
            keep |= fc->files[i].have && !strcmp(fc->files[i].name, it->string);
        if (!keep) {
            char path[VNP_HUB_PATH];
            snprintf(path, sizeof path, "%s/%s", fc->dir, it->string);
            if (safe_file_name(it->string))
                unlink(path);
            cJSON_DeleteItemFromObjectCaseSensitive(files, it->string);
        }
        it = next;
    }
}

static vnp_code set_string(cJSON *obj, const char *key, const char *val)
{
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    return cJSON_AddStringToObject(obj, key, val) ? VNP_OK : VNP_ENOMEM;
}

/* The first file of the pinned revision answered 404. Unless the hub says the revision
 * exists (X-Error-Code: EntryNotFound), asks the default branch for it: when it has it,
 * every file comes from there (*found = 1, fc->fallback). */
static vnp_code fall_back(fetch_ctx *fc, plan_file *p, int *found, vnp_error *err)
{
    const vnp_model_spec *spec = fc->spec;
    const char *branch = vnp_hub_default_branch(spec);
    *found = 0;
    if (!strcmp(spec->revision, branch) || !strcmp(p->head.error_code, "EntryNotFound"))
        return VNP_OK;
    plan_file alt = *p;
    fc->tried_default = 1;
    vnp_hub_file_url(fc->cfg, spec, branch, p->name, alt.url, sizeof alt.url);
    vnp_code rc = vnp_http_probe(fc->cfg, alt.url, &alt.head, err);
    if (rc || alt.head.status < 200 || alt.head.status >= 300)
        return rc; /* not there either: the error names the pinned revision */
    fc->rev = branch;
    fc->fallback = 1;
    snprintf(fc->commit, sizeof fc->commit, "%s", alt.head.commit);
    char c[96];
    vnp_warn("%s: the pinned revision %s of %s is not found (%s answers HTTP %ld%s%s); "
             "fetching the default branch %s%s instead, accepting a file only when it matches "
             "the digest pinned for revision %s",
             spec->name, spec->revision, spec->repo, p->url, p->head.status,
             p->head.error_code[0] ? ", " : "", p->head.error_code, branch,
             commit_note(fc, c, sizeof c), spec->revision);
    /* probe() again for the checks of the pin against what the server reports */
    snprintf(p->url, sizeof p->url, "%s", alt.url);
    return probe(fc, p, found, err);
}

static vnp_code fetch_locked(fetch_ctx *fc, vnp_error *err)
{
    const vnp_model_spec *spec = fc->spec;
    vnp_code rc;
    cJSON *m = vnp_manifest_model(fc->manifest, spec->name, 1);
    if (!m)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    /* not complete until every file is in */
    cJSON_DeleteItemFromObjectCaseSensitive(m, "complete");
    /* "revision" stays the pinned one (what the cache holds the model for); a fallback
     * adds the branch and commit the files came from */
    cJSON_DeleteItemFromObjectCaseSensitive(m, "fetched_revision");
    cJSON_DeleteItemFromObjectCaseSensitive(m, "fetched_commit");
    if (!cJSON_AddFalseToObject(m, "complete") || set_string(m, "repo", spec->repo) ||
        set_string(m, "revision", spec->revision))
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    if ((rc = vnp_manifest_save(fc->cfg->cache_dir, fc->manifest, err)))
        return rc;

    for (int i = 0; spec->required[i]; i++) {
        plan_file *p = plan_add(fc, spec->required[i], err);
        int found;
        if (!p)
            return err ? err->code : VNP_EFORMAT;
        if ((rc = probe(fc, p, &found, err)))
            return rc;
        if (!found && i == 0 && (rc = fall_back(fc, p, &found, err)))
            return rc;
        if (!found)
            return vnp_fail(err, VNP_ENOTFOUND,
                            "%s: %s has no %s at revision %s (%s answers HTTP %ld)%s; a mirror "
                            "(VIRNUCPRO_HUB_URL / VIRNUCPRO_GITHUB_URL) must serve that revision",
                            spec->name, spec->repo, p->name, fc->rev, p->url, p->head.status,
                            fc->tried_default && !fc->fallback ? ", nor on its default branch"
                                                                : "");
    }
    if (fc->fallback && (set_string(m, "fetched_revision", fc->rev) ||
                         (fc->commit[0] && set_string(m, "fetched_commit", fc->commit))))
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    for (int i = 0; spec->optional[i]; i++) {
        plan_file *p = plan_add(fc, spec->optional[i], err);
        int found;
        if (!p)
            return err ? err->code : VNP_EFORMAT;
        if ((rc = probe(fc, p, &found, err)))
            return rc;
        if (!found)
            fc->n--; /* not in this revision */
    }
    const char *index = NULL;
    if (spec->weights[0]) {
        int found = 0;
        for (int i = 0; spec->weights[i] && !found; i++) {
            plan_file *p = plan_add(fc, spec->weights[i], err);
            if (!p)
                return err ? err->code : VNP_EFORMAT;
            if ((rc = probe(fc, p, &found, err)))
                return rc;
            if (!found)
                fc->n--;
            else if (strstr(p->name, ".index.json"))
                index = spec->weights[i];
        }
        if (!found)
            return vnp_fail(err, VNP_ENOTFOUND,
                            "%s: %s has none of the weight files (%s, %s, %s, %s) at revision %s",
                            spec->name, spec->repo, spec->weights[0],
                            spec->weights[1] ? spec->weights[1] : "-",
                            spec->weights[2] ? spec->weights[2] : "-",
                            spec->weights[3] ? spec->weights[3] : "-", fc->rev);
    }
    /* files already present */
    for (int i = 0; i < fc->n; i++)
        if ((rc = check_existing(fc, &fc->files[i], err)))
            return rc;
    if (index) {
        plan_file *ip = plan_add(fc, index, err);
        if (!ip->have && (rc = download_one(fc, ip, err)))
            return rc;
        int before = fc->n;
        if ((rc = add_shards(fc, index, err)))
            return rc;
        for (int i = before; i < fc->n; i++)
            if ((rc = check_existing(fc, &fc->files[i], err)))
                return rc;
    }
    if ((rc = check_space(fc, err)))
        return rc;
    int fetched = 0;
    for (int i = 0; i < fc->n; i++) {
        if (fc->files[i].have)
            continue;
        if ((rc = download_one(fc, &fc->files[i], err)))
            return rc;
        fetched++;
    }
    drop_stale(fc);
    m = vnp_manifest_model(fc->manifest, spec->name, 1);
    char when[32];
    time_t t = time(NULL);
    struct tm tmv;
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime_r(&t, &tmv));
    cJSON_DeleteItemFromObjectCaseSensitive(m, "complete");
    if (!cJSON_AddTrueToObject(m, "complete") || set_string(m, "fetched", when))
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    if ((rc = vnp_manifest_save(fc->cfg->cache_dir, fc->manifest, err)))
        return rc;
    uint64_t total = 0;
    for (int i = 0; i < fc->n; i++)
        total += fc->files[i].head.size > 0 ? (uint64_t)fc->files[i].head.size : 0;
    char sz[32];
    vnp_hub_human_size(total, sz, sizeof sz);
    if (fc->unverified)
        vnp_hub_note(fc->cfg, "%s: %s (%d files, %s; %d not verified, see above) in %s",
                     spec->name, fetched ? "fetched" : "already cached", fc->n, sz,
                     fc->unverified, fc->dir);
    else
        vnp_hub_note(fc->cfg, "%s: %s (%d files, %s) in %s", spec->name,
                     fetched ? "fetched and verified" : "already cached and verified", fc->n,
                     sz, fc->dir);
    return VNP_OK;
}

vnp_code vnp_hub_fetch_spec(const vnp_hub_cfg *cfg, const vnp_model_spec *spec, vnp_error *err)
{
    if (cfg->offline) {
        cJSON *man = NULL;
        int ok = vnp_manifest_load(cfg->cache_dir, &man, NULL) == VNP_OK &&
                 vnp_hub_cached_ok(cfg, spec, man);
        cJSON *m = man && !ok ? vnp_manifest_model(man, spec->name, 0) : NULL;
        int complete = m && cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "complete"));
        cJSON_Delete(man);
        if (ok)
            return VNP_OK;
        if (complete) {
            /* in the cache, but a file changed since it was verified: re-hash it */
            vnp_error verr;
            if (vnp_hub_verify_spec(cfg, spec, NULL, NULL, &verr) == VNP_OK)
                return VNP_OK;
            return vnp_fail(err, verr.code, "%s (VIRNUCPRO_OFFLINE=1 forbids downloading it again)",
                            verr.msg);
        }
        return vnp_fail(err, VNP_ENOTFOUND,
                        "model %s is not in the cache %s and VIRNUCPRO_OFFLINE=1 forbids "
                        "downloading it; on a machine with internet run `virnucpro models fetch "
                        "%s --dir DIR` and copy DIR here as %s (or point VIRNUCPRO_MODELS at it)",
                        spec->name, cfg->cache_dir, spec->name, cfg->cache_dir);
    }
    fetch_ctx *fc = calloc(1, sizeof *fc);
    if (!fc)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    fc->cfg = cfg;
    fc->spec = spec;
    fc->rev = spec->revision;
    vnp_hub_model_dir(cfg, spec, fc->dir, sizeof fc->dir);
    vnp_code rc = vnp_mkdirs(fc->dir, "model cache directory", err);
    vnp_cache_lock lk = {-1};
    if (!rc)
        rc = vnp_cache_lock_take(cfg->cache_dir, &lk, cfg->quiet, err);
    if (!rc)
        rc = vnp_manifest_load(cfg->cache_dir, &fc->manifest, err);
    if (!rc && vnp_hub_cached_ok(cfg, spec, fc->manifest)) {
        /* complete and unchanged since verified (maybe by a process we waited for) */
        vnp_hub_note(cfg, "%s: already cached and verified in %s", spec->name, fc->dir);
    } else if (!rc) {
        rc = fetch_locked(fc, err);
    }
    cJSON_Delete(fc->manifest);
    vnp_cache_lock_release(&lk);
    free(fc);
    return rc;
}
