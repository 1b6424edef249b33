/* HTTP(S) with libcurl: HEAD probes and resumable downloads, with retries and
 * exponential backoff on transient failures (5xx, 408, 429, timeouts, resets),
 * none on 404, and a stall limit so that a silent server fails in bounded time.
 * libcurl takes proxies from http_proxy / https_proxy / no_proxy. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "hub/hub_internal.h"

#ifndef VNP_VERSION_STRING
#define VNP_VERSION_STRING "0.1.0"
#endif

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc = CURLE_OK;
static void curl_init(void) { curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT); }

/* Headers of the responses seen so far (redirects included). */
typedef struct resp_headers {
    long status;            /* of the latest response */
    char etag[128];         /* ETag of the latest response */
    char linked_etag[128];  /* X-Linked-Etag of any response */
    int64_t linked_size;    /* X-Linked-Size of any response, -1 */
    int64_t content_length; /* Content-Length of the latest response, -1 */
    int64_t range_start;    /* Content-Range start of the latest response, -1 */
    char commit[64];
    char error_code[32];    /* X-Error-Code of the latest response */
    long retry_after;       /* seconds, -1 */
} resp_headers;

static void headers_reset(resp_headers *h)
{
    memset(h, 0, sizeof *h);
    h->linked_size = h->content_length = h->range_start = -1;
    h->retry_after = -1;
}

/* Copies a header value without quotes, a weak W/ prefix, or surrounding spaces. */
static void header_value(const char *v, size_t n, char *out, size_t cap)
{
    while (n && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n >= 2 && v[0] == 'W' && v[1] == '/') {
        v += 2;
        n -= 2;
    }
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
        v++;
        n -= 2;
    }
    if (n >= cap)
        n = cap - 1;
    memcpy(out, v, n);
    out[n] = 0;
}

static int header_is(const char *line, size_t n, const char *name, const char **val, size_t *vn)
{
    size_t k = strlen(name);
    if (n <= k || line[k] != ':' || strncasecmp(line, name, k) != 0)
        return 0;
    *val = line + k + 1;
    *vn = n - k - 1;
    return 1;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *user)
{
    resp_headers *h = user;
    size_t n = size * nitems;
    const char *v;
    size_t vn;
    char tmp[128];
    if (n >= 5 && !strncmp(buf, "HTTP/", 5)) {
        /* a new response (first, or after a redirect / 100 Continue) */
        const char *sp = memchr(buf, ' ', n);
        h->status = sp ? strtol(sp + 1, NULL, 10) : 0;
        h->etag[0] = 0;
        h->error_code[0] = 0;
        h->content_length = h->range_start = -1;
        h->retry_after = -1;
    } else if (header_is(buf, n, "ETag", &v, &vn)) {
        header_value(v, vn, h->etag, sizeof h->etag);
    } else if (header_is(buf, n, "X-Linked-Etag", &v, &vn)) {
        header_value(v, vn, h->linked_etag, sizeof h->linked_etag);
    } else if (header_is(buf, n, "X-Linked-Size", &v, &vn)) {
        header_value(v, vn, tmp, sizeof tmp);
        h->linked_size = strtoll(tmp, NULL, 10);
    } else if (header_is(buf, n, "Content-Length", &v, &vn)) {
        header_value(v, vn, tmp, sizeof tmp);
        h->content_length = strtoll(tmp, NULL, 10);
    } else if (header_is(buf, n, "Content-Range", &v, &vn)) {
        header_value(v, vn, tmp, sizeof tmp);
        const char *p = strstr(tmp, "bytes ");
        if (p && p[6] >= '0' && p[6] <= '9')
            h->range_start = strtoll(p + 6, NULL, 10);
    } else if (header_is(buf, n, "X-Repo-Commit", &v, &vn)) {
        header_value(v, vn, h->commit, sizeof h->commit);
    } else if (header_is(buf, n, "X-Error-Code", &v, &vn)) {
        header_value(v, vn, h->error_code, sizeof h->error_code);
    } else if (header_is(buf, n, "Retry-After", &v, &vn)) {
        header_value(v, vn, tmp, sizeof tmp);
        char *end;
        long s = strtol(tmp, &end, 10);
        if (end != tmp && *end == 0 && s >= 0)
            h->retry_after = s;
    }
    return n;
}

static CURL *new_handle(const vnp_hub_cfg *cfg, const char *url, resp_headers *hdr, char *ebuf)
{
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "virnucpro/" VNP_VERSION_STRING);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, hdr);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, (long)(cfg->stall_seconds < 30 ? cfg->stall_seconds : 30));
    /* fewer than 1 byte/s for stall_seconds: the transfer (waiting for the
     * response included) fails with CURLE_OPERATION_TIMEDOUT */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)cfg->stall_seconds);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    ebuf[0] = 0;
    return c;
}

