"""What a platform evaluator is: what it allows a score to be, what it means, and when a score passes.

Agents rarely know an evaluator's type, range or choices; Respan describes them, so a
wrong field, an out-of-range number or an unknown choice is refused before the write
with a message that names the evaluator and says what to send. An agent grading its own
work also needs what the evaluator means (description, rubric, definition) and where
Respan draws pass/fail (the passing condition), so it scores against the evaluator and
not against its own reading of a slug. The value-type table and the core value rules
stay in `values.py`; this adds only what the evaluator says. Its fields are read by type and
bounded by `evaluator_fields.py`, so whatever Respan sends, an evaluator parses and every
text built from it stays short.
"""

from __future__ import annotations

import math
import operator
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from respan_mcp import evaluator_fields as fields
from respan_mcp.errors import ScoreValueError
from respan_mcp.evaluator_fields import Choice, condition_value, dict_of, first_number, is_number
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
# A refusal names at most this many choices (get_evaluator lists them all), and of the values refused
# at most REFUSED_SHOWN, each cut: a message stays a sentence whatever the evaluator or the call holds.
CHOICES_NAMED = 20
REFUSED_SHOWN = 5


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
        value = condition_value(raw.get("value"))
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
    whole_slug: str | None = None  # the slug as a write can send it; None when `slug` had to be cut or made one line
    choices_left_out: int = 0  # choices Respan listed that are not in named_choices (evaluator_fields.choices)
    description: str | None = None
    rubric: str | None = None  # llm_config.scoring_rubric: what each value means
    definition: str | None = None  # llm_config.evaluator_definition: the grader's prompt, what it looks at
    passing_condition: PassingCondition | None = None

    @classmethod
    def from_api(cls, data: Any) -> Evaluator:
        """Never raises: a field of the wrong type is absent, a number id or choice is read as its text,
        and every text is bounded (evaluator_fields). An evaluator without a usable id or slug
        parses too; whether it can be used is the caller's question (`usable`)."""
        data = dict_of(data)
        config = dict_of(data.get("score_config"))
        legacy = dict_of(data.get("configurations"))  # older evaluators keep range, rubric and prompt here
        llm = dict_of(data.get("llm_config"))
        named, left_out = fields.choices(config.get("choices") or data.get("categorical_choices") or legacy.get("choices"))
        score_value_type = fields.line(data.get("score_value_type"))
        raw_slug = next((s for s in (data.get("evaluator_slug"), data.get("slug")) if isinstance(s, str) and s.strip()), None)
        # A percentage is 0 to 100 even when the evaluator does not say so.
        low, high = PERCENTAGE_RANGE if score_value_type == "percentage" else (None, None)
        return cls(
            id=fields.handle(data.get("id")),
            slug=fields.line(raw_slug),
            whole_slug=fields.handle(raw_slug) or None,
            name=fields.line(data.get("name")),
            score_value_type=score_value_type,
            min_score=first_number(config.get("min_score"), legacy.get("min_score"), low),
            max_score=first_number(config.get("max_score"), legacy.get("max_score"), high),
            named_choices=named,
            choices_left_out=left_out,
            description=fields.text(data.get("description")),
            rubric=fields.text(llm.get("scoring_rubric")) or fields.text(legacy.get("scoring_rubric")),
            definition=fields.text(llm.get("evaluator_definition")) or fields.text(legacy.get("evaluator_definition")),
            passing_condition=PassingCondition.from_api(data.get("passing_conditions")),
        )

    @property
    def usable(self) -> bool:
        """Whether a write can name it: by its id, or by its slug."""
        return bool(self.id or self.whole_slug)

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
        if self.value_field == "numerical_value" and is_number(value) and math.isfinite(value):
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
            detail = f" (choices: {self._choices_named()})"
        return f"evaluator '{self.label}' is {self.score_value_type}{detail}"

    def what_to_send(self) -> str:
        field = self.value_field
        if field == "numerical_value" and self._range():
            return f"send numerical_value {self._range(' and ', 'between ')}"
        if field == "categorical_value" and self.choices:
            count = "exactly one" if self.score_value_type == "single_select" else "one or more"
            return f"send categorical_value with {count} of {self._choices_named()}"
        return f"send {field}"

    def _choices_named(self) -> str:
        """"'a', 'b'", with "and N more" past CHOICES_NAMED (or choices left out when read)."""
        choices = self.choices or ()
        more = len(choices) - CHOICES_NAMED + self.choices_left_out if len(choices) > CHOICES_NAMED else self.choices_left_out
        named = ", ".join(repr(choice) for choice in choices[:CHOICES_NAMED])
        return named + (f" and {more} more (get_evaluator lists them)" if more else "")

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
        # Choices left out when read may hold the value: then Respan, which has them all, decides.
        if field == "categorical_value" and self.choices and not self.choices_left_out:
            unknown = [v for v in value if v not in self.choices]
            if unknown:
                got = ", ".join(repr(fields.cut(v, fields.CHOICE_TEXT)) for v in unknown[:REFUSED_SHOWN])
                got += f" and {len(unknown) - REFUSED_SHOWN} more" if len(unknown) > REFUSED_SHOWN else ""
                raise ScoreValueError(f"{self._refusal()} (got {got})")

    def _refusal(self) -> str:
        """E.g. "evaluator 'helpfulness' is numerical (1 to 5): send numerical_value between 1 and 5"."""
        return f"{self.describe()}: {self.what_to_send()}"

