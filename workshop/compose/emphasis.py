"""AUTOMATIC1111's emphasis syntax: ``(text:1.3)`` weighs words up or down at the embedding level.

``weighted`` writes a keyword with its weight the way A1111 users do, so a cell's prompt carries its weights as text:
the run records it as it is, and the runner applies the weights when it encodes the prompt.

``parse`` reads the syntax as A1111's ``parse_prompt_attention`` does — ``(text)`` ×1.1, ``(text:1.3)``, ``[text]``
÷1.1, nesting multiplies, ``\\( \\) \\[ \\] \\\\`` are literal, ``BREAK`` starts a new 75-token chunk — but refuses
(SpecError, naming the character) what A1111 silently reads otherwise than it looks: unbalanced or crossed brackets,
a weight that is not a number (spaces round it are allowed, as A1111 allows them), a lone backslash, BREAK inside
brackets. Whatever it accepts, it weighs exactly as A1111 does (the same multiplications in the same order). Prompt
editing ``[a:b:when]`` and alternation ``[a|b]`` are ``editing``'s: a prompt holding them is read as the words it ends
with, every text it takes at some step checked; the runner encodes each step's text as it comes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .editing import final, has_editing, variants
from .errors import SpecError
from .networks import is_network, with_strength, without_networks

_SPECIAL = "\\()[]"
ROUND = 1.1  # (text)
SQUARE = 1 / 1.1  # [text]

# one token at a time: an escape, a bracket, a weight closing a round bracket, words, or a colon
_TOKEN = re.compile(r"\\(?P<escaped>.?)|(?P<open>[(\[])|:\s*(?P<weight>[+-]?[.\d]+)\s*\)|(?P<close>[)\]])|(?P<words>[^\\()\[\]:]+)|:",
                    re.S)
_BREAK = re.compile(r"\s*\bBREAK\b\s*", re.S)
_AND = re.compile(r"\bAND\b")  # A1111's conjunction
_SYNTAX = re.compile(r"[\\()\[\]]|\bBREAK\b")


@dataclass(frozen=True)
class Segment:
    """A run of words and the weight A1111 gives them."""

    text: str
    weight: float = 1.0


Chunk = tuple[Segment, ...]  # the segments between two BREAKs


def escape(text: str) -> str:
    """``text`` with A1111's brackets and backslashes escaped, so they reach the model as typed."""
    return "".join("\\" + ch if ch in _SPECIAL else ch for ch in text)


def weighted(text: str, weight: float) -> str:
    """``text`` weighed by ``weight`` in A1111's syntax: as it is at 1, else ``(text:weight)`` with brackets escaped;
    a LoRA's tag (``<lora:NAME>``) at that strength instead (``networks``)."""
    if not math.isfinite(weight):
        raise ValueError(f"weight {weight} is not a finite number")
    if weight != 1 and is_network(text):
        return with_strength(text, weight)
    return text if weight == 1 else f"({escape(text)}:{weight:g})"


def has_emphasis(text: str) -> bool:
    """Whether ``text`` uses any of the syntax (a bracket, a backslash, BREAK): text without it means what it says."""
    return _SYNTAX.search(text) is not None


def plain(text: str, what: str = "the prompt") -> str:
    """The words alone, without brackets, weights, escapes or LoRA tags (BREAK's chunks joined by a space): what token
    budgets count and CLIP scores."""
    return " ".join(chunk_text(c) for c in parse(without_networks(text), what))


def chunk_text(chunk: Chunk) -> str:
    return "".join(s.text for s in chunk)


@dataclass
class _Open:
    bracket: str
    at: int  # 0-based character
    start: int  # the first segment inside it


def parse(text: str, what: str = "the prompt") -> tuple[Chunk, ...]:
    """``text``'s chunks (one, or one per BREAK-separated part), each its runs of equally weighted words in order.
    SpecError for what A1111 would read otherwise than it looks; ``what`` names the text in the message. A prompt
    with editing: the words it ends with (``editing.final``), each text it takes checked where it stands in it."""
    if has_editing(text):
        for each in variants(text, what, in_place=True):
            _parse(each, what)
        text = final(text, what)
    return _parse(text, what)


