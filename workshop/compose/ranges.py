"""AUTOMATIC1111's X/Y/Z range syntax for numeric axes (seed, steps, guidance, strength, weight).

A comma-separated list whose items are numbers or ranges:
``1-5`` (every integer), ``1-5 (+2)`` / ``10-5 (-3)`` (explicit step), ``1-3 (+0.5)`` (float step),
``1-10 [5]`` (five values evenly spaced, ends included; truncated to integers on an integer axis).
A range without a step counts down when its end is below its start.
"""

from __future__ import annotations

import math
import re

from journal.text import quoted

from .errors import SpecError

_NUM = r"[+-]?\s*\d+(?:\.\d*)?"
_RANGE = re.compile(rf"^\s*({_NUM})\s*-\s*({_NUM})\s*(?:\(\s*([+-]\s*\d+(?:\.\d*)?)\s*\)|\[\s*(\d+)\s*\])?\s*$")
_SINGLE = re.compile(rf"^\s*({_NUM})\s*$")


def parse_values(text: str, *, integer: bool, what: str) -> list[int | float]:
    """Parse ``text`` into the axis values; raise SpecError naming ``what`` and the part that did not parse."""
    values: list[int | float] = []
    items = text.split(",")
    for item in items:
        if not item.strip():
            if len(items) > 1:  # "1,,2" or "1,2,": a value left out, or a comma too many
                raise SpecError(f"{what} values {quoted(text.strip())} have an empty place between commas: write "
                                "each value once, e.g. 1,2,3")
            continue
        if m := _SINGLE.match(item):
            values.append(_number(m.group(1), integer, what, item))
        elif m := _RANGE.match(item):
            start, end = _number(m.group(1), integer, what, item), _number(m.group(2), integer, what, item)
            if m.group(4) is not None:
                values += _count(start, end, int(m.group(4)), integer, what, item)
            else:
                step = _number(m.group(3), integer, what, item) if m.group(3) else (1 if end >= start else -1)
                values += _stepped(start, end, step, what, item)
        else:
            raise SpecError(f"cannot read {what} values {quoted(item.strip())}: use 1,2,3 or 1-5 or 1-5 (+2) or 1-10 [5]")
    if not values:
        raise SpecError(f"no {what} values given: use 1,2,3 or 1-5 or 1-5 (+2) or 1-10 [5]")
    return values


def _number(text: str, integer: bool, what: str, item: str) -> int | float:
    text = text.replace(" ", "")
    if integer and text.lstrip("+-").isdigit():  # exactly, however long (a float would round it)
        return int(text)
    value = float(text)
    if integer:
        if not value.is_integer():
            raise SpecError(f"{what} values must be whole numbers, not {quoted(item.strip())}")
        return int(value)
    return value


def _stepped(start, end, step, what: str, item: str) -> list:
    if step == 0 or (end - start) * step < 0:
        raise SpecError(f"the {what} range {quoted(item.strip())} never reaches its end: check the step's sign")
    count = math.floor((end - start) / step + 1e-9) + 1
    if count > 10_000:
        raise SpecError(f"the {what} range {quoted(item.strip())} has {count} values; that is too many for a grid")
    return [_tidy(start + i * step) for i in range(count)]


def _count(start, end, n: int, integer: bool, what: str, item: str) -> list:
    if n < 1:
        raise SpecError(f"the {what} range {quoted(item.strip())} asks for no values: use [2] or more")
    if n == 1:
        return [start]
    values = [start + (end - start) * i / (n - 1) for i in range(n)]
    return [int(v) for v in values] if integer else [_tidy(v) for v in values]


def _tidy(v):
    return round(v, 10) if isinstance(v, float) else v
