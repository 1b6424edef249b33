"""The PyTorch side of the CPU benchmark in bench/RESULTS.md: throughput of
fair-esm's ESM2 and DNABERT-S's bert_layers.py (its PyTorch attention path) in
float32 on the CPU, on the same checkpoints and sequences as `virnucpro embed`,
with the same thread count. Also writes the embeddings so that the engine's
output can be compared at the benchmark's shapes.

  $VNP_PYTHON tools/esm_bench.py --threads N \\
      --esm ESM.pt --proteins P.faa [--esm-out E.npy] \\
      --dnabert DIR --dnabert-code CODE_DIR --dna D.fa [--dnabert-out D.npy]

CODE_DIR holds bert_layers.py and bert_padding.py from the public DNABERT-S
release (its model code); only `einops` is needed beside torch: the three
names bert_layers.py imports from transformers (ACT2FN, output dataclasses,
BertPreTrainedModel) play no part in BertModel's forward pass and are given
here as minimal stand-ins. Batches: sorted by length, padded, at most
--batch-tokens padded tokens (ESM-2) or --batch-seqs sequences (DNABERT-S).
Timing covers forward passes and pooling after one warm-up batch; tokens are
counted as the engine counts them (with special tokens, without padding).
Prints one "RESULT {json}" line per model. Not part of the product.
"""
import argparse
import json
import os
import sys
import time
import types
import importlib
from dataclasses import dataclass

import numpy as np
import torch


def read_fasta(path):
    ids, seqs, cur = [], [], []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith(">"):
                if ids:
                    seqs.append("".join(cur))
                ids.append(line[1:].split()[0])
                cur = []
            elif line:
                cur.append(line)
    if ids:
        seqs.append("".join(cur))
    return ids, seqs


def sorted_batches(lengths, budget=None, max_seqs=None):
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches, cur, longest = [], [], 0
    for i in order:
        L = lengths[i]
        full = (budget and cur and max(longest, L) * (len(cur) + 1) > budget) or \
               (max_seqs and len(cur) >= max_seqs)
        if full:
            batches.append(cur)
            cur, longest = [], 0
        cur.append(i)
        longest = max(longest, L)
    if cur:
        batches.append(cur)
    return batches


def bench_esm(args):
    import esm
    from esm.model.esm2 import ESM2
    data = torch.load(args.esm, map_location="cpu")
    cfg = data["cfg"]["model"]
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = ESM2(num_layers=cfg.encoder_layers, embed_dim=cfg.encoder_embed_dim,
                 attention_heads=cfg.encoder_attention_heads, alphabet=alphabet,
                 token_dropout=cfg.token_dropout)
    sd = {k.replace("encoder.sentence_encoder.", "").replace("encoder.", ""): v
          for k, v in data["model"].items()}
    model.load_state_dict(sd, strict=False)
    model.eval()
    ids, seqs = read_fasta(args.proteins)
    toks = [[alphabet.cls_idx] + [alphabet.get_idx(c) for c in s] + [alphabet.eos_idx] for s in seqs]
    batches = []
    for b in sorted_batches([len(t) for t in toks], budget=args.batch_tokens):
        T = max(len(toks[i]) for i in b)
        x = torch.full((len(b), T), alphabet.padding_idx, dtype=torch.long)
        for r, i in enumerate(b):
            x[r, :len(toks[i])] = torch.tensor(toks[i])
        batches.append((b, x))
    out = np.zeros((len(seqs), cfg.encoder_embed_dim), dtype=np.float32)
    L = cfg.encoder_layers

    def run(bs):
        for b, x in bs:
            rep = model(x, repr_layers=[L])["representations"][L]
            for r, i in enumerate(b):
                n = min(1024, len(seqs[i]))
                out[i] = rep[r, 1:n + 1].mean(0).numpy()

    run(batches[-1:])  # warm-up
    t, c = time.perf_counter(), time.process_time()
    run(batches)
    dt, cpu = time.perf_counter() - t, time.process_time() - c
    ntok = sum(len(x) for x in toks)
    if args.esm_out:
        np.save(args.esm_out, out)
    return {"model": "ESM-2", "layers": L, "hidden": cfg.encoder_embed_dim,
            "heads": cfg.encoder_attention_heads, "sequences": len(seqs), "tokens": ntok,
            "seconds": round(dt, 2), "tokens_per_s": round(ntok / dt, 1),
            "tokens_per_cpu_s": round(ntok / cpu, 1), "threads": args.threads}


