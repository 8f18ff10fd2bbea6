"""A compact CLIP tokenizer for the shapes model: CLIP's own BPE merges, pruned to the ones the shapes world's words use.

CLIP's full vocabulary has 49,408 tokens; a text encoder that only ever learns ~60 words would spend most of its
weights on rows it never trains. ``compact_vocab(words)`` keeps the 512 byte tokens (so any text still tokenizes,
letter by letter, with no unknown token), the merges CLIP applies to ``words``, in CLIP's order, and the two special
tokens. Because BPE always applies the lowest-ranked merge present, a word from ``words`` splits exactly as CLIP splits
it; an unseen word falls apart into smaller known pieces.
"""

from __future__ import annotations

import math

from ..compose.tokens import clip_vocab

SPECIALS = ("<|startoftext|>", "<|endoftext|>")


def compact_vocab(words: set[str]) -> tuple[list[str], list[str]]:
    """(vocabulary, merges) covering ``words`` (lower-case ASCII) with CLIP's merges."""
    full_vocab, merges = clip_vocab()
    ranks = {tuple(m.split()): i for i, m in enumerate(merges)}
    used: set[tuple[str, str]] = set()
    for word in words:
        parts = [*word[:-1], word[-1] + "</w>"]
        while len(parts) > 1:
            best = min(zip(parts, parts[1:]), key=lambda pair: ranks.get(pair, math.inf))
            if best not in ranks:
                break
            used.add(best)
            parts = _merge(parts, best)
    kept = sorted(used, key=ranks.__getitem__)
    byte_tokens = full_vocab[:512]
    vocab = byte_tokens + list(dict.fromkeys(a + b for a, b in kept if a + b not in byte_tokens)) + list(SPECIALS)
    return vocab, [f"{a} {b}" for a, b in kept]


def _merge(parts: list[str], pair: tuple[str, str]) -> list[str]:
    out, i = [], 0
    while i < len(parts):
        if i + 1 < len(parts) and (parts[i], parts[i + 1]) == pair:
            out.append(parts[i] + parts[i + 1])
            i += 2
        else:
            out.append(parts[i])
            i += 1
    return out