def _parse(text: str, what: str) -> tuple[Chunk, ...]:
    res: list[list] = []  # [text, weight], or None for a BREAK
    stack: list[_Open] = []

    def fail(problem: str) -> SpecError:
        return SpecError(f"{what}: {problem}")

    def close(bracket: str, at: int, multiplier: float) -> None:
        opener = {")": "(", "]": "["}[bracket]
        if not stack:
            raise fail(f'unbalanced "{bracket}" at character {at + 1}: open it with "{opener}" or escape it as \\{bracket}')
        top = stack.pop()
        if top.bracket != opener:
            closer = {"(": ")", "[": "]"}[top.bracket]
            raise fail(f'"{bracket}" at character {at + 1} closes the "{top.bracket}" at character {top.at + 1}: '
                       f'close that one with "{closer}" first')
        for seg in res[top.start:]:
            if seg is not None:
                seg[1] *= multiplier

    if conjunction := _AND.search(text):  # A1111 splits the prompt here (composable diffusion): it is no word
        raise fail(f"AND at character {conjunction.start() + 1} is A1111's composable diffusion (prompts denoised "
                   "together), which promptism does not do: write \"and\", or make each prompt a run of its own")
    tokens = list(_TOKEN.finditer(text))
    for n, m in enumerate(tokens):
        at = m.start()
        if m["escaped"] is not None:
            if not m["escaped"] or m["escaped"] not in _SPECIAL:
                raise fail(f'a lone "\\" at character {at + 1}: write \\\\ for a backslash, or \\( \\) \\[ \\] for a bracket')
            res.append([m["escaped"], 1.0])
        elif m["open"]:
            stack.append(_Open(m["open"], at, len(res)))
        elif m["weight"] is not None:
            try:
                weight = float(m["weight"])
            except ValueError:
                raise fail(f'the weight "{m["weight"]}" at character {at + 2} is not a number: write (text:1.3)') from None
            close(")", m.end() - 1, weight)
        elif m["close"]:
            close(m["close"], at, ROUND if m["close"] == ")" else SQUARE)
        elif m["words"] is not None:
            words = m["words"]
            for k, part in enumerate(_BREAK.split(words)):
                if k:
                    if stack:
                        where = at + words.index("BREAK") + 1
                        raise fail(f'BREAK at character {where} is inside the "{stack[-1].bracket}" at character '
                                   f"{stack[-1].at + 1}: move it out of the brackets")
                    res.append(None)
                res.append([part, 1.0])
        else:  # a colon that does not close a weight
            _check_colon(text, tokens, n, stack, fail)
            res.append([":", 1.0])
    if stack:
        top = stack[-1]
        closer = {"(": ")", "[": "]"}[top.bracket]
        raise fail(f'unbalanced "{top.bracket}" at character {top.at + 1}: close it with "{closer}" or escape it as '
                   f"\\{top.bracket}")
    return tuple(_merged(chunk) for chunk in _split_at_breaks(res))


def _check_colon(text: str, tokens: list, n: int, stack: list[_Open], fail) -> None:
    """A colon A1111 takes as words although it looks like a weight (``(text:high)``, ``(text:)``) is refused (one
    inside ``[ ]`` is prompt editing's, read before: ``editing``)."""
    at = tokens[n].start()
    if not stack or stack[-1].bracket == "[":
        return
    following = tokens[n + 1 : n + 3]
    if following and following[0]["close"] == ")":
        raise fail(f"the weight at character {at + 2} is missing: write (text:1.3), or take the colon out")
    if len(following) == 2 and following[0]["words"] is not None and following[1]["close"] == ")":
        weight = following[0]["words"]
        if not re.search(r"\s", weight):
            raise fail(f'the weight "{weight}" at character {at + 2} is not a number: write (text:1.3), or escape the '
                       "brackets as \\( \\) to keep them as words")


def _split_at_breaks(res: list) -> list[list]:
    chunks: list[list] = [[]]
    for seg in res:
        if seg is None:
            chunks.append([])
        else:
            chunks[-1].append(seg)
    return chunks


def _merged(chunk: list) -> Chunk:
    """Neighbouring runs of the same weight as one segment (as A1111 merges them); empty runs dropped."""
    out: list[Segment] = []
    for text, weight in chunk:
        if not text:
            continue
        if out and out[-1].weight == weight:
            out[-1] = Segment(out[-1].text + text, weight)
        else:
            out.append(Segment(text, weight))
    return tuple(out) or (Segment(""),)
