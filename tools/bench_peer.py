"""The peer for ESM-2 throughput: Hugging Face transformers EsmModel in FP16 with
SDPA attention, on the same checkpoint directory and the same proteins as the
engine, batched as /work/shared/bench/ref_stack_bench.py measured it (length-
sorted, padded batches of at most BUDGET padded tokens, mean over residues).

  python3 tools/bench_peer.py ESM_DIR PROTEINS.faa [--budget 16384 65536] [--label NAME]

Prints one "RESULT {json}" line per budget: proteins, tokens (residues + 2 per
protein, as the engine counts), seconds, tok/s. Timing covers the forward
passes and pooling with the padded batches already on the GPU, after one
warm-up pass over the first two batches. Not part of the product.
"""
import argparse
import json
import time

import torch
from transformers import EsmModel

VOC = ["<cls>", "<pad>", "<eos>", "<unk>", "L", "A", "G", "V", "S", "E", "R", "T", "I", "D", "P", "K",
       "Q", "N", "F", "Y", "M", "H", "W", "C", "X", "B", "U", "Z", "O", ".", "-", "<null_1>", "<mask>"]
TOK = {t: i for i, t in enumerate(VOC)}


def read_fasta(path):
    seqs, cur = [], []
    for line in open(path):
        if line.startswith(">"):
            if cur:
                seqs.append("".join(cur))
            cur = []
        else:
            cur.append(line.strip())
    if cur:
        seqs.append("".join(cur))
    return seqs


def batches_of(prots, budget):
    order = sorted(range(len(prots)), key=lambda i: -len(prots[i]))
    out, cur, curmax = [], [], 0
    for i in order:
        L = len(prots[i]) + 2
        if cur and max(curmax, L) * (len(cur) + 1) > budget:
            out.append(cur)
            cur, curmax = [], 0
        cur.append(i)
        curmax = max(curmax, L)
    if cur:
        out.append(cur)
    return out


def run(model, prots, budget, dev):
    tensors = []
    for b in batches_of(prots, budget):
        T = max(len(prots[i]) for i in b) + 2
        ids = torch.full((len(b), T), 1, dtype=torch.long)
        for r, i in enumerate(b):
            s = prots[i]
            ids[r, 0] = 0
            ids[r, 1:len(s) + 1] = torch.tensor([TOK.get(c, 3) for c in s])
            ids[r, len(s) + 1] = 2
        tensors.append((ids.to(dev), (ids != 1).long().to(dev)))

    def go(ts):
        for ids, m in ts:
            h = model(input_ids=ids, attention_mask=m).last_hidden_state
            (h[:, 1:-1] * m[:, 1:-1, None]).sum(1)

    go(tensors[:2])
    torch.cuda.synchronize()
    t = time.perf_counter()
    go(tensors)
    torch.cuda.synchronize()
    dt = time.perf_counter() - t
    ntok = sum(len(p) + 2 for p in prots)
    return {"proteins": len(prots), "tokens": ntok, "batches": len(tensors), "s": round(dt, 2),
            "tok_s": round(ntok / dt)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("esm_dir")
    ap.add_argument("proteins")
    ap.add_argument("--budget", type=int, nargs="+", default=[16384, 65536])
    ap.add_argument("--label", default="")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    dev = "cuda"
    t0 = time.perf_counter()
    model = EsmModel.from_pretrained(a.esm_dir, add_pooling_layer=False, dtype=torch.float16,
                                     attn_implementation="sdpa").to(dev).eval()
    load_s = time.perf_counter() - t0
    prots = read_fasta(a.proteins)
    for budget in a.budget:
        r = run(model, prots, budget, dev)
        r.update(label=a.label, stack="transformers EsmModel fp16 sdpa", budget=budget,
                 load_s=round(load_s, 1), device=torch.cuda.get_device_name(0),
                 transformers=__import__("transformers").__version__, torch=torch.__version__)
        print("RESULT " + json.dumps(r), flush=True)


if __name__ == "__main__":
    main()
