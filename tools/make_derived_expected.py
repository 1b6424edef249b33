"""Writes the expected derived outputs of predict/classify (sequences.tsv, chunks.tsv,
viral_regions.bed, viral.fna) for an input FASTA and a prediction_results.txt, written
from the README's definitions, independently of the C code (tests/pipeline).

Usage: make_derived_expected.py INPUT.fa prediction_results.txt L OUTDIR
           [--min-score X] [--chunked ORIGINAL_chunked<L>.fa]

--chunked: the original tool's chunk file for INPUT (preprocess fixtures): every chunk's
coordinates computed here must cut exactly that chunk's bases out of the record.

Definitions (README, "predict"):
- chunks: n = ceil(len / L); the overlap R = n*L - len is shared as shifts, lo = R // n,
  need = R - lo*(n-1): chunk i starts at i*L minus the shifts of the chunks before it
  (lo+1 for the first `need`, lo for the others), clipped at len.
- a chunk is scored when it has a row; its max scores are over its rows (float32);
  viral when max score2 >= max score1, or with --min-score X when max score2 >= X.
- sequences.tsv: Chunks_scored, Chunks_virus, Max_virus_score (as printed in the
  results file), verdict virus when 2*viral >= scored > 0, others, unscored.
- chunks.tsv: Sequence_ID, Chunk_ID (<id>_chunk_<k>), Start, End (1-based inclusive),
  Frames_kept, Max_virus_score (NA when unscored), Call.
- viral_regions.bed: maximal runs of consecutive viral chunks, 0-based half-open from the
  first chunk's start to the last end, name <id>_region_<n>, score
  floor(1000 * mean(max score2) + 0.5) (mean in double, in chunk order), strand '.'.
- viral.fna: the virus-verdict records in input order, original bases, 60 columns,
  header ">ID verdict=virus chunks_virus=a/b max_score=s" (b = scored chunks).
- duplicate IDs: the k-th occurrence (k >= 2) of an ID is named <ID>_dup<k>.
"""
import math
import os
import sys

import numpy as np


def records(path):
    rid, parts = None, []
    for line in open(path):
        line = line.rstrip("\n").rstrip("\r")
        if line.startswith(">"):
            if rid is not None:
                yield rid, "".join(parts)
            words = line[1:].split()
            rid, parts = (words[0] if words else ""), []
        else:
            parts.append("".join(line.split()))
    if rid is not None:
        yield rid, "".join(parts)


def chunk_plan(n_bases, L):
    n = -(-n_bases // L)
    if n == 0:
        return []
    R = n * L - n_bases
    lo = R // n
    need = R - lo * (n - 1)
    out, back = [], 0
    for i in range(n):
        start = i * L - back
        out.append((start, min(start + L, n_bases)))
        back += lo + 1 if i < need else lo
    return out


def main():
    args = sys.argv[1:]
    min_score, chunked = None, None
    if "--min-score" in args:
        i = args.index("--min-score")
        min_score = np.float32(float(args[i + 1]))
        del args[i:i + 2]
    if "--chunked" in args:
        i = args.index("--chunked")
        chunked = {rid: seq for rid, seq in records(args[i + 1])}
        del args[i:i + 2]
    fasta, results, L, outdir = args[0], args[1], int(args[2]), args[3]
    os.makedirs(outdir, exist_ok=True)

    lines = open(results).read().split("\n")
    assert lines[0] == "Sequence_ID\tPrediction\tscore1\tscore2"
    rows = {}  # chunk ID -> [frames, max1, max2, max2 text]
    for line in lines[1:]:
        if not line:
            continue
        fid, _label, s1, s2 = line.split("\t")
        cid = fid[:-2]
        assert fid[-2:] in ("F1", "F2", "F3", "R1", "R2", "R3")
        a, b = np.float32(s1), np.float32(s2)
        if cid in rows:
            r = rows[cid]
            r[0] += 1
            r[1] = max(r[1], a)
            if b > r[2]:
                r[2], r[3] = b, s2
        else:
            rows[cid] = [1, a, b, s2]

    def viral(r):
        if r is None:
            return False
        return r[2] >= min_score if min_score is not None else r[2] >= r[1]

    seqs = open(os.path.join(outdir, "sequences.tsv"), "w")
    chunks = open(os.path.join(outdir, "chunks.tsv"), "w")
    bed = open(os.path.join(outdir, "viral_regions.bed"), "w")
    fna = open(os.path.join(outdir, "viral.fna"), "w")
    seqs.write("Sequence_ID\tLength\tChunks\tChunks_scored\tChunks_virus\tMax_virus_score\t"
               "Verdict\n")
    chunks.write("Sequence_ID\tChunk_ID\tStart\tEnd\tFrames_kept\tMax_virus_score\tCall\n")
    seen = {}
    used = 0
    for rid, seq in records(fasta):
        if not seq:
            continue
        seen[rid] = seen.get(rid, 0) + 1
        name = rid if seen[rid] == 1 else f"{rid}_dup{seen[rid]}"
        plan = chunk_plan(len(seq), L)
        per = []
        for k, (s, e) in enumerate(plan):
            cid = f"{name}_chunk_{k + 1}"
            if chunked is not None:
                assert chunked[cid] == seq[s:e], cid
            r = rows.get(cid)
            used += 1 if r else 0
            per.append(r)
            call = "unscored" if r is None else ("virus" if viral(r) else "others")
            chunks.write(f"{name}\t{cid}\t{s + 1}\t{e}\t{r[0] if r else 0}\t"
                         f"{r[3] if r else 'NA'}\t{call}\n")
        scored = [r for r in per if r]
        nvir = sum(1 for r in scored if viral(r))
        if scored:
            best = max(scored, key=lambda r: r[2])[3]
            verdict = "virus" if 2 * nvir >= len(scored) else "others"
        else:
            best, verdict = "NA", "unscored"
        seqs.write(f"{name}\t{len(seq)}\t{len(plan)}\t{len(scored)}\t{nvir}\t{best}\t"
                   f"{verdict}\n")
        region, k = 0, 0
        while k < len(plan):
            if not viral(per[k]):
                k += 1
                continue
            first, total, cnt, end = k, 0.0, 0, 0
            while k < len(plan) and viral(per[k]):
                total += float(per[k][2])
                cnt += 1
                end = max(end, plan[k][1])
                k += 1
            region += 1
            score = min(1000, max(0, math.floor(1000.0 * (total / cnt) + 0.5)))
            bed.write(f"{name}\t{plan[first][0]}\t{end}\t{name}_region_{region}\t{score}\t.\n")
        if verdict == "virus":
            fna.write(f">{name} verdict=virus chunks_virus={nvir}/{len(scored)} "
                      f"max_score={best}\n")
            for i in range(0, len(seq), 60):
                fna.write(seq[i:i + 60] + "\n")
    assert used == len(rows), "rows that belong to no record"


if __name__ == "__main__":
    main()
