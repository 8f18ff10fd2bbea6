"""The prompt model: base text, ordered keywords that can each be switched on or off, a negative prompt.

Rendered the AUTOMATIC1111 way: every part stripped of surrounding spaces and commas, empty parts dropped, the rest
joined with ", " — keywords after the base, or before it with ``keywords_first``. Every part may use A1111's emphasis
syntax (``emphasis``); a prompt whose brackets do not parse is refused here, before a grid is built.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from journal.text import quoted

from .emphasis import has_emphasis, parse, weighted
from .errors import SpecError
from .networks import is_network

_STRIP = " \t\r\n,"


def clean(part: str) -> str:
    return part.strip(_STRIP)


def join(parts) -> str:
    return ", ".join(p for p in map(clean, parts) if p)


@dataclass(frozen=True)
class Keyword:
    text: str
    on: bool = True
    weight: float = 1.0  # A1111 emphasis: rendered as (text:weight) unless 1

    @classmethod
    def from_text(cls, text: str, on: bool = True) -> "Keyword":
        """A keyword as typed: ``in the style of Basquiat:1.3`` carries weight 1.3. A trailing ``:N`` is a weight
        unless the keyword is already written in emphasis syntax (``(text:1.3)`` stays as it is), is a LoRA's tag
        (``<lora:NAME:0.8>``: its strength is inside; ``<lora:NAME>:0.8`` sets it) or a digit comes right before the
        colon (``16:9``, ``10:30``); a weight with a digit that is no number (``:1,3``) is refused."""
        head, colon, tail = text.rpartition(":")
        if not colon or has_emphasis(text) or is_network(text.strip()) or re.search(r"\d\s*$", head):
            return cls(text, on)
        tail = tail.strip()
        if re.fullmatch(r"[+-]?(\d+\.?\d*|\.\d+)", tail):
            return cls(head, on, float(tail))
        if re.search(r"\d", tail) and not re.search(r"\s", tail):
            raise SpecError(f"the keyword {quoted(text)}: its weight {quoted(tail)} is not a number: write it as "
                            f"{quoted(head.strip() + ':1.3')}")
        return cls(text, on)

    @property
    def rendered(self) -> str:
        """The keyword as it goes into the prompt: its text, with its weight where it has one."""
        return weighted(clean(self.text), self.weight)


@dataclass(frozen=True)
class Prompt:
    base: str
    keywords: tuple[Keyword, ...] = ()
    negative: str = ""
    keywords_first: bool = False

    def __post_init__(self):
        if not clean(self.base) and not any(clean(k.text) for k in self.keywords):
            raise SpecError("the prompt is empty: write what to draw, or add a keyword")
        seen = set()
        for kw in self.keywords:
            text = clean(kw.text)
            if not text:
                raise SpecError("a keyword is empty: remove it or give it some text")
            if text.casefold() in seen:
                raise SpecError(f"the keyword {quoted(text)} is given twice: keep one")
            seen.add(text.casefold())
            if not math.isfinite(kw.weight):
                raise SpecError(f"the keyword {quoted(text)} has weight {kw.weight}: give it a finite number")
            parse(kw.rendered, f"the keyword {quoted(text)}")
        parse(self.base, "the prompt")
        parse(self.negative, "the negative prompt")

    @property
    def enabled(self) -> list[str]:
        """The texts of the keywords that are switched on, in order (without their weights)."""
        return [clean(k.text) for k in self.keywords if k.on]

    @property
    def enabled_keywords(self) -> list[Keyword]:
        """The keywords that are switched on, in order."""
        return [k for k in self.keywords if k.on]

    def render(self, keywords: list[str] | None = None, base: str | None = None) -> str:
        """The prompt with ``keywords`` (as rendered; default: the enabled ones, with their weights) around ``base``
        (default: this base)."""
        kws = [k.rendered for k in self.enabled_keywords] if keywords is None else keywords
        base = self.base if base is None else base
        return join([*kws, base] if self.keywords_first else [base, *kws])
