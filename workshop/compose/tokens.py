"""Token budgets: how many CLIP tokens a prompt uses of the 77-token window, and which keywords fall past it.

Counts with the target model's tokenizer when one is given (an ``encode(text) -> token ids`` callable, without
start/end tokens), otherwise with CLIP's BPE from the vocabulary open_clip ships, which works offline. That BPE runs
in the ``tokenizers`` library (Rust; imported in milliseconds) rather than through ``import open_clip`` (which pulls in
torch: seconds); the tests check the two give the same ids.
"""

from __future__ import annotations

import gzip
import importlib.util
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable, Sequence

CONTEXT = 77  # CLIP's window, start and end tokens included
Encoder = Callable[[str], Sequence[int]]


@dataclass(frozen=True)
class Budget:
    tokens: int  # start and end tokens included
    limit: int
    truncated: tuple[str, ...]  # keywords wholly or partly past the limit
    wholly: tuple[str, ...]  # those of them that are entirely lost

    @property
    def over(self) -> bool:
        return self.tokens > self.limit


@lru_cache(maxsize=1)
def clip_bpe() -> Encoder:
    """CLIP's tokenizer (open_clip's bundled BPE vocabulary), as an encode function without start/end tokens."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers

    vocab, merges = clip_vocab()
    tokenizer = Tokenizer(models.BPE(vocab={tok: i for i, tok in enumerate(vocab)}, merges=[tuple(m.split()) for m in merges],
                                     end_of_word_suffix="</w>", continuing_subword_prefix="", unk_token="<|endoftext|>"))
    tokenizer.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"), behavior="removed", invert=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False),
    ])
    return lambda text: tokenizer.encode(text, add_special_tokens=False).ids


@lru_cache(maxsize=1)
def clip_vocab() -> tuple[list[str], list[str]]:
    """CLIP's 49,408-token vocabulary and its BPE merges, from the merges file open_clip ships (read, not imported)."""
    spec = importlib.util.find_spec("open_clip")
    bpe = Path(spec.submodule_search_locations[0]) / "bpe_simple_vocab_16e6.txt.gz"
    merges = gzip.open(bpe).read().decode("utf-8").split("\n")[1 : 49152 - 256 - 2 + 1]
    byte_chars = list(_bytes_to_unicode().values())
    vocab = byte_chars + [c + "</w>" for c in byte_chars] + ["".join(m.split()) for m in merges]
    return vocab + ["<|startoftext|>", "<|endoftext|>"], merges


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP's reversible byte -> printable character table."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def budget(prompt: str, keywords: Sequence[str], encode: Encoder, limit: int = CONTEXT) -> Budget:
    capacity = limit - 2
    truncated, wholly, pos = [], [], 0
    for keyword in keywords:
        start = prompt.find(keyword, pos)
        if start < 0:
            continue
        pos = start + len(keyword)
        if len(encode(prompt[:pos])) > capacity:
            truncated.append(keyword)
            if len(encode(prompt[:start])) >= capacity:
                wholly.append(keyword)
    return Budget(len(encode(prompt)) + 2, limit, tuple(truncated), tuple(wholly))
