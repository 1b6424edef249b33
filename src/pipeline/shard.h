/* predict --shard I/N and what a shard leaves for `virnucpro merge`: the shard spec,
 * which records a shard takes (record index modulo N = I - 1, decided while the input
 * streams by, no pre-pass), and DIR/shard.txt, the record of a finished shard (which
 * run it belongs to, how many records the whole input has and their SHA-256, how many
 * this shard took), written under a ".part" name and committed with the other outputs.
 * (Internal to src/pipeline.) */
#ifndef VNP_PIPELINE_SHARD_H
#define VNP_PIPELINE_SHARD_H

#include <stdint.h>

#include "pipeline/journal.h"
#include "virnucpro/error.h"

#define VNP_SHARD_FILE "shard.txt"

typedef struct vnp_shard_record {
    unsigned index, count;     /* I and N of --shard I/N */
    uint64_t records;          /* records this shard took (rows of sequences.tsv) */
    uint64_t input_records;    /* records of the whole input */
    char input_sha256[65];     /* SHA-256 of every record of the input (as the journal's) */
    vnp_journal_ident ident[VNP_JOURNAL_IDENT_MAX]; /* the run (the journal's identity) */
    int nident;
} vnp_shard_record;

/* 1 when record `index0` (0-based, in input order) belongs to shard index/count
 * (count 0: not sharded, every record). */
int vnp_shard_takes(uint64_t index0, unsigned index, unsigned count);
/* Records of an input of `total` records that shard index/count takes. */
uint64_t vnp_shard_size(uint64_t total, unsigned index, unsigned count);
/* Writes path (a ".part" name: the caller commits it). */
vnp_code vnp_shard_record_write(const char *path, const vnp_shard_record *r, vnp_error *err);
/* VNP_ENOTFOUND when there is none; VNP_EFORMAT naming the file when damaged. */
vnp_code vnp_shard_record_read(const char *path, vnp_shard_record *r, vnp_error *err);
/* The value of identity key `key` ("esm", "input", ...), or NULL. */
const char *vnp_shard_ident(const vnp_shard_record *r, const char *key);

#endif
