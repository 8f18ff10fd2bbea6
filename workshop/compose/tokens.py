"""Token budgets: how many CLIP tokens a prompt uses of the 77-token window, and which keywords fall past it.

Counts with the target model's tokenizer when one is given (an ``encode(text) -> token ids`` callable, without
start/end tokens), otherwise with open_clip's bundled CLIP BPE, which works offline.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
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
    """open_clip's CLIP tokenizer (imports open_clip, and so torch: seconds, once)."""
    from open_clip.tokenizer import SimpleTokenizer

    return SimpleTokenizer().encode


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
