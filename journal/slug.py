"""Titles and model credits: what they may be, and the ASCII folder name (slug) made from a title."""

from __future__ import annotations

import re
import unicodedata

from .errors import InvalidInput
from .text import blank, control_free
from .wording import option

SLUG_MAX = 48
TITLE_MAX = 300
MODEL_MAX = 300


def check_title(title: str) -> str:
    """Return ``title`` unchanged if it can be stored; raise InvalidInput naming what is wrong otherwise."""
    if not isinstance(title, str) or not title.strip():
        raise InvalidInput("the title is empty: give the experiment a title (any text; it is published)")
    if len(title) > TITLE_MAX:
        raise InvalidInput(f"the title is {len(title)} characters long; keep it under {TITLE_MAX}")
    for ch in title:
        cat = unicodedata.category(ch)
        if cat == "Cc" or ch in "\u2028\u2029":
            raise InvalidInput("the title contains a control character or line break; use a single line of text")
        if cat == "Cs":
            raise InvalidInput("the title contains an unpaired surrogate; pass valid Unicode text")
    return title


def check_new_title(title: str) -> str:
    """``check_title``, and no character that would make the title display as something it is not (bidi overrides
    and isolates, zero-width spaces): a title given now. Stored titles from before this rule still load."""
    check_title(title)
    if not control_free(title):
        raise InvalidInput("the title contains an invisible or text-reversing character (such as U+202E or U+200B); "
                           "type the title as it should read")
    if blank(title):
        raise InvalidInput("the title shows nothing (only spaces or invisible characters); give it some words")
    return title


def check_model_name(name: str) -> str:
    """A model credit: some text, shown exactly as it is (no control, bidi or invisible characters)."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput(f"the model that made the images is required (it is always credited): name it with {option('model', 'NAME')}")
    if not control_free(name):
        raise InvalidInput(f"the model name contains control or invisible characters (such as ESC); give it as plain text with {option('model', 'NAME')}")
    if len(name) > MODEL_MAX:
        raise InvalidInput(f"the model name is {len(name)} characters long; keep it under {MODEL_MAX} ({option('model', 'NAME')})")
    return name


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
