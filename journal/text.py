"""Text from users and files, shown literally: the one escaping path on the way to a terminal, a commit message, the
TUI or the gallery. Control characters (ESC, CSI, BEL, C1 codes …) become visible symbols, and characters that
reorder or hide text (bidi overrides and isolates, zero-width spaces, fillers, stray variation selectors, tag
characters outside a flag) are spelled out, so no string can drive a terminal or display as something it is not."""

from __future__ import annotations

import unicodedata

#: Unicode's default-ignorable code points: drawn as nothing, so they can hide or disguise text.
_IGNORABLE = ((0x00AD, 0x00AD), (0x034F, 0x034F), (0x061C, 0x061C), (0x115F, 0x1160), (0x17B4, 0x17B5), (0x180B, 0x180F),
              (0x200B, 0x200F), (0x202A, 0x202E), (0x2060, 0x206F), (0x3164, 0x3164), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
              (0xFFA0, 0xFFA0), (0xFFF0, 0xFFF8), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE0FFF))
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ / ZWJ: emoji sequences and several scripts need them between two characters
_TAG_FLAG = "\U0001f3f4"  # a black flag followed by tag characters is a subdivision flag (🏴󠁧󠁢󠁳󠁣󠁴󠁿)


_IGNORABLE_SET = frozenset(code for lo, hi in _IGNORABLE for code in range(lo, hi + 1))


def ignorable(ch: str) -> bool:
    """Whether ``ch`` is a default-ignorable code point (it displays as nothing)."""
    return ord(ch) in _IGNORABLE_SET


def visible(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with every control, bidi or invisible character made visible (``␛``, ``⟨U+202E⟩``); newlines and
    tabs stay unless ``keep_newlines`` is False (then they are shown as ``␊`` / ``␉`` too). A joiner or variation
    selector right after a visible character, and tag characters completing a flag, stay: emoji need them."""
    out = []
    prev = ""  # the last character shown as it is
    for ch in text:
        code = ord(ch)
        if ch in "\n\t" and keep_newlines:
            out.append(ch)
            prev = ""
            continue
        if code < 0x20:
            out.append(chr(0x2400 + code))  # ␛ for ESC, ␇ for BEL, …
        elif code == 0x7F:
            out.append("\u2421")
        elif _shown_as_is(ch, prev):
            out.append(ch)
            prev = ch
            continue
        else:
            out.append(f"⟨U+{code:04X}⟩")
        prev = ""
    return "".join(out)


def _shown_as_is(ch: str, prev: str) -> bool:
    if unicodedata.category(ch) in ("Cc", "Zl", "Zp", "Cs"):
        return False
    if not ignorable(ch):
        return unicodedata.category(ch) != "Cf"
    if 0xFE00 <= ord(ch) <= 0xFE0F:
        return bool(prev) and not ignorable(prev)  # after a visible character, once
    if ch in _JOINERS:  # in emoji and scripts that join letters; between Latin letters it only hides a word break
        return bool(prev) and not ignorable(prev) and not _latin(prev)
    if 0xE0020 <= ord(ch) <= 0xE007F:
        return prev == _TAG_FLAG or 0xE0020 <= ord(prev or "\0") <= 0xE007E  # a flag's tag sequence
    return False


def _latin(ch: str) -> bool:
    return ch.isascii() or "LATIN" in unicodedata.name(ch, "")


def one_line(text: str) -> str:
    """``visible`` text on a single line: runs of whitespace (newlines included) become one space."""
    return visible(" ".join(text.split()), keep_newlines=False)


def control_free(text: str) -> bool:
    """Whether ``text`` shows exactly as it is: ``visible`` leaves it unchanged (newlines and tabs count as controls)."""
    return visible(text, keep_newlines=False) == text


def blank(text: str) -> bool:
    """Whether ``text`` shows nothing at all: no letter, digit, punctuation or symbol (U+2800, the blank braille
    pattern, counts as nothing)."""
    return not any(unicodedata.category(ch)[0] in "LNPS" and not ignorable(ch) and ch != "\u2800" for ch in text)


def quoted(value) -> str:
    """``value`` for a message: text in quotes, anything else as it prints — through ``visible`` (the one escaping
    path; never ``repr``'s ``\\x1b``)."""
    shown = visible(str(value), keep_newlines=False)
    return f"'{shown}'" if isinstance(value, str) else shown
