/* Test servers for tests/hub: lighttpd serving a hub-shaped tree of the golden
 * models (serve.sh), and tiny in-process servers that stall or answer one status. */
#ifndef VNP_HUB_TEST_SERVER_H
#define VNP_HUB_TEST_SERVER_H

#include <pthread.h>
#include <sys/types.h>

/* Copies the golden fixtures into tree/ at the URLs of the model table:
 * tree/hub/<repo>/resolve/<rev>/<file> and tree/gh/<repo>/<rev>/<file>. */
void hub_tree_build(const char *tree);
/* Copies one file (src) to tree/rel, creating directories. */
void hub_tree_put(const char *tree, const char *rel, const char *src);
/* Writes data to tree/rel. */
void hub_tree_write(const char *tree, const char *rel, const char *data, size_t len);
void hub_mkdirs(const char *dir);
/* The URL path ("/hub/<repo>/resolve/<rev>/<file>" or "/gh/<repo>/<rev>/<file>") at which
 * the model table fetches one file of a model; one of 4 rotating static buffers. */
const char *hub_model_url_path(const char *model, const char *file);

typedef struct hub_server {
    pid_t pid;
    int port;
    char state[1024];
    char base[128]; /* http://127.0.0.1:PORT */
} hub_server;

/* Starts lighttpd (tests/hub/serve.sh) on a free port; fails the test if it cannot. */
void hub_server_start(hub_server *s, const char *tree, const char *state);
void hub_server_stop(hub_server *s);
/* Lines of the access log ("METHOD STATUS BYTES URL RANGE") whose method, status
 * (0: any) and URL suffix match. */
int hub_log_count(const hub_server *s, const char *method, int status, const char *url_suffix);
/* The first matching line's range field ("-" when none) into out. */
int hub_log_range(const hub_server *s, const char *method, int status, const char *url_suffix,
                  char *out, size_t cap);

typedef enum raw_mode {
    RAW_STALL,  /* accept, read the request, never answer */
    RAW_STATUS, /* answer every request with one status and an empty body */
    RAW_HUGE,   /* answer HEAD with 200 and an enormous Content-Length */
    RAW_TRICKLE /* HEAD: 200, 1000 bytes; GET: the headers and 400 bytes, then silence */
} raw_mode;

typedef struct raw_server {
    int fd, port;
    raw_mode mode;
    int status;
    pthread_t th;
    pthread_mutex_t mu;
    int requests, heads, gets, stop;
    int held[64], nheld;
    char base[128];
    char last_range[64]; /* Range header of the latest GET, "" when none */
} raw_server;

void raw_server_start(raw_server *r, raw_mode mode, int status);
void raw_server_stop(raw_server *r);
int raw_server_requests(raw_server *r, int *heads, int *gets);

#endif
