"""Dynamic prompts: ``{a|b|c}`` alternatives and ``__wildcard__`` files expanded combinatorially by dynamicprompts.

A wildcards folder holds NAME.txt files (one value a line; ``sub/NAME.txt`` is ``__sub/NAME__``), each read when a
prompt uses it, as ``journal.files.read_text`` reads a user's file: bounded, UTF-8, a FIFO or a device refused."""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from journal.errors import InvalidInput
from journal.files import read_text
from journal.text import quoted

from ..errors import option
from ..quiet import quieted
from .errors import SpecError

_WILDCARD_LEFT = re.compile(r"__([^_\s][^\s]*?)__")
_SYNTAX = re.compile(r"\{[^{}]*\|[^{}]*\}|__[^_\s][^\s]*?__")  # {a|b} alternatives, __wildcards__


def is_dynamic(text: str) -> bool:
    return "{" in text or "__" in text


def dynamic_syntax(text: str) -> str | None:
    """The first ``{a|b}`` or ``__wildcard__`` in ``text``, if any (``{word}`` alone is not dynamic syntax)."""
    m = _SYNTAX.search(text)
    return m.group(0) if m else None


def wildcards_folder(path: str) -> Path:
    """The wildcards folder a spec names; SpecError for one that is not there or is not a folder."""
    folder = Path(path)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise SpecError(f"the wildcards folder {quoted(path)} {what}: pass {option('wildcards', 'DIR')} (a folder of "
                        "NAME.txt files)", field="wildcards")
    return folder


def expand(text: str, wildcards: Path | None, limit: int) -> list[str]:
    """Every combination ``text`` stands for, in dynamicprompts' order; at most ``limit`` + 1 (to detect overflow)."""
    if not is_dynamic(text):
        return [text]
    from dynamicprompts.generators import CombinatorialPromptGenerator
    from dynamicprompts.wildcards import WildcardManager

    manager = WildcardManager(root_map={"": [_wildcard_files(wildcards)]} if wildcards else None)
    generator = CombinatorialPromptGenerator(wildcard_manager=manager)
    try:
        with quieted("dynamicprompts", level=logging.ERROR):  # (its warning for a wildcard it cannot find: the
            # SpecError that follows says it once)
            out = list(generator.generate(text, max_prompts=limit + 1))
    except SpecError:  # a wildcard file that cannot be read: said by its name
        raise
    except Exception as exc:  # noqa: BLE001 - pyparsing and dynamicprompts raise several kinds for bad syntax
        detail = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
        raise SpecError(f"cannot read the dynamic prompt {quoted(text)}: {detail}") from None
    for variant in out:
        if m := _WILDCARD_LEFT.search(variant):
            name = m.group(1)
            if wildcards is None:
                raise SpecError(f"no wildcard file for __{name}__; pass {option('wildcards', 'DIR')} (a folder of "
                                "NAME.txt files)")
            raise SpecError(f"no wildcard file for __{name}__ in {wildcards}: add {Path(wildcards) / name}.txt (one "
                            "value a line), or fix the name")
    return out


def _wildcard_files(folder: Path) -> dict[str, _WildcardFile]:
    """``folder``'s NAME.txt files by wildcard name, in its subfolders too (hidden ones and links to folders left
    out)."""
    found = {}
    for here, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in files:
            path = Path(here) / name
            if path.suffix == ".txt":
                found[path.relative_to(folder).with_suffix("").as_posix()] = _WildcardFile(path)
    return found


@dataclass(frozen=True)
class _WildcardFile:
    """A wildcard file as dynamicprompts asks for its values (a ``WildcardCollection``), read when a prompt uses it:
    its lines, less blank ones and ``#`` comments."""

    path: Path

    def get_values(self) -> list[str]:
        try:
            text = read_text(self.path, "wildcard file")
        except InvalidInput as exc:
            raise SpecError(exc.message, field="wildcards") from None
        return [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]


def varying_part(variant: str, siblings: list[str]) -> str:
    """What distinguishes ``variant`` from its siblings: the text between their common prefix and suffix."""
    if len(siblings) < 2:
        return variant
    prefix = len(_common_prefix(siblings))
    suffix = len(_common_prefix([s[prefix:][::-1] for s in siblings]))
    middle = variant[prefix: len(variant) - suffix].strip(" ,")
    return middle or variant


def _common_prefix(texts: list[str]) -> str:
    first, last = min(texts), max(texts)
    n = 0
    while n < len(first) and n < len(last) and first[n] == last[n]:
        n += 1
    return first[:n]