static int curl_transient(CURLcode rc)
{
    switch (rc) {
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_COULDNT_CONNECT:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_PARTIAL_FILE:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        return 1;
    default:
        return 0;
    }
}

static int status_transient(long s) { return s >= 500 || s == 408 || s == 429; }

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

static long backoff_ms(const vnp_hub_cfg *cfg, int attempt, long retry_after)
{
    if (retry_after >= 0)
        return (retry_after > 60 ? 60 : retry_after) * 1000L;
    long d = cfg->retry_delay_ms;
    for (int i = 0; i < attempt && d < 60000; i++)
        d *= 2;
    return d > 60000 ? 60000 : d;
}

/* Describes a failed attempt in why[]. */
static void describe(CURLcode rc, long status, const char *ebuf, const vnp_hub_cfg *cfg,
                     char *why, size_t cap)
{
    if (rc == CURLE_OPERATION_TIMEDOUT)
        snprintf(why, cap, "the server stalled: no data for %d s (%s)", cfg->stall_seconds,
                 ebuf[0] ? ebuf : curl_easy_strerror(rc));
    else if (rc != CURLE_OK)
        snprintf(why, cap, "%s", ebuf[0] ? ebuf : curl_easy_strerror(rc));
    else
        snprintf(why, cap, "HTTP %ld", status);
}

/* Where to go when this machine cannot download the models. */
#define OFFLINE_ROUTE                                                                      \
    "; without internet here: run `virnucpro models fetch all --dir DIR` on a machine "     \
    "with it, copy DIR here and set VIRNUCPRO_MODELS=DIR (VIRNUCPRO_OFFLINE=1 then never "  \
    "tries the network), or give --esm/--dnabert/--classifier paths"

/* A host name that does not resolve: no DNS here (a cluster node without internet) or a
 * wrong mirror URL. Retrying does not help (it cost 31 s of back-off before): fail now. */
static int curl_unresolved(CURLcode rc)
{
    return rc == CURLE_COULDNT_RESOLVE_HOST || rc == CURLE_COULDNT_RESOLVE_PROXY;
}

static vnp_code retry_or_fail(const vnp_hub_cfg *cfg, int *attempt, const char *url,
                              const char *why, long retry_after, int transient, vnp_error *err)
{
    if (!transient)
        return vnp_fail(err, VNP_ENET, "%s: %s", url, why);
    if (*attempt >= cfg->retries)
        return vnp_fail(err, VNP_ENET,
                        "%s: %s (gave up after %d attempt%s); check the network or proxy "
                        "(https_proxy) and run the command again: completed files are kept and "
                        "a partial download resumes" OFFLINE_ROUTE,
                        url, why, *attempt + 1, *attempt ? "s" : "");
    long ms = backoff_ms(cfg, *attempt, retry_after);
    vnp_hub_note(cfg, "%s: %s; retrying in %.1f s (attempt %d of %d)", url, why, ms / 1000.0,
                 *attempt + 2, cfg->retries + 1);
    sleep_ms(ms);
    (*attempt)++;
    return VNP_OK;
}

