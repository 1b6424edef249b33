/* libFuzzer: predict's resume journal reader on arbitrary bytes (a journal left by a
 * killed run, or edited by hand, is untrusted input to --resume). */
#define _GNU_SOURCE
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "pipeline/journal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    FILE *f = fmemopen((void *)data, size, "r");
    if (!f)
        return 0;
    vnp_journal j;
    vnp_error err;
    if (vnp_journal_parse(f, "fuzz.journal", &j, &err) == VNP_OK) {
        /* what --resume relies on: terminated strings, bounded counts */
        volatile size_t sink = strlen(j.input_sha256);
        for (int i = 0; i < j.nident; i++)
            sink += strlen(j.ident[i].key) + strlen(j.ident[i].value);
        if (j.nident > VNP_JOURNAL_IDENT_MAX || (j.input_sha256[0] && sink < 64))
            __builtin_trap();
    }
    fclose(f);
    return 0;
}
