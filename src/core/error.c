/* Error status and the logging sink. */
#include "virnucpro/error.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>

vnp_code vnp_fail(vnp_error *err, vnp_code code, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
        err->code = code;
    }
    return code;
}

void vnp_error_prefix(vnp_error *err, const char *fmt, ...)
{
    if (!err)
        return;
    char head[512], old[sizeof err->msg];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s%s", head, old);
}

void vnp_error_clear(vnp_error *err)
{
    if (err) {
        err->code = VNP_OK;
        err->msg[0] = '\0';
    }
}

const char *vnp_code_name(vnp_code code)
{
    switch (code) {
    case VNP_OK: return "ok";
    case VNP_EIO: return "I/O error";
    case VNP_EFORMAT: return "format error";
    case VNP_ENOMEM: return "out of memory";
    case VNP_EINVAL: return "invalid argument";
    case VNP_EUNSUPPORTED: return "unsupported";
    case VNP_ESHAPE: return "tensor shape error";
    case VNP_ENUMERIC: return "numeric error";
    case VNP_ENET: return "network error";
    case VNP_EINTEGRITY: return "integrity error";
    case VNP_EDEVICE: return "device error";
    case VNP_ENOTFOUND: return "not found";
    case VNP_EINTERRUPTED: return "interrupted";
    case VNP_EBUSY: return "busy";
    }
    return "unknown error";
}

static vnp_log_fn g_log_fn;
static void *g_log_user;
static vnp_log_level g_log_level = VNP_LOG_WARN;
static pthread_mutex_t g_log_mu = PTHREAD_MUTEX_INITIALIZER;

void vnp_log_set_handler(vnp_log_fn fn, void *user)
{
    pthread_mutex_lock(&g_log_mu);
    g_log_fn = fn;
    g_log_user = user;
    pthread_mutex_unlock(&g_log_mu);
}

void vnp_log_set_level(vnp_log_level max_level) { g_log_level = max_level; }
vnp_log_level vnp_log_get_level(void) { return g_log_level; }

void vnp_log(vnp_log_level level, const char *fmt, ...)
{
    if (level > g_log_level)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&g_log_mu);
    if (g_log_fn) {
        g_log_fn(level, msg, g_log_user);
    } else {
        static const char *const names[] = {"error", "warning", "info", "debug"};
        fprintf(stderr, "virnucpro: %s: %s\n", names[level], msg);
    }
    pthread_mutex_unlock(&g_log_mu);
}
