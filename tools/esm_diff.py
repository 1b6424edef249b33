"""Differential reference for the ESM-2 engine: fresh random ESM-2 models of
shapes other than the golden one, built with fair-esm's own ESM2 class (the
code VirNucPro runs), saved in the checkpoint layouts users have, and run by
fair-esm on random protein batches on the CPU in float32.

  $VNP_PYTHON tools/esm_diff.py OUT_DIR [--seed N]

Writes OUT_DIR/manifest.json: a list of {"name", "model", "reference"} where
"model" is what `vnp_encoder_load` is given and "reference" a safetensors file
with the packed batch (tokens [T] I32, cu_seqlens [N+1] I32) and fair-esm's
outputs: hidden [T, H] (last layer after emb_layer_norm_after, every position)
and mean [N, H] (VirNucPro's embedding: mean over positions 1..min(1024, L)).

The models:
  fair4  4 layers, dim 64, 4 heads   fair-esm hub .pt ({"model", "cfg"}, encoder.sentence_encoder. names)
  hf5    5 layers, dim 96, 6 heads   Hugging Face model.safetensors, "esm." names, inv_freq per layer
  bin6   6 layers, dim 160, 8 heads  pytorch_model.bin without the "esm." prefix, one shared inv_freq
Weights are N(0, 0.1)-scaled (LayerNorm gains 1 + N(0, 0.1)) so that mistakes
show above float32 rounding; the rotary inv_freq is a non-textbook vector
(base 5000) rounded to fp16 as the hub files hold it, so an engine that
recomputes it fails. Batches mix lengths 1..300 residues, one protein longer
than 1024 residues (the pooling cap), rare residues (X, B, U, Z, O) and
<mask> tokens (token dropout's per-sequence rescale). Not part of the product.
"""
import argparse
import json
import os
from argparse import Namespace

import torch
from safetensors.torch import save_file

import esm
from esm.model.esm2 import ESM2

ALPHABET = esm.data.Alphabet.from_architecture("ESM-1b")
RESIDUES = "LAGVSERTIDPKQNFYMHWC"
RARE = "XBUZO"

MODELS = [
    {"name": "fair4", "layers": 4, "dim": 64, "heads": 4, "format": "fairesm"},
    {"name": "hf5", "layers": 5, "dim": 96, "heads": 6, "format": "hf_safetensors"},
    {"name": "bin6", "layers": 6, "dim": 160, "heads": 8, "format": "hf_bin_noprefix_shared"},
]


def randomize(model, gen):
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen)
            if "layer_norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith("bias"):
                p.copy_(0.05 * noise)
            else:
                p.copy_(0.1 * noise)
        head_dim = model.embed_dim // model.attention_heads
        inv = 1.0 / (5000 ** (torch.arange(0, head_dim, 2).float() / head_dim))
        inv = inv.half().float()
        for layer in model.layers:
            layer.self_attn.rot_emb.inv_freq.copy_(inv)


def hf_name(fair):
    """fair-esm state-dict name -> transformers EsmForMaskedLM name (None: not saved)."""
    table = [
        ("embed_tokens.weight", "esm.embeddings.word_embeddings.weight"),
        ("emb_layer_norm_after.", "esm.encoder.emb_layer_norm_after."),
    ]
    for a, b in table:
        if fair.startswith(a):
            return b + fair[len(a):]
    if fair.startswith("layers."):
        _, i, rest = fair.split(".", 2)
        sub = [
            ("self_attn.q_proj.", "attention.self.query."),
            ("self_attn.k_proj.", "attention.self.key."),
            ("self_attn.v_proj.", "attention.self.value."),
            ("self_attn.out_proj.", "attention.output.dense."),
            ("self_attn.rot_emb.inv_freq", "attention.self.rotary_embeddings.inv_freq"),
            ("self_attn_layer_norm.", "attention.LayerNorm."),
            ("fc1.", "intermediate.dense."),
            ("fc2.", "output.dense."),
            ("final_layer_norm.", "LayerNorm."),
        ]
        for a, b in sub:
            if rest.startswith(a):
                return "esm.encoder.layer.%s.%s%s" % (i, b, rest[len(a):])
    if fair.startswith("lm_head."):
        return fair  # unused by the engine: must be ignored
    return None


