"""What a platform evaluator is: what it allows a score to be, what it means, and when a score passes.

Agents rarely know an evaluator's type, range or choices; Respan describes them, so a
wrong field, an out-of-range number or an unknown choice is refused before the write
with a message that names the evaluator and says what to send. An agent grading its own
work also needs what the evaluator means (description, rubric, definition) and where
Respan draws pass/fail (the passing condition), so it scores against the evaluator and
not against its own reading of a slug. The value-type table and the core value rules
stay in `values.py`; this adds only what the evaluator says.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, get_args

from respan_mcp.errors import ScoreValueError
from respan_mcp.values import PERCENTAGE_RANGE, VALUE_FIELD_FOR_TYPE, check_type_rules

Operator = Literal["gte", "gt", "lte", "lt", "eq"]
OPERATORS: tuple[Operator, ...] = get_args(Operator)
_SYMBOL: dict[Operator, str] = {"gte": ">=", "gt": ">", "lte": "<=", "lt": "<", "eq": "=="}
_COMPARE: dict[Operator, Callable[[float, float], bool]] = {
    "gte": operator.ge,
    "gt": operator.gt,
    "lte": operator.le,
    "lt": operator.lt,
    "eq": operator.eq,
}


class Choice(NamedTuple):
    """One choice of a select evaluator: `value` goes in categorical_value, `name` is what people see."""

    name: str
    value: str


@dataclass(frozen=True)
class PassingCondition:
    """Where Respan draws pass/fail on a score's primary value: `<primary> <operator> <value>`.

    Respan stores it as `passing_conditions.primary_score = {"operator": "gte", "value": 3}` and
    answers the verdict as the score's `is_passed`. A boolean value is kept as a bool so it reads
    as true/false; comparisons treat it as 1/0, as JSON numbers and booleans compare in Python.
    """

    operator: Operator
    value: float | bool

    @classmethod
    def from_api(cls, passing_conditions: Any) -> PassingCondition | None:
        """The primary-score condition, or None when absent, null or in a shape this does not know."""
        raw = passing_conditions.get("primary_score") if isinstance(passing_conditions, dict) else None
        if not isinstance(raw, dict) or raw.get("operator") not in OPERATORS:
            return None
        value = _condition_value(raw.get("value"))
        return None if value is None else cls(operator=raw["operator"], value=value)

    def holds(self, primary: float | bool) -> bool:
        return _COMPARE[self.operator](float(primary), float(self.value))

    def text(self, field: str) -> str:
        """E.g. "numerical_value >= 3"."""
        shown = str(self.value).lower() if isinstance(self.value, bool) else f"{self.value:g}"
        return f"{field} {_SYMBOL[self.operator]} {shown}"


@dataclass(frozen=True)
class Evaluator:
    """What the server knows of a platform evaluator: what a score for it must be, and what it means."""

    id: str
    slug: str | None
    name: str | None
    score_value_type: str | None
    min_score: float | None
    max_score: float | None
    named_choices: tuple[Choice, ...] | None = None
    description: str | None = None
    rubric: str | None = None  # llm_config.scoring_rubric: what each value means
    definition: str | None = None  # llm_config.evaluator_definition: the grader's prompt, what it looks at
    passing_condition: PassingCondition | None = None

    @classmethod
    def from_api(cls, data: dict[str, Any]) -> Evaluator:
        config = _dict(data.get("score_config"))
        legacy = _dict(data.get("configurations"))  # older evaluators keep range, rubric and prompt here
        llm = _dict(data.get("llm_config"))
        choices = config.get("choices") or data.get("categorical_choices") or legacy.get("choices")
        score_value_type = data.get("score_value_type")
        # A percentage is 0 to 100 even when the evaluator does not say so.
        low, high = PERCENTAGE_RANGE if score_value_type == "percentage" else (None, None)
        return cls(
            id=str(data.get("id") or ""),
            slug=data.get("evaluator_slug") or data.get("slug"),
            name=data.get("name"),
            score_value_type=score_value_type if isinstance(score_value_type, str) else None,
            min_score=_number(config.get("min_score"), legacy.get("min_score"), low),
            max_score=_number(config.get("max_score"), legacy.get("max_score"), high),
            named_choices=_choices(choices),
            description=_text(data.get("description")),
            rubric=_text(llm.get("scoring_rubric")) or _text(legacy.get("scoring_rubric")),
            definition=_text(llm.get("evaluator_definition")) or _text(legacy.get("evaluator_definition")),
            passing_condition=PassingCondition.from_api(data.get("passing_conditions")),
        )

    @property
    def label(self) -> str:
        return self.slug or self.name or self.id

    @property
    def value_field(self) -> str | None:
        return VALUE_FIELD_FOR_TYPE.get(self.score_value_type or "")

    @property
    def choices(self) -> tuple[str, ...] | None:
        """The strings categorical_value may hold (each choice's value)."""
        return tuple(choice.value for choice in self.named_choices) if self.named_choices else None

    def condition_text(self) -> str | None:
        """The passing condition as a comparison on the value field, e.g. "numerical_value >= 3".

        None when there is none, or when it is not on a numerical or boolean value: what Respan
        compares for a select, text or json evaluator is not documented, so nothing is claimed.
        """
        condition = self.passing_condition
        if condition is None:
            return None
        if self.value_field == "numerical_value":
            return condition.text("numerical_value")
        if self.value_field == "boolean_value":
            passing = [value for value in (True, False) if condition.holds(value)]
            # Said as the one value that passes; a condition every value (or none) meets says nothing.
            return f"boolean_value == {str(passing[0]).lower()}" if len(passing) == 1 else None
        return None

    def passes(self, value: Any) -> bool | None:
        """Whether a score with this value would pass; None when there is no condition or it does not apply."""
        if self.passing_condition is None:
            return None
        if self.value_field == "numerical_value" and _is_number(value) and math.isfinite(value):
            return self.passing_condition.holds(value)
        if self.value_field == "boolean_value" and isinstance(value, bool):
            return self.passing_condition.holds(value)
        return None

    def describe(self) -> str:
        """E.g. "evaluator 'helpfulness' is numerical (1 to 5)"."""
        detail = ""
        if self.value_field == "numerical_value" and self._range():
            detail = f" ({self._range(' to ')})"
        elif self.choices:
            detail = " (choices: " + ", ".join(repr(c) for c in self.choices) + ")"
        return f"evaluator '{self.label}' is {self.score_value_type}{detail}"

    def what_to_send(self) -> str:
        field = self.value_field
        if field == "numerical_value" and self._range():
            return f"send numerical_value {self._range(' and ', 'between ')}"
        if field == "categorical_value" and self.choices:
            count = "exactly one" if self.score_value_type == "single_select" else "one or more"
            return f"send categorical_value with {count} of " + ", ".join(repr(c) for c in self.choices)
        return f"send {field}"

    def _range(self, joiner: str = " to ", both: str = "") -> str:
        """"1 to 5" (or "between 1 and 5"), "at least 1", "at most 5", or "" when unbounded."""
        low, high = self.min_score, self.max_score
        if low is not None and high is not None:
            return f"{both}{low:g}{joiner}{high:g}"
        return f"at least {low:g}" if low is not None else f"at most {high:g}" if high is not None else ""

    def check(self, field: str, value: Any, stated: str | None) -> None:
        """Refuse a value this evaluator cannot take; the message names it and what to send.

        `field` and `value` have passed the core rules for the `stated` type already (values.py);
        this adds what the evaluator says: its type, its type's rules when the caller stated none
        or another, its range and its choices.
        """
        expected = self.value_field
        if expected is None:  # a type this server does not know yet: leave it to the API
            return
        if stated and VALUE_FIELD_FOR_TYPE[stated] != expected:
            raise ScoreValueError(f"score_value_type '{stated}' does not match: {self._refusal()}")
        if field != expected:
            raise ScoreValueError(f"{self._refusal()}, not {field}")
        if stated != self.score_value_type:
            try:
                check_type_rules(value, self.score_value_type)
            except ScoreValueError as exc:
                raise ScoreValueError(f"{self._refusal()} ({exc})") from None
        if field == "numerical_value":
            low, high = self.min_score, self.max_score
            if (low is not None and value < low) or (high is not None and value > high):
                raise ScoreValueError(f"{self._refusal()} (got {value:g})")
        if field == "categorical_value" and self.choices:
            unknown = [v for v in value if v not in self.choices]
            if unknown:
                raise ScoreValueError(f"{self._refusal()} (got {', '.join(repr(v) for v in unknown)})")

    def _refusal(self) -> str:
        """E.g. "evaluator 'helpfulness' is numerical (1 to 5): send numerical_value between 1 and 5"."""
        return f"{self.describe()}: {self.what_to_send()}"


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _number(*candidates: Any) -> float | None:
    for value in candidates:
        if _is_number(value):
            return float(value)
    return None


def _text(value: Any) -> str | None:
    """Free text as given, or None when absent, blank or not text."""
    return (value.strip() or None) if isinstance(value, str) else None


def _condition_value(raw: Any) -> float | bool | None:
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
    return float(raw) if _is_number(raw) and math.isfinite(raw) else None


def _choices(raw: Any) -> tuple[Choice, ...] | None:
    """Choices as (name, value): the value is what categorical_value must hold (the name when a choice has
    no value, the string itself for a bare string); the name falls back to the value."""
    if not isinstance(raw, list) or not raw:
        return None
    found: list[Choice] = []
    for choice in raw:
        if isinstance(choice, dict):
            value, name = choice.get("value", choice.get("name")), choice.get("name")
            if value is not None:
                found.append(Choice(name=str(value if name is None else name), value=str(value)))
        elif choice is not None:
            found.append(Choice(name=str(choice), value=str(choice)))
    return tuple(found) or None
