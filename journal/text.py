"""Text from users and files, shown literally: the one escaping path on the way to a terminal, a commit message, the
TUI or the gallery. Control characters (ESC, CSI, BEL, C1 codes …) become visible symbols, and characters that
reorder or hide text (bidi overrides and isolates, zero-width spaces) are spelled out, so no string can drive a
terminal or make text display as something it is not."""

from __future__ import annotations

import unicodedata

#: Characters that change how surrounding text is displayed without being seen themselves.
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
INVISIBLE = frozenset("\u00ad\u180e\u200b\u2060\u2061\u2062\u2063\u2064\ufeff")
_JOINERS = frozenset("\u200c\u200d")  # ZWNJ / ZWJ: needed by emoji sequences and several scripts, harmless alone


def visible(text: str, *, keep_newlines: bool = True) -> str:
    """``text`` with every control, bidi or invisible character made visible (``␛``, ``⟨U+202E⟩``); newlines and
    tabs stay unless ``keep_newlines`` is False (then they are shown as ``␊`` / ``␉`` too)."""
    out = []
    for ch in text:
        code = ord(ch)
        if ch in "\n\t" and keep_newlines:
            out.append(ch)
        elif code < 0x20:
            out.append(chr(0x2400 + code))  # ␛ for ESC, ␇ for BEL, …
        elif code == 0x7F:
            out.append("\u2421")
        elif ch in _JOINERS or not _hidden(ch):
            out.append(ch)
        else:
            out.append(f"⟨U+{code:04X}⟩")
    return "".join(out)


def one_line(text: str) -> str:
    """``visible`` text on a single line: runs of whitespace (newlines included) become one space."""
    return visible(" ".join(text.split()), keep_newlines=False)


def _hidden(ch: str) -> bool:
    if ch in BIDI_CONTROLS or ch in INVISIBLE:
        return True
    category = unicodedata.category(ch)
    return category in ("Cc", "Zl", "Zp", "Cs") or (category == "Cf" and not 0xE0020 <= ord(ch) <= 0xE007F)  # tag chars: flags


def control_free(text: str) -> bool:
    """Whether ``text`` shows exactly as it is: no control, bidi or invisible character (joiners allowed)."""
    return all(ch in _JOINERS or not (ord(ch) < 0x20 or ord(ch) == 0x7F or _hidden(ch)) for ch in text)
