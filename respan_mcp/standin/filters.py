"""Respan's log filters: `{FIELD: {"operator": OP, "value": [...]}}`, joined by AND or OR.

The value is a list. Equality-like operators (`""`, `in`, `contains`, ...) hold when any listed
value matches and `not`/`not_in` when none does; comparisons (`lt` ... `gte`) take the first
value. A field or operator Respan does not filter on is a 400, not an ignored filter, so a
grader's typo cannot widen its search unnoticed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

FILTER_FIELDS = frozenset(
    {
        "unique_id",
        "trace_unique_id",
        "span_unique_id",
        "span_parent_id",
        "span_name",
        "span_workflow_name",
        "thread_identifier",
        "customer_identifier",
        "custom_identifier",
        "prompt_id",
        "model",
        "environment",
        "status",
        "log_type",
        "is_root_span",
    }
)
FIELD_ALIASES = {"trace_id": "trace_unique_id"}
METADATA_PREFIX = "metadata__"
TEXT_OPERATORS = ("contains", "icontains", "startswith", "endswith")
COMPARISONS: dict[str, Callable[[Any, Any], bool]] = {
    "lt": lambda a, b: a < b,
    "lte": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b,
}
OPERATORS = frozenset({"", "not", "in", "not_in", "empty", "not_empty", *TEXT_OPERATORS, *COMPARISONS})


class FilterError(ValueError):
    """A filter Respan would refuse; the message says what it takes instead."""


@dataclass(frozen=True)
class Condition:
    field: str
    operator: str
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Conditions:
    each: tuple[Condition, ...]
    any_of: bool  # the body's "operator": "OR"; AND otherwise


def parse_filters(body: Any) -> Conditions:
    if body is None:
        return Conditions((), any_of=False)
    if not isinstance(body, dict):
        raise FilterError('The body must be a JSON object such as {"filters": {}, "operator": "AND"}.')
    joiner = str(body.get("operator") or "AND").upper()
    if joiner not in ("AND", "OR"):
        raise FilterError(f"Unsupported filter operator '{body.get('operator')}': use AND or OR.")
    filters = body.get("filters") or {}
    if not isinstance(filters, dict):
        raise FilterError('filters must be an object: {FIELD: {"operator": OP, "value": [...]}}.')
    each = []
    for raw_field, spec in filters.items():
        field = FIELD_ALIASES.get(str(raw_field), str(raw_field))
        if field not in FILTER_FIELDS and not (field.startswith(METADATA_PREFIX) and len(field) > len(METADATA_PREFIX)):
            raise FilterError(
                f"Unsupported filter field '{raw_field}': filter on one of {', '.join(sorted(FILTER_FIELDS))}, "
                f"or {METADATA_PREFIX}<key>."
            )
        if not isinstance(spec, dict):
            raise FilterError(f'The filter on {raw_field} must be an object: {{"operator": OP, "value": [...]}}.')
        operator = spec.get("operator", "")
        if operator not in OPERATORS:
            raise FilterError(
                f"Unsupported operator '{operator}' on {raw_field}: use one of "
                + ", ".join(repr(op) for op in sorted(OPERATORS))
                + "."
            )
        value = spec.get("value", [])
        values = tuple(value) if isinstance(value, list) else (value,)
        if not values and operator not in ("empty", "not_empty"):
            raise FilterError(f"The filter on {raw_field} needs a value: a list such as [\"...\"].")
        each.append(Condition(field, operator, values))
    return Conditions(tuple(each), any_of=joiner == "OR")


def matches(log: dict[str, Any], conditions: Conditions) -> bool:
    if not conditions.each:
        return True
    verdicts = (_holds(_field(log, c.field), c) for c in conditions.each)
    return any(verdicts) if conditions.any_of else all(verdicts)


def _field(log: dict[str, Any], field: str) -> Any:
    if field.startswith(METADATA_PREFIX):
        metadata = log.get("metadata")
        return metadata.get(field[len(METADATA_PREFIX) :]) if isinstance(metadata, dict) else None
    return log.get(field)


def _holds(actual: Any, condition: Condition) -> bool:
    operator, values = condition.operator, condition.values
    if operator in ("empty", "not_empty"):
        return (actual in (None, "", [], {})) == (operator == "empty")
    if operator in ("", "in", "not", "not_in"):
        found = any(_equal(actual, value) for value in values)
        return found if operator in ("", "in") else not found
    if actual is None:
        return False
    if operator in COMPARISONS:
        left, right = _comparable(actual, values[0])
        return left is not None and right is not None and COMPARISONS[operator](left, right)
    text = str(actual)
    folded = operator == "icontains"
    for value in values:
        needle = str(value)
        if folded and needle.lower() in text.lower():
            return True
        if operator == "contains" and needle in text:
            return True
        if operator == "startswith" and text.startswith(needle):
            return True
        if operator == "endswith" and text.endswith(needle):
            return True
    return False


def _equal(actual: Any, value: Any) -> bool:
    """Equality as a query string would see it: `true` matches True, `"3"` matches 3."""
    if isinstance(actual, bool) or isinstance(value, bool):
        return str(actual).lower() == str(value).lower()
    if isinstance(actual, int | float) and not isinstance(value, int | float):
        left, right = _comparable(actual, value)
        return left is not None and left == right
    return bool(actual == value)


def _comparable(actual: Any, value: Any) -> tuple[Any, Any]:
    """Both sides as numbers, or as date-times, or as text; (None, None) when they cannot be compared."""
    try:
        left, right = float(actual), float(value)
        if math.isfinite(left) and math.isfinite(right):
            return left, right
    except (TypeError, ValueError):
        pass
    try:
        return parse_time(str(actual)), parse_time(str(value))
    except ValueError:
        pass
    if isinstance(actual, str) and isinstance(value, str):
        return actual, value
    return None, None


def parse_time(text: str) -> datetime:
    """ISO 8601, with `Z` or an offset; a time without one is taken as UTC."""
    moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
