"""AUTOMATIC1111's extra networks in a prompt: ``<lora:NAME>``, ``<lora:NAME:0.8>``, ``<lora:NAME:TE:UNET>`` (or
``te=`` / ``unet=``), ``<lyco:…>`` the same. As A1111 does, a tag is taken out of the text the text encoder reads
and its LoRA applied to the model at that strength (``runner/loras.py``); a tag of a kind promptism does not apply
(``<hypernet:…>``) is refused, not dropped. A tag is words to the emphasis syntax, so it is a keyword like any
other: leave-one-out takes a LoRA out, and a weight axis on it sweeps its strength (``with_strength``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from .errors import SpecError

_TAG = re.compile(r"<(\w+):([^>]+)>")  # A1111's pattern for an extra network
KINDS = ("lora", "lyco")


@dataclass(frozen=True)
class Network:
    """A LoRA a prompt names, with its strengths on the text encoder and on the UNet."""

    name: str
    te: float = 1.0
    unet: float = 1.0


def networks(text: str, what: str = "the prompt") -> tuple[Network, ...]:
    """The LoRAs ``text`` names, in order (a name twice: the last); SpecError for a tag promptism cannot apply."""
    found: dict[str, Network] = {}
    for match in _TAG.finditer(text):
        kind, args = match[1], match[2].split(":")
        if kind not in KINDS:
            raise SpecError(f"{what}: <{kind}:…> is an extra network promptism does not apply (it applies "
                            f"<lora:NAME:STRENGTH>): take it out")
        found[args[0].strip()] = _network(args, match[0], what)
    return tuple(found.values())


def _network(args: list[str], tag: str, what: str) -> Network:
    name, positional, named = args[0].strip(), [], {}
    for arg in args[1:]:
        key, sep, value = arg.partition("=")
        if sep:
            named[key.strip()] = value
        else:
            positional.append(arg)
    try:
        te = float(named.get("te", positional[0] if positional else 1.0))
        unet = float(named.get("unet", positional[1] if len(positional) > 1 else te))
    except ValueError:
        raise SpecError(f"{what}: {tag}: a strength is a number, as in <lora:NAME:0.8>") from None
    if not name or not all(map(math.isfinite, (te, unet))):
        raise SpecError(f"{what}: {tag}: write <lora:NAME> or <lora:NAME:STRENGTH> (a finite number)")
    return Network(name, te, unet)


def without_networks(text: str) -> str:
    """``text`` as the text encoder reads it: every extra network's tag taken out (A1111 leaves the spaces)."""
    return _TAG.sub("", text)


def is_network(text: str) -> bool:
    """Whether ``text`` is one extra network's tag and nothing else (a keyword that is a LoRA)."""
    return _TAG.fullmatch(text.strip()) is not None


def with_strength(tag: str, strength: float) -> str:
    """A LoRA keyword's tag at ``strength`` (a weight axis's value), on the text encoder and the UNet alike."""
    match = _TAG.fullmatch(tag.strip())
    return f"<{match[1]}:{match[2].split(':')[0]}:{strength:g}>"
