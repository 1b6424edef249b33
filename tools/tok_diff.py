#!/usr/bin/env python3
"""Differential test data for the tokenizers: random strings and the reference ids.

DNA: the Hugging Face `tokenizers` package with the given tokenizer.json, encoded
the way transformers' PreTrainedTokenizerFast does by default (special tokens
added, the file's truncation and padding blocks switched off).
Protein: the fair-esm alphabet's own split rules (the ones EsmTokenizer copies),
with every piece that is not a token mapped to <unk> as EsmTokenizer does.

Output (binary-safe), one case after another:
    <kind: D or P> <byte length>\n<bytes>\n<ids separated by spaces>\n
Usage: tok_diff.py TOKENIZER_JSON OUT [--seed N] [--dna N] [--protein N]
"""
import argparse
import math
import random
import sys

PUNCT = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
WHITE_SPACE = [0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680] + \
    list(range(0x2000, 0x200B)) + [0x2028, 0x2029, 0x202F, 0x205F, 0x3000]
# Neither whitespace to Unicode nor to Oniguruma, but to Python's str.split().
PY_ONLY_SPACE = [0x1C, 0x1D, 0x1E, 0x1F]
NON_ASCII = ["é", "ß", "Ω", "ж", "中", "😀", "—", "«", "¼", "²", "\u0301", "\u200b", "\ufeff"]


_TO_ACGT = bytes(b"ACGT"[i % 4] for i in range(256))


def rand_dna(rng, n):
    return rng.randbytes(n).translate(_TO_ACGT).decode("ascii")


def mutate(rng, s, rates, extras):
    """Replaces characters of s by noise, and inserts extras after characters, at
    the given per-character rates. Jumps from event to event (geometric gaps), so
    long clean runs cost nothing."""
    total = sum(r for r, _ in rates)
    events = []  # (position, kind, generator)
    if total > 0:
        pos = -1
        while True:
            pos += 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - total))
            if pos >= len(s):
                break
            pick = rng.random() * total
            for rate, gen in rates:
                pick -= rate
                if pick < 0:
                    break
            events.append((pos, 0, gen))
    if extras:
        pos = -1
        while True:
            pos += 1 + int(math.log(1.0 - rng.random()) / math.log(1.0 - extras[0]))
            if pos >= len(s):
                break
            events.append((pos, 1, None))
    if not events:
        return s
    events.sort(key=lambda e: (e[0], e[1]))
    out = []
    last = 0
    for pos, kind, gen in events:
        if kind == 0:
            if pos < last:
                continue
            out.append(s[last:pos])
            out.append(gen())
            last = pos + 1
        else:
            out.append(s[last:pos + 1])
            out.append(rng.choice(extras[1]))
            last = pos + 1
    out.append(s[last:])
    return "".join(out)


def dna_case(rng):
    # Lengths 1..3000: some uniform, most log-uniform (short reads are common, and
    # the reference tokenizer needs ~2 s per million bases, which bounds the total).
    if rng.random() < 0.15:
        n = rng.randint(1, 3000)
    else:
        n = int(round(10 ** rng.uniform(0, 3.4772)))
        n = max(1, min(3000, n))
    s = rand_dna(rng, n)
    level = rng.choice([0.0, 0.001, 0.01, 0.05, 0.2])
    if level == 0.0 and rng.random() < 0.5:
        return s
    rates = [
        (level, lambda: "N"),
        (level, lambda: rng.choice("acgtn")),
        (level / 2, lambda: " " * rng.randint(1, 3)),
        (level / 2, lambda: rng.choice(PUNCT)),
        (level / 8, lambda: rng.choice("\t\n\r\x0b\x0c")),
        (level / 8, lambda: rng.choice("RYKMSWBDHVUX0123456789_")),
    ]
    extras = None
    if rng.random() < 0.15:
        specials = ["[CLS]", "[SEP]", "[UNK]", "[PAD]", "[MASK]", "[CLS", "SEP]", "[[SEP]]"]
        extras = (level / 4 + 0.0005, specials)
    elif rng.random() < 0.15:
        pool = NON_ASCII + [chr(c) for c in WHITE_SPACE + PY_ONLY_SPACE] + ["\x00", "\x7f"]
        extras = (level / 4 + 0.0005, pool)
    return mutate(rng, s, rates, extras)


