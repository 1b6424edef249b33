"""Writes the expected sequences.tsv for an input FASTA from the original tool's
prediction_results.txt (independently of the C code), for tests/pipeline.

Rule (README, "predict"): per record, Chunks = ceil(len / L); a chunk is scored when
it has a row; it is viral when its max score2 >= its max score1; Max_virus_score is the
largest score2 of the record (printed as in prediction_results.txt); the verdict is
"virus" when at least half of the scored chunks are viral, "others" otherwise,
"unscored" when no chunk was scored.
Usage: make_sequences_expected.py INPUT.fa prediction_results.txt L > sequences.tsv"""
import sys

import numpy as np


def records(path):
    rid, n = None, 0
    for line in open(path):
        line = line.rstrip("\n")
        if line.startswith(">"):
            if rid is not None:
                yield rid, n
            rid, n = line[1:].split()[0], 0
        else:
            n += len("".join(line.split()))
    if rid is not None:
        yield rid, n


def main():
    fasta, results, L = sys.argv[1], sys.argv[2], int(sys.argv[3])
    rows = [l.rstrip("\n").split("\t") for l in open(results)][1:]
    print("Sequence_ID\tLength\tChunks\tChunks_scored\tChunks_virus\tMax_virus_score\tVerdict")
    for rid, n in records(fasta):
        chunks = -(-n // L)
        prefix = rid + "_chunk_"
        mine = [r for r in rows if r[0].startswith(prefix) and r[0][len(prefix):-2].isdigit()]
        per = {}
        for r in mine:
            c = r[0][:-2]
            s1, s2 = np.float32(r[2]), np.float32(r[3])
            m1, m2 = per.get(c, (s1, s2))
            per[c] = (max(m1, s1), max(m2, s2))
        scored = len(per)
        viral = sum(1 for m1, m2 in per.values() if m2 >= m1)
        if scored:
            best = max(mine, key=lambda r: np.float32(r[3]))[3]
            verdict = "virus" if 2 * viral >= scored else "others"
        else:
            best, verdict = "NA", "unscored"
        print(f"{rid}\t{n}\t{chunks}\t{scored}\t{viral}\t{best}\t{verdict}")


if __name__ == "__main__":
    main()
