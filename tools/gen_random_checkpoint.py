"""Random-weight checkpoints of the REAL model shapes in the real file formats,
for GPU validation and benchmarks (no download, reproducible from a seed).

  esm2     ESM-2 3B (esm2_t36_3B_UR50D): 36 layers, hidden 2560, 40 heads, FFN 10240,
           vocab 33. Hugging Face hub layout: model.safetensors (float32, `esm.` names,
           lm_head.*, contact_head.*, one rotary inv_freq per layer, fp16-rounded as the
           hub files hold it), config.json, vocab.txt.
  dnabert  DNABERT-S: 12 layers, hidden 768, 12 heads, intermediate 3072 (gated MLP
           of 2 x 3072), vocab 4096. Hub layout: pytorch_model.bin (a torch.save'd
           state dict, float32), config.json, and the real tokenizer.json.

Usage:
  python3 tools/gen_random_checkpoint.py esm2 OUT_DIR [--seed N] [--layers N] [--device cuda]
  python3 tools/gen_random_checkpoint.py dnabert OUT_DIR [--seed N]

Layer count can be reduced (--layers) for quick checks; every other shape stays real.
Weights are N(0, 0.02) as the reference models initialise them; LayerNorm gains are
1 + N(0, 0.1) and biases N(0, 0.02), so that a backend that drops a bias or a gain
shows up in an FP16-vs-FP32 comparison. The tensors are drawn on --device (a GPU
makes the 11 GB ESM-2 3B file in seconds) and written float32 as the hub does.
"""
import argparse
import json
import os
import shutil
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "tests", "fixtures", "golden")


def draw(gen, shape, std, device, mean=0.0):
    t = torch.empty(shape, dtype=torch.float32, device=device)
    t.normal_(mean, std, generator=gen)
    return t.cpu()


def esm2(out, seed, layers, device):
    from safetensors.torch import save_file

    H, I, heads, vocab = 2560, 10240, 40, 33
    hd = H // heads
    gen = torch.Generator(device=device).manual_seed(seed)
    sd = {}
    w = lambda *s: draw(gen, s, 0.02, device)
    gain = lambda n: draw(gen, (n,), 0.1, device, 1.0)
    inv_freq = (1.0 / (10000 ** (torch.arange(0, hd, 2, dtype=torch.float32) / hd))).half().float()
    sd["esm.embeddings.word_embeddings.weight"] = draw(gen, (vocab, H), 0.1, device)
    for l in range(layers):
        p = f"esm.encoder.layer.{l}."
        for n in ("query", "key", "value"):
            sd[p + f"attention.self.{n}.weight"] = w(H, H)
            sd[p + f"attention.self.{n}.bias"] = w(H)
        sd[p + "attention.self.rotary_embeddings.inv_freq"] = inv_freq.clone()
        sd[p + "attention.output.dense.weight"] = w(H, H)
        sd[p + "attention.output.dense.bias"] = w(H)
        sd[p + "attention.LayerNorm.weight"] = gain(H)
        sd[p + "attention.LayerNorm.bias"] = w(H)
        sd[p + "intermediate.dense.weight"] = w(I, H)
        sd[p + "intermediate.dense.bias"] = w(I)
        sd[p + "output.dense.weight"] = w(H, I)
        sd[p + "output.dense.bias"] = w(H)
        sd[p + "LayerNorm.weight"] = gain(H)
        sd[p + "LayerNorm.bias"] = w(H)
    sd["esm.encoder.emb_layer_norm_after.weight"] = gain(H)
    sd["esm.encoder.emb_layer_norm_after.bias"] = w(H)
    sd["esm.contact_head.regression.weight"] = w(1, layers * heads)
    sd["esm.contact_head.regression.bias"] = w(1)
    sd["lm_head.dense.weight"] = w(H, H)
    sd["lm_head.dense.bias"] = w(H)
    sd["lm_head.layer_norm.weight"] = gain(H)
    sd["lm_head.layer_norm.bias"] = w(H)
    sd["lm_head.bias"] = w(vocab)
    os.makedirs(out, exist_ok=True)
    save_file(sd, os.path.join(out, "model.safetensors"), metadata={"format": "pt"})
    cfg = json.load(open(os.path.join(GOLDEN, "esm2", "config.json")))
    cfg.update(hidden_size=H, intermediate_size=I, num_attention_heads=heads,
               num_hidden_layers=layers, vocab_size=vocab)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    shutil.copy(os.path.join(GOLDEN, "esm2", "vocab.txt"), os.path.join(out, "vocab.txt"))


def dnabert(out, seed, layers, device):
    H, I, heads, vocab = 768, 3072, 12, 4096
    gen = torch.Generator(device=device).manual_seed(seed)
    w = lambda *s: draw(gen, s, 0.02, device)
    gain = lambda n: draw(gen, (n,), 0.1, device, 1.0)
    sd = {}
    sd["embeddings.word_embeddings.weight"] = w(vocab, H)
    sd["embeddings.token_type_embeddings.weight"] = w(2, H)
    sd["embeddings.LayerNorm.weight"] = gain(H)
    sd["embeddings.LayerNorm.bias"] = w(H)
    for l in range(layers):
        p = f"encoder.layer.{l}."
        sd[p + "attention.self.Wqkv.weight"] = w(3 * H, H)
        sd[p + "attention.self.Wqkv.bias"] = w(3 * H)
        sd[p + "attention.output.dense.weight"] = w(H, H)
        sd[p + "attention.output.dense.bias"] = w(H)
        sd[p + "attention.output.LayerNorm.weight"] = gain(H)
        sd[p + "attention.output.LayerNorm.bias"] = w(H)
        sd[p + "mlp.gated_layers.weight"] = w(2 * I, H)
        sd[p + "mlp.wo.weight"] = w(H, I)
        sd[p + "mlp.wo.bias"] = w(H)
        sd[p + "mlp.layernorm.weight"] = gain(H)
        sd[p + "mlp.layernorm.bias"] = w(H)
    sd["pooler.dense.weight"] = w(H, H)
    sd["pooler.dense.bias"] = w(H)
    os.makedirs(out, exist_ok=True)
    torch.save(sd, os.path.join(out, "pytorch_model.bin"))
    cfg = json.load(open(os.path.join(GOLDEN, "dnabert_s", "config.json")))
    cfg.update(hidden_size=H, intermediate_size=I, num_attention_heads=heads,
               num_hidden_layers=layers, vocab_size=vocab)
    json.dump(cfg, open(os.path.join(out, "config.json"), "w"), indent=2)
    for f in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(os.path.join(GOLDEN, "dnabert_s", f), os.path.join(out, f))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", choices=["esm2", "dnabert"])
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    a = ap.parse_args()
    torch.set_grad_enabled(False)
    if a.model == "esm2":
        esm2(a.out, a.seed, a.layers or 36, a.device)
    else:
        dnabert(a.out, a.seed, a.layers or 12, a.device)
    print(f"wrote {a.model} checkpoint to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
