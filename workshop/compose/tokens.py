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

from .editing import variants
from .emphasis import chunk_text, parse, plain
from .networks import without_networks

CONTEXT = 77  # CLIP's window, start and end tokens included
CHUNK = CONTEXT - 2  # an AUTOMATIC1111 window: 75 tokens between its start and end tokens
COMMA_BACKTRACK = 20  # a full window breaks after a comma this close to its end (A1111's comma_padding_backtrack)
Encoder = Callable[[str], Sequence[int]]
Piece = tuple[Sequence[int | tuple[int, ...]], float] | None  # a run of tokens (a tuple: a multi-vector embedding's,
# kept in one window) and its weight; None: a BREAK


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
    """The tokens of ``prompt``'s words — A1111's brackets, weights and escapes are not sent to the model, so they
    are not counted. A prompt split by BREAK has a window per part: the limit is one window per part, and each
    keyword is counted in the part it is in. A prompt with editing: the text it takes that has the most tokens."""
    return max((_budget(text, keywords, encode, limit) for text in variants(prompt)), key=lambda b: b.tokens)


def _budget(prompt: str, keywords: Sequence[str], encode: Encoder, limit: int) -> Budget:
    capacity = limit - 2
    truncated, wholly, found, tokens = [], [], set(), 0
    chunks = [chunk_text(c) for c in parse(prompt)]
    for text in chunks:
        pos = 0
        for keyword in keywords:
            words = plain(keyword)  # a keyword written as "(text:1.3)" is found by its words
            start = text.find(words, pos) if keyword not in found else -1
            if start < 0:
                continue
            found.add(keyword)
            pos = start + len(words)
            if len(encode(text[:pos])) > capacity:
                truncated.append(keyword)
                if len(encode(text[:start])) >= capacity:
                    wholly.append(keyword)
        tokens += len(encode(text)) + 2
    return Budget(tokens, limit * len(chunks), tuple(truncated), tuple(wholly))


def a1111_windows(pieces: list[Piece], comma: int | None) -> list[tuple[list[int], list[float]]]:
    """A prompt's tokens in AUTOMATIC1111's windows, each its ids and their weights (no start, end or padding): 75
    tokens a window; a full window breaks after its last comma when that comma is within 20 tokens of its end (the
    rest moves on); a BREAK (None) starts a new one, empty or not; an empty prompt is one empty window; a multi-vector
    embedding's tokens (a tuple) that would not fit in what is left of a window start the next."""
    windows: list[tuple[list[int], list[float]]] = []
    ids: list[int] = []
    weights: list[float] = []
    last_comma = -1

    def close() -> None:
        nonlocal ids, weights, last_comma
        windows.append((ids, weights))
        ids, weights, last_comma = [], [], -1

    for piece in pieces:
        if piece is None:
            close()
            continue
        tokens, weight = piece
        for token in tokens:
            if token == comma:
                last_comma = len(ids)
            elif len(ids) == CHUNK and last_comma != -1 and len(ids) - last_comma <= COMMA_BACKTRACK:
                moved, moved_weights = ids[last_comma + 1:], weights[last_comma + 1:]
                ids, weights = ids[:last_comma + 1], weights[:last_comma + 1]
                close()
                ids, weights = moved, moved_weights
            if len(ids) == CHUNK:
                close()
            if isinstance(token, tuple):
                if len(ids) + len(token) > CHUNK and ids:
                    close()
                ids.extend(token)
                weights.extend([weight] * len(token))
                continue
            ids.append(token)
            weights.append(weight)
    if ids or not windows:
        close()
    return windows


def windows(prompt: str, encode: Encoder) -> int:
    """How many A1111 windows ``prompt``'s words take (its brackets, weights and LoRA tags are not words; a prompt
    with editing: the most of any text it takes)."""
    comma = next(iter(encode(",")), None)
    counts = []
    for text in variants(without_networks(prompt)):
        pieces: list[Piece] = []
        for n, chunk in enumerate(parse(text)):
            pieces += [None] if n else []
            pieces += [(encode(segment.text), segment.weight) for segment in chunk]
        counts.append(len(a1111_windows(pieces, comma)))
    return max(counts)
