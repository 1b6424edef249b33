#!/usr/bin/env python3
"""Writes the seed corpus of fuzz/fuzz_tokenizer_json.c: small tokenizer.json files
covering every option the loader reads, cut down from the real DNABERT-S file
(the whole 168 kB file would make each fuzzing execution slow).

Usage: tok_fuzz_seeds.py DNABERT_TOKENIZER_JSON OUT_DIR
"""
import json
import os
import sys


def main():
    src, out = sys.argv[1], sys.argv[2]
    os.makedirs(out, exist_ok=True)
    real = json.load(open(src))
    vocab = real["model"]["vocab"]
    merges = real["model"]["merges"]

    # The first merges and every token they need.
    keep_merges = merges[:60]
    keep = {t for t, i in vocab.items() if i < 9}
    for m in keep_merges:
        a, b = m.split(" ")
        keep |= {a, b, a + b}
    small = dict(real)
    small["model"] = dict(real["model"])
    small["model"]["vocab"] = {t: i for t, i in vocab.items() if t in keep}
    small["model"]["merges"] = keep_merges

    def variant(name, **changes):
        d = json.loads(json.dumps(small))
        for path, value in changes.items():
            node = d
            keys = path.split("__")
            for k in keys[:-1]:
                node = node[k]
            if value is None and keys[-1].startswith("DEL_"):
                node.pop(keys[-1][4:], None)
            else:
                node[keys[-1]] = value
        with open(os.path.join(out, name + ".json"), "w") as f:
            json.dump(d, f, separators=(",", ":"))

    variant("dnabert_small")
    variant("merges_as_pairs", model__merges=[m.split(" ") for m in keep_merges])
    variant("fuse_unk", model__fuse_unk=True)
    variant("no_unk", model__unk_token=None)
    variant("ignore_merges", model__ignore_merges=True)
    variant("no_pre_tokenizer", pre_tokenizer=None, post_processor=None)
    variant("whitespace_split_seq",
            pre_tokenizer={"type": "Sequence", "pretokenizers": [
                {"type": "WhitespaceSplit"}, {"type": "Whitespace"}]},
            post_processor={"type": "BertProcessing", "sep": ["[SEP]", 2], "cls": ["[CLS]", 1]})
    variant("added_not_in_vocab", added_tokens=small["added_tokens"] + [
        {"id": 4096, "content": "<x>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": True, "special": False},
        {"id": 4097, "content": "<xy>", "single_word": False, "lstrip": False, "rstrip": False,
         "normalized": False, "special": True}])
    # prefix / suffix / byte fallback need their own vocabularies
    with open(os.path.join(out, "prefix.json"), "w") as f:
        json.dump({"model": {"type": "BPE", "vocab": {"[UNK]": 0, "A": 1, "##A": 2, "##C": 3,
                                                      "AA": 4, "##AC": 5},
                             "merges": ["A ##A", "##A ##C"], "unk_token": "[UNK]",
                             "continuing_subword_prefix": "##"},
                   "pre_tokenizer": {"type": "Whitespace"}}, f)
    with open(os.path.join(out, "suffix.json"), "w") as f:
        json.dump({"model": {"type": "BPE", "vocab": {"[UNK]": 0, "A": 1, "A</w>": 2,
                                                      "AA</w>": 3},
                             "merges": ["A A</w>"], "unk_token": "[UNK]",
                             "end_of_word_suffix": "</w>"}}, f)
    with open(os.path.join(out, "byte_fallback.json"), "w") as f:
        json.dump({"model": {"type": "BPE", "vocab": {"[UNK]": 0, "A": 1, "<0xC3>": 2,
                                                      "<0xA9>": 3, "<0xFF>": 4},
                             "merges": [], "unk_token": "[UNK]", "byte_fallback": True},
                   "added_tokens": []}, f)
    with open(os.path.join(out, "heap_schedule.json"), "w") as f:
        json.dump({"model": {"type": "BPE", "vocab": {"A": 0, "AA": 1, "AAA": 2, "C": 3,
                                                      "G": 4, "CG": 5, "ACG": 6},
                             "merges": ["A A", "AA A", "A AA", "A CG", "C G"]}}, f)


if __name__ == "__main__":
    main()
