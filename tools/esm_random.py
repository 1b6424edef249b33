"""Random-weight encoder checkpoints of any shape, for CPU tests and benchmarks
(reproducible from a seed, no download).

  $VNP_PYTHON tools/esm_random.py esm2 OUT.pt [--layers 30 --dim 640 --heads 20] [--seed N]
      fair-esm hub layout ({"model", "cfg"}, encoder.sentence_encoder. names) from
      fair-esm's own ESM2 class; the default is the ESM-2 150M shape (esm2_t30_150M).
  $VNP_PYTHON tools/esm_random.py dnabert OUT_DIR [--layers 12 --dim 768 --heads 12
      --inter 3072] [--seed N]
      DNABERT-S hub layout: pytorch_model.bin (bert_layers.py names), config.json and
      the real tokenizer.json copied from tests/fixtures/golden/dnabert_s; the default
      is the DNABERT-S shape (117M).

Weights are N(0, 0.02), LayerNorm gains 1 + N(0, 0.1), biases N(0, 0.02); the
rotary inv_freq is the textbook vector rounded to fp16 as the hub files hold it.
Not part of the product.
"""
import argparse
import json
import os
import shutil
from argparse import Namespace

import torch

HERE = os.path.dirname(os.path.abspath(__file__))


def fill(name, t, gen):
    noise = torch.randn(t.shape, generator=gen)
    if ("layer_norm" in name or "LayerNorm" in name or "layernorm" in name) and name.endswith("weight"):
        return 1.0 + 0.1 * noise
    return 0.02 * noise


def esm2(args, gen):
    import esm
    from esm.model.esm2 import ESM2
    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")
    model = ESM2(num_layers=args.layers, embed_dim=args.dim, attention_heads=args.heads,
                 alphabet=alphabet, token_dropout=True)
    sd = {}
    for k, v in model.state_dict().items():
        if k.endswith("inv_freq"):
            sd[k] = v.half().float()
        else:
            sd[k] = fill(k, v, gen)
    sd["lm_head.weight"] = sd["embed_tokens.weight"]  # tied in ESM2, as in the hub files
    cfg = Namespace(encoder_layers=args.layers, encoder_embed_dim=args.dim,
                    encoder_ffn_embed_dim=4 * args.dim, encoder_attention_heads=args.heads,
                    token_dropout=True, arch="ESM-1b")
    torch.save({"model": {("encoder." if k.startswith("lm_head") else "encoder.sentence_encoder.") + k: v
                          for k, v in sd.items()}, "cfg": {"model": cfg}}, args.out)


def dnabert(args, gen):
    H, I, L = args.dim, args.inter, args.layers
    shapes = {"embeddings.word_embeddings.weight": (4096, H),
              "embeddings.token_type_embeddings.weight": (2, H),
              "embeddings.LayerNorm.weight": (H,), "embeddings.LayerNorm.bias": (H,)}
    for i in range(L):
        p = "encoder.layer.%d." % i
        shapes.update({p + "attention.self.Wqkv.weight": (3 * H, H),
                       p + "attention.self.Wqkv.bias": (3 * H,),
                       p + "attention.output.dense.weight": (H, H),
                       p + "attention.output.dense.bias": (H,),
                       p + "attention.output.LayerNorm.weight": (H,),
                       p + "attention.output.LayerNorm.bias": (H,),
                       p + "mlp.gated_layers.weight": (2 * I, H),
                       p + "mlp.wo.weight": (H, I), p + "mlp.wo.bias": (H,),
                       p + "mlp.layernorm.weight": (H,), p + "mlp.layernorm.bias": (H,)})
    sd = {k: fill(k, torch.empty(s), gen) for k, s in shapes.items()}
    os.makedirs(args.out, exist_ok=True)
    torch.save(sd, os.path.join(args.out, "pytorch_model.bin"))
    golden = os.path.join(HERE, "..", "tests", "fixtures", "golden", "dnabert_s")
    with open(os.path.join(golden, "config.json")) as f:
        cfg = json.load(f)
    cfg.update(hidden_size=H, num_hidden_layers=L, num_attention_heads=args.heads,
               intermediate_size=I)
    with open(os.path.join(args.out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
    shutil.copy(os.path.join(golden, "tokenizer.json"), os.path.join(args.out, "tokenizer.json"))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model", choices=["esm2", "dnabert"])
    ap.add_argument("out")
    ap.add_argument("--layers", type=int)
    ap.add_argument("--dim", type=int)
    ap.add_argument("--heads", type=int)
    ap.add_argument("--inter", type=int, default=3072)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    defaults = {"esm2": (30, 640, 20), "dnabert": (12, 768, 12)}[args.model]
    args.layers = args.layers or defaults[0]
    args.dim = args.dim or defaults[1]
    args.heads = args.heads or defaults[2]
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        (esm2 if args.model == "esm2" else dnabert)(args, gen)


if __name__ == "__main__":
    main()
