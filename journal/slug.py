"""Titles: what a title may be, and the ASCII folder name (slug) made from it."""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidInput

SLUG_MAX = 48
TITLE_MAX = 300


def check_title(title: str) -> str:
    """Return ``title`` unchanged if it can be stored; raise InvalidInput naming what is wrong otherwise."""
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput("a title is required: pass --title with some text")
    if len(title) > TITLE_MAX:
        raise InvalidInput(f"the title is {len(title)} characters long; keep it under {TITLE_MAX}")
    for ch in title:
        cat = unicodedata.category(ch)
        if cat == "Cc" or ch in "\u2028\u2029":
            raise InvalidInput("the title contains a control character or line break; use a single line of text")
        if cat == "Cs":
            raise InvalidInput("the title contains an unpaired surrogate; pass valid Unicode text")
    return title


def slugify(title: str) -> str:
    """ASCII folder-safe slug: NFKC folds styled letters ("𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡" -> "enchanted"), accents drop, bounded length."""
    text = unicodedata.normalize("NFKC", title)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").lower()
    slug = re.sub(r"[^a-z0-9]+", "-", text).strip("-")
    if len(slug) > SLUG_MAX:
        cut = slug[:SLUG_MAX]
        slug = cut.rsplit("-", 1)[0] if "-" in cut[SLUG_MAX // 2 :] else cut
        slug = slug.strip("-")
    return slug or "untitled"


def fold(text: str) -> str:
    """Case- and style-insensitive form of text, for search ("ENCHANTED" finds "𝔢𝔫𝔠𝔥𝔞𝔫𝔱𝔢𝔡")."""
    return unicodedata.normalize("NFKC", text).casefold()
