/* Duplicate record IDs: a record whose ID was seen before becomes "<id>_dup<k>" (k = 2
 * for the second occurrence, ...) in every output, so that its rows and chunk calls stay
 * apart from the first one's (the original tool merges them in the highest-score file).
 * predict's reader and the derived outputs (which read the input again) rename through
 * this one table, so both see the same IDs. (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_RECORD_IDS_H
#define VNP_PIPELINE_RECORD_IDS_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#include "virnucpro/error.h"
#include "virnucpro/seq.h"

typedef struct vnp_record_ids {
    /* 64-bit hashes of the IDs seen (open addressing) and the count of each */
    uint64_t *seen;
    uint32_t *seen_count;
    size_t seen_n, seen_cap;
    size_t records;          /* records passed through */
    size_t dups;             /* records renamed */
    char first_dup[128];     /* the first repeated ID, for the warning */
    size_t first_dup_record; /* its record number (1-based) */
    char *renamed;           /* "<id>_dup<k>" of the current record */
    size_t renamed_cap;
} vnp_record_ids;

void vnp_record_ids_init(vnp_record_ids *t);
void vnp_record_ids_free(vnp_record_ids *t);
/* Counts rec and renames it (rec->id, rec->id_len) when its ID was seen before; the new
 * ID stays valid until the next call. */
vnp_code vnp_record_ids_dedup(vnp_record_ids *t, vnp_record *rec, vnp_error *err);

/* Adds rec (its ID as read, before renaming, and its sequence) to a SHA-256 of the
 * records: the input identity predict's journal keeps and the derived outputs check. */
vnp_code vnp_record_hash(EVP_MD_CTX *sha, const vnp_record *rec, vnp_error *err);

#endif
