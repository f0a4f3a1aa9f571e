"""An evaluator's fields as Respan gives them, read by type and bounded: one odd evaluator spoils nothing.

An evaluator's texts reach list and read results, refusals and the self_grade prompt. So a
field of the wrong type (a name that is an object, a slug that is a number) is read as absent,
never as an error that fails a whole page; a text past its bound is cut here, once, with a
marker that says how long it was; and choices past a count are left out and counted. Every
consumer then gets bounded text without a rule of its own.
"""

from __future__ import annotations

import math
import re
from typing import Any, NamedTuple

from respan_mcp.net import LINE_BREAKING

SHORT_TEXT = 200  # an id, a slug, a name, a type: far past any real one
LONG_TEXT = 4000  # a description, a rubric, a definition: room for a real rubric, not a flood
CHOICE_TEXT = 100  # a choice's name or value
CHOICES_KEPT = 50  # a select evaluator's choices: more are left out and counted
_CONTROL = re.compile(LINE_BREAKING + "+")  # a run of them reads as one space


class Choice(NamedTuple):
    """One choice of a select evaluator: `value` goes in categorical_value, `name` is what people see."""

    name: str
    value: str


def cut(text: str, limit: int) -> str:
    """`text`, or its first `limit` characters and "… [cut: N characters]" (N: the whole text's length)."""
    return text if len(text) <= limit else f"{text[:limit]}… [cut: {len(text)} characters]"


def text(value: Any, limit: int = LONG_TEXT) -> str | None:
    """Text as given, bounded; None when absent, blank or not text (an object, a list, a number)."""
    return cut(value.strip(), limit) if isinstance(value, str) and value.strip() else None


def line(value: Any, limit: int = SHORT_TEXT) -> str | None:
    """A name, a slug or a type as shown: `text` on one line, control characters and line breaks as a space."""
    found = text(value, limit)
    return _CONTROL.sub(" ", found) if found else None


def handle(value: Any) -> str:
    """An id or slug as it can be sent back (a number read as its digits), or "" when it cannot be sent
    back whole: absent, not text, longer than any id, or holding a line break."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or len(value.strip()) > SHORT_TEXT or _CONTROL.search(value.strip()):
        return ""
    return value.strip()


def dict_of(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def finite(value: Any) -> float | None:
    """A JSON number as a finite float; None for anything else (an integer too large for a float included)."""
    if not is_number(value):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def first_number(*candidates: Any) -> float | None:
    return next((number for value in candidates if (number := finite(value)) is not None), None)


def condition_value(raw: Any) -> float | bool | None:
    """A condition's threshold: a number or a boolean; numeric text ("3") and a one-item list ([3]) as well,
    since Respan's filter format often wraps values in a list and hand-made conditions quote numbers."""
    if isinstance(raw, list) and len(raw) == 1:
        raw = raw[0]
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in ("true", "false"):
            return word == "true"
        try:
            raw = float(word)
        except ValueError:
            return None
    return finite(raw)


def choices(raw: Any) -> tuple[tuple[Choice, ...] | None, int]:
    """Choices as (name, value), at most CHOICES_KEPT, and how many were left out.

    The value is what categorical_value must hold (the name when a choice has no value, the
    string itself for a bare string, a number as its text); the name falls back to the value.
    A choice left out: past the count, a value too long to send whole, or a value that is not
    text or a number. A name too long is cut (it is only shown).
    """
    if not isinstance(raw, list) or not raw:
        return None, 0
    found: list[Choice] = []
    left_out = 0
    for choice in raw:
        if choice is None:
            continue
        value, name = (choice.get("value", choice.get("name")), choice.get("name")) if isinstance(choice, dict) else (choice, None)
        value = str(value) if is_number(value) else value if isinstance(value, str) else None
        if value is None or len(value) > CHOICE_TEXT or len(found) == CHOICES_KEPT:
            left_out += 1
            continue
        shown = str(name) if is_number(name) else name if isinstance(name, str) else value
        found.append(Choice(name=line(shown, CHOICE_TEXT) or value, value=value))
    return tuple(found) or None, left_out
