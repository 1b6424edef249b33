#include "hub_test_server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/fs.h"
#include "hub/hub_internal.h"
#include "test_support.h"

void hub_mkdirs(const char *dir)
{
    vnp_error err;
    if (vnp_mkdirs(dir, "test directory", &err) != VNP_OK)
        fail_msg("%s", err.msg);
}

void hub_tree_write(const char *tree, const char *rel, const char *data, size_t len)
{
    char path[2048], dir[2048];
    snprintf(path, sizeof path, "%s/%s", tree, rel);
    snprintf(dir, sizeof dir, "%s", path);
    *strrchr(dir, '/') = 0;
    hub_mkdirs(dir);
    if (vnp_test_write_file(path, data, len) != 0)
        fail_msg("cannot write %s", path);
}

void hub_tree_put(const char *tree, const char *rel, const char *src)
{
    size_t n;
    char *d = vnp_test_read_file(src, &n);
    if (!d)
        fail_msg("cannot read %s", src);
    hub_tree_write(tree, rel, d, n);
    free(d);
}

const char *hub_model_url_path(const char *model, const char *file)
{
    static char b[4][1024];
    static int k;
    char *p = b[k++ & 3];
    const vnp_model_spec *s = vnp_hub_spec(model);
    if (!s)
        fail_msg("%s is not in the model table", model);
    if (s->source == VNP_SOURCE_HF_HUB)
        snprintf(p, sizeof b[0], "/hub/%s/resolve/%s/%s", s->repo, s->revision, file);
    else
        snprintf(p, sizeof b[0], "/gh/%s/%s/%s", s->repo, s->revision, file);
    return p;
}

void hub_tree_build(const char *tree)
{
    static const char *const esm[] = {"config.json", "model.safetensors", "vocab.txt", NULL};
    static const char *const dna[] = {"config.json", "pytorch_model.bin", "special_tokens_map.json",
                                      "tokenizer.json", "tokenizer_config.json", NULL};
    static const char *const cls[] = {"classifier-300", "classifier-500", NULL};
    char src[1024];
    for (int i = 0; esm[i]; i++) {
        snprintf(src, sizeof src, "golden/esm2/%s", esm[i]);
        hub_tree_put(tree, hub_model_url_path("esm2_t36_3B_UR50D", esm[i]) + 1,
                     vnp_test_fixture(src));
    }
    for (int i = 0; dna[i]; i++) {
        snprintf(src, sizeof src, "golden/dnabert_s/%s", dna[i]);
        hub_tree_put(tree, hub_model_url_path("dnabert-s", dna[i]) + 1, vnp_test_fixture(src));
    }
    for (int i = 0; cls[i]; i++)
        hub_tree_put(tree, hub_model_url_path(cls[i], vnp_hub_spec(cls[i])->load_file) + 1,
                     vnp_test_fixture("golden/classifier.pth"));
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        fail_msg("cannot find a free port: %s", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static int can_connect(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

void hub_server_start(hub_server *s, const char *tree, const char *state)
{
    const char *src = getenv("VNP_SOURCE_DIR");
    if (!src)
        fail_msg("VNP_SOURCE_DIR is not set (run through ctest)");
    hub_mkdirs(state);
    for (int tries = 0; tries < 3; tries++) {
        memset(s, 0, sizeof *s);
        snprintf(s->state, sizeof s->state, "%s", state);
        s->port = free_port();
        snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
        char script[1024], port[16], out[1200];
        snprintf(script, sizeof script, "%s/tests/hub/serve.sh", src);
        snprintf(port, sizeof port, "%d", s->port);
        snprintf(out, sizeof out, "%s/server.out", state);
        char log[1200];
        snprintf(log, sizeof log, "%s/access.log", state);
        unlink(log);
        pid_t pid = fork();
        if (pid == 0) {
            int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            if (fd >= 0) {
                dup2(fd, 1);
                dup2(fd, 2);
            }
            execl("/bin/bash", "bash", script, tree, port, state, "300", (char *)NULL);
            _exit(127);
        }
        s->pid = pid;
        for (int i = 0; i < 200; i++) {
            if (can_connect(s->port))
                return;
            int st;
            if (waitpid(pid, &st, WNOHANG) == pid)
                break;
            usleep(50000);
        }
        hub_server_stop(s);
    }
    char out[1200];
    snprintf(out, sizeof out, "%s/server.out", state);
    char *msg = vnp_test_read_file(out, NULL);
    fail_msg("lighttpd did not start (is it installed? scripts/install-deps.sh --test): %s",
             msg ? msg : "");
}

void hub_server_stop(hub_server *s)
{
    if (s->pid > 0) {
        kill(s->pid, SIGTERM);
        int st;
        for (int i = 0; i < 100 && waitpid(s->pid, &st, WNOHANG) == 0; i++)
            usleep(20000);
        kill(s->pid, SIGKILL);
        waitpid(s->pid, &st, 0);
    }
    s->pid = 0;
}

/* lighttpd flushes its access log about once a second: request a marker URL and
 * wait until it is logged, so that every earlier request is in the file. */
static void sync_log(const hub_server *s, const char *path)
{
    static int serial;
    char marker[64], req[128];
    snprintf(marker, sizeof marker, "/__sync__/%d-%d", (int)getpid(), ++serial);
    snprintf(req, sizeof req, "HEAD %s HTTP/1.0\r\n\r\n", marker);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)s->port),
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0)
        fail_msg("cannot reach the test server: %s", strerror(errno));
    if (write(fd, req, strlen(req)) < 0)
        fail_msg("cannot write to the test server: %s", strerror(errno));
    char buf[512];
    while (read(fd, buf, sizeof buf) > 0) {
    }
    close(fd);
    for (int i = 0; i < 100; i++) {
        char *text = vnp_test_read_file(path, NULL);
        int found = text && strstr(text, marker);
        free(text);
        if (found)
            return;
        usleep(50000);
    }
    fail_msg("the access log %s never showed %s", path, marker);
}