vnp_code vnp_http_probe(const vnp_hub_cfg *cfg, const char *url, vnp_http_head *head,
                        vnp_error *err)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return vnp_fail(err, VNP_ENET, "libcurl initialisation failed: %s",
                        curl_easy_strerror(curl_init_rc));
    if (cfg->offline)
        return vnp_fail(err, VNP_ENET, "offline (VIRNUCPRO_OFFLINE=1): not contacting %s", url);
    memset(head, 0, sizeof *head);
    head->size = -1;
    char target[4096];
    snprintf(target, sizeof target, "%s", url);
    int redirects = 0;
    for (int attempt = 0;;) {
        resp_headers hdr;
        headers_reset(&hdr);
        char ebuf[CURL_ERROR_SIZE];
        CURL *c = new_handle(cfg, target, &hdr, ebuf);
        if (!c)
            return vnp_fail(err, VNP_ENOMEM, "cannot create a libcurl handle");
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        /* Redirects are followed by hand: the hub answers a large file with a
         * redirect to its storage that already carries X-Linked-Size and
         * X-Linked-Etag, and a storage URL signed for GET may refuse a HEAD. */
        curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
        CURLcode rc = curl_easy_perform(c);
        long status = 0;
        char *loc = NULL;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(c, CURLINFO_REDIRECT_URL, &loc);
        int redirect = rc == CURLE_OK && status >= 300 && status < 400 && loc;
        if (redirect && !(hdr.linked_etag[0] || hdr.linked_size >= 0)) {
            snprintf(target, sizeof target, "%s", loc);
            curl_easy_cleanup(c);
            if (++redirects > 10)
                return vnp_fail(err, VNP_ENET, "%s: more than 10 redirects", url);
            continue;
        }
        curl_easy_cleanup(c);
        if (redirect)
            status = 200; /* the redirect itself describes the file */
        if (rc == CURLE_OK && status >= 200 && status < 300) {
            head->status = status;
            head->size = hdr.linked_size >= 0 ? hdr.linked_size : hdr.content_length;
            const char *tag = hdr.linked_etag[0] ? hdr.linked_etag : hdr.etag;
            if (vnp_hub_is_hex(tag, 64))
                snprintf(head->sha256, sizeof head->sha256, "%s", tag);
            else if (vnp_hub_is_hex(tag, 40))
                snprintf(head->git_sha1, sizeof head->git_sha1, "%s", tag);
            snprintf(head->commit, sizeof head->commit, "%s", hdr.commit);
            for (char *p = head->sha256; *p; p++)
                *p = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
            for (char *p = head->git_sha1; *p; p++)
                *p = (char)(*p >= 'A' && *p <= 'F' ? *p - 'A' + 'a' : *p);
            return VNP_OK;
        }
        if (rc == CURLE_OK && (status == 404 || status == 410)) {
            head->status = status;
            snprintf(head->error_code, sizeof head->error_code, "%s", hdr.error_code);
            return VNP_OK;
        }
        char why[512];
        describe(rc, status, ebuf, cfg, why, sizeof why);
        if (rc == CURLE_OK && (status == 401 || status == 403))
            return vnp_fail(err, VNP_ENET,
                            "%s: HTTP %ld: access denied (a gated or private repository, or a "
                            "mirror that needs credentials)",
                            url, status);
        if (curl_unresolved(rc))
            return vnp_fail(err, VNP_ENET,
                            "%s: %s: the host name does not resolve (no DNS or no internet on "
                            "this machine, or a wrong VIRNUCPRO_HUB_URL/VIRNUCPRO_GITHUB_URL)"
                            OFFLINE_ROUTE,
                            url, why);
        int transient = rc == CURLE_OK ? status_transient(status) : curl_transient(rc);
        vnp_code r = retry_or_fail(cfg, &attempt, url, why, hdr.retry_after, transient, err);
        if (r)
            return r;
    }
}

/* ---- download ---- */
typedef struct dl_ctx {
    FILE *f;
    const char *part;
    resp_headers *hdr;
    int64_t offset;       /* bytes in the file when this attempt started */
    int checked;          /* first body bytes seen and the response vetted */
    int discard;          /* body of an error response: not written */
    int write_errno;
    vnp_progress *prog;
    int stall_seconds;
    curl_off_t last_bytes; /* bytes received when they last changed ... */
    double last_change;    /* ... and when */
    int stalled;
} dl_ctx;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *user)
{
    dl_ctx *d = user;
    size_t n = size * nmemb;
    if (!d->checked) {
        d->checked = 1;
        long s = d->hdr->status;
        if (s == 200 && d->offset > 0) {
            /* the server ignored the Range: start the file over */
            if (fflush(d->f) != 0 || ftruncate(fileno(d->f), 0) != 0 || fseeko(d->f, 0, SEEK_SET)) {
                d->write_errno = errno;
                return 0;
            }
            d->offset = 0;
            d->prog->start_at = 0;
        } else if (s == 206 && d->hdr->range_start != d->offset) {
            d->write_errno = EPROTO;
            return 0;
        } else if (s < 200 || s >= 300) {
            d->discard = 1;
        }
    }
    if (d->discard)
        return n;
    if (fwrite(data, 1, n, d->f) != n) {
        d->write_errno = errno ? errno : EIO;
        return 0;
    }
    return n;
}

static int on_xfer(void *user, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                   curl_off_t ulnow)
{
    (void)dltotal;
    (void)ultotal;
    (void)ulnow;
    dl_ctx *d = user;
    if (!d->discard)
        vnp_progress_update(d->prog, d->offset + (int64_t)dlnow, 0);
    /* libcurl's low-speed check averages over a few seconds, so a burst followed by
     * silence would run past the limit: time the silence itself */
    double t = mono_s();
    if (dlnow != d->last_bytes || d->last_change == 0) {
        d->last_bytes = dlnow;
        d->last_change = t;
    } else if (t - d->last_change >= d->stall_seconds) {
        d->stalled = 1;
        return 1;
    }
    return 0;
}

static int64_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (int64_t)st.st_size : -1;
}

