"""AUTOMATIC1111's prompt editing and alternation, written from its documented behaviour (wiki "Features"):
``[from:to:when]`` draws ``from`` until step ``when`` and ``to`` after it, ``[to:when]`` adds words at ``when``,
``[from::when]`` takes them out; ``when`` is a step (``10``) or, written with a point, a fraction of the steps
(``0.25``; past 1, of a hires fix's second pass); ``[a|b|c]`` alternates its words every step. They nest, and hold emphasis and are held by it.

``tree`` reads a prompt's editing (SpecError, naming the character, for what A1111 would read otherwise than it
looks: a ``[`` holding ``:`` whose last part is no step, ``:`` and ``|`` mixed, more than two ``:``, a fraction past
1); ``schedule`` is A1111's: every step at which a part changes (all steps for an alternation), and the prompt's text
up to each — the text of step ``i`` (0-based, as the sampler counts) is the first entry whose last step is ``i`` or
later. ``variants`` are texts the prompt takes, for checking their emphasis (``emphasis.parse``) and counting their
tokens; ``final`` is the words it ends with. Emphasis brackets and escapes are kept as written: each step's text is
then read by ``emphasis.parse`` as any prompt is.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from functools import lru_cache

from .errors import SpecError

_WHEN = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*")
_BAR = re.compile(r"(?<!\\)\|")
_MAX_VARIANTS = 64  # beyond it, each part's branches are checked with the others at their first


@dataclass(frozen=True)
class Words:
    at: int  # 0-based character of the text
    text: str


@dataclass(frozen=True)
class Edit:
    """``[before:after:when]``."""

    at: int
    before: tuple
    after: tuple
    when: str

    def last_step(self, steps: int, first_pass: int | None = None) -> int:
        """The last step that draws ``before`` (A1111: a number with a point is a fraction of the steps; in a hires
        fix's second pass of ``steps``, after a first of ``first_pass``, a step counts on from the first pass and a
        fraction from 1)."""
        value = float(self.when)
        if "." in self.when:
            value = (value - (1 if first_pass is not None else 0)) * steps
        else:
            value -= first_pass or 0
        return min(steps, int(value))


@dataclass(frozen=True)
class Alternation:
    """``[a|b|c]``."""

    at: int
    options: tuple[tuple, ...]


Tree = tuple  # of Words, Edit and Alternation


def has_editing(text: str) -> bool:
    """Whether ``text`` may hold editing or alternation (a cheap look: a ``[`` and then a ``:`` or ``|``)."""
    start = text.find("[")
    return start >= 0 and (":" in text[start:] or "|" in text[start:])


def edited(text: str) -> bool:
    """Whether ``text`` holds prompt editing or alternation (read: SpecError where it is malformed)."""
    return has_editing(text) and _edited(tree(text))


@lru_cache(maxsize=1024)
def tree(text: str, what: str = "the prompt") -> Tree:
    """``text`` read into words, edits and alternations; SpecError for what A1111 reads otherwise than it looks.
    Kept for the texts read last (a grid's prompt is scheduled for every seed, checked and scored again)."""
    nodes = _Reader(text, what).read()
    if _edited(nodes) and (bar := _top_level_bar(nodes)) is not None:
        raise SpecError(f'{what}: the "|" at character {bar + 1} is outside brackets, which makes A1111 read the '
                        "prompt's editing as words: take it out")
    return nodes


def schedule(text: str, steps: int, what: str = "the prompt", first_pass: int | None = None) -> list[tuple[int, str]]:
    """A1111's schedule of ``text`` over ``steps``: ``(last step, text)`` pairs in order, the last at ``steps``;
    ``first_pass``: the first pass's steps, where these are a hires fix's second pass."""
    nodes = tree(text, what)
    ends = {steps}

    def collect(parts: Tree) -> None:
        for node in parts:
            if isinstance(node, Edit):
                if (end := node.last_step(steps, first_pass)) >= 1:
                    ends.add(end)
                collect(node.before)
                collect(node.after)
            elif isinstance(node, Alternation):
                ends.update(range(1, steps + 1))
                for option in node.options:
                    collect(option)

    collect(nodes)
    entries: list[tuple[int, str]] = []
    for end in sorted(ends):
        text_then = _render(nodes, lambda node: _branch_at(node, end, steps, first_pass))
        if entries and entries[-1][1] == text_then:  # the same text on: one entry, to the later step
            entries[-1] = (end, text_then)
        else:
            entries.append((end, text_then))
    return entries


def in_second_pass(text: str) -> int | None:
    """The 0-based character of the first edit of ``text`` that switches in a hires fix's second pass (a fraction
    past 1, as A1111 reads it), or None."""
    if not has_editing(text):
        return None

    def find(parts: Tree) -> int | None:
        for node in parts:
            if isinstance(node, Edit) and "." in node.when and float(node.when) > 1:
                return node.at
            for branch in () if isinstance(node, Words) else _branches(node):
                if (found := find(branch)) is not None:
                    return found
        return None

    return find(tree(text))


def at_step(entries: list[tuple[int, str]], step: int) -> str:
    """The text of 0-based ``step`` in a ``schedule`` (past its last step: the last)."""
    return next((text for end, text in entries if step <= end), entries[-1][1])


def final(text: str, what: str = "the prompt") -> str:
    """The words ``text`` ends with: each edit's ``to``, an alternation's words all (what scores and searches read)."""
    if not has_editing(text):
        return text
    return _render(tree(text, what), lambda node: -1)


def variants(text: str, what: str = "the prompt", *, in_place: bool = False) -> list[str]:
    """Texts ``text`` takes at some step (every combination of its parts' branches, or, past 64, each branch with the
    others at their first). ``in_place``: each the length of ``text``, its words where they are in it and blanks for
    the rest — so a message about one names the character of ``text``."""
    if not has_editing(text):
        return [text]
    nodes = tree(text, what)
    choices = _choice_points(nodes)
    counts = [len(_branches(node)) for node in choices]
    total = 1
    for count in counts:
        total *= count
    if total <= _MAX_VARIANTS:
        picks = [dict(zip(choices, combo)) for combo in itertools.product(*(range(c) for c in counts))]
    else:
        picks = [{node: k} for node, count in zip(choices, counts) for k in range(count)]
    render = (lambda pick: _render_in_place(text, nodes, pick)) if in_place else (lambda pick: _render(nodes, lambda n: pick.get(n, 0)))
    return list(dict.fromkeys(render(pick) for pick in picks))


def _branches(node) -> tuple[Tree, ...]:
    return (node.before, node.after) if isinstance(node, Edit) else node.options


def _branch_at(node, step: int, steps: int, first_pass: int | None) -> int:
    if isinstance(node, Edit):
        return 0 if step <= node.last_step(steps, first_pass) else 1
    return (step - 1) % len(node.options)


def _render(nodes: Tree, pick) -> str:
    """The text with each edit or alternation replaced by the branch ``pick(node)`` chooses (-1: an edit's ``to``,
    an alternation's branches all, joined by spaces)."""
    out = []
    for node in nodes:
        if isinstance(node, Words):
            out.append(node.text)
        elif (k := pick(node)) == -1 and isinstance(node, Alternation):
            out.append(" ".join(_render(o, pick) for o in node.options))
        else:
            out.append(_render(_branches(node)[k], pick))
    return "".join(out)


def _render_in_place(text: str, nodes: Tree, pick: dict) -> str:
    chars = [" "] * len(text)

    def place(parts: Tree) -> None:
        for node in parts:
            if isinstance(node, Words):
                chars[node.at : node.at + len(node.text)] = node.text
            else:
                place(_branches(node)[pick.get(node, 0)])

    place(nodes)
    return "".join(chars)


def _choice_points(nodes: Tree) -> list:
    found = []
    for node in nodes:
        if not isinstance(node, Words):
            found.append(node)
            for branch in _branches(node):
                found += _choice_points(branch)
    return found


def _edited(nodes: Tree) -> bool:
    return any(not isinstance(node, Words) for node in nodes)


def _top_level_bar(nodes: Tree) -> int | None:
    """Where a ``|`` stands outside every bracket (A1111's grammar has no place for it there)."""
    depth = 0
    for node in nodes:
        if not isinstance(node, Words):
            continue
        if node.text in ("(", "["):
            depth += 1
        elif node.text in (")", "]"):
            depth -= 1
        elif depth == 0 and (bar := _BAR.search(node.text)):
            return node.at + bar.start()
    return None


class _Reader:
    """A recursive reading of the brackets: ``(…)`` and ``[…]`` as emphasis (kept as words), a ``[`` holding ``:``
    or ``|`` at its own level as an edit or an alternation."""

    def __init__(self, text: str, what: str):
        self.text, self.what, self.i = text, what, 0

    def fail(self, problem: str) -> SpecError:
        return SpecError(f"{self.what}: {problem}")

    def read(self) -> Tree:
        nodes = self.sequence(stops=")]")
        if self.i < len(self.text):  # a closer nothing opened
            bracket = self.text[self.i]
            opener = {")": "(", "]": "["}[bracket]
            raise self.fail(f'unbalanced "{bracket}" at character {self.i + 1}: open it with "{opener}" or escape it '
                            f"as \\{bracket}")
        return tuple(nodes)

    def sequence(self, stops: str) -> list:
        """Words and groups up to a character of ``stops`` at this level (not taken) or the end."""
        nodes: list = []
        words, start = [], self.i

        def flush() -> None:
            nonlocal words
            if words:
                nodes.append(Words(start, "".join(words)))
                words = []

        text = self.text
        while self.i < len(text):
            ch = text[self.i]
            if ch in stops:
                break
            if ch == "\\":
                if not words:
                    start = self.i
                words.append(text[self.i : self.i + 2])
                self.i += 2
                continue
            if ch in "([":
                flush()
                nodes += self.group()
                start = self.i
                continue
            if not words:
                start = self.i
            words.append(ch)
            self.i += 1
        flush()
        return nodes

    def group(self) -> list:
        opener, at = self.text[self.i], self.i
        closer = ")" if opener == "(" else "]"
        self.i += 1
        parts, separators = [self.sequence(stops=")]" if opener == "(" else ":|)]")], []
        while self.i < len(self.text) and self.text[self.i] in ":|":
            separators.append(self.text[self.i])
            self.i += 1
            parts.append(self.sequence(stops=":|)]"))
        if self.i >= len(self.text):
            raise self.fail(f'unbalanced "{opener}" at character {at + 1}: close it with "{closer}" or escape it as '
                            f"\\{opener}")
        if self.text[self.i] != closer:
            raise self.fail(f'"{self.text[self.i]}" at character {self.i + 1} closes the "{opener}" at character '
                            f'{at + 1}: close that one with "{closer}" first')
        end = self.i
        self.i += 1
        if not separators:
            return [Words(at, opener), *parts[0], Words(end, closer)]
        if "|" in separators:
            if ":" in separators:
                raise self.fail(f'"[" at character {at + 1} holds both ":" and "|": A1111 reads that as words, not '
                                "as editing [from:to:when] or alternation [a|b]: keep one, or escape the bracket as \\[")
            return [Alternation(at, tuple(tuple(p) for p in parts))]
        return [self.edit(at, parts)]

    def edit(self, at: int, parts: list[list]) -> Edit:
        last = parts[-1]
        when = last[0].text if len(last) == 1 and isinstance(last[0], Words) else None
        if when is None or not _WHEN.fullmatch(when):
            shown = self.text[last[0].at : self.i - 1].strip() if last else ""
            raise self.fail(f'"[" at character {at + 1} holds ":" but {shown or "nothing"!r} after the last one is no '
                            "step to switch at: write [from:to:when] with when a step (10) or a fraction (0.5), or "
                            "escape the bracket as \\[")
        if len(parts) > 3:
            raise self.fail(f'"[" at character {at + 1} holds {len(parts) - 1} ":": prompt editing is [from:to:when], '
                            "[to:when] or [from::when]; put a weight's colon inside ( )")
        when = when.strip()
        if "." in when and float(when) > 2:
            raise self.fail(f"the edit at character {at + 1} switches at {when}, past the end: a fraction of the steps "
                            "is 0 to 1 (0.5: halfway; 1 to 2: in a hires fix's second pass); a whole number is a step")
        before = tuple(parts[0]) if len(parts) == 3 else ()
        return Edit(at, before, tuple(parts[-2]), when)
