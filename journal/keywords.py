"""A prompt's keywords the way AUTOMATIC1111 users write them: its comma-separated parts, each as plain text.

``split_keywords("masterpiece, (red hair, blue eyes:1.2), <lora:ink:0.8>")`` gives ``masterpiece``,
``red hair, blue eyes`` and ``<lora:ink:0.8>``: a comma inside brackets does not split, and a keyword is kept without
its emphasis (``plain``) — as a grid's keywords are, the weight staying in the prompt's text, where
``(dramatic lighting:1.2)`` still says it. ``log --keyword`` compares plain texts, so ``masterpiece`` finds
``(masterpiece:1.2)``.
"""

from __future__ import annotations

import re

_OPEN, _CLOSE = "([{<", ")]}>"
_BREAK = re.compile(r"\s+BREAK\s+|^BREAK\s+|\s+BREAK$")  # A1111's chunk separator, a keyword boundary too
_WEIGHT = re.compile(r":\s*[-+]?(\d+\.?\d*|\.\d+)\s*$")


def split_keywords(prompt: str) -> list[str]:
    """The parts of ``prompt`` between commas (and line breaks) outside brackets, as plain text, each once, in order."""
    parts, current, depth, escaped = [], [], 0, False
    for ch in _BREAK.sub(",", prompt):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif ch in ",\n" and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return list(dict.fromkeys(p for p in (plain(" ".join(part.split())) for part in parts) if p))


def plain(keyword: str) -> str:
    """``keyword`` without A1111 emphasis: outer ``( )`` with a trailing ``:weight``, or ``[ ]``, dropped and escapes
    undone; ``[cat|dog]`` and ``[from:to:when]`` (alternation, prompt editing) are not emphasis and stay."""
    text = keyword.strip()
    while len(text) > 1 and not text.endswith("\\" + text[-1]) and _enclosed(text):
        if text[0] == "[" and any(ch in text for ch in "|:"):
            break
        text = _WEIGHT.sub("", text[1:-1]).strip() if text[0] == "(" else text[1:-1].strip()
    return re.sub(r"\\(.)", r"\1", text)


def _enclosed(text: str) -> bool:
    """Whether ``text`` is one bracket group: ``(a) (b)`` is not, though it starts and ends with brackets."""
    if text[0] + text[-1] not in ("()", "[]"):
        return False
    depth, escaped = 0, False
    for i, ch in enumerate(text):
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
            if depth == 0 and i < len(text) - 1:
                return False
    return True
