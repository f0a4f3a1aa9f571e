"""The checks Respan makes on a score's values, and the verdict it answers as `is_passed`.

Written from the API's documentation, not from the server's own rules (respan_mcp/evaluator.py),
so that the stand-in can catch the server when the two disagree: each keeps the other honest.
"""

from __future__ import annotations

import json
import math
import operator
from collections.abc import Callable
from typing import Any

VALUE_FIELDS = ("numerical_value", "boolean_value", "categorical_value", "string_value", "json_value")
UPSERT_FIELDS = frozenset(
    {
        "evaluator_id",
        "evaluator_slug",
        "timestamp",
        "environment",
        "prompt_id",
        "prompt_version_number",
        "dataset_id",
        "automation_id",
        "scorer",
        *VALUE_FIELDS,
    }
)
# The value-type table again, on purpose: the stand-in takes it from Respan's documentation, not from
# respan_mcp/values.py, so a change to the server's table that Respan does not make fails the tests.
FIELD_FOR_TYPE = {
    "numerical": "numerical_value",
    "percentage": "numerical_value",
    "boolean": "boolean_value",
    "single_select": "categorical_value",
    "multi_select": "categorical_value",
    "categorical": "categorical_value",
    "text": "string_value",
    "comment": "string_value",
    "json": "json_value",
}
FieldErrors = dict[str, list[str]]

_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
    "eq": operator.eq,
}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def type_errors(body: dict[str, Any]) -> FieldErrors:
    """What the backend's serializer says about the value fields' JSON types, field by field."""
    errors: FieldErrors = {}
    number = body.get("numerical_value")
    if number is not None and not (_is_number(number) and math.isfinite(number)):
        errors["numerical_value"] = ["A valid number is required."]
    if body.get("boolean_value") is not None and not isinstance(body["boolean_value"], bool):
        errors["boolean_value"] = ["Must be a valid boolean."]
    choices = body.get("categorical_value")
    if choices is not None and not (isinstance(choices, list) and all(isinstance(c, str) for c in choices)):
        errors["categorical_value"] = ["Expected a list of strings."]
    if body.get("string_value") is not None and not isinstance(body["string_value"], str):
        errors["string_value"] = ["Not a valid string."]
    text = body.get("json_value")
    if text is not None:
        try:
            if not isinstance(text, str):
                raise ValueError
            json.loads(text)
        except ValueError:
            errors["json_value"] = ["Value must be valid JSON."]
    return errors


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def score_range(evaluator: dict[str, Any]) -> tuple[float | None, float | None]:
    """(min, max) from score_config, else the legacy `configurations`; a percentage is 0 to 100 by default."""
    config, legacy = _object(evaluator.get("score_config")), _object(evaluator.get("configurations"))
    default = (0.0, 100.0) if evaluator.get("score_value_type") == "percentage" else (None, None)
    bounds: list[float | None] = []
    for name, fallback in (("min_score", default[0]), ("max_score", default[1])):
        found = next((c[name] for c in (config, legacy) if _is_number(c.get(name))), fallback)
        bounds.append(None if found is None else float(found))
    return bounds[0], bounds[1]


def choice_values(evaluator: dict[str, Any]) -> list[str] | None:
    """The strings categorical_value may hold: each choice's `value` (its `name` when it has none)."""
    config, legacy = _object(evaluator.get("score_config")), _object(evaluator.get("configurations"))
    raw = config.get("choices") or evaluator.get("categorical_choices") or legacy.get("choices")
    if not isinstance(raw, list) or not raw:
        return None
    found = [str(c.get("value", c.get("name"))) if isinstance(c, dict) else str(c) for c in raw]
    return [value for value in found if value != "None"] or None


def evaluator_errors(evaluator: dict[str, Any], values: dict[str, Any]) -> FieldErrors:
    """Whether `values` (the five value fields, null when unset) fit the evaluator: its type's field,
    its range, its choices. An evaluator of a type the stand-in does not know takes anything."""
    kind = evaluator.get("score_value_type")
    field = FIELD_FOR_TYPE.get(kind) if isinstance(kind, str) else None
    if field is None:
        return {}
    wrong = [name for name in VALUE_FIELDS if name != field and values.get(name) is not None]
    if wrong or values.get(field) is None:
        message = f"This evaluator's score_value_type is {kind}: send {field}."
        return {name: [message] for name in wrong or [field]}
    value = values[field]
    if field == "numerical_value":
        low, high = score_range(evaluator)
        if (low is not None and value < low) or (high is not None and value > high):
            return {field: [f"Ensure this value is {_bounds(low, high)}."]}
    if field == "categorical_value":
        if kind == "single_select" and len(value) != 1:
            return {field: ["A single_select score holds exactly one choice."]}
        if not value:
            return {field: ["Choose at least one value."]}
        allowed = choice_values(evaluator)
        unknown = [v for v in value if allowed is not None and v not in allowed]
        if unknown:
            return {field: [f'"{v}" is not a valid choice.' for v in unknown]}
    return {}


def _bounds(low: float | None, high: float | None) -> str:
    if low is not None and high is not None:
        return f"between {low:g} and {high:g}"
    return f"at least {low:g}" if low is not None else f"at most {high:g}"


def is_passed(evaluator: dict[str, Any] | None, score: dict[str, Any]) -> bool | None:
    """The backend's verdict: the evaluator's primary-score condition on the score's primary value
    (boolean_value for boolean evaluators, numerical_value otherwise); null without an evaluator (a
    custom slug), a condition, or a primary value."""
    if evaluator is None:
        return None
    conditions = evaluator.get("passing_conditions")
    condition = conditions.get("primary_score") if isinstance(conditions, dict) else None
    if not isinstance(condition, dict) or condition.get("operator") not in _COMPARE:
        return None
    primary = score.get("boolean_value" if evaluator.get("score_value_type") == "boolean" else "numerical_value")
    threshold = condition.get("value")
    if isinstance(threshold, list) and len(threshold) == 1:  # Respan's filter format wraps values in lists
        threshold = threshold[0]
    if primary is None or not isinstance(threshold, int | float):
        return None
    return _COMPARE[condition["operator"]](primary, threshold)
