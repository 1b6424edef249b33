/* libFuzzer: the FASTA/FASTQ reader (plain and gzip) on arbitrary bytes, then the
 * chunk plan and six-frame translation of every record it returns. The reader
 * takes a path, so each input goes through one scratch file (tmpfs when there is one). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "virnucpro/seq.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[64];

static void quiet(vnp_log_level level, const char *msg, void *user)
{
    (void)level;
    (void)msg;
    (void)user;
}

static int scratch(void)
{
    if (g_path[0])
        return 0;
    snprintf(g_path, sizeof g_path, "%s/vnp-fuzz-seq.XXXXXX",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp");
    int fd = mkstemp(g_path);
    if (fd < 0)
        return -1;
    close(fd);
    vnp_log_set_handler(quiet, NULL);
    return 0;
}

static void check_record(const vnp_record *rec, vnp_frames *fr)
{
    if (rec->len == 0 || strlen(rec->seq) != rec->len || strlen(rec->id) != rec->id_len)
        __builtin_trap();
    size_t sizes[2] = {300, 7};
    for (int s = 0; s < 2; s++) {
        size_t n = vnp_chunk_count(rec->len, sizes[s]);
        for (size_t i = 0; i < n; i++) {
            vnp_chunk c = vnp_chunk_at(rec->len, sizes[s], i);
            if (c.len == 0 || c.len > sizes[s] || c.start + c.len > rec->len)
                __builtin_trap();
            if (vnp_six_frames(rec->seq + c.start, c.len, fr, NULL) != VNP_OK)
                return;
            for (int k = 0; k < fr->n; k++) {
                const vnp_frame *f = &fr->frame[k];
                if (f->protein_len == 0 || memchr(f->protein, '*', f->protein_len) ||
                    f->nucleotide_len > 3 * f->protein_len + 1)
                    __builtin_trap();
            }
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (scratch() != 0)
        return 0;
    FILE *f = fopen(g_path, "wb");
    if (!f)
        return 0;
    size_t w = fwrite(data, 1, size, f);
    fclose(f);
    if (w != size)
        return 0;
    vnp_seq_reader *r;
    vnp_error err;
    if (vnp_seq_open(g_path, &r, &err) != VNP_OK)
        return 0;
    vnp_frames fr;
    vnp_frames_init(&fr);
    vnp_record rec;
    int rc;
    while ((rc = vnp_seq_read(r, &rec, &err)) == 1)
        check_record(&rec, &fr);
    /* an error names the file and a line */
    if (rc < 0 && strncmp(err.msg, g_path, strlen(g_path)) != 0)
        __builtin_trap();
    vnp_frames_free(&fr);
    vnp_seq_close(r);
    return 0;
}