vnp_code vnp_http_download(const vnp_hub_cfg *cfg, const char *url, const char *part_path,
                           int64_t expected_size, const char *label, vnp_error *err)
{
    pthread_once(&curl_once, curl_init);
    if (curl_init_rc != CURLE_OK)
        return vnp_fail(err, VNP_ENET, "libcurl initialisation failed: %s",
                        curl_easy_strerror(curl_init_rc));
    if (cfg->offline)
        return vnp_fail(err, VNP_ENET, "offline (VIRNUCPRO_OFFLINE=1): not downloading %s", url);
    int range_refused = 0;
    for (int attempt = 0;;) {
        int64_t off = file_size(part_path);
        if (off < 0 || range_refused)
            off = 0;
        if (expected_size >= 0 && off == expected_size)
            return VNP_OK; /* complete from an earlier attempt */
        if (expected_size >= 0 && off > expected_size)
            off = 0;
        FILE *f = fopen(part_path, off > 0 ? "ab" : "wb");
        if (!f)
            return vnp_fail(err, VNP_EIO, "cannot write %s: %s", part_path, strerror(errno));
        if (off > 0 && !cfg->quiet && attempt == 0) {
            char have[32];
            vnp_hub_human_size((uint64_t)off, have, sizeof have);
            vnp_hub_note(cfg, "resuming %s from %s", label, have);
        }

        resp_headers hdr;
        headers_reset(&hdr);
        char ebuf[CURL_ERROR_SIZE];
        CURL *c = new_handle(cfg, url, &hdr, ebuf);
        if (!c) {
            fclose(f);
            return vnp_fail(err, VNP_ENOMEM, "cannot create a libcurl handle");
        }
        vnp_progress prog;
        vnp_progress_begin(&prog, cfg->progress, label, expected_size, off);
        dl_ctx d = {.f = f, .part = part_path, .hdr = &hdr, .offset = off, .prog = &prog,
                    .stall_seconds = cfg->stall_seconds};
        char range[48];
        if (off > 0) {
            snprintf(range, sizeof range, "%lld-", (long long)off);
            curl_easy_setopt(c, CURLOPT_RANGE, range);
        }
        curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &d);
        curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, on_xfer);
        curl_easy_setopt(c, CURLOPT_XFERINFODATA, &d);
        curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
        CURLcode rc = curl_easy_perform(c);
        if (rc == CURLE_ABORTED_BY_CALLBACK && d.stalled) {
            rc = CURLE_OPERATION_TIMEDOUT;
            snprintf(ebuf, CURL_ERROR_SIZE, "after %lld bytes of this attempt",
                     (long long)d.last_bytes);
        }
        long status = 0;
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_cleanup(c);
        int close_failed = 0;
        if (fflush(f) != 0 || fsync(fileno(f)) != 0)
            close_failed = errno;
        if (fclose(f) != 0 && !close_failed)
            close_failed = errno;
        int64_t now = file_size(part_path);
        if (!d.discard)
            vnp_progress_end(&prog, now > 0 ? now : 0);

        if (d.write_errno == EPROTO)
            return vnp_fail(err, VNP_ENET,
                            "%s: the server answered the range request from byte %lld with a "
                            "different range (%lld); remove %s and run the command again",
                            url, (long long)off, (long long)hdr.range_start, part_path);
        if (d.write_errno || close_failed)
            return vnp_fail(err, VNP_EIO, "cannot write %s: %s", part_path,
                            strerror(d.write_errno ? d.write_errno : close_failed));
        if (rc == CURLE_OK && status == 416 && off > 0 && !range_refused) {
            /* the partial file does not fit what the server has: start over */
            range_refused = 1;
            continue;
        }
        if (rc == CURLE_OK && status >= 200 && status < 300) {
            if (expected_size < 0 || now == expected_size)
                return VNP_OK;
            if (now > expected_size) {
                unlink(part_path);
                return vnp_fail(err, VNP_ENET,
                                "%s: received %lld bytes, more than the %lld announced; the "
                                "partial file was removed, run the command again",
                                url, (long long)now, (long long)expected_size);
            }
            rc = CURLE_PARTIAL_FILE; /* short: resume on the next attempt */
        }
        if (rc == CURLE_OK && (status == 404 || status == 410))
            return vnp_fail(err, VNP_ENOTFOUND, "%s: HTTP %ld: not found", url, status);
        if (rc == CURLE_OK && (status == 401 || status == 403))
            return vnp_fail(err, VNP_ENET, "%s: HTTP %ld: access denied", url, status);
        char why[512];
        describe(rc, status, ebuf, cfg, why, sizeof why);
        if (curl_unresolved(rc))
            return vnp_fail(err, VNP_ENET,
                            "%s: %s: the host name does not resolve (no DNS or no internet on "
                            "this machine, or a wrong VIRNUCPRO_HUB_URL/VIRNUCPRO_GITHUB_URL)"
                            OFFLINE_ROUTE,
                            url, why);
        int transient = rc == CURLE_OK ? status_transient(status) : curl_transient(rc);
        vnp_code r = retry_or_fail(cfg, &attempt, url, why, hdr.retry_after, transient, err);
        if (r)
            return r;
    }
}
