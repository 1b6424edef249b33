/* Status codes, error messages and logging shared by every stage. */
#ifndef VIRNUCPRO_ERROR_H
#define VIRNUCPRO_ERROR_H

#include <stdarg.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum vnp_code {
    VNP_OK = 0,
    VNP_EIO,          /* a file or stream could not be read or written */
    VNP_EFORMAT,      /* input is not in the expected format */
    VNP_ENOMEM,       /* out of memory */
    VNP_EINVAL,       /* bad argument or option */
    VNP_EUNSUPPORTED, /* valid but unsupported (dtype, opcode, compression, ...) */
    VNP_ESHAPE,       /* a tensor is missing or has the wrong shape/dtype */
    VNP_ENUMERIC,     /* NaN/Inf that could not be recovered */
    VNP_ENET,         /* network failure */
    VNP_EINTEGRITY,   /* checksum / verification failure */
    VNP_EDEVICE,      /* GPU / device failure */
    VNP_ENOTFOUND,    /* a model or file that should exist does not */
    VNP_EINTERRUPTED, /* stopped by a signal (SIGINT/SIGTERM/SIGHUP) */
    VNP_EBUSY         /* another run holds the resource (an output directory) */
} vnp_code;

/* Every fallible function takes a vnp_error* (may be NULL) and returns a
 * vnp_code. The message names the file/record/tensor and what to do. */
typedef struct vnp_error {
    vnp_code code;
    char msg[1024];
} vnp_error;

/* Sets err (if non-NULL) and returns code. */
vnp_code vnp_fail(vnp_error *err, vnp_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends context ("while loading X: ") to an existing message. */
void vnp_error_prefix(vnp_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void vnp_error_clear(vnp_error *err);
const char *vnp_code_name(vnp_code code);

typedef enum vnp_log_level {
    VNP_LOG_ERROR = 0,
    VNP_LOG_WARN = 1,
    VNP_LOG_INFO = 2,
    VNP_LOG_DEBUG = 3
} vnp_log_level;

/* Log sink. The default writes "virnucpro: warning: ..." lines to stderr. */
typedef void (*vnp_log_fn)(vnp_log_level level, const char *msg, void *user);
void vnp_log_set_handler(vnp_log_fn fn, void *user); /* NULL restores default */
void vnp_log_set_level(vnp_log_level max_level);
vnp_log_level vnp_log_get_level(void);
void vnp_log(vnp_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#define vnp_warn(...) vnp_log(VNP_LOG_WARN, __VA_ARGS__)
#define vnp_info(...) vnp_log(VNP_LOG_INFO, __VA_ARGS__)
#define vnp_debug(...) vnp_log(VNP_LOG_DEBUG, __VA_ARGS__)

#ifdef __cplusplus
}
#endif
#endif
