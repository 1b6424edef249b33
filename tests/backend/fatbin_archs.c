/* Which GPU architectures a built library or object holds machine code for: reads the
 * CUDA fat binaries embedded in FILE (an archive or object; the toolkit's cuobjdump
 * --list-elf says the same where it is installed) and checks that every fat binary
 * holding machine code holds it for each architecture of LIST (a CMake CUDA architecture
 * list, ';' or ','-separated; "-virtual" entries are PTX only and skipped).
 *   fatbin_archs FILE LIST [SPECIFIC]   exit 0 when none is missing, 1 otherwise
 * With SPECIFIC (e.g. 90), the objects compiled for one architecture's own features
 * (sm_90a: machine code for SPECIFIC alone and no PTX, as CMakeLists.txt builds
 * src/backend/cuda/sm90) are counted apart, and there must be at least one.
 * Prints one line per fat binary: its machine code ("sm_80 ...") and PTX ("compute_90"). */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FATBIN_MAGIC 0xBA55ED50u
enum { KIND_PTX = 1, KIND_ELF = 2, MAX_ARCHS = 32 };

static uint32_t rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const unsigned char *p) { return rd32(p) | (uint64_t)rd32(p + 4) << 32; }

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: fatbin_archs FILE ARCH_LIST [SPECIFIC_ARCH]\n");
        return 2;
    }
    int want[MAX_ARCHS], nwant = 0;
    for (const char *p = argv[2]; *p;) {
        size_t len = strcspn(p, ",;");
        if (!isdigit((unsigned char)*p)) {
            printf("'%.*s' names no architecture: nothing to check\n", (int)len, p);
            return 0;
        }
        if (!(len > 8 && !strncmp(p + len - 8, "-virtual", 8)) && nwant < MAX_ARCHS)
            want[nwant++] = atoi(p);
        p += len;
        p += *p != '\0';
    }
    FILE *f = fopen(argv[1], "rb");
    if (!f) {
        perror(argv[1]);
        return 2;
    }
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *d = malloc(size > 0 ? (size_t)size : 1);
    if (!d || fread(d, 1, (size_t)size, f) != (size_t)size) {
        fprintf(stderr, "%s: cannot read\n", argv[1]);
        return 2;
    }
    fclose(f);
    const int specific = argc == 4 ? atoi(argv[3]) : 0;
    int fatbins = 0, missing = 0, nspecific = 0;
    for (long i = 0; i + 16 <= size; i++) { /* (archive members are only 2-byte aligned) */
        if (rd32(d + i) != FATBIN_MAGIC || (d[i + 4] | d[i + 5] << 8) != 1 ||
            (d[i + 6] | d[i + 7] << 8) != 16)
            continue;
        uint64_t total = rd64(d + i + 8);
        if (total > (uint64_t)(size - i - 16))
            continue;
        int elf[MAX_ARCHS], nelf = 0, nptx = 0;
        printf("fat binary at %ld:", i);
        for (uint64_t off = 0; off + 32 <= total;) {
            const unsigned char *e = d + i + 16 + off;
            unsigned kind = e[0] | e[1] << 8;
            uint32_t hsize = rd32(e + 4);
            uint64_t psize = rd64(e + 8);
            uint32_t arch = rd32(e + 28);
            if (hsize < 32 || hsize + psize > total - off)
                break;
            printf(" %s_%u", kind == KIND_ELF ? "sm" : "compute", (unsigned)arch);
            if (kind == KIND_ELF && nelf < MAX_ARCHS)
                elf[nelf++] = (int)arch;
            nptx += kind == KIND_PTX;
            off += hsize + psize;
        }
        fatbins++;
        if (specific && nelf == 1 && elf[0] == specific && !nptx) {
            printf("  (sm_%da: arch-specific)\n", specific);
            nspecific++;
            continue;
        }
        printf("\n");
        for (int w = 0; nelf && w < nwant; w++) {
            int found = 0;
            for (int k = 0; k < nelf; k++)
                found |= elf[k] == want[w];
            if (!found) {
                printf("MISSING: no sm_%d machine code in the fat binary at %ld\n", want[w], i);
                missing++;
            }
        }
    }
    free(d);
    if (!fatbins) {
        printf("%s holds no CUDA fat binary\n", argv[1]);
        return 1;
    }
    if (specific && !nspecific) {
        printf("MISSING: no fat binary of sm_%da machine code alone\n", specific);
        missing++;
    }
    printf("%d fat binaries (%d of sm_%da code), %s\n", fatbins, nspecific, specific,
           missing ? "architectures missing" : "all present");
    return missing ? 1 : 0;
}
