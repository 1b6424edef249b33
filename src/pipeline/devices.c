/* --device lists: "auto", "cpu", "cuda", "cuda:N", comma-separated, entries may repeat
 * (one worker each); and the CPU threads this process may use. */
#define _GNU_SOURCE
#include <ctype.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend/backend.h"
#include "virnucpro/pipeline.h"

int vnp_cpu_threads_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0)
            return n;
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

void vnp_devices_free(vnp_devices *d)
{
    for (int i = 0; i < d->n; i++)
        free(d->name[i]);
    free(d->name);
    memset(d, 0, sizeof *d);
}

static vnp_code add(vnp_devices *d, const char *name, vnp_error *err)
{
    if (d->n >= VNP_MAX_WORKERS)
        return vnp_fail(err, VNP_EINVAL, "--device: more than %d workers", VNP_MAX_WORKERS);
    char **n = realloc(d->name, (size_t)(d->n + 1) * sizeof *n);
    if (!n)
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    d->name = n;
    if (!(d->name[d->n] = strdup(name)))
        return vnp_fail(err, VNP_ENOMEM, "out of memory");
    d->n++;
    return VNP_OK;
}

static vnp_code add_all_gpus(vnp_devices *d, int count, vnp_error *err)
{
    vnp_code rc = VNP_OK;
    for (int g = 0; g < count && !rc; g++) {
        char name[32];
        snprintf(name, sizeof name, "cuda:%d", g);
        rc = add(d, name, err);
    }
    return rc;
}

vnp_code vnp_devices_parse(const char *spec, vnp_devices *d, vnp_error *err)
{
    memset(d, 0, sizeof *d);
    if (!spec || !*spec)
        spec = "auto";
    int gpus = -1; /* counted on first need */
    const char *p = spec;
    vnp_code rc = VNP_OK;
    while (!rc) {
        size_t len = strcspn(p, ",");
        char item[64];
        if (len == 0 || len >= sizeof item) {
            rc = vnp_fail(err, VNP_EINVAL,
                          "--device '%s': expected a comma-separated list of auto, cpu, cuda "
                          "or cuda:N",
                          spec);
            break;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (!strcmp(item, "cpu")) {
            rc = add(d, "cpu", err);
        } else if (!strcmp(item, "auto") || !strcmp(item, "cuda")) {
            if (gpus < 0)
                gpus = vnp_device_count(VNP_DEVICE_CUDA);
            if (gpus > 0)
                rc = add_all_gpus(d, gpus, err);
            else if (!strcmp(item, "cuda"))
                rc = vnp_fail(err, VNP_EDEVICE,
                              "--device cuda: no CUDA GPU is visible here (or this build has "
                              "no CUDA backend); use --device cpu");
            else {
                d->auto_cpu = 1;
                rc = add(d, "cpu", err);
            }
            if (!rc && !strcmp(item, "auto"))
                d->auto_gpus = gpus;
        } else if (!strncmp(item, "cuda:", 5) && isdigit((unsigned char)item[5])) {
            char *end;
            long v = strtol(item + 5, &end, 10);
            if (*end || v > 1024)
                rc = vnp_fail(err, VNP_EINVAL, "--device '%s': expected cuda:N with N a GPU "
                                               "index such as 0", item);
            else
                rc = add(d, item, err);
        } else {
            rc = vnp_fail(err, VNP_EINVAL,
                          "--device: unknown device '%s'; use auto, cpu, cuda or cuda:N "
                          "(comma-separated for several workers, e.g. cuda:0,cuda:1)",
                          item);
        }
        if (!p[len])
            break;
        p += len + 1;
    }
    /* CPU and GPU workers differ in the last bits of every number: the output would
     * depend on which worker happened to take which batch. */
    int cpus = 0;
    for (int i = 0; !rc && i < d->n; i++)
        cpus += !strcmp(d->name[i], "cpu");
    if (!rc && cpus > 0 && cpus < d->n)
        rc = vnp_fail(err, VNP_EINVAL,
                      "--device '%s' mixes CPU and GPU workers; their results differ in the "
                      "last bits, so the output would depend on which worker took which batch: "
                      "use CPU workers or GPU workers, not both",
                      spec);
    if (rc)
        vnp_devices_free(d);
    return rc;
}
