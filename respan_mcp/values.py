"""The value-type table and the rules on a score's value: the one place that says which field a type takes.

Descriptions, validation and error messages are all derived from `VALUE_FIELD_FOR_TYPE`.
`ScoreValues` is the part of every write's arguments that carries the value; what a
particular evaluator allows on top (range, choices) is `evaluator.py`'s.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from respan_mcp.errors import InvalidRequestError, ScoreValueError

ScoreValueType = Literal[
    "numerical", "percentage", "boolean", "single_select", "multi_select", "categorical", "text", "comment", "json"
]
ValueField = Literal["numerical_value", "boolean_value", "categorical_value", "string_value", "json_value"]

VALUE_FIELD_FOR_TYPE: dict[str, ValueField] = {
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
VALUE_FIELDS: tuple[ValueField, ...] = get_args(ValueField)
PERCENTAGE_RANGE = (0.0, 100.0)
# How deep any JSON read here may nest (arguments sent as JSON text, and Respan's answers): far past any
# score or evaluator, far short of what would exhaust the stack of the parser or of anything after it.
MAX_JSON_DEPTH = 64
_JSON_SYNTAX = re.compile(r'[\[\]{}"\\]')  # one character at a time: nothing to backtrack over


def _types_taking(field: str) -> str:
    return "/".join(t for t, f in VALUE_FIELD_FOR_TYPE.items() if f == field)


# "numerical/percentage -> numerical_value, boolean -> boolean_value, ..." for descriptions.
PAIRING_TABLE_TEXT = ", ".join(f"{_types_taking(field)} -> {field}" for field in VALUE_FIELDS)


class ScoreValues(BaseModel):
    """The five value fields, plus the optional type the caller says the evaluator has."""

    model_config = ConfigDict(extra="forbid")

    score_value_type: ScoreValueType | None = Field(
        None,
        description=(
            "The evaluator's score_value_type, if you know it; the value field is then checked against it "
            f"before anything is sent ({PAIRING_TABLE_TEXT})."
        ),
    )
    numerical_value: float | None = Field(
        None,
        allow_inf_nan=False,
        description="Numeric score, for numerical and percentage (0 to 100) evaluators.",
    )
    boolean_value: bool | None = Field(None, description="True/false score, for boolean evaluators.")
    categorical_value: list[str] | None = Field(
        None,
        description=(
            "Chosen option(s), for single_select (exactly one), multi_select and legacy categorical evaluators."
        ),
    )
    string_value: str | None = Field(None, description="Free-text score, for text and legacy comment evaluators.")
    json_value: Annotated[str | dict[str, Any] | list[Any] | None, WithJsonSchema({"type": "string"})] = Field(
        None,
        description="JSON score as JSON text (an object or array is also accepted and encoded), for json evaluators.",
    )

    @field_validator("numerical_value", mode="before")
    @classmethod
    def _number_not_boolean(cls, value: Any) -> Any:
        # pydantic would store true as 1.0; a boolean here is a wrong field, not a number.
        if isinstance(value, bool):
            raise ValueError("must be a number, not true or false (a boolean evaluator takes boolean_value)")
        return value

    @field_validator("boolean_value", mode="before")
    @classmethod
    def _boolean_not_number(cls, value: Any) -> Any:
        # pydantic would read 1 or "yes" as true; only true/false (or their JSON text) is a boolean score.
        if isinstance(value, str) and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
        if value is not None and not isinstance(value, bool):
            raise ValueError("must be true or false (a numerical evaluator takes numerical_value)")
        return value

    @field_validator("categorical_value", mode="before")
    @classmethod
    def _categorical_from_json_text(cls, value: Any) -> Any:
        # Some clients send arrays as JSON text: '["a"]'. A plain word is one choice.
        if isinstance(value, str):
            parsed = read_json_text(value, lambda exc: ValueError(f"is {exc}: send a list of choices, e.g. [\"good\"]"))
            return parsed if isinstance(parsed, list) else [value]
        return value

    def checked_value(self) -> tuple[ValueField, Any]:
        """The value field and the value as the API takes it (json_value always JSON text), checked once.

        The core rules: exactly one value field, its pairing with `score_value_type` when given,
        and the rules on the value itself. Raises ScoreValueError naming what to send instead.
        """
        given = [name for name in VALUE_FIELDS if getattr(self, name) is not None]
        expected = VALUE_FIELD_FOR_TYPE.get(self.score_value_type) if self.score_value_type else None
        if not given:
            hint = f"{expected} for score_value_type '{self.score_value_type}'" if expected else PAIRING_TABLE_TEXT
            raise ScoreValueError(f"no score value given: send exactly one value field ({hint})")
        if len(given) > 1:
            hint = f"; score_value_type '{self.score_value_type}' takes {expected}" if expected else ""
            raise ScoreValueError(f"send exactly one value field, got {' and '.join(given)}{hint}")
        field = given[0]
        if expected and field != expected:
            raise ScoreValueError(f"score_value_type '{self.score_value_type}' takes {expected}, not {field}")
        value = getattr(self, field)
        check_value(field, value, self.score_value_type)
        if field == "json_value" and not isinstance(value, str):
            value = json.dumps(value, allow_nan=False)  # checked encodable by check_value
        return field, value


def check_value(field: str, value: Any, score_value_type: str | None) -> None:
    """Rules on the value itself, beyond its JSON type: the field's, then the type's (when one is known)."""
    if field == "numerical_value" and not math.isfinite(value):
        raise ScoreValueError("numerical_value must be a finite number")
    if field == "categorical_value" and not value:
        raise ScoreValueError("categorical_value must list at least one choice, e.g. [\"good\"]")
    if field == "json_value":
        check_json_value(value)
    check_type_rules(value, score_value_type)


def check_type_rules(value: Any, score_value_type: str | None) -> None:
    """What a type adds to its field's rules: a percentage's range, a single select's one choice."""
    if score_value_type == "percentage":
        low, high = PERCENTAGE_RANGE
        if not low <= value <= high:
            raise ScoreValueError(f"score_value_type 'percentage' takes numerical_value from 0 to 100, got {value:g}")
    if score_value_type == "single_select" and len(value) != 1:
        raise ScoreValueError(
            f"score_value_type 'single_select' takes exactly one choice in categorical_value, got {len(value)}"
        )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def check_json_value(value: Any) -> None:
    """Strict JSON only: NaN and Infinity are not JSON, and nesting stays within reason."""
    try:
        text = value if isinstance(value, str) else json.dumps(value, allow_nan=False)
        loads_json(text, parse_constant=_no_constant)
    except (RecursionError, JSONTooDeepError):
        raise ScoreValueError(
            f"json_value is nested too deeply (more than {MAX_JSON_DEPTH} levels); flatten it (a few levels are plenty)"
        ) from None
    except ValueError:
        raise ScoreValueError(
            'json_value must be valid JSON text (NaN and Infinity are not JSON), e.g. "{\\"verdict\\": \\"pass\\"}"; '
            "for plain text use string_value"
        ) from None