static int log_scan(const hub_server *s, const char *method, int status, const char *suffix,
                    char *range, size_t cap)
{
    char path[1200];
    snprintf(path, sizeof path, "%s/access.log", s->state);
    sync_log(s, path);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        char m[16], url[2048], rg[256] = "-";
        int st;
        long long bytes;
        if (sscanf(line, "%15s %d %lld %2047s %255s", m, &st, &bytes, url, rg) < 4)
            continue;
        size_t ul = strlen(url), sl = strlen(suffix);
        if (strcmp(m, method) || (status && st != status) || ul < sl ||
            strcmp(url + ul - sl, suffix))
            continue;
        if (n == 0 && range)
            snprintf(range, cap, "%s", rg);
        n++;
    }
    fclose(f);
    return n;
}

int hub_log_count(const hub_server *s, const char *method, int status, const char *url_suffix)
{
    return log_scan(s, method, status, url_suffix, NULL, 0);
}

int hub_log_range(const hub_server *s, const char *method, int status, const char *url_suffix,
                  char *out, size_t cap)
{
    return log_scan(s, method, status, url_suffix, out, cap);
}

/* ---- raw servers ---- */
static void *raw_main(void *arg)
{
    raw_server *r = arg;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int stop = r->stop;
        pthread_mutex_unlock(&r->mu);
        if (stop)
            break;
        struct pollfd p = {.fd = r->fd, .events = POLLIN};
        if (poll(&p, 1, 50) <= 0)
            continue;
        int c = accept(r->fd, NULL, NULL);
        if (c < 0)
            continue;
        char req[4096];
        size_t n = 0;
        struct pollfd pc = {.fd = c, .events = POLLIN};
        while (n < sizeof req - 1 && poll(&pc, 1, 2000) > 0) {
            ssize_t k = read(c, req + n, sizeof req - 1 - n);
            if (k <= 0)
                break;
            n += (size_t)k;
            req[n] = 0;
            if (strstr(req, "\r\n\r\n"))
                break;
        }
        req[n] = 0;
        pthread_mutex_lock(&r->mu);
        r->requests++;
        if (!strncmp(req, "HEAD ", 5))
            r->heads++;
        if (!strncmp(req, "GET ", 4)) {
            r->gets++;
            const char *rg = strstr(req, "\r\nRange: ");
            r->last_range[0] = 0;
            if (rg)
                sscanf(rg + 9, "%63[^\r\n]", r->last_range);
        }
        pthread_mutex_unlock(&r->mu);
        char resp[512];
        int len = 0;
        if (r->mode == RAW_STALL) {
            if (r->nheld < 64)
                r->held[r->nheld++] = c;
            else
                close(c);
            continue;
        } else if (r->mode == RAW_TRICKLE) {
            if (!strncmp(req, "HEAD ", 5)) {
                len = snprintf(resp, sizeof resp,
                               "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n"
                               "Connection: close\r\n\r\n");
            } else {
                char body[400];
                memset(body, 'v', sizeof body);
                len = snprintf(resp, sizeof resp,
                               "HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n");
                if (write(c, resp, (size_t)len) < 0 || write(c, body, sizeof body) < 0) {
                    /* the client went away */
                }
                if (r->nheld < 64)
                    r->held[r->nheld++] = c;
                else
                    close(c);
                continue;
            }
        } else if (r->mode == RAW_STATUS) {
            len = snprintf(resp, sizeof resp,
                           "HTTP/1.1 %d Test\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                           r->status);
        } else {
            len = snprintf(resp, sizeof resp,
                           "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000\r\n"
                           "ETag: \"0000000000000000000000000000000000000000000000000000000000000000\"\r\n"
                           "Connection: close\r\n\r\n");
        }
        if (write(c, resp, (size_t)len) < 0) {
            /* the client went away */
        }
        close(c);
    }
    return NULL;
}

void raw_server_start(raw_server *r, raw_mode mode, int status)
{
    memset(r, 0, sizeof *r);
    r->mode = mode;
    r->status = status;
    pthread_mutex_init(&r->mu, NULL);
    r->fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (r->fd < 0 || bind(r->fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        listen(r->fd, 16) != 0 || getsockname(r->fd, (struct sockaddr *)&a, &len) != 0)
        fail_msg("raw server: %s", strerror(errno));
    r->port = ntohs(a.sin_port);
    snprintf(r->base, sizeof r->base, "http://127.0.0.1:%d", r->port);
    if (pthread_create(&r->th, NULL, raw_main, r) != 0)
        fail_msg("raw server thread");
}

void raw_server_stop(raw_server *r)
{
    pthread_mutex_lock(&r->mu);
    r->stop = 1;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->th, NULL);
    for (int i = 0; i < r->nheld; i++)
        close(r->held[i]);
    close(r->fd);
    pthread_mutex_destroy(&r->mu);
}

int raw_server_requests(raw_server *r, int *heads, int *gets)
{
    pthread_mutex_lock(&r->mu);
    int n = r->requests;
    if (heads)
        *heads = r->heads;
    if (gets)
        *gets = r->gets;
    pthread_mutex_unlock(&r->mu);
    return n;
}