def load_bert_layers(code_dir):
    """bert_layers.py as a package module, with stand-ins for its transformers imports."""
    tf = types.ModuleType("transformers")
    act = types.ModuleType("transformers.activations")
    act.ACT2FN = {"gelu": torch.nn.GELU()}
    outs = types.ModuleType("transformers.modeling_outputs")

    @dataclass
    class _Output:
        loss: object = None
        logits: object = None
        hidden_states: object = None
        attentions: object = None
    outs.MaskedLMOutput = _Output
    outs.SequenceClassifierOutput = _Output
    mb = types.ModuleType("transformers.models.bert.modeling_bert")

    class BertPreTrainedModel(torch.nn.Module):
        def __init__(self, config, *a, **k):
            super().__init__()
            self.config = config

        def post_init(self):
            pass
    mb.BertPreTrainedModel = BertPreTrainedModel
    for name, mod in [("transformers", tf), ("transformers.activations", act),
                      ("transformers.modeling_outputs", outs),
                      ("transformers.models", types.ModuleType("transformers.models")),
                      ("transformers.models.bert", types.ModuleType("transformers.models.bert")),
                      ("transformers.models.bert.modeling_bert", mb)]:
        sys.modules[name] = mod
    pkg = types.ModuleType("dnabert_code")
    pkg.__path__ = [code_dir]
    sys.modules["dnabert_code"] = pkg
    sys.modules["dnabert_code.flash_attn_triton"] = types.ModuleType("dnabert_code.flash_attn_triton")
    return importlib.import_module("dnabert_code.bert_layers")


def bench_dnabert(args):
    from tokenizers import Tokenizer
    bl = load_bert_layers(os.path.abspath(args.dnabert_code))
    bl.flash_attn_qkvpacked_func = None
    with open(os.path.join(args.dnabert, "config.json")) as f:
        cfg = types.SimpleNamespace(**json.load(f))
    cfg.alibi_starting_size = getattr(cfg, "alibi_starting_size", 512)
    model = bl.BertModel(cfg, add_pooling_layer=False)
    sd = torch.load(os.path.join(args.dnabert, "pytorch_model.bin"), map_location="cpu")
    missing, _ = model.load_state_dict(sd, strict=False)
    assert not missing, missing
    model.eval()
    tok = Tokenizer.from_file(os.path.join(args.dnabert, "tokenizer.json"))
    tok.no_truncation()
    tok.no_padding()
    ids, seqs = read_fasta(args.dna)
    toks = [tok.encode(s).ids for s in seqs]
    batches = []
    for b in sorted_batches([len(t) for t in toks], max_seqs=args.batch_seqs):
        T = max(len(toks[i]) for i in b)
        x = torch.zeros((len(b), T), dtype=torch.long)
        m = torch.zeros((len(b), T), dtype=torch.long)
        for r, i in enumerate(b):
            x[r, :len(toks[i])] = torch.tensor(toks[i])
            m[r, :len(toks[i])] = 1
        batches.append((b, x, m))
    out = np.zeros((len(seqs), cfg.hidden_size), dtype=np.float32)

    def run(bs):
        for b, x, m in bs:
            h = model(x, attention_mask=m)[0]
            mean = (h * m[:, :, None]).sum(1) / m.sum(1, keepdim=True)
            for r, i in enumerate(b):
                out[i] = mean[r].numpy()

    run(batches[-1:])
    t, c = time.perf_counter(), time.process_time()
    run(batches)
    dt, cpu = time.perf_counter() - t, time.process_time() - c
    ntok = sum(len(x) for x in toks)
    if args.dnabert_out:
        np.save(args.dnabert_out, out)
    return {"model": "DNABERT-S", "layers": cfg.num_hidden_layers, "hidden": cfg.hidden_size,
            "heads": cfg.num_attention_heads, "sequences": len(seqs), "tokens": ntok,
            "seconds": round(dt, 2), "tokens_per_s": round(ntok / dt, 1),
            "tokens_per_cpu_s": round(ntok / cpu, 1), "threads": args.threads}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--esm")
    ap.add_argument("--proteins")
    ap.add_argument("--esm-out")
    ap.add_argument("--batch-tokens", type=int, default=4096)
    ap.add_argument("--dnabert")
    ap.add_argument("--dnabert-code")
    ap.add_argument("--dna")
    ap.add_argument("--dnabert-out")
    ap.add_argument("--batch-seqs", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_grad_enabled(False)
    if args.esm:
        print("RESULT " + json.dumps(bench_esm(args)), flush=True)
    if args.dnabert:
        print("RESULT " + json.dumps(bench_dnabert(args)), flush=True)


if __name__ == "__main__":
    main()