# -- JSON of bounded depth ---------------------------------------------------------------------------


class JSONTooDeepError(ValueError):
    """JSON text nested past MAX_JSON_DEPTH: malformed input, refused before any parser recurses into it."""

    def __init__(self) -> None:
        super().__init__(f"JSON text nested more than {MAX_JSON_DEPTH} levels deep")


def loads_json(text: str, **options: Any) -> Any:
    """`json.loads`, refusing text nested past MAX_JSON_DEPTH (JSONTooDeepError, a ValueError) before parsing it."""
    if prune_json(text) is not text:
        raise JSONTooDeepError
    return json.loads(text, **options)


NOT_JSON: Any = object()  # what `read_json_text` returns for text that is not JSON (None is JSON's null)


def read_json_text(text: str, too_deep: Callable[[JSONTooDeepError], Exception]) -> Any:
    """An argument some client sent as JSON text, read as what it holds; NOT_JSON when it is not JSON.

    Text nested past MAX_JSON_DEPTH raises `too_deep(error)`: the caller's sentence, naming what to send."""
    try:
        return loads_json(text)
    except JSONTooDeepError as exc:
        raise too_deep(exc) from None
    except ValueError:
        return NOT_JSON


def decode_json_text(arguments: dict[str, Any], structured: frozenset[str]) -> dict[str, Any]:
    """Arrays and objects sent as JSON text (some clients do) read as what they hold.

    Only arguments published as an array or object are touched, so a string argument
    (json_value is JSON text by design) always reaches the model exactly as sent. Text nested
    past MAX_JSON_DEPTH is refused (InvalidRequestError) before any parser recurses into it.
    """
    decoded = arguments
    for name in structured & arguments.keys():
        value = arguments[name]
        if not isinstance(value, str):
            continue
        parsed = read_json_text(
            value, lambda exc: InvalidRequestError(f"{name} is {exc}: send it as an array or object a few levels deep")
        )
        if isinstance(parsed, list | dict):  # else left as sent: the model says what it expected
            decoded = decoded if decoded is not arguments else dict(arguments)
            decoded[name] = parsed
    return decoded


def prune_json(text: str, limit: int = MAX_JSON_DEPTH) -> str:
    """`text` with every array or object nested deeper than `limit` replaced by null; `text` itself when none is.

    One pass over the brackets and quotes outside strings, linear in the text's length, so
    neither a parser nor anything that walks what it returns can recurse without bound. Text
    that is not JSON stays not JSON (the parser says so).
    """
    if text.count("[") + text.count("{") <= limit:  # cannot nest deeper: the common case costs two counts
        return text
    pieces: list[str] = []
    depth, kept_to, cut_from, escaped_to, in_string = 0, 0, -1, -1, False
    for match in _JSON_SYNTAX.finditer(text):
        at = match.start()
        if at < escaped_to:
            continue  # the character after a backslash
        char = text[at]
        if in_string:
            if char == "\\":
                escaped_to = at + 2
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth == limit + 1:
                cut_from = at
        elif char in "]}":
            if depth == limit + 1 and cut_from >= 0:
                pieces += (text[kept_to:cut_from], "null")
                kept_to, cut_from = at + 1, -1
            depth -= 1
    if not pieces and cut_from < 0:
        return text
    pieces.append(text[kept_to:] if cut_from < 0 else text[kept_to:cut_from] + "null")
    return "".join(pieces)
