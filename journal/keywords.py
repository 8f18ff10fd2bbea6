"""A prompt's keywords the way AUTOMATIC1111 users write them: the comma-separated parts, weights kept as written.

``split_keywords("masterpiece, (red hair, blue eyes:1.2), <lora:ink:0.8>")`` gives ``masterpiece``,
``(red hair, blue eyes:1.2)`` and ``<lora:ink:0.8>``: a comma inside brackets does not split. ``plain`` is a keyword
without its emphasis (``(masterpiece:1.2)`` → ``masterpiece``), what ``log --keyword`` compares.
"""

from __future__ import annotations

import re

_OPEN, _CLOSE = "([{<", ")]}>"
_BREAK = re.compile(r"\s+BREAK\s+|^BREAK\s+|\s+BREAK$")  # A1111's chunk separator, a keyword boundary too
_WEIGHT = re.compile(r":\s*[-+]?(\d+\.?\d*|\.\d+)\s*$")


def split_keywords(prompt: str) -> list[str]:
    """The parts of ``prompt`` between commas (and line breaks) outside brackets, stripped, each once, in order."""
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
    return list(dict.fromkeys(p for p in (" ".join(part.split()) for part in parts) if p))


def plain(keyword: str) -> str:
    """``keyword`` without A1111 emphasis: outer ``( )`` / ``[ ]`` and a trailing ``:weight`` dropped, escapes undone."""
    text = keyword.strip()
    while len(text) > 1 and text[0] + text[-1] in ("()", "[]") and not text.endswith("\\" + text[-1]):
        text = _WEIGHT.sub("", text[1:-1]).strip()
    return re.sub(r"\\(.)", r"\1", text)
