"""The rule that a title never gives the prompt away: checked when a title is set (accept, import, retitle) and
again for every title a gallery shows.

Title and secrets are compared as plain words: letter styles, case and accents folded, anything that is not a
letter or a digit (spaces, punctuation, hyphens, invisible joiners) a single word break — at least as much as the
title's slug folds, so no title whose folder or file name spells a secret gets through. Each secret counts whole and
part by part (the comma-, ``|``- and brace-separated pieces of a prompt, A1111 weights dropped), since an imported
prompt's parts are its keywords."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from .errors import PrivacyError
from .slug import fold
from .text import ignorable

OVERRIDE = "--allow-title-overlap"
MIN_SECRET = 3  # characters: shorter pieces ("a", "of") reveal nothing and would refuse every title
_PARTS = re.compile(r"[,|{}\n]")
_WEIGHT = re.compile(r":\s*[-+]?(\d+\.?\d*|\.\d+)")
_WORD = re.compile(r"[^\W_]+")
_CASE_TURN = re.compile(r"(?<=[a-z])(?=[A-Z])")


class TitleRevealsPrompt(PrivacyError):
    """A title contains its experiment's prompt, negative prompt, a keyword or an image's prompt.

    ``reason`` says so without naming the command-line override (the TUI shows it as it is)."""

    def __init__(self, reason: str):
        self.reason = reason
        super().__init__(f"{reason}; choose another title, or pass {OVERRIDE} to keep it")


def words(text: str) -> str:
    """``text`` as the words the rule compares: words split where case turns (``LonelyLighthouse``) and at joiners,
    folded, accents and invisible characters gone, one space between."""
    text = _CASE_TURN.sub(" ", text)
    text = unicodedata.normalize("NFKD", fold(text))
    text = "".join(" " if ch in "\u200c\u200d" else ch for ch in text if not unicodedata.combining(ch) and not ignorable(ch)
                   or ch in "\u200c\u200d")
    return " ".join(_WORD.findall(text))


def _pieces(secret: str) -> set[str]:
    whole = _WEIGHT.sub(" ", secret)
    return {w for w in (words(whole), *(words(p) for p in _PARTS.split(whole))) if len(w) >= MIN_SECRET}


def title_reveals(title: str, secrets: Iterable[str | None]) -> bool:
    """Whether ``title`` holds any of ``secrets`` (or a piece of one) as whole words — or a run of its words written
    together ("lonelylighthouse"): "Red study" reveals the keyword "red", "Redemption" does not."""
    title_words = words(title).split()
    shown = f" {' '.join(title_words)} "
    joined = {"".join(title_words[i:j]) for i in range(len(title_words)) for j in range(i + 1, len(title_words) + 1)}
    return any(f" {piece} " in shown or piece.replace(" ", "") in joined for s in secrets if s for piece in _pieces(s))


def check_title_keeps_secrets(title: str, secrets: Iterable[str | None], number: int | None = None) -> None:
    """Refuse ``title`` if it holds one of ``secrets`` (raise TitleRevealsPrompt; the secret is never named)."""
    if title_reveals(title, secrets):
        which = f"the title of #{number}" if number else "the title"
        raise TitleRevealsPrompt(f"{which} contains its private prompt or one of its keywords")