def protein_case(rng):
    n = rng.randint(0, 1200)
    alpha = "LAGVSERTIDPKQNFYMHWCXBUZO"
    s = "".join(rng.choices(alpha, k=n))
    level = rng.choice([0.0, 0.01, 0.05, 0.2])
    if level == 0.0:
        return s
    specials = ["<cls>", "<pad>", "<eos>", "<unk>", "<null_1>", "<mask>", "<mas", "<", ">"]
    rates = [
        (level, lambda: rng.choice("abcdefghiklmnpqrstvwxyz")),
        (level / 2, lambda: "*"),
        (level / 2, lambda: rng.choice(" \t\n" + "".join(map(chr, PY_ONLY_SPACE)) + "\u00a0\u3000")),
        (level / 4, lambda: rng.choice(".-" + PUNCT + "0123456789")),
        (level / 4, lambda: rng.choice(specials)),
        (level / 8, lambda: rng.choice(NON_ASCII)),
    ]
    return mutate(rng, s, rates, None)


class ListWithSetLookup(list):
    """The same list (iterated in the same order), with `in` answered by a set of its items.
    fair-esm's Alphabet.tokenize tests `piece not in self.unique_no_split_tokens` for every
    piece of the text against every token, a scan of a 33-item list each time: most of this
    script's time. For strings a set answers exactly as the list does."""

    def __init__(self, items):
        super().__init__(items)
        self._items = frozenset(items)

    def __contains__(self, x):
        return x in self._items


def every_code_point_cases():
    """Each Unicode whitespace character and a spread of others between bases."""
    cps = WHITE_SPACE + PY_ONLY_SPACE + list(range(0, 0x80)) + \
        list(range(0x80, 0x3100, 7)) + list(range(0xE000, 0x110000, 4099))
    return ["AC" + chr(c) + "GT" for c in cps if not 0xD800 <= c < 0xE000]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("tokenizer_json")
    ap.add_argument("out")
    ap.add_argument("--seed", type=int, default=20261121)
    ap.add_argument("--dna", type=int, default=10000)
    ap.add_argument("--protein", type=int, default=3000)
    a = ap.parse_args()
    try:
        from tokenizers import Tokenizer
        import esm
    except ImportError as e:
        sys.exit(f"tok_diff.py: needs the `tokenizers` and `fair-esm` packages: {e}")
    rng = random.Random(a.seed)

    tok = Tokenizer.from_file(a.tokenizer_json)
    tok.no_truncation()
    tok.no_padding()
    dna = [dna_case(rng) for _ in range(a.dna)] + every_code_point_cases()
    dna_ids = [e.ids for e in tok.encode_batch(dna, add_special_tokens=True)]

    alphabet = esm.data.Alphabet.from_architecture("ESM-1b")  # the ESM-2 alphabet
    alphabet.unique_no_split_tokens = ListWithSetLookup(alphabet.unique_no_split_tokens)
    prot = [protein_case(rng) for _ in range(a.protein)]
    prot_ids = []
    for s in prot:
        pieces = alphabet.tokenize(s)
        prot_ids.append([alphabet.cls_idx] +
                        [alphabet.tok_to_idx.get(p, alphabet.unk_idx) for p in pieces] +
                        [alphabet.eos_idx])

    with open(a.out, "wb") as f:
        for kind, texts, idss in (("D", dna, dna_ids), ("P", prot, prot_ids)):
            for s, ids in zip(texts, idss):
                b = s.encode("utf-8")
                f.write(b"%s %d\n" % (kind.encode(), len(b)))
                f.write(b)
                f.write(b"\n" + " ".join(map(str, ids)).encode() + b"\n")
    print(f"tok_diff.py: {len(dna)} DNA and {len(prot)} protein cases, "
          f"{sum(len(s) for s in dna)} DNA characters -> {a.out}")


if __name__ == "__main__":
    main()