def hf_config(spec):
    return {
        "architectures": ["EsmForMaskedLM"], "model_type": "esm", "hidden_act": "gelu",
        "hidden_size": spec["dim"], "num_hidden_layers": spec["layers"],
        "num_attention_heads": spec["heads"], "intermediate_size": 4 * spec["dim"],
        "layer_norm_eps": 1e-05, "vocab_size": 33, "mask_token_id": 32, "pad_token_id": 1,
        "position_embedding_type": "rotary", "token_dropout": True,
        "emb_layer_norm_before": False, "max_position_embeddings": 1026,
    }


def save(model, spec, out):
    sd = {k: v.clone().contiguous() for k, v in model.state_dict().items()}
    fmt = spec["format"]
    if fmt == "fairesm":
        path = os.path.join(out, spec["name"] + "_UR50D.pt")
        cfg = Namespace(encoder_layers=spec["layers"], encoder_embed_dim=spec["dim"],
                        encoder_ffn_embed_dim=4 * spec["dim"],
                        encoder_attention_heads=spec["heads"], token_dropout=True, arch="ESM-1b")
        torch.save({"model": {"encoder.sentence_encoder." + k if not k.startswith("lm_head")
                              else "encoder." + k: v for k, v in sd.items()},
                    "cfg": {"model": cfg}}, path)
        return path
    d = os.path.join(out, spec["name"])
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(hf_config(spec), f, indent=2)
    hf = {}
    for k, v in sd.items():
        n = hf_name(k)
        if n is not None:
            hf[n] = v
    if fmt == "hf_safetensors":
        save_file(hf, os.path.join(d, "model.safetensors"))
    else:  # no "esm." prefix, one shared inv_freq instead of one per layer
        plain = {}
        for k, v in hf.items():
            if k.endswith("rotary_embeddings.inv_freq"):
                plain["rotary_embeddings.inv_freq"] = v
                continue
            plain[k[4:] if k.startswith("esm.") else k] = v
        torch.save(plain, os.path.join(d, "pytorch_model.bin"))
    return d


def random_batch(gen, n, long_one):
    seqs = []
    for i in range(n):
        L = int(torch.randint(1, 301, (1,), generator=gen))
        if long_one and i == 0:
            L = 1100
        s = [RESIDUES[int(j)] for j in torch.randint(0, 20, (L,), generator=gen)]
        for _ in range(int(torch.randint(0, 3, (1,), generator=gen))):
            s[int(torch.randint(0, L, (1,), generator=gen))] = RARE[int(torch.randint(0, 5, (1,), generator=gen))]
        toks = [ALPHABET.cls_idx] + [ALPHABET.get_idx(c) for c in s] + [ALPHABET.eos_idx]
        if i % 5 == 3:  # some <mask> tokens
            for _ in range(1 + L // 20):
                toks[1 + int(torch.randint(0, L, (1,), generator=gen))] = ALPHABET.mask_idx
        seqs.append(toks)
    return seqs


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=20261122)
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    torch.set_grad_enabled(False)
    gen = torch.Generator().manual_seed(args.seed)
    manifest = []
    for mi, spec in enumerate(MODELS):
        model = ESM2(num_layers=spec["layers"], embed_dim=spec["dim"],
                     attention_heads=spec["heads"], alphabet=ALPHABET, token_dropout=True)
        randomize(model, gen)
        model.eval()
        path = save(model, spec, args.out)
        seqs = random_batch(gen, 12, long_one=(mi == 0))
        T = max(len(s) for s in seqs)
        batch = torch.full((len(seqs), T), ALPHABET.padding_idx, dtype=torch.long)
        for i, s in enumerate(seqs):
            batch[i, :len(s)] = torch.tensor(s)
        rep = model(batch, repr_layers=[spec["layers"]])["representations"][spec["layers"]]
        hidden, means, cu = [], [], [0]
        for i, s in enumerate(seqs):
            hidden.append(rep[i, :len(s)])
            L = len(s) - 2
            means.append(rep[i, 1:min(1024, L) + 1].mean(0))
            cu.append(cu[-1] + len(s))
        ref = os.path.join(args.out, spec["name"] + "_ref.safetensors")
        save_file({"tokens": torch.tensor([t for s in seqs for t in s], dtype=torch.int32),
                   "cu_seqlens": torch.tensor(cu, dtype=torch.int32),
                   "hidden": torch.cat(hidden).contiguous().float(),
                   "mean": torch.stack(means).contiguous().float()}, ref)
        manifest.append({"name": spec["name"], "model": path, "reference": ref,
                         "hidden_size": spec["dim"]})
    with open(os.path.join(args.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    main()
